"""Do a model's dreams stay true? One ablation row per recipe: long-rollout validity, PSNR, physics.

    python benchmarks/stability.py --model LABEL=PATH --setting "what the recipe changed" \
        [--context-noise 0.2] [--sampler-steps 2] [--no-commit-pass] [--precision bfloat16] [--episodes 8] \
        [--long-steps 1000] [--long-rollouts 4] \
        [--seed 1000000] [--out benchmarks/results/stability]

For a Balls world model (a shipped name, model or run folder) it runs the fidelity benchmark
(open loop from real context, ``--episodes`` held-out episodes per scenario, 32 dreamed frames;
``--long-rollouts`` rollouts of ``--long-steps`` frames per scenario) and the physics benchmark (id
split) with :mod:`worldsim.bench.fidelity`, and reduces them to one row:

| column | what |
| --- | --- |
| valid@100, valid@N | share of long rollouts with every frame so far valid, mean over the 4 scenarios (min) |
| PSNR h=1/8/16/32 | open-loop PSNR over all scenarios, with copy-last in brackets |
| v-err / floor | velocity error over the parser floor per scenario (id split): mean (max) |
| steps, wall | optimizer steps and training time of the run the model comes from (its ``metrics.csv``), when it has one |

``--context-noise`` and ``--sampler-steps`` override the model's inference context noise level and
sampler steps per frame (``worldsim.json``) for this row; ``--no-commit-pass`` makes the sampler's
last pass, at the context noise level, commit each frame (``commit_pass`` false: k passes per
frame instead of k + 1; the sampler-steps column then reads "k, no commit pass"); ``--precision bfloat16``
runs the simulator's passes under bfloat16 autocast (the column adds "bf16"). Rows accumulate in ``OUT/stability.json``
by label (a label measured again replaces its row), each with the command that made it;
``OUT/stability.md`` is the table of all of them.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from worldsim.atomic import write_table
from worldsim.bench.fidelity import Settings, run_fidelity, run_physics
from worldsim.model.world_model import load, model_folder
from worldsim.simulator import PRECISIONS

HORIZONS = (1, 8, 16, 32)  # rows measured before h=16 was a column show '-' there


def training_of(path: str) -> tuple[int | None, float | None]:
    """Steps and hours of training behind a checkpoint of a run folder (None where it has none):
    the steps of its last logged row, the time summed from the rows' steps per second."""
    folder = model_folder(path)
    metrics = folder.parent.parent / "metrics.csv"
    if folder.parent.name != "checkpoints" or not metrics.is_file():
        return None, None
    rows = list(csv.DictReader(metrics.open()))
    steps = [int(r["step"]) for r in rows]
    rates = [float(r["steps_per_s"]) for r in rows]
    seconds = sum((b - a) / rate for a, b, rate in zip([0, *steps], steps, rates) if rate > 0)
    return steps[-1], seconds / 3600


def measure(label: str, path: str, setting: str, context_noise: float | None, settings: Settings, commit_pass: bool = True) -> dict:
    model = load(path)
    if context_noise is not None:
        model.config.context_noise = context_noise
    if not commit_pass:
        model.config.commit_pass = False
    if settings.sampler_steps is not None:
        model.config.sampler_steps = settings.sampler_steps
    fidelity = run_fidelity(model, settings).report
    physics = run_physics(model, Settings(**{**settings.__dict__, "long_steps": 0})).report
    long = {k: v["valid"] for k, v in fidelity["long_rollouts"].items()}
    at = {n: [curve[min(n, len(curve)) - 1] for curve in long.values()] for n in (100, settings.long_steps)}
    curves = fidelity["groups"]["all"]["curves"]
    ratios = {
        name.split("/")[0]: g["model"]["velocity_error"] / g["parser_floor"]["velocity_error"]
        for name, g in physics["groups"].items()
        if name.endswith("/id")
    }
    steps, hours = training_of(path)
    return {
        "label": label,
        "model": path,
        "setting": setting,
        "context_noise": model.config.context_noise,
        "sampler_steps": model.config.sampler_steps,
        "commit_pass": model.config.commit_pass,
        "precision": settings.precision,
        "train_steps": steps,
        "train_hours": hours,
        "valid": {str(n): {"mean": float(np.mean(v)), "min": float(np.min(v))} for n, v in at.items()},
        "psnr": {str(h): curves["model"]["psnr"][h - 1] for h in HORIZONS},
        "copy_last_psnr": {str(h): curves["copy_last"]["psnr"][h - 1] for h in HORIZONS},
        "velocity_ratio": ratios,
        "settings": settings.__dict__,
        "seconds": fidelity["seconds"] + physics["seconds"],
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "# Stability ablations: do the dreams stay true?",
        "",
        "One row per recipe, each from its own `python benchmarks/stability.py` command (below the table). Validity: share of long "
        "rollouts whose every frame so far is valid, mean over the 4 Balls scenarios (min). PSNR: open loop over all scenarios "
        "(copy-last). v-err / floor: velocity error over the parser floor per scenario, mean (max).",
        "",
        "| label | setting | context noise | sampler steps | steps | wall (h) | valid@100 | valid@N (N) | PSNR h=1 | h=8 | h=16 | h=32 "
        "| v-err / floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        n = str(r["settings"]["long_steps"])
        psnr = [f"{r['psnr'][str(h)]:.2f} ({r['copy_last_psnr'][str(h)]:.2f})" if str(h) in r["psnr"] else "-" for h in HORIZONS]
        ratios = list(r["velocity_ratio"].values())
        steps = "-" if r["train_steps"] is None else f"{r['train_steps']:,}"
        hours = "-" if r["train_hours"] is None else f"{r['train_hours']:.2f}"
        sampler = f"{r['sampler_steps']}" + ("" if r.get("commit_pass", True) else ", no commit pass")  # older rows: a commit pass
        sampler += ", bf16" if r.get("precision") == "bfloat16" else ""  # older rows: float32
        lines.append(
            f"| {r['label']} | {r['setting']} | {r['context_noise']} | {sampler} | {steps} | {hours} | "
            f"{r['valid']['100']['mean']:.2f} ({r['valid']['100']['min']:.2f}) | "
            f"{r['valid'][n]['mean']:.2f} ({r['valid'][n]['min']:.2f}) ({n}) | {' | '.join(psnr)} | "
            f"{np.mean(ratios):.1f} ({np.max(ratios):.1f}) |"
        )
    lines += ["", "Commands:", ""] + [f"- {r['label']}: `{r['command']}`" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="LABEL=PATH: the row's label and a Balls world model")
    parser.add_argument("--setting", default="", help="what this recipe changed, for the table")
    parser.add_argument("--context-noise", type=float, default=None, help="inference context noise (default: the model's)")
    parser.add_argument("--sampler-steps", type=int, default=None, help="sampler steps per frame (default: the model's)")
    parser.add_argument(
        "--no-commit-pass",
        action="store_true",
        help="the sampler's last pass, at the context noise level, commits each frame (one pass fewer)",
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="the simulator's passes")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--long-steps", type=int, default=1000)
    parser.add_argument("--long-rollouts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stability"))
    args = parser.parse_args()
    label, sep, path = args.model.partition("=")
    if not (sep and label and path):
        parser.error(f"--model must be LABEL=PATH, got {args.model!r}")
    if args.long_steps < 100:
        parser.error(f"--long-steps must be at least 100 (the table reports validity at 100), got {args.long_steps}")
    settings = Settings(
        episodes=args.episodes,
        horizon=max(HORIZONS),
        long_steps=args.long_steps,
        long_rollouts=args.long_rollouts,
        sampler_steps=args.sampler_steps,
        precision=args.precision,
        videos=0,
        seed=args.seed,
        progress=False,
    )
    row = measure(label, path, args.setting, args.context_noise, settings, commit_pass=not args.no_commit_pass)
    row["command"] = f"python benchmarks/stability.py {shlex.join(sys.argv[1:])}"
    args.out.mkdir(parents=True, exist_ok=True)
    folder = os.open(args.out, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # rows measured side by side: one writer at a time
        previous = args.out / "stability.json"
        rows = json.loads(previous.read_text())["rows"] if previous.is_file() else []
        rows = [r for r in rows if r["label"] != label] + [row]
        text = markdown(rows)
        write_table(args.out, "stability", text, {"rows": rows})
    finally:
        os.close(folder)
    print(text, end="")


if __name__ == "__main__":
    main()
