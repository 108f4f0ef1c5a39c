"""Agents trained in imagination: stable-baselines3 inside a dream, evaluated in the real world.

:func:`train_in_dream` trains PPO or DQN (``CnnPolicy`` on the uint8 frames) on a batched
:class:`~worldsim.envs.dream.DreamVectorEnv` through :class:`~worldsim.agents.vec_env.DreamVecEnv`,
then :func:`evaluate_real` runs the policy, unchanged, in the real twin over seeded episodes.
:func:`real_beside_dream` films one real episode beside the dream driven by the same actions.

Every worldsim agent, dream-trained or model-free, sees its world through the same wrappers
(:func:`wrap`): the last ``frame_stack`` frames stacked on the channels (one frame has no velocity),
and rewards scaled by a running estimate of the return's spread (``VecNormalize(norm_obs=False)``:
with raw +1 rewards the value loss swamps the policy gradient in the shared encoder). Reward scaling
touches no observation, so evaluation needs no saved statistics and reports raw real returns;
:class:`FrameStacker` stacks the frames of a real env stepped by hand exactly as ``VecFrameStack`` does.

The policy's image encoder is :class:`FrameCNN` (three 3x3 stride-2 convolutions), because SB3's
default NatureCNN needs frames of at least 36x36 and worldsim's are often 32x32 or smaller; it and
:class:`FrameStacker` live in :mod:`worldsim.data.image_policy`, below the collection policies that
load saved agents, and are imported here as well.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecMonitor, VecNormalize, VecTransposeImage

from worldsim.atomic import atomic_write
from worldsim.data.image_policy import FrameCNN, FrameStacker, policy_kwargs  # noqa: F401 (FrameCNN: its documented home too)
from worldsim.data.policies import saved_spaces
from worldsim.errors import UserError, check_bool, check_integer

ALGOS = ("ppo", "dqn")


def algo_class(algo: str):
    import stable_baselines3

    if algo not in ALGOS:
        raise UserError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return getattr(stable_baselines3, algo.upper())


# Chosen on the real 32x32 pixel CartPole (issue 19; PPO, FrameCNN, 16 envs): with 4 stacked frames,
# reward normalisation and these PPO settings it reached 131-162 real return at 100k steps (2 seeds)
# and 500 at 200k (one seed); one frame with worldsim's earlier settings scored 9.4 (at 20k steps).
HYPERPARAMETERS = {
    # PPO: short rollouts of many envs, as in DIAMOND / IRIS actor-critic training in imagination.
    "ppo": dict(n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.1, ent_coef=0.0),
    "dqn": dict(
        buffer_size=50_000,
        learning_starts=1_000,
        batch_size=64,
        learning_rate=1e-4,
        gamma=0.99,
        target_update_interval=1_000,
        train_freq=4,
        exploration_fraction=0.2,
        exploration_final_eps=0.05,
    ),
}
FRAME_STACK = 4  # frames the policy sees at once
NORMALIZE_REWARD = True  # scale rewards by the running std of the discounted return


def check_wrappers(frame_stack, normalize_reward) -> None:
    """Validates the ``frame_stack`` and ``normalize_reward`` settings (the ``worldsim agent`` keys)."""
    check_integer("frame_stack", frame_stack, note="frames the policy sees at once")
    check_bool("normalize_reward", normalize_reward)


def wrap(env, frame_stack: int, normalize_reward: bool, gamma: float = 0.99, statistics: VecNormalize | None = None) -> VecEnv:
    """``env`` (a VecEnv, or one env) as every worldsim agent sees it: observations uint8
    ``[N, 3 frame_stack, H, W]`` (the newest frame last; SB3's image layout), rewards scaled by the running std of the
    ``gamma``-discounted return; ``statistics`` (the VecNormalize of an earlier env) carries on."""
    check_wrappers(frame_stack, normalize_reward)
    venv = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env])
    if not isinstance(venv, VecMonitor):  # the episodes' lengths and unscaled returns, in SB3's ep_info_buffer
        venv = VecMonitor(venv)
    height, width, channels = venv.observation_space.shape
    # SB3 takes an image's smallest axis for its channels: more stacked channels than rows would be read as rows.
    if channels * frame_stack >= min(height, width):
        raise UserError(
            f"frame_stack={frame_stack} stacks {channels * frame_stack} channels on {height}x{width} frames; "
            f"choose frame_stack < {-(-min(height, width) // channels)} for this frame size"
        )
    if frame_stack > 1:
        venv = VecFrameStack(venv, frame_stack, channels_order="last")
    # Channel-first below VecNormalize: off-policy algorithms store its original observations as the policy sees them.
    venv = VecTransposeImage(venv)
    if normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=gamma)
        if statistics is not None:
            venv.ret_rms = statistics.ret_rms
    return venv


def make_agent(
    algo: str, env, seed: int, device: str = "cpu", frame_stack: int = FRAME_STACK, normalize_reward: bool = NORMALIZE_REWARD, **overrides
):
    """An SB3 ``algo`` agent with ``CnnPolicy`` (:class:`FrameCNN`) for ``env`` (a VecEnv or an
    env) seen through :func:`wrap`; ``overrides`` replace :data:`HYPERPARAMETERS`."""
    cls = algo_class(algo)
    kwargs = {**HYPERPARAMETERS[algo], **overrides}
    venv = wrap(env, frame_stack, normalize_reward, kwargs["gamma"])
    if algo == "ppo":  # whole mini-batches: at most one rollout of every env
        kwargs["batch_size"] = min(kwargs["batch_size"], kwargs["n_steps"] * venv.num_envs)
    return cls("CnnPolicy", venv, seed=seed, device=device, policy_kwargs=policy_kwargs(), verbose=0, **kwargs)


def move_agent(agent, env, frame_stack: int, normalize_reward: bool) -> None:
    """Lets ``agent`` learn on in ``env`` (the next round's dream), its reward statistics carried on."""
    agent.set_env(wrap(env, frame_stack, normalize_reward, agent.gamma, agent.get_vec_normalize_env()))


def saved_frames(path: str | Path) -> tuple[int, int, int]:
    """``(frame_stack, H, W)`` of the image policy saved in ``path``, from the plain JSON beside its
    pickled observation space (SB3 saves image spaces channel-first; nothing is unpickled)."""
    shape = saved_spaces(Path(path))[0].get("_shape") or ()
    if len(shape) != 3:
        raise UserError(f"{path} is not an SB3 image policy .zip (its observations have shape {tuple(shape)})")
    channels, height, width = shape
    return channels // 3, height, width


def load_weights(agent, path: str | Path, device: str = "cpu") -> None:
    """Loads the policy saved in ``path`` (weights only: nothing is unpickled) into ``agent``, which
    must see as many stacked frames of the same size."""
    (k, height, width), (channels, *size) = saved_frames(path), agent.observation_space.shape
    if (k, height, width) != (channels // 3, *size):
        raise UserError(
            f"{path} holds a policy of {k} stacked {height}x{width} frames, not {channels // 3} of {size[0]}x{size[1]}; "
            f"use frame_stack={k} and frame_size=[{height},{width}] to load it (or another out= to start afresh)"
        )
    agent.set_parameters(str(path), exact_match=True, device=device)


def frame_stack_of(agent, env: gym.Env) -> int:
    """How many of ``env``'s frames ``agent`` sees at once (1 where the spaces do not fit at all)."""
    theirs, ours = env.observation_space.shape, agent.observation_space.shape
    if len(theirs) == 3 and len(ours) == 3 and ours[0] % theirs[2] == 0:
        return ours[0] // theirs[2]
    return 1


def check_same_spaces(agent, env: gym.Env) -> None:
    """A policy moves between dream and real unchanged: its spaces must be the env's, its
    observations ``frame_stack`` stacked frames (SB3 keeps image spaces channel-first; the frames
    stay channel-last)."""
    theirs, ours = env.observation_space, agent.observation_space
    if isinstance(theirs, gym.spaces.Box) and len(theirs.shape) == 3:
        theirs = FrameStacker(theirs, frame_stack_of(agent, env)).space
        if ours.shape == (theirs.shape[2], *theirs.shape[:2]) and ours.dtype == theirs.dtype:
            ours = theirs
    for name, a, b in (("observation", ours, theirs), ("action", agent.action_space, env.action_space)):
        if a != b:
            raise UserError(
                f"the policy's {name} space {a} differs from the env's {b}; "
                "use the same world arguments (frame_size=, scenario=) for dream and real"
            )


def evaluate_real(agent, env: gym.Env, episodes: int, seed: int, deterministic: bool = True) -> list[float]:
    """Returns of ``episodes`` real episodes from seeds ``seed, seed + 1, ...`` (reproducible:
    the env's reset seed and a deterministic policy fix each episode)."""
    check_same_spaces(agent, env)
    frames = FrameStacker(env.observation_space, frame_stack_of(agent, env))
    returns = []
    for k in range(episodes):
        observation = frames.reset(env.reset(seed=seed + k)[0])
        total, done = 0.0, False
        while not done:
            action, _ = agent.predict(observation, deterministic=deterministic)
            frame, reward, terminated, truncated, _ = env.step(action.item() if np.ndim(action) == 0 else action)
            observation = frames.step(frame)
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
    start = dream.unwrapped.context_frames - 1
    history = record_episode(real, make_policy("auto", real), seed, max_steps=start).frames
    stacker = FrameStacker(real.observation_space, frame_stack_of(agent, real))
    observation = stacker.reset(history[0])
    for frame in history[1:]:  # the policy sees the frames that led here
        observation = stacker.step(frame)
    frames, dream_done, done, steps = [np.concatenate([history[-1], dream_frame], axis=1)], False, False, 0
    while not done and (max_steps is None or steps < max_steps):
        action, _ = agent.predict(observation, deterministic=True)
        action = action.item() if np.ndim(action) == 0 else action
        frame, _, terminated, truncated, _ = real.step(action)
        observation = stacker.step(frame)
        if not dream_done:
            dream_frame, _, dream_terminated, dream_truncated, _ = dream.step(action)
            dream_done = dream_terminated or dream_truncated
        frames.append(np.concatenate([frame, dream_frame], axis=1))
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
    frame_stack: int
    normalize_reward: bool
    hyperparameters: dict


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
    frame_stack: int = FRAME_STACK,
    normalize_reward: bool = NORMALIZE_REWARD,
    **world_kwargs,
) -> AgentReport:
    """Trains ``algo`` for ``steps`` dream steps (all envs together) and evaluates it in the real
    twin; writes ``policy.zip``, ``returns.json`` and ``real_vs_dream.mp4`` into ``out``. The
    reward statistics are not saved: they scale training rewards only."""
    from worldsim.agents.vec_env import DreamVecEnv
    from worldsim.envs.dream import DreamEnv, DreamVectorEnv
    from worldsim.video import write_video

    check_integer("steps", steps)
    check_wrappers(frame_stack, normalize_reward)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dream_venv = DreamVectorEnv(num_envs, model, device, sampler_steps=sampler_steps, **world_kwargs)
    venv = DreamVecEnv(dream_venv)
    venv.seed(seed)
    agent = make_agent(algo, venv, seed, device, frame_stack, normalize_reward)
    agent.learn(total_timesteps=steps, progress_bar=progress)
    policy = out / "policy.zip"
    with atomic_write(policy) as f:
        agent.save(f)
    agent.get_env().close()
    dream_model = dream_venv.model
    config = dream_model.config
    real = gym.make(config.env_id, **config.world_kwargs(**world_kwargs))
    returns = evaluate_real(agent, real, eval_episodes, eval_seed)
    dream = DreamEnv(dream_model, device, sampler_steps=sampler_steps, **world_kwargs)
    film = real_beside_dream(agent, real, dream, eval_seed)
    write_video(out / "real_vs_dream.mp4", film, config.fps, scale=4)
    real.close()
    dream.close()
    report = AgentReport(
        algo,
        config.env_id,
        dict(world_kwargs),
        model_name,
        steps,
        time.perf_counter() - start,
        eval_seed,
        returns,
        float(np.mean(returns)),
        float(np.std(returns)),
        frame_stack,
        normalize_reward,
        dict(HYPERPARAMETERS[algo]),
    )
    with atomic_write(out / "returns.json", "w") as f:
        f.write(json.dumps(asdict(report), indent=2) + "\n")
    return report
