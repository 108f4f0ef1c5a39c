"""Collecting episodes: roll a policy in a real world and write every episode as it finishes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import worldsim
from worldsim.data.collection import create_collection, episode_path
from worldsim.data.episode import Episode
from worldsim.data.policies import Policy, SB3Policy, make_policy
from worldsim.errors import UserError, is_integer, is_number

# Settings that may change between an interrupted run and its continuation.
RESUMABLE = ("episodes", "steps", "stills", "worldsim_version")


@dataclass(frozen=True)
class CollectSummary:
    """What one collect run wrote (``episodes``/``stills`` new in this run; ``total_*`` in the folder)."""

    out: Path
    episodes: int
    stills: int
    frames: int
    bytes: int
    seconds: float
    total_episodes: int
    total_stills: int
    repaired: int = 0  # damaged files found on resume, deleted and collected again (counted in episodes/stills)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"wrote {self.episodes} episodes and {self.stills} stills ({self.frames} frames, "
            f"{self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s ({self.frames_per_second:.0f} frames/s) to {self.out}; "
            f"it now holds {self.total_episodes} episodes and {self.total_stills} stills"
            + (f"; {self.repaired} damaged files were collected again" if self.repaired else "")
        )


def collect(
    env_id: str,
    out: str | Path,
    episodes: int,
    env_kwargs: dict[str, Any] | None = None,
    scenarios: Sequence[str] | None = None,
    stills: int = 0,
    policy: str = "auto",
    epsilon: float = 0.2,
    algo: str = "ppo",
    seed: int = 0,
    progress: bool = True,
    steps: int | None = None,
) -> CollectSummary:
    """Rolls ``policy`` in ``env_id`` for ``episodes`` episodes and writes them to ``out``.

    Episode ``i`` uses seed ``seed + i`` and, where ``scenarios`` is given, scenario
    ``scenarios[i % len(scenarios)]``. Files that already exist are kept, so an interrupted run
    continues where it stopped when called again with the same settings. With ``steps``, it stops
    early, before the first episode that would start once the folder's episodes hold at least
    ``steps`` steps (a budget of real steps: only the last episode goes over). A resumed run first
    deletes damaged files and the temporary files of a killed run, then collects the damaged ones again
    (whatever the budget), so the collection ends as if nothing had happened. Every argument is checked
    before anything is written.
    """
    check_arguments(env_id, env_kwargs, scenarios, policy, epsilon, algo, episodes=episodes, stills=stills, steps=steps, seed=seed)
    env_kwargs = dict(env_kwargs or {})
    settings = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "scenarios": list(scenarios) if scenarios else None,
        "policy": policy,
        "epsilon": epsilon,
        "algo": algo,
        "seed": seed,
        "episodes": episodes,
        "steps": steps,
        "stills": stills,
        "worldsim_version": worldsim.__version__,
    }
    envs = {name: gym.make(env_id, **env_kwargs, **({"scenario": name} if name else {})) for name in scenarios or [None]}
    policies = {name: make_policy(policy, env, epsilon, algo) for name, env in envs.items()}
    if stills and not hasattr(next(iter(envs.values())).unwrapped, "still"):
        raise UserError(f"{env_id} has no still images; use stills=0")
    collection = create_collection(out, settings, resume_ignores=RESUMABLE)
    damaged = collection.discard_damaged()
    repairs = {int(path.stem) for path in damaged if path.parent.name == "episodes"}
    start = time.perf_counter()
    frames = written = recorded = 0
    todo = [i for i in range(episodes) if not episode_path(collection.root, "episodes", i).exists()]
    held = sum(ref.steps for ref in collection.refs()) if steps is not None else 0
    names = list(envs)
    with tqdm(todo, desc=f"collect {env_id}", unit="ep", disable=not progress) as bar:
        for i in bar:
            if steps is not None and held >= steps and i not in repairs:
                break
            name = names[i % len(names)]
            episode = record_episode(envs[name], policies[name], seed + i)
            episode.meta.update(env_id=env_id, env_kwargs={**env_kwargs, **({"scenario": name} if name else {})})
            written += episode.save(episode_path(collection.root, "episodes", i)).stat().st_size
            frames += len(episode.frames)
            held += len(episode)
            recorded += 1
            bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - start):.0f}")
    new_stills = [i for i in range(stills) if not episode_path(collection.root, "stills", i).exists()]
    still_env = next(iter(envs.values())).unwrapped
    for i in tqdm(new_stills, desc="stills", unit="img", disable=not progress or not new_stills):
        written += record_still(still_env, [seed, i]).save(episode_path(collection.root, "stills", i)).stat().st_size
        frames += 1
    for env in envs.values():
        env.close()
    return CollectSummary(
        out=collection.root,
        episodes=recorded,
        stills=len(new_stills),
        frames=frames,
        bytes=written,
        seconds=time.perf_counter() - start,
        total_episodes=len(collection.paths("episodes")),
        total_stills=len(collection.paths("stills")),
        repaired=len(damaged),
    )


def check_arguments(env_id: Any, env_kwargs: Any, scenarios: Any, policy: Any, epsilon: Any, algo: Any, **counts: Any) -> None:
    """Raises UserError for the first bad argument of :func:`collect` that its env and policy do not check."""
    try:
        gym.spec(env_id)
    except gym.error.Error as error:
        worlds = ", ".join(sorted(name for name in gym.registry if name.startswith("worldsim/")))
        raise UserError(f"unknown env id {env_id!r} ({error}); worldsim's worlds are {worlds}") from error
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise UserError(f"env_kwargs must be a dict of keyword arguments for gym.make, got {env_kwargs!r}")
    if scenarios is not None and (isinstance(scenarios, str) or not all(isinstance(s, str) for s in scenarios)):
        raise UserError(f"scenarios must be a list of scenario names, got {scenarios!r}")
    if not isinstance(policy, str):
        raise UserError(f"policy must be a policy name or the path of an SB3 .zip, got {policy!r}")
    for name, value in counts.items():
        if not is_integer(value, 0) and not (name == "steps" and value is None):
            raise UserError(f"{name} must be an integer >= 0, got {name}={value!r}")
    if not is_number(epsilon, 0, 1):
        raise UserError(f"epsilon, the probability of a random action, must be in [0, 1], got epsilon={epsilon!r}")
    if algo not in SB3Policy.ALGOS:
        raise UserError(f"algo must be one of {', '.join(SB3Policy.ALGOS)} (the SB3 algorithm of a .zip policy), got {algo!r}")


def record_episode(env: gym.Env, policy: Policy, seed: int, max_steps: int | None = None) -> Episode:
    """Runs one episode of ``policy`` in ``env`` from ``reset(seed=seed)`` and records it (its
    first ``max_steps`` steps when given; ``env`` is then left at the last recorded frame)."""
    observation, info = env.reset(seed=seed)
    policy.reset(seed)
    frames, states = [observation], [info.get("state", {})]
    actions, rewards, terminated, truncated = [], [], [], []
    done = max_steps == 0
    while not done:
        action = policy(observation, info)
        observation, reward, term, trunc, info = env.step(action)
        frames.append(observation)
        states.append(info.get("state", {}))
        actions.append(action)
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
        done = term or trunc or (max_steps is not None and len(actions) >= max_steps)
    is_discrete = isinstance(env.action_space, gym.spaces.Discrete)
    return Episode(
        frames=np.stack(frames).astype(np.uint8),
        actions=np.array(actions, dtype=np.int64 if is_discrete else np.float32),
        rewards=np.array(rewards, dtype=np.float32),
        terminated=np.array(terminated, dtype=bool),
        truncated=np.array(truncated, dtype=bool),
        states={key: np.stack([np.asarray(s[key]) for s in states]) for key in states[0]},
        caption=info.get("caption", ""),
        meta={"seed": seed},
    )


def record_still(env, seed) -> Episode:
    """A captioned still image from ``env.still(seed)`` as a one-frame episode."""
    frame, caption, state = env.still(seed)
    empty = np.zeros(0)
    return Episode(
        frames=frame[None],
        actions=np.zeros(0, dtype=np.int64),
        rewards=empty.astype(np.float32),
        terminated=empty.astype(bool),
        truncated=empty.astype(bool),
        states={key: value[None] for key, value in state.items()},
        caption=caption,
        meta={"seed": list(seed)},
    )
