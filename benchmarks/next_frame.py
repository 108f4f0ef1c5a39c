"""Next-frame prediction on held-out episodes: a world model against copying the last frame.

    python benchmarks/next_frame.py --model RUN_OR_MODEL --data HELDOUT_COLLECTION \
        [--samples 256] [--context 3] [--steps 4] [--out benchmarks/results/next_frame]

For ``--samples`` random (episode, t) of the held-out collection it gives the model the real frames
``t - context + 1 .. t`` with their actions and caption, samples frame ``t + 1`` (full
recomputation, ``--steps`` Euler steps, seeded) and scores it by PSNR against the real frame, next
to the PSNR of simply repeating frame ``t``. Writes ``next_frame.json`` and ``next_frame.md``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from worldsim.atomic import write_table
from worldsim.data.collection import Collection
from worldsim.metrics import psnr
from worldsim.model.world_model import load


def evaluate(model_path: str, data: str, samples: int, context: int, steps: int, batch: int, seed: int) -> dict:
    model = load(model_path)
    episodes = [e for e in Collection(data).load() if len(e) >= context]
    if not episodes:
        raise ValueError(f"{data} has no episode with at least {context} steps")
    rng = np.random.default_rng(seed)
    picks = [(i, int(rng.integers(context - 1, len(episodes[i])))) for i in rng.integers(len(episodes), size=samples)]
    rows = []
    start = time.perf_counter()
    for first in range(0, samples, batch):
        chunk = picks[first : first + batch]
        frames = torch.from_numpy(np.stack([episodes[i].frames[t - context + 1 : t + 1] for i, t in chunk]))
        actions = torch.from_numpy(np.stack([episodes[i].actions[t - context + 1 : t + 1] for i, t in chunk]))
        captions = [episodes[i].caption for i, _ in chunk]
        generator = torch.Generator().manual_seed(seed + first)
        predicted = model.predict_next(frames, actions, captions, steps=steps, generator=generator).numpy()
        for (i, t), guess in zip(chunk, predicted):
            truth, last = episodes[i].frames[t + 1], episodes[i].frames[t]
            scenario = episodes[i].meta.get("env_kwargs", {}).get("scenario", "-")
            rows.append({"scenario": scenario, "model": psnr(guess, truth), "copy_last": psnr(last, truth)})
    seconds = time.perf_counter() - start
    by = defaultdict(list)
    for row in rows:
        by[row["scenario"]].append(row)
        by["all"].append(row)
    summary = {
        name: {
            "samples": len(group),
            "model_psnr": float(np.mean([r["model"] for r in group])),
            "copy_last_psnr": float(np.mean([r["copy_last"] for r in group])),
            "model_better": float(np.mean([r["model"] > r["copy_last"] for r in group])),
        }
        for name, group in sorted(by.items())
    }
    return {"model": model_path, "data": data, "context": context, "steps": steps, "seconds": seconds, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder, run folder or shipped name")
    parser.add_argument("--data", required=True, help="a held-out collection folder")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "next_frame")
    args = parser.parse_args()
    result = evaluate(args.model, args.data, args.samples, args.context, args.steps, args.batch, args.seed)
    lines = [
        "# Next-frame prediction vs copying the last frame",
        "",
        f"`python benchmarks/next_frame.py --model {args.model} --data {args.data} --samples {args.samples} "
        f"--context {args.context} --steps {args.steps}` ({result['seconds']:.0f} s)",
        "",
        "| scenario | samples | model PSNR (dB) | copy-last PSNR (dB) | model better |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {s['samples']} | {s['model_psnr']:.2f} | {s['copy_last_psnr']:.2f} | {100 * s['model_better']:.0f}% |")
    write_table(args.out, "next_frame", "\n".join(lines) + "\n", result)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
