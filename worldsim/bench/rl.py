"""RL benchmark: real return against real steps, agents trained in a dream (Dyna) vs model-free.

For each of ``seeds`` seeds it runs :func:`~worldsim.agents.dyna.dyna` from the given world model
and :func:`~worldsim.agents.dyna.model_free` with the same SB3 algorithm and the same agent
(architecture, wrappers, number of envs, hyperparameters: the report's header records them), both
evaluated in the real world at the same marks (every ``real_steps / iterations``) over
``eval_episodes`` seeded episodes; model-free trains on for ``model_free_budget`` times Dyna's real
steps. The report gives, per mark, the mean over seeds of each seed's mean real return and its
spread (std over seeds), and the targets (the real steps a mark may use: its budget):

- the dream-trained agent, at its best mark within 20,000 real steps, matches or beats model-free
  at its last mark within ``model_free_budget`` x 20,000 (the sample-efficiency claim);
- it beats model-free at the 20,000-step mark (the same budget);
- a world's ``rl_return_target`` (:mod:`worldsim.envs.worlds`; pixel CartPole: 475) within 20,000.

The per-seed runs (collections, fine-tuned world models, policies) go to ``work``; the report
(``rl.json``, ``rl.md``, ``rl.png``) to ``out``.

:func:`episodes_real_and_dreamed` asks why a dream-trained agent fails in the real world: it compares
the length and return of real and dream episodes under simple fixed policies
(``benchmarks/dream_episodes.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from worldsim.agents.dyna import DynaSettings, dyna, model_free, plot_returns, real_world
from worldsim.agents.imagination import HYPERPARAMETERS
from worldsim.atomic import write_table
from worldsim.envs.worlds import world
from worldsim.errors import UserError, check_integer

TARGET_STEPS = 20_000
METHODS = ("dyna", "model-free")


def run_rl(
    model_path: str,
    algo: str,
    settings: DynaSettings,
    seeds: int,
    work: str | Path,
    device: str = "cpu",
    progress: bool = True,
    model_free_budget: int = 5,
    **world_kwargs,
) -> dict:
    """Runs both methods for every seed; returns the report (see the module docstring)."""
    from worldsim.model.world_model import load

    check_integer("seeds", seeds)
    world = load(model_path).config.env_id
    runs: dict[str, list[list[dict]]] = {method: [] for method in METHODS}
    for seed in range(seeds):
        per_seed = replace(settings, seed=settings.seed + seed)
        folder = Path(work) / f"seed_{per_seed.seed}"
        runs["dyna"].append(dyna(model_path, algo, folder, per_seed, device, resume=True, progress=progress, **world_kwargs))
        runs["model-free"].append(model_free(model_path, algo, folder, per_seed, device, progress, model_free_budget, **world_kwargs))
    curves = {method: summarise(rows) for method, rows in runs.items()}
    plain_kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in world_kwargs.items()}
    report = {
        "model": model_path,
        "world": world,
        "world_kwargs": plain_kwargs,
        "algo": algo,
        "hyperparameters": HYPERPARAMETERS[algo],
        "seeds": seeds,
        "settings": asdict(settings),
        "model_free_budget": model_free_budget,
        "curves": curves,
        "runs": runs,
        "seconds": sum(float(rows[-1]["seconds"]) for method in runs.values() for rows in method if rows),
    }
    report["targets"] = targets(report)
    return report


def summarise(per_seed: list[list[dict]]) -> list[dict]:
    """Per mark: real steps (mean over seeds), mean return over seeds and its spread."""
    marks = min(len(rows) for rows in per_seed)
    out = []
    for k in range(marks):
        means = np.array([float(rows[k]["mean_return"]) for rows in per_seed])
        steps = np.array([float(rows[k]["real_steps"]) for rows in per_seed])
        mark = {
            "real_steps": float(steps.mean()),
            "mean_return": float(means.mean()),
            "std_return": float(means.std()),
            "min_return": float(means.min()),
            "max_return": float(means.max()),
        }
        for key in ("dream_length", "dream_return"):  # Dyna's, where every seed logged it (runs from before did not)
            values = [rows[k].get(key) for rows in per_seed]
            if all(isinstance(value, (int, float)) for value in values):
                mark[key] = float(np.mean(values))
        out.append(mark)
    return out


def targets(report: dict) -> list[dict]:
    """The targets (module docstring) at the marks whose budget is within ``TARGET_STEPS`` real
    steps, or ``model_free_budget`` x that for model-free (a mark's budget is its share of
    ``real_steps``; the steps used may pass it by the end of the last episode)."""
    settings = DynaSettings(**report["settings"])
    dream, free = report["curves"]["dyna"], report["curves"]["model-free"]
    within = [k for k in range(len(dream)) if settings.quota(k) <= TARGET_STEPS]
    if not within:
        return []
    best = max(dream[k]["mean_return"] for k in within)
    out = []
    budget = report.get("model_free_budget", 1)
    longer = [k for k in range(len(free)) if settings.quota(k) <= budget * TARGET_STEPS]
    if budget > 1 and longer and longer[-1] > within[-1]:
        k = longer[-1]
        gap = best - free[k]["mean_return"]
        target = f"dream-trained within {TARGET_STEPS} real steps >= model-free at {settings.quota(k)}"
        out.append({"target": target, "value": gap, "passed": bool(gap >= 0)})
    if len(free) > within[-1]:
        k = within[-1]
        gap = dream[k]["mean_return"] - free[k]["mean_return"]
        out.append(
            {"target": f"dream-trained beats model-free at the {settings.quota(k)}-real-step mark", "value": gap, "passed": bool(gap > 0)}
        )
    goal = world(report["world"]).rl_return_target
    if goal is not None:
        target = f"dream-trained real return >= {goal:.0f} within {TARGET_STEPS} real steps"
        out.append({"target": target, "value": best, "passed": bool(best >= goal)})
    return out


def write_report(report: dict, out: str | Path, command: str) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**report, "command": command}
    paths = [out / "rl.json", out / "rl.md", out / "rl.png"]
    write_table(out, "rl", markdown(report), report)
    name = report["world"].split("/")[-1]
    plot_returns(report["curves"], paths[2], f"{report['algo'].upper()} on {name}, {report['seeds']} seeds: real return vs real steps")
    return paths


def start_of(report: dict) -> str:
    """Where the Dyna world model starts, and so which real steps the curve counts."""
    if report["settings"]["model_steps"] == 0:
        return f"`{report['model']}` dreaming every round as it is: the real steps it was trained on are not counted."
    if report["settings"].get("fresh"):
        return (
            f"the first round training a new world model of `{report['model']}`'s sizes from random weights, so every "
            "real step any world model learned from is counted."
        )
    return f"fine-tuning `{report['model']}` from the first round: the real steps that model was trained on before are not counted."


def world_training(settings: dict) -> str:
    """The rounds' world-model step of the header's loop ("" when the model is not fine-tuned)."""
    if settings["model_steps"] == 0:
        return ""
    start = "of the given model" if settings.get("model_init", "last") == "given" else "of the last round's model"
    rehearsal = settings.get("model_data") or []
    data = "all real data so far" + (f" and the collections {', '.join(map(str, rehearsal))} (not counted)" if rehearsal else "")
    return f"{settings['model_steps']} world-model training steps {start} on {data} ({fine_tuning(settings)}) -> "


def fine_tuning(settings: dict) -> str:
    """The rounds' world-model training settings, as the header states them (reports from before
    ``model_terminal_repeats`` existed ran with train's 8)."""
    repeats = settings.get("model_terminal_repeats", 8)
    extra = "".join(f", {key} {value}" for key, value in settings.get("model_train", {}).items())
    return f"lr {settings['model_lr']:g}, batch {settings['model_batch_size']}, windows ending an episode drawn {repeats}x{extra}"


def agent_line(report: dict) -> str:
    """The agent both methods train, as the header states it."""
    s = report["settings"]
    stack = f"{s['frame_stack']} stacked frames" if s["frame_stack"] > 1 else "one frame"
    rewards = "rewards normalised (`VecNormalize(norm_obs=False)`)" if s["normalize_reward"] else "raw rewards"
    settings = ", ".join(f"{key}={value}" for key, value in report["hyperparameters"].items())
    starts = "real frames of its collections" if s.get("replay_starts") else "the real twin's resets"
    horizon = s.get("imagination_horizon") or "the real episode length"
    fast = [word for word, on in (("compiled passes", s.get("compile")), ("bfloat16", s.get("precision") == "bfloat16")) if on]
    simulator = f" The dream's simulator: {' and '.join(fast)}." if fast else ""  # reports from before: eager float32
    return (
        f"Agent (both methods): {report['algo'].upper()} `CnnPolicy` with worldsim's `FrameCNN`, {s['num_envs']} envs, "
        f"{stack}, {rewards}; {settings}. Dyna's dream episodes start from {starts} and are truncated "
        f"after {horizon} steps.{simulator}"
    )


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        f"# RL in imagination: {report['world']} {report['world_kwargs']}",
        "",
        f"`{report['command']}` (its runs took {report['seconds'] / 60:.0f} min in all)",
        "",
        f"{report['algo'].upper()}, {report['seeds']} seeds. Dyna: {s['iterations']} rounds of (collect real steps with the "
        f"policy -> {world_training(s)}{s['dream_steps']} dream steps of the agent), {start_of(report)} "
        "Model-free: the same algorithm on the real env, for "
        f"{report.get('model_free_budget', 1)}x the real steps. Returns: mean over seeds of "
        f"each seed's mean real return over {s['eval_episodes']} seeded episodes; spread: std over seeds.",
        "",
        agent_line(report),
        "",
        "## Targets",
        "",
        *[f"- {t['target']}: {t['value']:.2f}, {'PASS' if t['passed'] else 'FAIL'}" for t in report["targets"]],
        "",
        "## Real return against real steps",
        "",
        "| mark | dyna real steps | dyna return | dyna's dream episodes: length / return | model-free real steps | model-free return |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    dream, free = report["curves"]["dyna"], report["curves"]["model-free"]
    for k in range(max(len(dream), len(free))):
        cells = []
        for curve in (dream, free):
            row = curve[k] if k < len(curve) else None
            cells += ["-", "-"] if row is None else [f"{row['real_steps']:.0f}", f"{row['mean_return']:.2f} ± {row['std_return']:.2f}"]
            if curve is dream:
                logged = row is not None and "dream_length" in row
                cells.append(f"{row['dream_length']:.1f} / {row['dream_return']:.1f}" if logged else "-")
        lines.append(f"| {k + 1} | {' | '.join(cells)} |")
    horizon = report["settings"].get("imagination_horizon")
    lines += [
        "",
        f"Dream episodes: the mean length and return of the last 100 of each round (cut at {horizon or 'the real length'} steps), "
        "as the round's final agent plays them; mean over seeds (`-`: not logged by runs from before).",
        "",
        "Plot: `rl.png`.",
        "",
    ]
    return "\n".join(lines)


def act(policy: str, n: int, n_actions: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` actions of ``policy``: ``"random"`` (uniform) or an action's number (always that one)."""
    if policy == "random":
        return rng.integers(n_actions, size=n)
    return np.full(n, int(policy))


def saved_policies(policy: str, n: int, env, seed: int) -> list | None:
    """For a saved SB3 PPO policy (a ``.zip`` path), one :class:`~worldsim.data.policies.SB3Policy`
    per env (each stacks its own env's frames), seeded ``seed, seed + 1, ...``; else None."""
    if not policy.endswith(".zip"):
        return None
    from worldsim.data.policies import SB3Policy

    nets = [SB3Policy(Path(policy), env, "ppo") for _ in range(n)]
    for i, net in enumerate(nets):
        net.reset(seed + i)
    return nets


def real_episodes(
    model,
    policy: str,
    episodes: int,
    seed: int,
    max_steps: int,
    watch: Callable[[int, int, np.ndarray, bool], None] | None = None,
    **world_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths and returns of ``episodes`` real episodes of ``policy`` (seeds ``seed, seed + 1, ...``),
    cut at ``max_steps``; ``watch(episode, step, observation, terminated)``, if given, sees every
    step (``step`` from 1)."""
    env = real_world(model, world_kwargs)
    nets = saved_policies(policy, 1, env, seed)
    lengths, returns = np.zeros(episodes), np.zeros(episodes)
    for i in range(episodes):
        observation, _ = env.reset(seed=seed + i)
        rng = np.random.default_rng(seed + i)
        if nets:
            nets[0].reset(seed + i)
        for _ in range(max_steps):
            action = nets[0](observation, {}) if nets else int(act(policy, 1, env.action_space.n, rng)[0])
            observation, reward, terminated, truncated, _ = env.step(action)
            lengths[i] += 1
            returns[i] += reward
            if watch is not None:
                watch(i, int(lengths[i]), observation, bool(terminated))
            if terminated or truncated:
                break
    env.close()
    return lengths, returns


def dream_episodes(
    model,
    policy: str,
    episodes: int,
    seed: int,
    max_steps: int,
    device: str = "cpu",
    precision: str = "float32",
    shows_end: Callable[[np.ndarray], bool] | None = None,
    **world_kwargs,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Lengths and returns of the first episode of each of ``episodes`` dream envs (reset with
    ``seed``: each starts from its real twin's context) under ``policy``, cut at ``max_steps``;
    ``precision``: the simulator's. With ``shows_end`` (a world's
    :attr:`~worldsim.envs.worlds.World.shows_end`), also the lengths had each episode also ended at
    its first frame whose pixels show an end (else None): the same episodes, read off the frames, so
    a gap between the two is the termination head's misses, not the dynamics'."""
    from worldsim.envs.dream import DreamVectorEnv

    envs = DreamVectorEnv(episodes, model, device, horizon=max_steps, precision=precision, **world_kwargs)
    observations, _ = envs.reset(seed=seed)
    spaces = real_world(model, world_kwargs)  # a saved policy is rebuilt for the real env's spaces, the dream's too
    nets = saved_policies(policy, episodes, spaces, seed)
    spaces.close()
    rng = np.random.default_rng(seed)
    lengths, returns, frame_lengths = np.zeros(episodes), np.zeros(episodes), np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    shown = np.full(episodes, shows_end is None)  # an env's end shown by its frames (or by the head: counting stops)
    while running.any():
        if nets:  # an env that has ended keeps being stepped (its episode no longer counts)
            actions = np.array([net(frame, {}) for net, frame in zip(nets, observations)])
        else:
            actions = act(policy, episodes, envs.single_action_space.n, rng)
        observations, rewards, terminated, truncated, _ = envs.step(actions)
        lengths += running
        returns += np.where(running, rewards, 0.0)
        frame_lengths += ~shown
        running &= ~(terminated | truncated)
        shown |= ~running
        if shows_end is not None:
            for i in np.flatnonzero(~shown):
                shown[i] = shows_end(observations[i])
    envs.close()
    return lengths, returns, frame_lengths if shows_end is not None else None


def episodes_real_and_dreamed(
    model,
    episodes: int,
    seed: int,
    max_steps: int,
    device: str = "cpu",
    policies: Sequence[str] = (),
    precision: str = "float32",
    frame_ends: bool = False,
    **world_kwargs,
) -> list[dict]:
    """Per policy (uniformly random, every constant action, then each saved SB3 policy of
    ``policies``, e.g. an agent trained on the real env): mean length and return of real and dream
    episodes. Where a policy's dream episodes last longer than its real ones, the termination head
    misses ends, or the dream's dynamics forgive what the world's do not, and an agent trained in
    the dream is not taught to avoid them; where a competent policy earns no more in the dream than
    a bad one, the dream has nothing to teach. ``frame_ends``: also the dream episodes' mean length
    had they ended where their frames show an end (``dream_length_frames``; the world must read
    its frames, :attr:`~worldsim.envs.worlds.World.shows_end`), which tells the two causes apart."""
    space = model.config.action_space
    if not space.discrete:
        raise UserError(f"comparing episodes needs a discrete action space, the model has {space}")
    shows_end = None
    if frame_ends:
        shows_end = world(model.config.env_id).shows_end
        if shows_end is None:
            raise UserError(f"frame ends need a world whose frames show its ends; {model.config.env_id} has none (cartpole has)")
    rows = []
    for policy in ["random", *map(str, range(space.n)), *policies]:
        real_lengths, real_returns = real_episodes(model, policy, episodes, seed, max_steps, **world_kwargs)
        lengths, returns, frame_lengths = dream_episodes(
            model, policy, episodes, seed, max_steps, device, precision, shows_end, **world_kwargs
        )
        row = {"policy": policy if policy == "random" or policy in policies else f"always {policy}"}
        for side, side_lengths, side_returns in (("real", real_lengths, real_returns), ("dream", lengths, returns)):
            row |= {f"{side}_length": float(side_lengths.mean()), f"{side}_return": float(side_returns.mean())}
        if frame_lengths is not None:
            row["dream_length_frames"] = float(frame_lengths.mean())
        rows.append(row)
    return rows


def episodes_markdown(rows: list[dict], header: str) -> str:
    frames = all("dream_length_frames" in r for r in rows)
    frame_column = " dream length, ended where a frame shows an end |" if frames else ""
    lines = [header, "", f"| policy | real length | dream length |{frame_column} real return | dream return |"]
    lines.append("|" + " --- |" * (6 if frames else 5))
    for r in rows:
        frame_cell = f" {r['dream_length_frames']:.1f} |" if frames else ""
        lengths = f"{r['real_length']:.1f} | {r['dream_length']:.1f} |{frame_cell}"
        lines.append(f"| {r['policy']} | {lengths} {r['real_return']:.3f} | {r['dream_return']:.3f} |")
    if frames:
        lines += [
            "",
            "The fourth column ends each dream episode also at its first frame whose pixels show an end (read by the world's "
            "parser): where it is shorter than the dream length, the termination head missed ends the frames show.",
        ]
    return "\n".join(lines) + "\n"
