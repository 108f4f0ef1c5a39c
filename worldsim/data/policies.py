"""Behaviour policies that collect episodes in the real worlds: random, no-op, scripted, or SB3.

A policy is called once per step with the observation and ``info`` of the real env and returns an
action; ``reset(seed)`` starts an episode so that a seed fixes every action it takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

POLICIES = ("auto", "random", "noop", "scripted")


class Policy(Protocol):
    def reset(self, seed: int) -> None: ...

    def __call__(self, observation: np.ndarray, info: dict[str, Any]) -> Any: ...


class RandomPolicy:
    """Uniformly random actions from the action space, seeded per episode."""

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def reset(self, seed: int) -> None:
        self.action_space.seed(seed)

    def __call__(self, observation, info):
        return self.action_space.sample()


class NoopPolicy:
    """Always action 0 ("none" in Balls): the passive physics scenarios."""

    def reset(self, seed: int) -> None:
        pass

    def __call__(self, observation, info):
        return 0


class EpsilonPolicy:
    """A scripted controller ``act(info) -> action`` that takes a random action with probability eps."""

    def __init__(self, act, action_space: gym.Space, epsilon: float):
        self.act, self.action_space, self.epsilon = act, action_space, epsilon
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.action_space.seed(seed)

    def __call__(self, observation, info):
        if self.rng.random() < self.epsilon:
            return self.action_space.sample()
        return self.act(info)


def push_toward_target(info: dict[str, Any]) -> int:
    """Balls push: the push (1 up, 2 down, 3 left, 4 right) that best closes the red ball's gap to
    the target, braking when it already moves fast enough in that direction."""
    x0, y0, x1, y1 = info["target"]
    position, velocity = info["state"]["positions"][0], info["state"]["velocities"][0]
    # Aim at where the ball would stop if left alone, so it does not overshoot.
    gap = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - (position + 0.4 * velocity)
    axis = int(np.argmax(np.abs(gap)))
    if abs(gap[axis]) < 0.3:
        return 0
    if axis == 0:
        return 4 if gap[0] > 0 else 3
    return 1 if gap[1] > 0 else 2


def balance_pole(info: dict[str, Any]) -> int:
    """CartPole: push the cart under the pole (a PD rule on angle, angular velocity and drift)."""
    s = info["state"]
    effort = s["pole_angle"] + 0.5 * s["pole_angular_velocity"] + 0.05 * s["cart_position"] + 0.1 * s["cart_velocity"]
    return int(effort > 0)


def make_policy(name: str, env: gym.Env, epsilon: float = 0.2, algo: str = "ppo") -> Policy:
    """The policy called ``name`` for ``env``: one of POLICIES, or the path of an SB3 ``.zip``.

    ``auto`` is ``scripted`` where the world has a task (Balls push, CartPole) and ``noop`` for the
    passive Balls scenarios.
    """
    scenario = getattr(env.unwrapped, "scenario", None)
    world = "balls" if scenario is not None else "cartpole" if env.action_space == gym.spaces.Discrete(2) else None
    if name == "auto":
        name = "noop" if world == "balls" and scenario != "push" else "scripted"
    if name == "random":
        return RandomPolicy(env.action_space)
    if name == "noop":
        return NoopPolicy()
    if name == "scripted":
        if world == "balls" and scenario == "push":
            return EpsilonPolicy(push_toward_target, env.action_space, epsilon)
        if world == "cartpole":
            return EpsilonPolicy(balance_pole, env.action_space, epsilon)
        raise ValueError(f"no scripted policy for this world (scenario {scenario!r}); use policy=random or noop")
    if name.endswith(".zip"):
        return SB3Policy(Path(name), env, algo)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)} or the path of an SB3 .zip")


class SB3Policy:
    """A stable-baselines3 policy loaded from its ``.zip`` without unpickling anything.

    Only the weights are read (``set_parameters``, which uses ``torch.load(weights_only=True)``);
    the network is rebuilt with the algorithm's default policy for ``env``'s spaces, so a file
    trained with other ``policy_kwargs`` fails with a clear shape error instead of running wrong.
    """

    ALGOS = ("ppo", "a2c", "dqn")

    def __init__(self, path: Path, env: gym.Env, algo: str):
        import stable_baselines3

        if not path.is_file():
            raise FileNotFoundError(f"SB3 policy file {path} does not exist")
        if algo not in self.ALGOS:
            raise ValueError(f"algo must be one of {', '.join(self.ALGOS)} for an SB3 policy, got {algo!r}")
        cls = getattr(stable_baselines3, algo.upper())
        is_image = len(env.observation_space.shape) == 3
        kwargs = {"learning_starts": 0, "buffer_size": 1} if algo == "dqn" else {}
        from worldsim.agents.imagination import policy_kwargs

        # Image policies: worldsim's own (FrameCNN, from `worldsim agent train`) or SB3's default.
        layouts = [policy_kwargs(), {}] if is_image else [{}]
        for layout in layouts:
            self.model = cls("CnnPolicy" if is_image else "MlpPolicy", env, device="cpu", policy_kwargs=layout, **kwargs)
            try:
                self.model.set_parameters(str(path), exact_match=True, device="cpu")
                break
            except (RuntimeError, ValueError, KeyError) as error:
                if layout is layouts[-1]:
                    raise ValueError(f"{path} does not hold an SB3 {algo.upper()} policy for these spaces ({error})") from error

    def reset(self, seed: int) -> None:
        self.model.set_random_seed(seed)

    def __call__(self, observation, info):
        action, _ = self.model.predict(observation, deterministic=True)
        return action.item() if np.ndim(action) == 0 else action
