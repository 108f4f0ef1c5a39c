"""Choosing a model's inference ``context_noise``: mean open-loop PSNR for a few values.

    python benchmarks/context_noise.py --model balls [--values 0 0.05 0.1] [--seed 3000000] \
        [--episodes 8] [--horizon 16]

For each value it sets the model's ``context_noise``, dreams ``horizon`` frames open loop from the
real context of ``episodes`` held-out episodes (per scenario for Balls; the fidelity benchmark's
``prepare`` and ``dream``, seeds from ``--seed``: keep them apart from the benchmark's 1,000,000)
and prints the PSNR at a few horizons and its mean over the horizon. This chose the shipped
models' values (their ``RECIPE.md``).
"""

from __future__ import annotations

import argparse

import numpy as np

from worldsim.bench.fidelity import Settings, dream, metrics, prepare
from worldsim.model.world_model import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a world model: shipped name, model or run folder")
    parser.add_argument("--values", type=float, nargs="+", default=[0.0, 0.05, 0.1])
    parser.add_argument("--seed", type=int, default=3_000_000)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=16)
    args = parser.parse_args()
    model = load(args.model)
    settings = Settings(episodes=args.episodes, horizon=args.horizon, long_steps=0, seed=args.seed, progress=False)
    groups, context = prepare(model, settings, ("id",))
    marks = [h for h in (1, 4, 8, 16, 32, 64) if h <= args.horizon]
    print("context_noise | " + " | ".join(f"h={h}" for h in marks) + " | mean over horizon")
    for value in args.values:
        model.config.context_noise = value
        curves = [metrics.psnr(dream(model, g, g.actions, settings)[:, context:], g.real[:, context:]).mean(0) for g in groups]
        curve = np.mean(curves, axis=0)
        print(f"{value} | " + " | ".join(f"{curve[h - 1]:.2f}" for h in marks) + f" | {curve.mean():.2f}")


if __name__ == "__main__":
    main()
