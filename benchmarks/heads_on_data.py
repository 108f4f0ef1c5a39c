"""Do a model's reward and termination heads read real frames right? Teacher-forced, on any collection.

    python benchmarks/heads_on_data.py --model LABEL=PATH [--model ...] --data COLLECTION [--episodes 8] [--out FOLDER]

For the first ``--episodes`` episodes of ``--data`` (e.g. episodes of a competent agent, which a
dream cuts short) each model's heads are read on every real frame behind its own window of real
frames (:func:`worldsim.bench.fidelity.teacher_forced_heads`). It reports, per model, the share of
the steps that did not end an episode where the termination probability exceeds the model's
``termination_threshold`` (false alarms), the share of the terminal steps where it does (recall;
'-' where none ends), the share of the steps 1, 2, 3 and 4 before a terminal one where it does
(a head that ends episodes early), and the reward head's RMS error. If a dream ends episodes
that the heads do not end on real frames, the dream's frames, not its heads, went wrong. Prints a
markdown table; ``--out`` writes ``heads_on_data.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from worldsim.atomic import write_table
from worldsim.bench.fidelity import teacher_forced_heads
from worldsim.bench.speed import own_window
from worldsim.data.collection import Collection
from worldsim.data.episode import Episode
from worldsim.model.world_model import load

EARLY = (1, 2, 3, 4)  # steps before a terminal step at which the report counts the head's firing


def measure(path: str, episodes: list[Episode]) -> dict:
    model = load(path)
    rewards, terminations = teacher_forced_heads(model, episodes, own_window(model))
    ended = np.concatenate([e.terminated for e in episodes]).astype(bool)
    real_rewards = np.concatenate([e.rewards for e in episodes])
    alarms = terminations > model.config.termination_threshold  # as the dream decides
    before: dict[int, list[bool]] = {k: [] for k in EARLY}
    start = 0
    for episode in episodes:
        n = len(episode.actions)
        if n and episode.terminated[-1]:
            for k in EARLY:
                if k < n:
                    before[k].append(bool(alarms[start + n - 1 - k]))
        start += n
    return {
        "model": path,
        "steps": int(len(ended)),
        "terminal_steps": int(ended.sum()),
        "false_alarms": float(alarms[~ended].mean()) if (~ended).any() else None,
        "recall": float(alarms[ended].mean()) if ended.any() else None,
        "reward_rmse": float(np.sqrt(np.mean((rewards - real_rewards) ** 2))),
        "fires_before": {str(k): float(np.mean(said)) if said else None for k, said in before.items()},
    }


def markdown(report: dict) -> str:
    lines = [
        f"Teacher-forced heads on the first {report['episodes']} episodes of `{report['data']}` ({report['steps']} steps, "
        f"{report['terminal_steps']} of them terminal). `{report['command']}`",
        "",
        "| model | false alarms (P(term) above the model's `termination_threshold` on a step that did not end) "
        "| recall on terminal steps | fires " + " / ".join(map(str, EARLY)) + " steps before one | reward RMS error |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, r in report["models"].items():
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        alarms = "-" if r["false_alarms"] is None else f"{r['false_alarms']:.4f}"
        early = " / ".join("-" if r["fires_before"][str(k)] is None else f"{r['fires_before'][str(k)]:.2f}" for k in EARLY)
        lines.append(f"| {label} | {alarms} | {recall} | {early} | {r['reward_rmse']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (a shipped name, model or run folder)")
    parser.add_argument("--data", required=True, help="a collection folder")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    models = [m.partition("=") for m in args.model]
    if any(not (label and sep and path) for label, sep, path in models):
        parser.error("--model takes LABEL=PATH")
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    episodes = [Episode.load(p) for p in Collection(args.data).paths()[: args.episodes]]
    if not episodes:
        parser.error(f"{args.data} holds no episodes")
    figures = {label: measure(path, episodes) for label, _, path in models}
    first = next(iter(figures.values()))
    report = {
        "command": f"python benchmarks/heads_on_data.py {shlex.join(sys.argv[1:] if argv is None else argv)}",
        "data": args.data,
        "episodes": len(episodes),
        "steps": first["steps"],
        "terminal_steps": first["terminal_steps"],
        "models": figures,
    }
    text = markdown(report)
    print(text, end="")
    if args.out is not None:
        write_table(args.out, "heads_on_data", text, report)
    return report


if __name__ == "__main__":
    main()
