"""Agents trained in imagination: stable-baselines3 inside a dream, evaluated in the real world.

:func:`train_in_dream` trains PPO or DQN (``CnnPolicy`` on the uint8 frames) on a batched
:class:`~worldsim.envs.dream.DreamVectorEnv` through :class:`~worldsim.agents.vec_env.DreamVecEnv`,
then :func:`evaluate_real` runs the policy, unchanged, in the real twin over seeded episodes.
:func:`real_beside_dream` films one real episode beside the dream driven by the same actions.

The policy's image encoder is :class:`FrameCNN` (three 3x3 stride-2 convolutions), because SB3's
default NatureCNN needs frames of at least 36x36 and worldsim's are often 32x32 or smaller.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from worldsim.atomic import atomic_write

ALGOS = ("ppo", "dqn")


def algo_class(algo: str):
    import stable_baselines3

    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return getattr(stable_baselines3, algo.upper())


class FrameCNN(BaseFeaturesExtractor):
    """An SB3 features extractor for small frames ``[3, H, W]`` (SB3 transposes channel-last
    frames and scales them to [0, 1]): three 3x3 convolutions of stride 2, then a linear layer."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256):
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


def policy_kwargs() -> dict[str, Any]:
    """The ``policy_kwargs`` of every worldsim image policy (a zip loads only with the same)."""
    return {"features_extractor_class": FrameCNN}


HYPERPARAMETERS = {
    # PPO: short rollouts of many envs, as in DIAMOND / IRIS actor-critic training in imagination.
    "ppo": dict(n_steps=64, batch_size=256, n_epochs=4, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, ent_coef=0.01),
    "dqn": dict(buffer_size=50_000, learning_starts=1_000, batch_size=64, learning_rate=1e-4, target_update_interval=1_000,
                train_freq=4, exploration_fraction=0.2, exploration_final_eps=0.05),  # fmt: skip
}


def make_agent(algo: str, env, seed: int, device: str = "cpu", **overrides):
    """An SB3 ``algo`` agent with ``CnnPolicy`` (:class:`FrameCNN`) for ``env`` (a VecEnv or an env)."""
    cls = algo_class(algo)
    kwargs = {**HYPERPARAMETERS[algo], **overrides}
    if algo == "ppo":  # whole mini-batches: at most one rollout of every env
        kwargs["batch_size"] = min(kwargs["batch_size"], kwargs["n_steps"] * getattr(env, "num_envs", 1))
    return cls("CnnPolicy", env, seed=seed, device=device, policy_kwargs=policy_kwargs(), verbose=0, **kwargs)


def check_same_spaces(agent, env: gym.Env) -> None:
    """A policy moves between dream and real unchanged: their spaces must be the same (SB3 keeps
    image spaces channel-first; the frames stay channel-last)."""
    theirs, ours = env.observation_space, agent.observation_space
    if isinstance(theirs, gym.spaces.Box) and len(theirs.shape) == 3 and ours.shape == (theirs.shape[2], *theirs.shape[:2]):
        ours = gym.spaces.Box(0, 255, theirs.shape, theirs.dtype) if ours.dtype == theirs.dtype else ours
    for name, a, b in (("observation", ours, theirs), ("action", agent.action_space, env.action_space)):
        if a != b:
            raise ValueError(f"the policy's {name} space {a} differs from the env's {b}; "
                             "use the same world arguments (frame_size=, scenario=) for dream and real")  # fmt: skip


def evaluate_real(agent, env: gym.Env, episodes: int, seed: int, deterministic: bool = True) -> list[float]:
    """Returns of ``episodes`` real episodes from seeds ``seed, seed + 1, ...`` (reproducible:
    the env's reset seed and a deterministic policy fix each episode)."""
    check_same_spaces(agent, env)
    returns = []
    for k in range(episodes):
        observation, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            action, _ = agent.predict(observation, deterministic=deterministic)
            observation, reward, terminated, truncated, _ = env.step(action.item() if np.ndim(action) == 0 else action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def real_beside_dream(agent, real: gym.Env, dream: gym.Env, seed: int, max_steps: int | None = None) -> np.ndarray:
    """One real episode of ``agent`` beside the dream started from the same real frames and
    driven by the same actions: uint8 ``[T, H, 2 W, 3]`` (real left, dream right). The dream
    continues past its own end, if it ends first, by restarting nothing: its last frame stays."""
    check_same_spaces(agent, real)
    from worldsim.data.collect import record_episode
    from worldsim.data.policies import make_policy

    dream_frame, _ = dream.reset(seed=seed)
    # The dream starts from the twin's first frames under the collection policy: bring the real
    # env to the same frame the same way.
    start = dream.unwrapped.dream.context_frames - 1
    observation = record_episode(real, make_policy("auto", real), seed, max_steps=start).frames[-1]
    frames, dream_done, done, steps = [np.concatenate([observation, dream_frame], axis=1)], False, False, 0
    while not done and (max_steps is None or steps < max_steps):
        action, _ = agent.predict(observation, deterministic=True)
        action = action.item() if np.ndim(action) == 0 else action
        observation, _, terminated, truncated, _ = real.step(action)
        if not dream_done:
            dream_frame, _, dream_terminated, dream_truncated, _ = dream.step(action)
            dream_done = dream_terminated or dream_truncated
        frames.append(np.concatenate([observation, dream_frame], axis=1))
        done, steps = terminated or truncated, steps + 1
    return np.stack(frames)


@dataclass
class AgentReport:
    """What ``worldsim agent train`` measured; written as ``returns.json``."""

    algo: str
    world: str
    world_kwargs: dict
    model: str
    dream_steps: int
    seconds: float
    eval_seed: int
    returns: list[float]
    mean_return: float
    std_return: float


def train_in_dream(
    model,
    algo: str,
    steps: int,
    out: str | Path,
    num_envs: int = 16,
    eval_episodes: int = 10,
    seed: int = 0,
    eval_seed: int = 1_000_000,
    device: str = "cpu",
    sampler_steps: int | None = None,
    progress: bool = True,
    model_name: str = "",
    **world_kwargs,
) -> AgentReport:
    """Trains ``algo`` for ``steps`` dream steps (all envs together) and evaluates it in the real
    twin; writes ``policy.zip``, ``returns.json`` and ``real_vs_dream.mp4`` into ``out``."""
    from worldsim.agents.vec_env import DreamVecEnv
    from worldsim.envs.dream import DreamEnv, DreamVectorEnv
    from worldsim.video import write_video

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    venv = DreamVecEnv(DreamVectorEnv(num_envs, model, device, sampler_steps=sampler_steps, **world_kwargs))
    venv.seed(seed)
    agent = make_agent(algo, venv, seed, device)
    agent.learn(total_timesteps=steps, progress_bar=progress)
    policy = out / "policy.zip"
    with atomic_write(policy) as f:
        agent.save(f)
    venv.close()
    dream_model = venv.venv.model
    config = dream_model.config
    real = gym.make(config.env_id, **config.world_kwargs(**world_kwargs))
    returns = evaluate_real(agent, real, eval_episodes, eval_seed)
    dream = DreamEnv(dream_model, device, sampler_steps=sampler_steps, **world_kwargs)
    film = real_beside_dream(agent, real, dream, eval_seed)
    write_video(out / "real_vs_dream.mp4", film, config.fps, scale=4)
    real.close()
    dream.close()
    report = AgentReport(algo, config.env_id, dict(world_kwargs), model_name, steps, time.perf_counter() - start, eval_seed,
                         returns, float(np.mean(returns)), float(np.std(returns)))  # fmt: skip
    with atomic_write(out / "returns.json", "w") as f:
        f.write(json.dumps(asdict(report), indent=2) + "\n")
    return report
