"""Behaviour policies that collect episodes in the real worlds: random, sticky random, no-op, scripted, or SB3.

A policy is called once per step with the observation and ``info`` of the real env and returns an
action; ``reset(seed)`` starts an episode so that a seed fixes every action it takes.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from worldsim.envs.worlds import world_of
from worldsim.errors import MissingFileError, UserError, is_number

POLICIES = ("auto", "random", "sticky", "noop", "scripted")


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


class StickyPolicy:
    """Random actions held for a while: each step draws a new uniformly random action with
    probability ``switch`` (always on an episode's first step), else repeats the last one, so runs
    of one action last ``1 / switch`` steps on average. Uniform random actions alternate so often
    that data hardly show what a sustained push does (a CartPole pole falling under one action)."""

    def __init__(self, action_space: gym.Space, switch: float):
        self.action_space, self.switch = action_space, switch
        self.rng, self.action = np.random.default_rng(0), None

    def reset(self, seed: int) -> None:
        self.rng, self.action = np.random.default_rng(seed), None
        self.action_space.seed(seed)

    def __call__(self, observation, info):
        if self.action is None or self.rng.random() < self.switch:
            self.action = self.action_space.sample()
        return self.action


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


def make_policy(name: str, env: gym.Env, epsilon: float = 0.2, algo: str = "ppo") -> Policy:
    """The policy called ``name`` for ``env``: one of POLICIES, or the path of an SB3 ``.zip``.

    ``auto`` is ``scripted`` where the episode has a task (its world's record in
    :mod:`worldsim.envs.worlds` says which: Balls push, CartPole) and ``noop`` elsewhere (the
    passive Balls scenarios). ``epsilon``: the scripted policy's share of random actions, and the
    sticky policy's chance of switching to a new random action each step.
    """
    if not is_number(epsilon, 0, 1):
        raise UserError(f"epsilon must be a probability in [0, 1], got {epsilon!r}")
    if not isinstance(name, str):
        raise UserError(f"policy must be one of {', '.join(POLICIES)} or the path of an SB3 .zip, got {name!r}")
    world, scenario = world_of(env), getattr(env.unwrapped, "scenario", None)
    act = world.scripted_for(scenario) if world is not None else None
    if name == "auto":
        name = "scripted" if act is not None or world is None else "noop"
    if name == "random":
        return RandomPolicy(env.action_space)
    if name == "sticky":
        return StickyPolicy(env.action_space, epsilon)
    if name == "noop":
        return NoopPolicy()
    if name == "scripted":
        if act is None:
            raise UserError(f"no scripted policy for this world (scenario {scenario!r}); use policy=random or noop")
        return EpsilonPolicy(act, env.action_space, epsilon)
    if name.endswith(".zip"):
        return SB3Policy(Path(name), env, algo)
    raise UserError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)} or the path of an SB3 .zip")


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
            raise MissingFileError(f"SB3 policy file {path} does not exist")
        if algo not in self.ALGOS:
            raise UserError(f"algo must be one of {', '.join(self.ALGOS)} for an SB3 policy, got {algo!r}")
        k = check_saved_spaces(path, env)
        cls = getattr(stable_baselines3, algo.upper())
        shape = env.observation_space.shape
        kwargs = {"learning_starts": 0, "buffer_size": 1} if algo == "dqn" else {}
        from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

        from worldsim.data.image_policy import FrameStacker, policy_kwargs

        # An image policy of `worldsim agent` sees its last k frames stacked on the channels.
        self.stacker = FrameStacker(env.observation_space, k) if k > 1 else None
        self.first = True
        seen = VecFrameStack(DummyVecEnv([lambda: env]), k, channels_order="last") if k > 1 else env
        # Image policies: worldsim's own (FrameCNN, from `worldsim agent train`) or SB3's default,
        # whose NatureCNN needs frames of at least 36 px.
        layouts = ([policy_kwargs()] + ([{}] if min(shape[:2]) >= 36 else [])) if len(shape) == 3 else [{}]
        for layout in layouts:
            self.model = cls("CnnPolicy" if len(shape) == 3 else "MlpPolicy", seen, device="cpu", policy_kwargs=layout, **kwargs)
            try:
                self.model.set_parameters(str(path), exact_match=True, device="cpu")
                break
            except pickle.UnpicklingError:
                raise UserError(
                    f"{path} holds more than weights (objects that only unpickling would make); "
                    "worldsim loads SB3 policies weights-only, so re-save it with SB3's save()"
                ) from None
            except (RuntimeError, ValueError, KeyError) as error:
                if layout is layouts[-1]:
                    raise UserError(f"{path} does not hold an SB3 {algo.upper()} policy for these spaces ({error})") from error

    def reset(self, seed: int) -> None:
        self.model.set_random_seed(seed)
        self.first = True

    def __call__(self, observation, info):
        if self.stacker is not None:
            observation = self.stacker.reset(observation) if self.first else self.stacker.step(observation)
        self.first = False
        action, _ = self.model.predict(observation, deterministic=True)
        return action.item() if np.ndim(action) == 0 else action


def check_saved_spaces(path: Path, env: gym.Env) -> int:
    """How many of ``env``'s frames the SB3 policy in ``path`` sees at once (1 for a policy of
    one frame or of other observations); a UserError unless its saved spaces fit ``env``'s.

    SB3's ``data`` entry is JSON; beside each space's pickle (never read) it keeps plain fields
    such as ``_shape`` and ``n``, and it stores image spaces channel-first."""
    saved_obs, saved_actions = saved_spaces(path)
    obs = env.observation_space.shape
    shape = tuple(saved_obs.get("_shape") or ())
    # Image policies: channel-last, or channel-first with k stacked frames ([3k, H, W], `worldsim agent`).
    stacked = len(shape) == 3 and len(obs) == 3 and shape[0] % obs[-1] == 0 and shape[1:] == obs[:2]
    fits = (shape == obs or stacked) if len(obs) == 3 else shape == obs
    if not fits:
        if len(shape) == 3 and len(obs) == 3:
            height, width = shape[1:] if shape[0] % 3 == 0 else shape[:2]
            raise UserError(
                f"{path} is a policy for {height}x{width} frames, but this env makes {obs[0]}x{obs[1]} frames; "
                f"use frame_size=[{height},{width}] or a policy trained at this size"
            )
        raise UserError(f"{path} is a policy for observations of shape {shape}, but this env's are {obs}")
    n = getattr(env.action_space, "n", None)
    if saved_actions.get("n") is not None and n is not None and int(saved_actions["n"]) != int(n):
        raise UserError(f"{path} is a policy for {saved_actions['n']} actions, but this env has {n}")
    return shape[0] // obs[-1] if stacked else 1


def saved_spaces(path: Path) -> tuple[dict, dict]:
    """The observation and action spaces saved in an SB3 zip, as the plain JSON fields SB3 keeps
    beside each space's pickle (``_shape``, ``n``, ...; image spaces channel-first), never unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        return data["observation_space"], data["action_space"]
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as error:
        raise UserError(f"{path} is not an SB3 policy .zip ({type(error).__name__}: {error})") from None
