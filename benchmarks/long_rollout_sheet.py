"""What a long dream looks like: one row per Balls scenario, the last real frame then dreamed frames.

    python benchmarks/long_rollout_sheet.py --model balls [--context-noise 0.2] [--sampler-steps 1] \
        [--steps 10 30 100 300 1000] [--seed 1000123] --out docs/long_rollout_balls.png

Each scenario's real world is reset with ``--seed`` and stepped 3 times with action 0; the model
dreams on from those 4 frames for ``max(--steps)`` frames with action 0 (``uniform``, ``collision``,
``parabola``) or seeded random pushes (``push``). The sheet (4x nearest-neighbour upscale) shows
the 4th real frame, then the dream at each of ``--steps``: where a dream stops being a world (the
background, the count of balls, their sizes) shows at a glance, beside the validity figures of
``benchmarks/stability.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers the worldsim/* ids)
from worldsim.atomic import atomic_write
from worldsim.model.world_model import load

SCENARIOS = ("uniform", "collision", "parabola", "push")


def sheet(model_path: str, context_noise: float | None, sampler_steps: int | None, steps: list[int], seed: int) -> np.ndarray:
    model = load(model_path)
    if context_noise is not None:
        model.config.context_noise = context_noise
    rows = []
    for scenario in SCENARIOS:
        env = gym.make("worldsim/Balls-v0", scenario=scenario, frame_size=tuple(model.config.frame_size))
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for _ in range(3):
            obs, *_ = env.step(0)
            frames.append(obs)
        env.close()
        sim = model.simulator(1, sampler_steps=sampler_steps, seed=0)
        sim.reset([True], torch.as_tensor(np.stack(frames))[None], torch.zeros(1, len(frames), dtype=torch.long))
        rng = np.random.default_rng(seed)
        shots = [frames[-1]]
        for t in range(1, max(steps) + 1):
            action = int(rng.integers(5)) if scenario == "push" else 0
            result = sim.step(torch.tensor([action]))
            if t in steps:
                shots.append(result.frames[0].cpu().numpy())
        rows.append(np.concatenate(shots, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a Balls world model: shipped name, model or run folder")
    parser.add_argument("--context-noise", type=float, default=None, help="inference context noise (default: the model's)")
    parser.add_argument("--sampler-steps", type=int, default=None, help="sampler steps per frame (default: the model's)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 30, 100, 300, 1000], help="dreamed frames to show")
    parser.add_argument("--seed", type=int, default=1_000_123)
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    if not args.steps or min(args.steps) < 1:
        parser.error(f"--steps must be positive frame counts, got {args.steps}")
    image = sheet(args.model, args.context_noise, args.sampler_steps, sorted(set(args.steps)), args.seed)
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out, "wb") as f:
        f.write(cv2.imencode(".png", cv2.cvtColor(big, cv2.COLOR_RGB2BGR))[1].tobytes())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
