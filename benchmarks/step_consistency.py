"""Does a few-step sampler land where many steps land? The target of shortcut training, measured.

    python benchmarks/step_consistency.py --model LABEL=PATH [--model ...] --data HELDOUT_COLLECTION \
        [--samples 64] [--context 7] [--context-noise 0.2] [--steps 1 2 4] [--reference 8] [--seed 0] \
        [--out FOLDER]

For ``--samples`` random (episode, t) of the held-out collection each model predicts frame ``t + 1``
from the real frames ``t - context + 1 .. t`` (full recomputation, context noise ``--context-noise``,
default the model's) with each ``--steps`` k and with ``--reference`` steps, from the same noise.
It reports the RMS pixel distance (uint8 scale) of each k's frame to the reference's and to the real
frame. A flow model's one-step frame is the mean of what many steps could make, hence far from the
many-step frame; a shortcut model (``train.shortcut_prob``) is trained to close that gap. Prints a
markdown table; with ``--out`` writes ``step_consistency.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from worldsim.atomic import write_table
from worldsim.data.collection import Collection
from worldsim.model.world_model import load


def measure(
    path: str, data: str, samples: int, context: int, context_noise: float | None, steps: list[int], reference: int, seed: int
) -> dict:
    """``{k: {"to_reference": rms, "to_truth": rms}}`` for every k of ``steps`` and the reference."""
    model = load(path)
    if context_noise is not None:
        model.config.context_noise = context_noise
    episodes = [e for e in Collection(data).load() if len(e) > context]
    if not episodes:
        raise SystemExit(f"step_consistency: {data} has no episode longer than {context} frames")
    rng = np.random.default_rng(seed)
    picks = [(i, int(rng.integers(context - 1, len(episodes[i]) - 1))) for i in rng.integers(len(episodes), size=samples)]
    frames = torch.from_numpy(np.stack([episodes[i].frames[t - context + 1 : t + 1] for i, t in picks]))
    actions = torch.from_numpy(np.stack([episodes[i].actions[t - context + 1 : t + 1] for i, t in picks]))
    truth = np.stack([episodes[i].frames[t + 1] for i, t in picks]).astype(np.float64)
    captions = [episodes[i].caption for i, _ in picks]
    made = {}
    for k in sorted({*steps, reference}):
        generator = torch.Generator().manual_seed(seed + 1)  # the same noise for every k
        made[k] = model.predict_next(frames, actions, captions, steps=k, generator=generator).numpy().astype(np.float64)

    def rms(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(((a - b) ** 2).mean()))

    return {str(k): {"to_reference": rms(made[k], made[reference]), "to_truth": rms(made[k], truth)} for k in sorted(made)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (a shipped name, model or run folder); repeatable")
    parser.add_argument("--data", required=True, help="a held-out collection folder")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--context", type=int, default=7)
    parser.add_argument("--context-noise", type=float, default=None, help="inference context noise (default: each model's)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reference", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if any(k < 1 for k in [*args.steps, args.reference]) or args.samples < 1 or args.context < 1:
        parser.error("--steps, --reference, --samples and --context must be integers >= 1")
    models = [spec.partition("=") for spec in args.model]
    if any(not label or not path for label, _, path in models):
        parser.error("--model takes LABEL=PATH")
    results = {
        label: measure(path, args.data, args.samples, args.context, args.context_noise, args.steps, args.reference, args.seed)
        for label, _, path in models
    }
    ks = list(next(iter(results.values())))
    lines = [
        "# Step consistency: does a few-step sampler land where many steps land?",
        "",
        f"`python benchmarks/step_consistency.py {shlex.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"{args.samples} held-out next frames from {args.context} real ones; RMS pixel distance (0-255) of each k's frame to the "
        f"{args.reference}-step frame made from the same noise (to the real frame in brackets).",
        "",
        "| model | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "| --- | " + " | ".join("---" for _ in ks) + " |",
    ]
    for label, rows in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{rows[k]['to_reference']:.2f} ({rows[k]['to_truth']:.2f})" for k in ks) + " |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        settings = {**vars(args), "out": str(args.out)}
        write_table(
            args.out,
            "step_consistency",
            text,
            {"models": {label: path for label, _, path in models}, "results": results, "settings": settings},
        )


if __name__ == "__main__":
    main()
