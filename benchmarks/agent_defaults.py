"""Do worldsim's agent defaults learn pixel CartPole? PPO on the real 32x32 frames, new vs old defaults.

    python benchmarks/agent_defaults.py new|old STEPS [--seed 0] [--out benchmarks/results/agent-defaults] [--save POLICY.zip]

``new``: what ``worldsim agent`` builds today (:func:`worldsim.agents.imagination.make_agent`: 4
stacked frames, normalised rewards, n_steps 128, lr 2.5e-4, clip 0.1, no entropy bonus); ``old``:
the agent before issue 19 (one frame, raw rewards, n_steps 64, lr 3e-4, clip 0.2, entropy 0.01).
Both train PPO with worldsim's ``FrameCNN`` on 16 real ``worldsim/CartPole-v0`` envs on one torch
thread for ``STEPS`` steps, then play 10 real episodes (seeds 1,000,000 on, deterministic).
Writes ``OUT/<setup>.json``; ``--save`` also keeps the trained policy (SB3's ``save``), e.g. as a
competent policy for ``benchmarks/dream_episodes.py --policies``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.agents.imagination import evaluate_real, make_agent
from worldsim.atomic import atomic_write

OLD = dict(n_steps=64, batch_size=256, n_epochs=4, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setup", choices=("new", "old"))
    parser.add_argument("steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/agent-defaults"))
    parser.add_argument("--save", type=Path, default=None, help="also save the trained policy there (.zip)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    world = dict(frame_size=(32, 32))
    envs = DummyVecEnv([lambda: gym.make("worldsim/CartPole-v0", **world) for _ in range(16)])
    if args.setup == "new":
        agent = make_agent("ppo", envs, seed=args.seed)
    else:
        agent = make_agent("ppo", envs, seed=args.seed, frame_stack=1, normalize_reward=False, **OLD)
    start = time.perf_counter()
    agent.learn(total_timesteps=args.steps)
    seconds = time.perf_counter() - start
    returns = evaluate_real(agent, gym.make("worldsim/CartPole-v0", **world), 10, 1_000_000)
    result = {
        "setup": args.setup,
        "steps": int(agent.num_timesteps),
        "train_s": round(seconds, 1),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": returns,
    }
    print(json.dumps(result))
    if args.save is not None:
        agent.save(args.save)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / f"{args.setup}.json", "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
