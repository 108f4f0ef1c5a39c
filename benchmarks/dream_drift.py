"""How far does a CartPole dream drift off the world's frames when a policy plays it for long?

    python benchmarks/dream_drift.py --model LABEL=PATH [--model ...] --policy P.zip [--episodes 16] \
        [--steps 100] [--every 5] [--seed 4000000] [--sampler-steps K] [--out FOLDER]

A policy that keeps the pole up (a saved SB3 PPO policy, deterministic, its own stacked frames: e.g.
the 500-return agent of ``benchmarks/agent_defaults.py --save``) plays ``episodes`` dream envs for
``steps`` steps each, closed loop, from the real twin's context (seeds ``seed, seed + 1, ...``, as
``benchmarks/dream_episodes.py`` starts them). The termination head's ends are noted, not obeyed:
every env dreams all ``steps`` frames. Every ``every`` steps each dreamed frame gets its drawing error
(:func:`worldsim.envs.cartpole.drawing_error`: the RMS difference, in uint8 levels, between the
frame and CartPole's drawing of the state it shows; the world's own frames score under 0.15), and
so do the frames of the same policy's real episodes (the floor). Open-loop PSNR against the real
episode cannot see this: once the dream's pole leans differently from the real one, PSNR measures
the difference of states, while the drawing error measures whether the frame is a CartPole frame
at all. Per model it reports the median and 90th percentile of the error against the step, where the
head first ended each episode, and the error of the frames it ended them on. Prints a markdown table;
``--out`` writes ``dream_drift.md``, ``.json`` (every env's errors) and ``dream_drift.png``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from gymnasium.vector import AutoresetMode

from worldsim.atomic import atomic_write, write_table
from worldsim.bench.rl import real_episodes, real_world, saved_policies
from worldsim.model.world_model import WorldModel, load

MARKS = (1, 10, 25, 50, 100, 200, 500)


def dream_errors(model: WorldModel, policy: str, episodes: int, steps: int, every: int, seed: int) -> dict:
    """One model's closed-loop dreams: drawing errors ``[episodes, len(checked)]`` at the checked
    steps (``every``, ``2 * every``, ... and step 1), each env's first head end (None: none), and
    the drawing error of the frame it ended on."""
    from worldsim.envs.cartpole import drawing_error
    from worldsim.envs.dream import DreamVectorEnv

    envs = DreamVectorEnv(episodes, model, "cpu", horizon=steps, autoreset_mode=AutoresetMode.DISABLED)
    observations, _ = envs.reset(seed=seed)
    spaces = real_world(model, {})  # the saved policy is rebuilt for the real env's spaces, the dream's too
    nets = saved_policies(policy, episodes, spaces, seed)
    spaces.close()
    assert nets is not None, "main() checks that the policy is a .zip"
    checked = checked_steps(steps, every)
    errors = np.zeros((episodes, len(checked)))
    ends: list[int | None] = [None] * episodes
    end_errors: list[float | None] = [None] * episodes
    for t in range(1, steps + 1):
        actions = np.array([net(frame, {}) for net, frame in zip(nets, observations)])
        observations, _, terminated, _, _ = envs.step(actions)
        for i in np.flatnonzero(terminated):
            if ends[i] is None:
                ends[i], end_errors[i] = t, drawing_error(observations[i])
        if t in checked:
            errors[:, checked.index(t)] = [drawing_error(frame) for frame in observations]
    envs.close()
    return {"errors": errors.tolist(), "ends": ends, "end_errors": end_errors}


def real_errors(model: WorldModel, policy: str, episodes: int, steps: int, every: int, seed: int) -> dict:
    """The same policy's real episodes (:func:`worldsim.bench.rl.real_episodes`: seeds ``seed,
    seed + 1, ...``, cut at ``steps``): drawing errors at the checked steps each reached (NaN after
    its end) and the step where the world ended each (None: it did not)."""
    from worldsim.envs.cartpole import drawing_error

    checked = checked_steps(steps, every)
    errors = np.full((episodes, len(checked)), np.nan)
    ends: list[int | None] = [None] * episodes

    def watch(i: int, t: int, observation: np.ndarray, terminated: bool) -> None:
        if t in checked:
            errors[i, checked.index(t)] = drawing_error(observation)
        if terminated:
            ends[i] = t

    real_episodes(model, policy, episodes, seed, steps, watch=watch)
    return {"errors": errors.tolist(), "ends": ends}


def checked_steps(steps: int, every: int) -> list[int]:
    return sorted({1, *range(every, steps + 1, every)})


def summary(errors: np.ndarray, checked: list[int]) -> dict:
    """Median and 90th percentile of the error at each mark of :data:`MARKS` that was checked."""
    out = {}
    for mark in MARKS:
        if mark in checked:
            column = errors[:, checked.index(mark)]
            column = column[np.isfinite(column)]
            if len(column):
                out[str(mark)] = {"median": float(np.median(column)), "p90": float(np.quantile(column, 0.9)), "n": len(column)}
    return out


def markdown(report: dict) -> str:
    marks = [m for m in MARKS if str(m) in report["real"]["summary"] or any(str(m) in r["summary"] for r in report["models"].values())]
    lines = [
        "# How far the CartPole dream drifts off the world's frames",
        "",
        f"`{report['command']}`",
        "",
        f"The policy `{report['policy']}` plays {report['episodes']} dream envs {report['steps']} steps each, closed loop, "
        "from the real twin's context; the termination head's ends are noted, not obeyed. Drawing error: the RMS "
        "difference (uint8 levels) between a frame and CartPole's drawing of the state it shows "
        "(`worldsim.envs.cartpole.drawing_error`; the world's own frames score under 0.15). Median (90th percentile) "
        "over the envs at each step; the real row is the same policy in the real world, where the world's ends are obeyed "
        "(an episode that ended drops out).",
        "",
        "| model | " + " | ".join(f"t = {m}" for m in marks) + " | ended (real: the world; dream: the head) | end step, median | "
        "error on the ending frame, median |",
        "| --- | " + " | ".join("---" for _ in marks) + " | --- | --- | --- |",
    ]

    def cells(s: dict) -> list[str]:
        return [f"{s[str(m)]['median']:.2f} ({s[str(m)]['p90']:.2f})" if str(m) in s else "-" for m in marks]

    def ends(r: dict) -> list[str]:
        ended = [(e, x) for e, x in zip(r["ends"], r.get("end_errors", [None] * len(r["ends"]))) if e is not None]
        out = [f"{len(ended)} of {report['episodes']}", "-", "-"]
        if ended:
            out[1] = f"{np.median([e for e, _ in ended]):.0f}"
            if "end_errors" in r:
                out[2] = f"{np.median([x for _, x in ended]):.2f}"
        return out

    for label, r in [("real", report["real"]), *report["models"].items()]:
        lines.append(f"| {label} | {' | '.join([*cells(r['summary']), *ends(r)])} |")
    lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checked = report["checked"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, errors in [("real", report["real"]["errors"]), *((k, r["errors"]) for k, r in report["models"].items())]:
        ax.plot(checked, np.nanmedian(np.array(errors, dtype=float), axis=0), label=label)
    ax.set(xlabel="dreamed step", ylabel="drawing error, median (uint8 levels)", title="CartPole dream drift, closed loop")
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (a shipped name, model or run folder)")
    parser.add_argument("--policy", required=True, help="a saved SB3 PPO policy (.zip) that balances the pole")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=5, help="measure the frames every this many steps (and at step 1)")
    parser.add_argument("--seed", type=int, default=4_000_000)
    parser.add_argument("--sampler-steps", type=int, default=None, help="sampler steps per dream frame (default: each model's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    models = [m.partition("=") for m in args.model]
    if any(not (label and sep and path) for label, sep, path in models):
        parser.error("--model takes LABEL=PATH")
    if not (args.policy.endswith(".zip") and Path(args.policy).is_file()):
        parser.error(f"--policy takes a saved SB3 policy file (.zip); {args.policy!r} is not one")
    if min(args.episodes, args.steps, args.every) < 1 or (args.sampler_steps is not None and args.sampler_steps < 1):
        given = f"{args.episodes}, {args.steps}, {args.every}, {args.sampler_steps}"
        parser.error(f"--episodes, --steps, --every and --sampler-steps must be integers >= 1, got {given}")
    checked = checked_steps(args.steps, args.every)
    report: dict = {
        "command": f"python benchmarks/dream_drift.py {shlex.join(sys.argv[1:] if argv is None else argv)}",
        "policy": args.policy,
        "episodes": args.episodes,
        "steps": args.steps,
        "seed": args.seed,
        "checked": checked,
        "models": {},
    }
    first: WorldModel | None = None
    for label, _, path in models:
        model = load(path)
        if model.config.env_id != "worldsim/CartPole-v0":
            raise SystemExit(f"dream_drift.py measures CartPole models (worldsim/CartPole-v0); {path} is a model of {model.config.env_id}")
        if args.sampler_steps is not None:
            model.config.sampler_steps = args.sampler_steps
        r = dream_errors(model, args.policy, args.episodes, args.steps, args.every, args.seed)
        report["models"][label] = {**r, "summary": summary(np.array(r["errors"]), checked)}
        if first is None:
            first = model
    assert first is not None, "argparse requires a --model"
    real = real_errors(first, args.policy, args.episodes, args.steps, args.every, args.seed)
    report["real"] = {**real, "summary": summary(np.array(real["errors"]), checked)}
    text = markdown(report)
    print(text, end="")
    if args.out is not None:
        for r in [report["real"], *report["models"].values()]:  # JSON has no NaN: a step an episode did not reach is null
            r["errors"] = [[None if not np.isfinite(x) else x for x in row] for row in r["errors"]]
        write_table(args.out, "dream_drift", text, report)
        plot(report, args.out / "dream_drift.png")
    return report


if __name__ == "__main__":
    main()
