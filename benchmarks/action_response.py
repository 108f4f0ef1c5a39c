"""Does the dream answer actions as the world does? Real states branched under every held action.

    python benchmarks/action_response.py --model LABEL=PATH [--model ...] [--policy random|P.zip] [--starts 32] \
        [--horizon 8] [--seed 5000000] [--world-kwargs JSON] [--sampler-steps K] [--guidance G] [--out FOLDER]

An agent learns in a dream only what the dream makes its actions change. From ``--starts`` real
states (the real env from seed ``seed + i``, run by ``--policy`` for 0 to 31 steps past the model's
context; ``random`` or a saved SB3 PPO policy, e.g. a competent one, whose states a dream must get
right to pay competence), the real env (copied) and each model's dream (from the same real context
frames and actions) hold every action for ``--horizon`` steps. For each pair of actions ``a < b``
the *action effect* is the frame difference ``x(b) - x(a)`` between the two branches; per horizon
``h`` the report gives, over starts where both real branches are still running:

- ``effect``: the RMS of the real effect (per pixel value, frames in [0, 1]);
- ``gain``: the dream's effect RMS over the real one (1: as strong; 0: the dream ignores actions);
- ``error``: the RMS of (dream effect - real effect) over the real effect's RMS (0: right; 1: as
  wrong as ignoring the actions; above 1: worse than that);
- ``noise``: every branch is dreamed twice with other noise; the RMS difference between the two
  over the real effect's RMS. The dream's effect includes its noise, so a gain near the noise is
  no response.

A world whose action shows in a later frame (CartPole: its Euler step moves the cart and pole by
their old velocities, so an action shows from the second frame) has no effect at ``h = 1``
('-'). Prints a markdown table; ``--out`` writes ``action_response.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

from worldsim.atomic import write_table
from worldsim.bench.rl import saved_policies
from worldsim.data.episode import Episode
from worldsim.model.world_model import load

MAX_OFFSET = 32  # a start lies 0 .. MAX_OFFSET - 1 steps past the first full context


def real_starts(env, policy: str, starts: int, context: int, horizon: int, seed: int, actions: int) -> tuple[list[Episode], np.ndarray]:
    """``starts`` contexts (episodes of ``context`` frames) of the real ``env`` run by ``policy``, and
    the real branches from each: uint8 ``[starts, actions, horizon, H, W, 3]`` (a branch that ended
    keeps its last frame) with a bool ``[starts, actions, horizon]`` of which steps still ran."""
    rng = np.random.default_rng(seed)
    nets = saved_policies(policy, 1, env, seed)
    contexts, branches, running = [], [], []
    attempt = 0
    while len(contexts) < starts:
        episode_seed = seed + attempt
        attempt += 1
        if attempt > 100 * starts:
            raise RuntimeError(f"{policy} ended {100 * starts} episodes before reaching a start; no start found")
        offset = int(rng.integers(MAX_OFFSET))
        observation, _ = env.reset(seed=episode_seed)
        if nets:
            nets[0].reset(episode_seed)
        frames, taken, ended = [observation], [], False
        for _ in range(context - 1 + offset):
            action = nets[0](observation, {}) if nets else int(rng.integers(actions))
            observation, _, terminated, truncated, _ = env.step(action)
            frames.append(observation)
            taken.append(action)
            if terminated or truncated:
                ended = True
                break
        if ended:
            continue
        here = len(frames) - context
        contexts.append(
            Episode(
                np.array(frames[here:]),
                np.array(taken[here:], np.int64),
                np.zeros(context - 1, np.float32),
                np.zeros(context - 1, bool),
                np.zeros(context - 1, bool),
            )
        )
        start_branches, start_running = [], []
        for action in range(actions):
            twin = copy.deepcopy(env)
            shown, alive, frame, done = [], [], observation, False
            for _ in range(horizon):
                alive.append(not done)  # the step that ends the episode still shows its frame
                if not done:
                    frame, _, terminated, truncated, _ = twin.step(action)
                    done = terminated or truncated
                shown.append(frame)
            start_branches.append(np.array(shown))
            start_running.append(np.array(alive, bool))
        branches.append(start_branches)
        running.append(start_running)
    return contexts, np.array(branches), np.array(running)


def dream_branches(
    model, contexts: list[Episode], actions: int, horizon: int, seed: int, world_kwargs: dict, guidance: float = 1.0
) -> np.ndarray:
    """The dream's branches from the same contexts, each dreamed twice (other noise): uint8
    ``[starts, 2 * actions, horizon, H, W, 3]``, actions ``0 .. actions - 1`` and then again."""
    from gymnasium.vector import AutoresetMode

    from worldsim.envs.dream import DreamVectorEnv

    n = len(contexts) * 2 * actions
    envs = DreamVectorEnv(n, model, autoreset_mode=AutoresetMode.DISABLED, horizon=horizon + 1, guidance=guidance, **world_kwargs)
    envs.reset(seed=seed, options={"context": [c for c in contexts for _ in range(2 * actions)]})
    held = np.tile(np.arange(actions), 2 * len(contexts))
    frames = []
    for _ in range(horizon):
        observations, *_ = envs.step(held)
        frames.append(observations)
    envs.close()
    return np.stack(frames, axis=1).reshape(len(contexts), 2 * actions, horizon, *frames[0].shape[1:])


def effects(frames: np.ndarray) -> np.ndarray:
    """Every pair's effect ``x(b) - x(a)``, float ``[starts, pairs, horizon, H, W, 3]`` in [-1, 1]."""
    pairs = list(combinations(range(frames.shape[1]), 2))
    x = frames.astype(np.float32) / 255
    return np.stack([x[:, b] - x[:, a] for a, b in pairs], axis=1)


def compare(real: np.ndarray, running: np.ndarray, dream: np.ndarray, again: np.ndarray | None = None) -> list[dict]:
    """Per horizon: the real effect's RMS, the dream's gain and relative error, and with ``again``
    (the same branches dreamed with other noise) the dream's noise: the RMS difference between the
    two dreams of a branch over the real effect's RMS (a dream that ignores the actions still shows
    a gain near its noise). None without a real effect."""
    real_effect, dream_effect = effects(real), effects(dream)
    pairs = list(combinations(range(real.shape[1]), 2))
    both = np.stack([running[:, a] & running[:, b] for a, b in pairs], axis=1)  # [starts, pairs, horizon]
    rows = []
    for h in range(real.shape[2]):
        mask = both[:, :, h]
        if not mask.any():
            rows.append({"horizon": h + 1, "pairs": 0, "effect": None, "gain": None, "error": None, "noise": None})
            continue
        r, d = real_effect[:, :, h][mask], dream_effect[:, :, h][mask]
        power = float(np.mean(r**2))
        row = {"horizon": h + 1, "pairs": int(mask.sum()), "effect": float(np.sqrt(power)), "gain": None, "error": None, "noise": None}
        if power > 1e-12:
            row["gain"] = float(np.sqrt(np.mean(d**2) / power))
            row["error"] = float(np.sqrt(np.mean((d - r) ** 2) / power))
            if again is not None:
                alive = running[:, :, h]
                spread = (dream[:, :, h].astype(np.float32) - again[:, :, h]) / 255
                row["noise"] = float(np.sqrt(np.mean(spread[alive] ** 2) / power))
        rows.append(row)
    return rows


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(report: dict) -> str:
    horizons = [row["horizon"] for row in report["real"]]
    lines = [
        f"Action response ({report['env_id']}, {report['world_kwargs'] or 'default world'}): {report['starts']} real states "
        f"of policy `{report['policy']}`, every action held for {report['horizon']} steps from each. `{report['command']}`",
        "",
        "| h | " + " | ".join(str(h) for h in horizons) + " |",
        "| --- |" + " --- |" * len(horizons),
        "| real effect (RMS) | " + " | ".join(f"{r['effect']:.4f}" if r["effect"] is not None else "-" for r in report["real"]) + " |",
    ]
    for label, figures in report["models"].items():
        lines.append(f"| {label}: gain | " + " | ".join(cell(r["gain"]) for r in figures["rows"]) + " |")
        lines.append(f"| {label}: error | " + " | ".join(cell(r["error"]) for r in figures["rows"]) + " |")
        lines.append(f"| {label}: noise | " + " | ".join(cell(r["noise"]) for r in figures["rows"]) + " |")
    lines += [
        "",
        "gain: the dream's effect over the real one (1 = as strong); error: its RMS error over the real effect "
        "(0 = right, 1 = as wrong as no effect); noise: the RMS difference between two dreams of the same branch over the "
        "real effect (a gain near it is noise, not a response).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (a shipped name, model or run folder)")
    parser.add_argument("--policy", default="random", help="'random' or a saved SB3 PPO policy (.zip) that leads to the starts")
    parser.add_argument("--starts", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5_000_000)
    parser.add_argument("--world-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"scenario": "push"}\'')
    parser.add_argument("--sampler-steps", type=int, default=None, help="sampler steps per dream frame (default: each model's)")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale on actions and text (1 = none)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    models = [m.partition("=") for m in args.model]
    if any(not (label and sep and path) for label, sep, path in models):
        parser.error("--model takes LABEL=PATH")
    for name, value in (("--starts", args.starts), ("--horizon", args.horizon)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    if args.sampler_steps is not None and args.sampler_steps < 1:
        parser.error(f"--sampler-steps must be an integer >= 1, got {args.sampler_steps}")
    if args.policy != "random" and not (args.policy.endswith(".zip") and Path(args.policy).is_file()):
        parser.error(f"--policy takes 'random' or a saved SB3 policy file (.zip); {args.policy!r} is neither")
    loaded = {label: load(path) for label, _, path in models}
    first = next(iter(loaded.values()))
    config = first.config
    if not config.action_space.discrete:
        parser.error(f"branching every held action needs a discrete action space; the model has {config.action_space}")
    if any(m.config.env_id != config.env_id or m.config.frame_size != config.frame_size for m in loaded.values()):
        parser.error("every --model must be of the same world and frame size")
    from worldsim.agents.dyna import real_world
    from worldsim.bench.speed import own_window

    context = max(own_window(m) for m in loaded.values())  # the frames a dream starts from
    env = real_world(first, args.world_kwargs)
    n = config.action_space.n
    contexts, real, running = real_starts(env, args.policy, args.starts, context, args.horizon, args.seed, n)
    env.close()
    figures = {}
    for (label, _, path), model in zip(models, loaded.values()):
        if args.sampler_steps is not None:
            model.config.sampler_steps = args.sampler_steps
        dream = dream_branches(model, contexts, n, args.horizon, args.seed, args.world_kwargs, args.guidance)
        rows = compare(real, running, dream[:, :n], dream[:, n:])
        figures[label] = {"model": path, "sampler_steps": model.config.sampler_steps, "rows": rows}
    report = {
        "command": f"python benchmarks/action_response.py {shlex.join(sys.argv[1:] if argv is None else argv)}",
        "env_id": config.env_id,
        "world_kwargs": args.world_kwargs,
        "policy": args.policy,
        "starts": args.starts,
        "horizon": args.horizon,
        "seed": args.seed,
        "guidance": args.guidance,
        "real": [{k: r[k] for k in ("horizon", "pairs", "effect")} for r in compare(real, running, real)],
        "models": figures,
    }
    text = markdown(report)
    print(text, end="")
    if args.out is not None:
        write_table(args.out, "action_response", text, report)
    return report


if __name__ == "__main__":
    main()
