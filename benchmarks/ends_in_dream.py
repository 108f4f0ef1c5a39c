"""Does the dream end an episode where the real one ends? Open loop from real frames, near each end.

    python benchmarks/ends_in_dream.py --model LABEL=PATH [--model ...] --data COLLECTION \
        [--episodes 32] [--before 1 2 4 8 15] [--late 3] [--physics-floor POS,VEL] [--physics-drift POS,VEL] \
        [--pole-angles] [--out FOLDER]

An agent trained in imagination (DIAMOND's protocol, ``worldsim agent dyna``) starts its dream
episodes from real frames and dreams a short horizon (15 steps), so what it learns about an
episode's end is what the dream does in the few steps before one. For each of the first
``--episodes`` episodes of ``--data`` that end by termination (a fall, a reach) and each ``K`` of
``--before``, the dream starts from the real frames up to ``K`` steps before the end (the model's
context) and replays the ``K`` recorded actions, then holds the last one ``--late`` steps more.
Per ``K`` it reports the share of branches whose dream ends on time (within one step of the real
end), early, late (up to ``--late`` steps after) or not at all, and the return the dream and the
real episode give over those ``K`` steps. A control row starts one branch per episode at least
``max(K) + late`` steps before its end (or in an episode that does not end) and reports the share
the dream ends within the ``max(K)`` steps it replays: false ends. Teacher-forced heads
(``benchmarks/heads_on_data.py``) say whether the heads read real frames right; this says whether
the dream's own frames get there and are read right. Prints a markdown table; ``--out`` writes
``ends_in_dream.md`` and ``.json``.

The physics floor (``--physics-floor POS,VEL``, CartPole only: its episodes record the state, which
CartPole-v1 can be set to): the same branches replayed in the real dynamics from the recorded state
at each branch's start plus Gaussian noise of std POS on the cart position (m) and pole angle
(rad) and VEL on their velocities (per second), ``--floor-samples`` times per branch. A model that
knew the state only that well would score this, so it tells how much of a dream's misses is its
own error and how much a state its frames cannot pin down (an inverted pole amplifies small errors).
``--physics-drift POS,VEL`` replays them from the exact recorded state and adds such noise after
every step instead: the error a model adds to each frame it makes and then reads back.
``--pole-angles`` (CartPole) compares the dream's pole angle with the real one t steps on, both read
off the frames (every physics row gets its own against the recorded state), and reads the pole on the
frame where each dream ended its episode: an end on an upright pole is the termination head's, not
the frames'.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from worldsim.atomic import write_table
from worldsim.data.collection import Collection
from worldsim.data.episode import Episode
from worldsim.envs.cartpole import STATE_KEYS
from worldsim.model.world_model import WorldModel

ON_TIME = 1  # steps of slack either side of the real end
Ends = list[tuple[int | None, float]]  # per branch: its first end (steps from its start; None: none) and its return


@dataclass
class Branch:
    """A dream branch: its table ``row``, the real ``context`` it starts from, the recorded
    ``actions`` it replays, the step the real episode ends at (None: a control branch) and the
    real return over those steps; with its world's recorded ``state`` at the start, the real
    frames after each replayed step (``future``) and the recorded states there (``future_states``)."""

    row: str
    context: Episode
    actions: np.ndarray
    real_end: int | None
    real_return: float
    state: dict[str, np.ndarray] | None = None  # the episode's recorded true state at the branch start (push's: arrays)
    future: np.ndarray | None = None  # uint8 [steps, H, W, 3]: the real frames after each replayed action
    future_states: dict[str, np.ndarray] | None = None  # the recorded state after each replayed action


def branches(episodes: list[Episode], before: list[int], late: int) -> list[Branch]:
    """A branch ``K`` steps before each terminal episode's end for each ``K`` of ``before``, and a
    control branch far from any end in each episode that has room for one."""
    longest = max(before)
    found = []
    for k in before:
        for episode in episodes:
            n = len(episode.actions)  # steps; the episode's frames are n + 1
            if episode.terminated[-1] and n >= k:
                found.append(branch(f"{k} before", episode, n - k, k, k))
    for episode in episodes:
        n = len(episode.actions)
        room = n - (longest + late) if episode.terminated[-1] else n - longest
        if room >= 1:  # mid-way through the starts that leave room, as a start drawn by Dyna could be
            found.append(branch("control", episode, (room + 1) // 2, longest, None))
    return found


def branch(row: str, episode: Episode, start: int, steps: int, real_end: int | None) -> Branch:
    """The branch from step ``start`` of ``episode`` replaying its next ``steps`` actions."""
    context = Episode(
        frames=episode.frames[: start + 1],
        actions=episode.actions[:start],
        rewards=episode.rewards[:start],
        terminated=np.zeros(start, dtype=bool),
        truncated=np.zeros(start, dtype=bool),
        caption=episode.caption,
    )
    span = slice(start, start + steps)
    state = {key: np.asarray(value[start]) for key, value in episode.states.items()} or None
    future = episode.frames[start + 1 : start + 1 + steps]
    future_states = {key: np.asarray(value[start + 1 : start + 1 + steps]) for key, value in episode.states.items()} or None
    real_return = float(np.sum(episode.rewards[span]))
    return Branch(row, context, np.asarray(episode.actions[span]), real_end, real_return, state, future, future_states)


def dream_ends(model: str | WorldModel, found: list[Branch], late: int, seed: int) -> tuple[Ends, np.ndarray]:
    """Each branch's first dream end (steps from its start; None: none) and dream return over its
    replayed steps (up to that end), all branches stepped as one batch; and the dream's frames,
    uint8 ``[branches, steps, H, W, 3]``."""
    from worldsim.envs.dream import DreamVectorEnv

    steps = max(len(b.actions) for b in found) + late
    env = DreamVectorEnv(num_envs=len(found), model=model, horizon=steps + 1, autoreset_mode="Disabled")
    env.reset(seed=seed, options={"context": [b.context for b in found]})
    lengths = np.array([len(b.actions) for b in found])
    ended = np.zeros(len(found), dtype=np.int64)  # 0: not yet
    returns = np.zeros(len(found))
    frames = []
    for t in range(steps):
        actions = np.stack([b.actions[min(t, len(b.actions) - 1)] for b in found])  # then the last one held
        observations, rewards, terminated, _, _ = env.step(actions)
        frames.append(np.asarray(observations))
        returns += np.where((ended == 0) & (t < lengths), rewards, 0.0)
        ended = np.where((ended == 0) & terminated, t + 1, ended)
    env.close()
    return [(int(e) if e else None, float(r)) for e, r in zip(ended, returns)], np.stack(frames, axis=1)


ANGLE_STEPS = (1, 2, 4, 8)  # steps after a branch's start at which --pole-angles compares the poles


def pole_angles(found: list[Branch], dreamed: np.ndarray) -> list[dict]:
    """Per table row and step t of :data:`ANGLE_STEPS`: the dream's pole angle against the real
    one, both read off the frames (:func:`worldsim.envs.cartpole.parse`), over the branches with
    a real frame t steps on: see :func:`angle_errors`."""
    from worldsim.envs.cartpole import parse

    def angles(i: int, t: int) -> tuple[float, float] | None:
        future = found[i].future
        if future is None or len(future) < t:
            return None
        return parse(dreamed[i, t - 1])[1], parse(future[t - 1])[1]

    return angle_errors(found, angles)


UPRIGHT = 0.19  # rad: a pole read under this has not fallen (CartPole-v1 ends past 0.2094; parse is within 0.002)


def end_angles(rows: list[str], ends: list[int | None], frames: list[np.ndarray]) -> list[dict]:
    """Per table row (``rows[i]`` of each ended replay), the pole on the frame where each ended
    (``frames[i][ends[i] - 1]``; None: did not end), read by :func:`worldsim.envs.cartpole.parse`:
    how many ended, the median absolute angle (rad) and the share under :data:`UPRIGHT`, a pole the
    world would not end on. Tells an end the frames earned from one the termination head made up."""
    from worldsim.envs.cartpole import parse

    table = []
    for name in dict.fromkeys(rows):
        angles = [abs(parse(f[e - 1])[1]) for row, e, f in zip(rows, ends, frames) if row == name and e is not None]
        if angles:
            upright = float(np.mean(np.array(angles) < UPRIGHT))
            table.append({"row": name, "ends": len(angles), "median": float(np.median(angles)), "upright": upright})
    return table


def angle_errors(found: list[Branch], angles: Callable[[int, int], tuple[float, float] | None]) -> list[dict]:
    """Per table row and step t of :data:`ANGLE_STEPS`, over the branches ``i`` where
    ``angles(i, t)`` gives (the replay's pole angle, the real one): the mean absolute difference
    (rad) and its mean signed toward the side the real pole leaned at the start (positive: the
    replay's pole leans further that way)."""
    table = []
    for name in dict.fromkeys(b.row for b in found):
        for t in ANGLE_STEPS:
            pairs = []
            for i, b in enumerate(found):
                pair = angles(i, t) if b.row == name and b.state is not None else None
                if pair is not None:
                    assert b.state is not None
                    lean = 1.0 if b.state["pole_angle"] >= 0 else -1.0
                    pairs.append((pair[0] - pair[1], lean))
            if pairs:
                error = np.array([d for d, _ in pairs])
                toward = np.array([d * lean for d, lean in pairs])
                table.append(
                    {
                        "row": name,
                        "t": t,
                        "branches": len(pairs),
                        "abs_error": float(np.abs(error).mean()),
                        "toward_lean": float(toward.mean()),
                    }
                )
    return table


def physics_ends(
    found: list[Branch], late: int, noise: tuple[float, float], samples: int, seed: int, drift: tuple[float, float] = (0.0, 0.0)
) -> tuple[list[Branch], Ends, np.ndarray]:
    """The branches ``samples`` times each, with each replay's first end and return in CartPole-v1's
    own dynamics, started from the branch's recorded state plus Gaussian ``noise`` (std of the
    position and angle, std of their velocities) and given Gaussian ``drift`` of the same kind
    after every step; steps as :func:`dream_ends` counts them. Also each replay's pole angle after
    every step (``[replays, steps]``; a replay goes on after its end, as a dream does)."""
    import gymnasium as gym

    env = cast(Any, gym.make("CartPole-v1").unwrapped)
    rng = np.random.default_rng(seed)
    std, step_std = (np.array([n[0], n[1], n[0], n[1]]) for n in (noise, drift))  # STATE_KEYS: x, x_dot, theta, theta_dot
    steps = max(len(b.actions) for b in found) + late
    repeated, results, angles = [], [], np.zeros((len(found) * samples, steps))
    for b in found:
        assert b.state is not None
        for _ in range(samples):
            env.reset(seed=seed)  # forgets the last replay's end; its start state is then replaced
            state = np.array([b.state[key] for key in STATE_KEYS]) + rng.normal(size=4) * std
            end, total = None, 0.0
            for t in range(steps):
                env.state = state
                env.steps_beyond_terminated = None  # a replay steps on past its end without gymnasium's warning
                _, reward, terminated, _, _ = env.step(int(b.actions[min(t, len(b.actions) - 1)]))
                # no draw without drift: a floor's replays keep the noise stream they always had
                state = np.asarray(env.state) + (rng.normal(size=4) * step_std if drift != (0.0, 0.0) else 0.0)
                angles[len(repeated), t] = state[STATE_KEYS.index("pole_angle")]
                if t < len(b.actions) + late and end is None:
                    total += float(reward) if t < len(b.actions) else 0.0
                    end = t + 1 if terminated else None
            repeated.append(b)
            results.append((end, total))
    env.close()
    return repeated, results, angles


def physics_angles(found: list[Branch], angles: np.ndarray) -> list[dict]:
    """:func:`angle_errors` of physics replays (:func:`physics_ends`) against the recorded angles."""

    def pair(i: int, t: int) -> tuple[float, float] | None:
        real = found[i].future_states
        if real is None or len(real["pole_angle"]) < t:
            return None
        return float(angles[i, t - 1]), float(real["pole_angle"][t - 1])

    return angle_errors(found, pair)


def summarise(found: list[Branch], results: Ends) -> list[dict]:
    """Per table row: the shares of branches ending on time / early / late / never (false ends for
    the control row) and the mean dream and real returns."""
    table = []
    for name in dict.fromkeys(b.row for b in found):
        members = [(b, result) for b, result in zip(found, results) if b.row == name]
        ends = [end for _, (end, _) in members]
        k = members[0][0].real_end
        summary: dict = {"row": name, "branches": len(members)}
        if k is None:
            # within the replayed steps: the held action after them is not what the real episode did
            summary["false_ends"] = float(np.mean([end is not None and end <= len(b.actions) for b, (end, _) in members]))
        else:
            summary |= {
                "on_time": float(np.mean([e is not None and abs(e - k) <= ON_TIME for e in ends])),
                "early": float(np.mean([e is not None and e < k - ON_TIME for e in ends])),
                "late": float(np.mean([e is not None and e > k + ON_TIME for e in ends])),
                "never": float(np.mean([e is None for e in ends])),
            }
        summary["dream_return"] = float(np.mean([r for _, (_, r) in members]))
        summary["real_return"] = float(np.mean([b.real_return for b, _ in members]))
        table.append(summary)
    return table


def markdown(report: dict) -> str:
    lines = [
        f"Dream branches from the real frames of the first {report['episodes']} episodes of `{report['data']}`, "
        f"replaying the recorded actions (then holding the last {report['late']} steps more). `{report['command']}`",
        "",
        "| model | branch start | branches | ends on time (+-1) | early | late | never | false ends (control) "
        "| dream return | real return |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, table in report["models"].items():
        for r in table:
            cells = [f"{r[key]:.2f}" if key in r else "-" for key in ("on_time", "early", "late", "never", "false_ends")]
            returns = f"{r['dream_return']:.3f} | {r['real_return']:.3f}"
            lines.append(f"| {label} | {r['row']} | {r['branches']} | {' | '.join(cells)} | {returns} |")
    if report.get("end_angles"):
        real = report["end_angles_real"][0] if report.get("end_angles_real") else None
        said = f" (the real episodes' last frames: median {real['median']:.3f}, {real['upright']:.2f} under it)" if real else ""
        lines += [
            "",
            f"The pole on the dream's frame where it ended the episode, read off the frame: median absolute angle (rad) and the "
            f"share under {UPRIGHT} rad, a pole the world would not end on (CartPole-v1 ends past 0.2094){said}.",
            "",
            f"| model | branch start | dream ends | median angle | share under {UPRIGHT} |",
            "| --- | --- | --- | --- | --- |",
        ]
        for label, table in report["end_angles"].items():
            lines += [f"| {label} | {r['row']} | {r['ends']} | {r['median']:.3f} | {r['upright']:.2f} |" for r in table]
    for label, table in report.get("pole_angles", {}).items():
        read = (
            f"the replays of `{label}` against the recorded one, both exact"
            if label.startswith("physics")
            else f"`{label}`'s dream against the real one, both read off the frames (`worldsim.envs.cartpole.parse`)"
        )
        lines += [
            "",
            f"Pole angle of {read}, t steps after the branch start: mean absolute difference (rad) / mean difference "
            "toward the side the real pole leaned at the start (positive: the replay's leans further).",
            "",
            "| branch start | branches (t = 1) | " + " | ".join(f"t = {t}" for t in ANGLE_STEPS) + " |",
            "| --- | --- | " + " | ".join("---" for _ in ANGLE_STEPS) + " |",
        ]
        for name in dict.fromkeys(r["row"] for r in table):
            rows = {r["t"]: r for r in table if r["row"] == name}
            cells = [f"{rows[t]['abs_error']:.4f} / {rows[t]['toward_lean']:+.4f}" if t in rows else "-" for t in ANGLE_STEPS]
            lines.append(f"| {name} | {rows[min(rows)]['branches']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def floor_noise(parser: argparse.ArgumentParser, option: str, text: str) -> tuple[float, float]:
    """``POS,VEL`` as two finite numbers >= 0, or the parser's one-line error naming ``option``."""
    try:
        pos, vel = (float(x) for x in text.split(","))
    except ValueError:
        parser.error(f"{option} takes POS,VEL (two numbers: std of position and angle, of their velocities), got {text!r}")
    if not (np.isfinite([pos, vel]).all() and pos >= 0 and vel >= 0):
        parser.error(f"{option}'s stds must be finite and >= 0, got {text!r}")
    return pos, vel


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (a shipped name, model or run folder)")
    parser.add_argument("--data", required=True, help="a collection of real episodes of the model's world")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--before", type=int, nargs="+", default=[1, 2, 4, 8, 15], help="steps before an end at which branches start")
    parser.add_argument("--late", type=int, default=3, help="steps after the real end the dream may still end (late)")
    parser.add_argument("--seed", type=int, default=0, help="the dream's noise seed")
    parser.add_argument(
        "--physics-floor",
        action="append",
        default=[],
        metavar="POS,VEL",
        help="CartPole: replay in its dynamics from the noisy recorded state (repeatable)",
    )
    parser.add_argument(
        "--physics-drift",
        action="append",
        default=[],
        metavar="POS,VEL",
        help="CartPole: replay in its dynamics from the recorded state, adding that noise after every step (repeatable)",
    )
    parser.add_argument("--floor-samples", type=int, default=16, help="replays per branch of each physics floor or drift")
    parser.add_argument("--pole-angles", action="store_true", help="CartPole: compare the dream's pole angle with the real one's")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    models = [m.partition("=") for m in args.model]
    if any(not (label and sep and path) for label, sep, path in models):
        parser.error("--model takes LABEL=PATH")
    if args.episodes < 1 or min(args.before) < 1 or args.late < 0:
        given = f"{args.episodes}, {args.before}, {args.late}"
        parser.error(f"--episodes and every --before must be at least 1 and --late at least 0, got {given}")
    floors = [floor_noise(parser, "--physics-floor", text) for text in args.physics_floor]
    drifts = [floor_noise(parser, "--physics-drift", text) for text in args.physics_drift]
    if args.floor_samples < 1:
        parser.error(f"--floor-samples must be at least 1, got {args.floor_samples}")
    episodes = Collection(args.data).load()[: args.episodes]
    found = branches(episodes, sorted(set(args.before)), args.late)
    if not any(b.real_end is not None for b in found):
        parser.error(f"no episode among the first {args.episodes} of {args.data} ends by termination")
    if (floors or drifts or args.pole_angles) and not all(b.state is not None and set(b.state) == set(STATE_KEYS) for b in found):
        parser.error(
            f"--physics-floor, --physics-drift and --pole-angles need CartPole episodes, which record its state "
            f"{', '.join(STATE_KEYS)}; {args.data} does not"
        )
    report: dict = {
        "command": f"python benchmarks/ends_in_dream.py {shlex.join(sys.argv[1:] if argv is None else argv)}",
        "data": args.data,
        "episodes": len(episodes),
        "late": args.late,
        "models": {},
    }
    for label, _, path in models:
        ends, dreamed = dream_ends(path, found, args.late, args.seed)
        report["models"][label] = summarise(found, ends)
        if args.pole_angles:
            report.setdefault("pole_angles", {})[label] = pole_angles(found, dreamed)
            report.setdefault("end_angles", {})[label] = end_angles([b.row for b in found], [e for e, _ in ends], list(dreamed))
    if args.pole_angles:  # the same reading of the real episodes' last frames, where the world ended them
        ended = [e for e in episodes if e.terminated[-1]]
        report["end_angles_real"] = end_angles(["real"] * len(ended), [len(e.frames) for e in ended], [e.frames for e in ended])
    replays = [((noise, (0.0, 0.0)), f"physics, noise {noise[0]:g} / {noise[1]:g}") for noise in floors]
    replays += [(((0.0, 0.0), drift), f"physics, noise {drift[0]:g} / {drift[1]:g} every step") for drift in drifts]
    for (noise, drift), label in replays:
        repeated, ends, angles = physics_ends(found, args.late, noise, args.floor_samples, args.seed, drift)
        report["models"][label] = summarise(repeated, ends)
        if args.pole_angles:
            report.setdefault("pole_angles", {})[label] = physics_angles(repeated, angles)
    text = markdown(report)
    print(text, end="")
    if args.out is not None:
        write_table(args.out, "ends_in_dream", text, report)
    return report


if __name__ == "__main__":
    main()
