"""Does a trained policy look at its frames? Its action probabilities over real frames.

    python benchmarks/policy_sensitivity.py --env worldsim/CartPole-v0 --frame-size 32 32 \
        --policies runs/rl-cartpole/seed_0/policy.zip runs/rl-cartpole/seed_0/model_free.zip \
        [--env-kwargs '{"scenario": "push"}'] [--frames 200] [--seed 5000000] [--out FOLDER]

For each SB3 policy (weights read only, as ``worldsim collect policy=`` does) it collects
``frames`` real frames of uniformly random episodes (seeds ``seed, seed + 1, ...``) and reports its
mean action probabilities and how much they change with the frame: the mean total-variation
distance of each frame's probabilities from their mean (0: the policy ignores the frame). A policy
evaluated deterministically with a distance near 0 holds one action whatever it sees.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.atomic import write_table
from worldsim.data.policies import make_policy


def real_frames(env: gym.Env, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` real frames of uniformly random episodes and, per frame, whether it starts one."""
    out, starts, episode = [], [], 0
    while len(out) < frames:
        obs, _ = env.reset(seed=seed + episode)
        rng = np.random.default_rng(seed + episode)
        done, first = False, True
        while not done and len(out) < frames:
            out.append(obs)
            starts.append(first)
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            done, first = terminated or truncated, False
        episode += 1
    return np.stack(out), np.array(starts)


def action_probabilities(path: str, env: gym.Env, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
    policy = make_policy(path, env)
    if policy.stacker is not None:  # a policy of k stacked frames sees each frame with its episode's k - 1 before it
        frames = np.stack([policy.stacker.reset(f) if start else policy.stacker.step(f) for f, start in zip(frames, starts)])
    with torch.no_grad():
        obs, _ = policy.model.policy.obs_to_tensor(frames)
        return policy.model.policy.get_distribution(obs).distribution.probs.cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--frame-size", type=int, nargs=2, required=True)
    parser.add_argument("--env-kwargs", type=json.loads, default={})
    parser.add_argument("--policies", nargs="+", required=True)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    env = gym.make(args.env, frame_size=tuple(args.frame_size), **args.env_kwargs)
    frames, starts = real_frames(env, args.frames, args.seed)
    rows = []
    for path in args.policies:
        probs = action_probabilities(path, env, frames, starts)
        distance = 0.5 * np.abs(probs - probs.mean(0)).sum(1)
        rows.append(
            {
                "policy": path,
                "mean_probabilities": probs.mean(0).tolist(),
                "mean_tv_distance": float(distance.mean()),
                "max_tv_distance": float(distance.max()),
            }
        )
    lines = [
        f"{args.frames} real frames of random {args.env} episodes ({args.env_kwargs or 'default world'}, "
        f"{tuple(args.frame_size)}) from seed {args.seed}. `python benchmarks/policy_sensitivity.py {shlex.join(sys.argv[1:])}`",
        "",
        "| policy | mean action probabilities | mean / max distance from the mean (TV) |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| `{r['policy']}` | {' / '.join(f'{p:.3f}' for p in r['mean_probabilities'])} | "
        f"{r['mean_tv_distance']:.4f} / {r['max_tv_distance']:.4f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        write_table(
            args.out,
            "policy_sensitivity",
            text,
            {
                "env": args.env,
                "frame_size": args.frame_size,
                "env_kwargs": args.env_kwargs,
                "frames": args.frames,
                "seed": args.seed,
                "rows": rows,
            },
        )


if __name__ == "__main__":
    main()
