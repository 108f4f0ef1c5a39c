"""Dream environments: Gymnasium envs whose frames, rewards and episode ends come from a world model.

:class:`DreamVectorEnv` runs ``num_envs`` envs as the batch of one
:class:`~worldsim.simulator.WorldSimulator` (one batched model call per step for all of them);
:class:`DreamEnv` is the one-env view of it. Both take the same world arguments as their real twin
(``model.config.env_id``) and have its observation and action spaces, so one policy runs in both.
An episode starts from real frames of the twin, from frames the caller gives, or from text alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from einops import rearrange
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers import TimeLimit

from worldsim.data.collect import record_episode
from worldsim.data.episode import Episode
from worldsim.data.policies import make_policy
from worldsim.errors import UserError, check_bool, check_integer
from worldsim.model.action_space import ActionSpace
from worldsim.model.world_model import WorldModel, load

from .validation import check_action, check_options, check_seed
from .worlds import BY_ID, WORLDS

if TYPE_CHECKING:
    import pygame

DEFAULT_HORIZON = 200  # for a twin that names no episode length of its own
RESET_OPTIONS = ("prompt", "context")


@dataclass
class Start:
    """How one env's episode starts: real ``frames`` uint8 ``[T, H, W, 3]`` with the ``actions``
    ``[T]`` (or ``[T, A]``) taken at them (None: unknown), or no frames (generate the first one
    from the caption); ``caption`` conditions everything the env generates."""

    frames: np.ndarray | None
    actions: np.ndarray | None
    caption: str


@dataclass(frozen=True)
class DreamState:
    """A dream env's state between two steps (:meth:`DreamVectorEnv.snapshot`): its simulator (a
    fork: KV caches, text conditions, noise generator), every env's frame uint8 ``[N, H, W, 3]``,
    steps since reset int ``[N]`` and caption ``[N]``, and the env's own generator (autoreset seeds)."""

    simulator: Any
    frames: np.ndarray
    steps: np.ndarray
    captions: np.ndarray
    rng_state: Mapping[str, Any]


class ReplayStarts:
    """Every place a dream episode can start in collections of real episodes: ``context`` consecutive
    frames with the actions taken at them (the last one's is unknown: no-op), and the caption."""

    def __init__(self, roots: str | Path | Sequence[str | Path], context: int, frame_size: tuple[int, int], no_action: np.ndarray):
        from worldsim.data.collection import Collection

        roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
        self.episodes = [episode for root in roots for episode in Collection(root).load()]
        for episode in self.episodes:
            if tuple(episode.frames.shape[1:3]) != tuple(frame_size):
                raise UserError(
                    f"replay episodes must have this env's frame size {tuple(frame_size)}; "
                    f"one of {[str(r) for r in roots]} has {tuple(episode.frames.shape[1:3])}"
                )
        # A start's last frame t is any frame of an episode but its last (the episode goes on from it).
        self.places = [(i, t) for i, episode in enumerate(self.episodes) for t in range(context - 1, len(episode.frames) - 1)]
        if not self.places:
            raise UserError(f"replay collections {[str(r) for r in roots]} hold no episode of more than {context} frames")
        self.context, self.no_action = context, no_action

    def draw(self, rng: np.random.Generator) -> Start:
        i, t = self.places[int(rng.integers(len(self.places)))]
        episode = self.episodes[i]
        return episode_start(episode.frames[: t + 1], episode.actions[:t], episode.caption, self.no_action, self.context)


def episode_start(frames: np.ndarray, actions: np.ndarray, caption: str, no_action: np.ndarray, context: int) -> Start:
    """A start from an episode's frames ``[T + 1, H, W, 3]`` and the ``T`` actions between them: its
    last ``context`` frames with the action taken at each (the last one's is not known yet: no-op)."""
    taken = np.concatenate([np.asarray(actions).reshape(len(frames) - 1, *no_action.shape), no_action[None]])
    return Start(frames[-context:], taken[-context:], caption)


class DreamVectorEnv(VectorEnv):
    """``num_envs`` dream envs stepped together by one world model (see :class:`DreamEnv` for
    the spaces, rewards and arguments, which are the same per env).

    ## Autoreset: ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``)
    When an env terminates or truncates, the same ``step`` restarts it (a partial reset of the
    simulator, from new real frames of the twin) and returns the new episode's first frame as its
    observation, with the finished episode's last frame in ``info["final_obs"]`` and its info in
    ``info["final_info"]`` (both masked by ``info["_final_obs"]`` / ``info["_final_info"]``);
    ``info["caption"]`` and ``info["step"]`` then describe the new episode. The finished env's
    reward, ``terminated`` and ``truncated`` are those of its last step. This is the convention of
    stable-baselines3's VecEnv, and no step is spent on an env that only resets.
    ``autoreset_mode=AutoresetMode.DISABLED`` leaves finished envs alone until
    ``reset(options={"reset_mask": mask})`` restarts them.

    ## Seeding
    ``reset(seed=s)`` (any seed Gymnasium takes: a Python int >= 0) starts env ``i`` from the real
    twin reset with seed ``s + i`` and seeds the simulator's noise with ``s mod 2**64``: the same
    seed and actions give the same rollout. Later resets (autoresets included) draw their twin seeds
    from the env's ``np_random``.

    ## Info (dict of arrays, each key with its ``_key`` mask, as Gymnasium's vector envs)
    ``caption``: object ``[N]``, the text conditioning each env's episode; ``step``: int ``[N]``,
    steps since each env's reset.

    ## Arguments
    ``num_envs=1``, ``autoreset_mode`` (``SAME_STEP`` or ``DISABLED``), then :class:`DreamEnv`'s.
    ``replay``: collections of real episodes (folders of ``worldsim collect``, one or a list); an
    episode reset without options (autoresets included) then starts from ``context_frames``
    consecutive real frames drawn uniformly from all of their places (with ``np_random``), not
    from the twin's reset: imagination as DIAMOND, IRIS and Dreamer run it, from where the agent's
    real experience went, mostly with a short ``horizon``.
    Actions are int ``[N]`` (or float ``[N, A]``), one per env; observations uint8 ``[N, H, W, 3]``.
    ``gym.make_vec("worldsim/DreamBalls-v0", num_envs=N, vectorization_mode="vector_entry_point",
    model=...)`` makes one.

    ## Version history
    - v0: first release.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        model: str | Path | WorldModel | None = None,
        device: str | torch.device = "cpu",
        sampler_steps: int | None = None,
        context_frames: int | None = None,
        horizon: int | None = None,
        guidance: float = 1.0,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        env_id: str | None = None,
        replay: str | Path | Sequence[str | Path] | None = None,
        compile: bool = False,
        precision: str = "float32",
        **world_kwargs: Any,
    ):
        check_integer("num_envs", num_envs)
        modes = [mode.value for mode in AutoresetMode]
        if autoreset_mode not in (*AutoresetMode, *modes):
            raise UserError(f"autoreset_mode must be an AutoresetMode or one of {modes}, got {autoreset_mode!r}")
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
            raise UserError(f"dream envs support autoreset_mode SAME_STEP or DISABLED, got {autoreset_mode}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise UserError(f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}")
        self.model = resolve_model(model, device, env_id)
        if check_bool("compile", compile):
            self.model.dit.compile_passes()
        config = self.model.config
        assert config.env_id is not None, "resolve_model refuses a model that names no world"
        self.env_id = config.env_id
        # The twin: the real world this model learned, made with the same world arguments.
        self.twin = gym.make(self.env_id, **config.world_kwargs(**world_kwargs))
        check_same_actions(config.action_space, self.twin.action_space, self.env_id)
        self.num_envs = int(num_envs)
        self.single_observation_space = self.twin.observation_space
        self.single_action_space = self.twin.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.action_names = action_names(self.env_id, self.single_action_space)
        frame_shape = self.single_observation_space.shape
        assert frame_shape is not None, "a twin's observations are frames"
        self.frame_size = (frame_shape[0], frame_shape[1])
        self.device = torch.device(device)
        self.simulator_kwargs = dict(sampler_steps=sampler_steps, frame_size=self.frame_size, guidance=guidance, precision=precision)
        self.simulator = self.model.simulator(self.num_envs, self.device, **self.simulator_kwargs)
        self.context_frames = check_integer("context_frames", self.simulator.window if context_frames is None else context_frames)
        if self.context_frames > self.simulator.window:
            window = self.simulator.window
            raise UserError(f"context_frames must be at most {window}, the frames the model keeps as context; got {context_frames}")
        self.horizon = check_integer("horizon", horizon if horizon is not None else real_max_steps(self.twin) or DEFAULT_HORIZON)
        self.policy = make_policy("auto", self.twin)  # acts in the twin to record starting frames
        self.replay = ReplayStarts(replay, self.context_frames, self.frame_size, self.no_action()) if replay is not None else None
        self.metadata = {**self.metadata, "render_fps": config.fps, "autoreset_mode": autoreset_mode}
        self.autoreset_mode = autoreset_mode
        self.render_mode = render_mode
        self.window = FrameWindow(f"worldsim dream ({self.env_id})", config.fps) if render_mode == "human" else None
        self.started = False
        self.frames = np.zeros((self.num_envs, *frame_shape), np.uint8)
        self.steps = np.zeros(self.num_envs, np.int64)
        self.captions = np.full(self.num_envs, "", dtype=object)

    # ----------------------------------------------------------------------------- gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts every env (or those of ``options["reset_mask"]``, bool ``[N]``) anew.

        ``options``: ``{"prompt": str}`` generates each first frame from text alone;
        ``{"context": frames}`` starts from the given frames (uint8 ``[T, H, W, 3]`` or an
        :class:`~worldsim.data.Episode`, whose actions and caption come along; or a sequence of
        those, one per env reset), with ``"prompt"`` overriding the caption. Without either, each
        env starts from ``context_frames`` real frames of the twin. A prompt may also be a
        sequence of strings, one per env reset.
        """
        check_seed(seed)
        options = dict(check_options(options))
        super().reset(seed=seed)
        mask = options.pop("reset_mask", None)
        unknown = set(options) - set(RESET_OPTIONS)
        if unknown:
            raise UserError(f"unknown reset options {sorted(unknown)}; dream envs accept 'prompt', 'context' and 'reset_mask'")
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(check_reset_mask(mask, self.num_envs))
        seeds = self.draw_seeds(seed, rows)
        if mask is None:  # a fresh simulator: its noise seeded, its frame counter back at 0
            # Gymnasium takes any int >= 0, torch's generator 64 bits.
            simulator_seed = seed % 2**64 if seed is not None else int(self.np_random.integers(2**31))
            self.simulator = self.model.simulator(self.num_envs, self.device, seed=simulator_seed, **self.simulator_kwargs)
        self.restart(rows, self.starts(rows, seeds, options))
        self.started = True
        if self.render_mode == "human":
            self.render()
        return self.frames.copy(), self.info()

    def step(self, actions: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps every env with ``actions`` (one per env: int ``[N]`` or float ``[N, A]``)."""
        if not self.started:
            raise RuntimeError("call reset() before step()")
        actions = check_actions(actions, self.single_action_space, self.num_envs, self.action_names)
        result = self.simulator.step(torch.from_numpy(actions))
        self.frames = result.frames.cpu().numpy().copy()  # resets write into the simulator's frames
        rewards = result.rewards.cpu().numpy().astype(np.float64)
        terminated = result.terminated.cpu().numpy()
        self.steps += 1
        truncated = (self.steps >= self.horizon) & ~terminated
        done = terminated | truncated
        infos = {}
        if self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = self.frames[i].copy()
            infos = {"final_obs": final_obs, "_final_obs": done, "final_info": self.info(done), "_final_info": done.copy()}
            rows = np.flatnonzero(done)
            self.restart(rows, self.starts(rows, self.draw_seeds(None, rows), {}))
        if self.render_mode == "human":
            self.render()
        return self.frames.copy(), rewards, terminated, truncated, {**infos, **self.info()}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """``rgb_array``: every env's current frame; ``human``: shows them tiled in a window."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        if self.render_mode == "rgb_array":
            return tuple(self.frames.copy())
        assert self.window is not None, "a human render mode opens a window"
        self.window.show(tile(self.frames))
        return None

    def snapshot(self) -> DreamState:
        """The state of every env now; :meth:`restore` returns to it (as often as asked), and the
        same actions then give the same frames, rewards and ends as they did from here."""
        if not self.started:
            raise RuntimeError("call reset() before snapshot()")
        every = list(range(self.num_envs))
        return DreamState(
            self.simulator.fork(every),
            self.frames.copy(),
            self.steps.copy(),
            self.captions.copy(),
            copy.deepcopy(self.np_random.bit_generator.state),
        )

    def restore(self, state: DreamState) -> None:
        """Returns every env to ``state``, a :meth:`snapshot` of this env (e.g. a viewer's rewind)."""
        if not isinstance(state, DreamState) or len(state.frames) != self.num_envs or state.frames.shape[1:] != self.frames.shape[1:]:
            raise UserError(
                f"restore() takes a snapshot() of this dream env ({self.num_envs} envs of {self.frame_size} frames), "
                f"got {type(state).__name__}"
            )
        self.simulator = state.simulator.fork(list(range(self.num_envs)))  # the snapshot stays for another restore
        self.frames, self.steps, self.captions = state.frames.copy(), state.steps.copy(), state.captions.copy()
        self.np_random.bit_generator.state = copy.deepcopy(state.rng_state)
        self.started = True

    @property
    def sampler_steps(self) -> int:
        """Denoising steps per generated frame."""
        return self.simulator.sampler_steps

    def close_extras(self, **kwargs: Any) -> None:
        self.twin.close()
        if self.window is not None:
            self.window.close()

    # --------------------------------------------------------------------------------- internals

    def draw_seeds(self, seed: int | None, rows: np.ndarray) -> list[int]:
        """The twin's reset seed for each env of ``rows``: ``seed + i``, or drawn from ``np_random``."""
        if seed is None:
            return [int(s) for s in self.np_random.integers(2**31, size=len(rows))]
        if not isinstance(seed, (int, np.integer)):
            raise UserError(f"seed must be an int or None, got {seed!r}")
        return [int(seed) + int(i) for i in rows]

    def starts(self, rows: np.ndarray, seeds: list[int], options: dict[str, Any]) -> list[Start]:
        """How each env of ``rows`` starts, from the reset ``options`` (see :meth:`reset`)."""
        n = len(rows)
        if "prompt" in options and options["prompt"] is None:
            raise UserError('options["prompt"] must be a string or a list of strings, one per env reset; got None (leave it out for none)')
        prompts = check_prompts(options.get("prompt"), n)
        if "context" in options:
            contexts = per_env(options["context"], n, "context", lambda c: isinstance(c, Episode) or getattr(c, "ndim", 0) == 4)
            starts = [self.given_start(context) for context in contexts]
        elif "prompt" in options:
            starts = [Start(None, None, "") for _ in rows]
        elif self.replay is not None:
            starts = [self.replay.draw(self.np_random) for _ in rows]
        else:
            starts = [self.real_start(seed) for seed in seeds]
        for start, prompt in zip(starts, prompts):
            if prompt is not None:
                start.caption = prompt
        return starts

    def real_start(self, seed: int) -> Start:
        """The twin's first ``context_frames`` frames from ``reset(seed)`` under the ``auto`` policy."""
        return self.given_start(record_episode(self.twin, self.policy, seed, max_steps=self.context_frames - 1))

    def given_start(self, context: np.ndarray | Episode) -> Start:
        """A start from the caller's frames (uint8 ``[T, H, W, 3]``) or episode (the last ``context_frames``)."""
        if isinstance(context, Episode):
            context.validate()
            frames = check_context(context.frames, self.frame_size)
            return episode_start(frames, context.actions, context.caption, self.no_action(), self.context_frames)
        frames = check_context(context, self.frame_size)
        return Start(frames[-self.context_frames :], None, "")

    def restart(self, rows: np.ndarray, starts: list[Start]) -> None:
        """Resets the simulator's envs ``rows`` (sorted indices) from ``starts``, one simulator call
        per kind and length of start (the simulator takes its chosen envs in index order)."""
        groups: dict[tuple[int | None, bool], list[int]] = {}  # (context length or None, has actions)
        for j, start in enumerate(starts):
            key = (None, False) if start.frames is None else (len(start.frames), start.actions is not None)
            groups.setdefault(key, []).append(j)
        for (length, has_actions), members in groups.items():
            chosen, group = [starts[j] for j in members], rows[members]
            mask = torch.zeros(self.num_envs, dtype=torch.bool)
            mask[torch.from_numpy(group)] = True
            prompts = [start.caption for start in chosen]
            if length is None:
                frames = self.simulator.reset(mask, prompts=prompts)
            else:
                # Every start of the group has frames (and actions, when has_actions).
                context = torch.from_numpy(np.stack([start.frames for start in chosen if start.frames is not None]))
                given = [start.actions for start in chosen if start.actions is not None]
                actions = torch.from_numpy(np.stack(given)) if has_actions else None
                frames = self.simulator.reset(mask, context, actions, prompts)
            self.frames[group] = frames.cpu().numpy()
            self.captions[group] = prompts
        self.steps[rows] = 0

    def info(self, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Gymnasium's vector info for the envs of ``mask`` (default all)."""
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else mask
        captions = np.where(mask, self.captions, np.array(None))
        return {"caption": captions, "_caption": mask.copy(), "step": np.where(mask, self.steps, 0), "_step": mask.copy()}

    def no_action(self) -> np.ndarray:
        if isinstance(self.single_action_space, spaces.Discrete):
            return np.zeros((), np.int64)
        shape = self.single_action_space.shape
        assert shape is not None, "a dream's actions are Discrete or Box (check_same_actions)"
        return np.zeros(shape, np.float32)


class DreamEnv(gym.Env):
    """A world model's dream of a real world, behind the Gymnasium API.

    Every frame is generated by the model (a :class:`~worldsim.simulator.WorldSimulator` of one
    env); rewards and episode ends come from its reward and termination heads. Its real twin is the
    world the model learned (``model.config.env_id``, e.g. ``worldsim/Balls-v0``): it supplies the
    spaces and the real frames that start an episode.

    ## Action space
    The real twin's: ``Discrete(5)`` for Balls (0 none, 1 up, 2 down, 3 left, 4 right),
    ``Discrete(2)`` for CartPole (0 left, 1 right). The model's action space must agree.

    ## Observation space
    The real twin's: ``Box(0, 255, (H, W, 3), uint8)`` with ``(H, W)`` its ``frame_size`` (default
    the model's). Any size divisible by the model's codec downsampling times its patch size works.

    ## Starting state (``reset``)
    By default the twin is reset with the same seed and run for ``context_frames - 1`` steps with
    the ``auto`` collection policy (no-op for passive Balls scenarios, scripted for push and
    CartPole); those real frames and actions become the model's context and the twin's caption its
    prompt, and the observation is the last real frame. ``options={"prompt": str}`` generates the
    first frame from text alone; ``options={"context": frames}`` starts from the caller's frames
    (uint8 ``[T, H, W, 3]``) or :class:`~worldsim.data.Episode` (its actions and caption too), with
    an optional ``"prompt"`` as the caption. With ``replay=`` (collections of real episodes) a
    reset without options starts from ``context_frames`` consecutive frames drawn uniformly from
    those episodes instead.

    ## Rewards
    The model's reward head for each generated frame (it learned the twin's rewards: Balls push:
    +1 on reaching the target, else 0.1 x the distance gained; passive Balls: 0; CartPole: +1).

    ## Episode end
    Terminated when the model's termination logit for the new frame is positive; truncated after
    ``horizon`` steps (default the twin's episode length: 64 for passive Balls scenarios, 200 for
    push, 500 for CartPole; else 200).

    ## Info
    ``info["caption"]``: the text conditioning the episode (the twin's caption, the prompt, or the
    episode's caption); ``info["step"]``: steps since the reset.

    ## Snapshots
    ``snapshot()`` returns the dream's state between two steps and ``restore(state)`` returns to it
    (as often as asked): the same actions then give the same frames, rewards and ends (the viewer's
    rewind). ``context_frames``, ``horizon`` and ``sampler_steps`` are read-only properties.

    ## Arguments
    ``model``: a shipped model's name, a model folder, a training run folder (its latest
    checkpoint) or a :class:`~worldsim.model.world_model.WorldModel`; ``device="cpu"``;
    ``sampler_steps=None`` (the model's); ``context_frames=None`` (the simulator's window: the
    model's training window - 1, also the most it takes); ``horizon=None``; ``guidance=1.0``
    (classifier-free guidance on text and actions, a finite number >= 1); ``render_mode`` in
    ``{None, "rgb_array", "human"}`` (a pygame window, frames scaled up by nearest neighbour, paced
    at the model's fps); ``replay=None`` (see the starting state); ``compile=False`` (True:
    :meth:`~worldsim.model.dit.SpacetimeDiT.compile_passes` on the model, in place: on CPU 1.4-1.7x
    the frames/s, after a first step that compiles for 10-30 s); ``precision="float32"``
    (``"bfloat16"``: the passes under bf16 autocast, :class:`~worldsim.simulator.WorldSimulator`);
    and the twin's world arguments
    (Balls: ``scenario=``, ``frame_size=``, ``split=``, ...; CartPole: ``frame_size=``).
    ``metadata["render_fps"]`` is the model's fps.

    ## Version history
    - v0: first release.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(
        self,
        model: str | Path | WorldModel | None = None,
        device: str | torch.device = "cpu",
        sampler_steps: int | None = None,
        context_frames: int | None = None,
        horizon: int | None = None,
        guidance: float = 1.0,
        render_mode: str | None = None,
        env_id: str | None = None,
        replay: str | Path | Sequence[str | Path] | None = None,
        compile: bool = False,
        precision: str = "float32",
        **world_kwargs: Any,
    ):
        self.dream = DreamVectorEnv(
            1,
            model,
            device,
            sampler_steps=sampler_steps,
            context_frames=context_frames,
            horizon=horizon,
            guidance=guidance,
            render_mode=render_mode,
            autoreset_mode=AutoresetMode.DISABLED,
            env_id=env_id,
            replay=replay,
            compile=compile,
            precision=precision,
            **world_kwargs,
        )
        self.observation_space = self.dream.single_observation_space
        self.action_space = self.dream.single_action_space
        self.metadata = {**self.metadata, "render_fps": self.dream.metadata["render_fps"]}
        self.render_mode = render_mode

    @property
    def model(self) -> WorldModel:
        return self.dream.model

    @property
    def context_frames(self) -> int:
        """Real frames an episode starts from (the twin's first ``context_frames`` by default)."""
        return self.dream.context_frames

    @property
    def horizon(self) -> int:
        """Steps after which an episode is truncated."""
        return self.dream.horizon

    @property
    def sampler_steps(self) -> int:
        """Denoising steps per generated frame."""
        return self.dream.sampler_steps

    def snapshot(self) -> DreamState:
        """The dream's state now; :meth:`restore` returns to it, and the same actions then give the
        same continuation (see :meth:`DreamVectorEnv.snapshot`)."""
        return self.dream.snapshot()

    def restore(self, state: DreamState) -> None:
        """Returns the dream to ``state``, a :meth:`snapshot` of this env."""
        self.dream.restore(state)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        check_seed(seed)
        check_options(options)
        super().reset(seed=seed)
        if options and "reset_mask" in options:
            raise UserError("reset_mask is an option of the vector env (DreamVectorEnv), not of DreamEnv")
        if seed is None:  # the env's own generator decides, so reset() after reset(seed) repeats
            seed = int(self.np_random.integers(2**31))
        observations, _ = self.dream.reset(seed=seed, options=options)
        return observations[0], self.info()

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if isinstance(self.action_space, spaces.Discrete):
            action = np.array([check_action(action, self.dream.action_names)])
        else:
            action = np.asarray(action)[None]
        observations, rewards, terminated, truncated, _ = self.dream.step(action)
        return observations[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self.info()

    def render(self) -> np.ndarray | None:
        frames = self.dream.render()
        return frames[0] if frames is not None else None

    def close(self) -> None:
        self.dream.close()

    def info(self) -> dict[str, Any]:
        return {"caption": str(self.dream.captions[0]), "step": int(self.dream.steps[0])}


# ------------------------------------------------------------------------------ checks at the edge


def resolve_model(model: str | Path | WorldModel | None, device: str | torch.device, env_id: str | None) -> WorldModel:
    """The WorldModel named by ``model``, checked to have learned ``env_id`` (when given)."""
    if model is None:
        dream_id = BY_ID[env_id].dream_id if env_id in BY_ID else WORLDS[0].dream_id
        raise UserError(
            f"a dream env needs a world model: pass model=NAME_OR_PATH (a shipped model's name, a model folder "
            f"or a training run folder) or a WorldModel, e.g. gym.make({dream_id!r}, model='runs/balls')"
        )
    if isinstance(model, (str, Path)):
        model = load(model, device)
    if not isinstance(model, WorldModel):
        raise UserError(f"model must be a name, a path or a WorldModel, got {type(model).__name__}")
    learned = model.config.env_id
    if learned is None:
        raise UserError("the model names no real world (config.env_id); a dream env needs it for its spaces and starting frames")
    if env_id is not None and learned != env_id:
        hint = f"; use {BY_ID[learned].dream_id}" if learned in BY_ID else ""
        raise UserError(f"this model learned {learned}, not {env_id}{hint}")
    return model


def check_same_actions(declared: ActionSpace, space: gym.Space[Any], env_id: str) -> None:
    """Raises unless the model's action space ``declared`` is ``space``, the twin's (its bounds aside)."""
    same = (isinstance(space, spaces.Discrete) and declared.discrete and declared.n == space.n) or (
        isinstance(space, spaces.Box) and not declared.discrete and declared.shape == space.shape
    )
    if not same:
        raise UserError(
            f"the model's action space {declared} does not match {env_id}'s {space} with these world arguments; "
            "a dream env must take exactly the real world's actions"
        )


def check_actions(actions: object, space: gym.Space[Any], num_envs: int, names: tuple[str, ...]) -> np.ndarray:
    """One action per env as an array (int64 ``[N]`` or float32 ``[N, A]``), or a UserError that
    says what is accepted."""
    value = np.asarray(actions)
    shown = f"{value.dtype} {value.shape} {np.array2string(value, threshold=8)}"
    if isinstance(space, spaces.Discrete):
        valid = value.shape == (num_envs,) and np.issubdtype(value.dtype, np.integer)
        ids = value - space.start if valid else value
        if not valid or not ((ids >= 0) & (ids < space.n)).all():
            listing = ", ".join(f"{space.start + i} {name}" for i, name in enumerate(names))
            raise UserError(
                f"actions must be {num_envs} integers in [{space.start}, {space.start + space.n}) ({listing}), one per env; got {shown}"
            )
        return ids.astype(np.int64)
    assert isinstance(space, spaces.Box), "a dream's actions are Discrete or Box (check_same_actions)"
    valid = value.shape == (num_envs, *space.shape) and np.issubdtype(value.dtype, np.number)
    if not valid or not (np.isfinite(value) & (value >= space.low) & (value <= space.high)).all():
        raise UserError(
            f"actions must be numbers of shape {(num_envs, *space.shape)} within [{space.low}, {space.high}], one row per env; got {shown}"
        )
    return value.astype(np.float32)


def check_context(frames: object, frame_size: tuple[int, int]) -> np.ndarray:
    """Context frames as uint8 ``[T, H, W, 3]`` of the env's ``frame_size``, or a UserError naming it."""
    value = np.asarray(frames)
    if value.dtype != np.uint8 or value.ndim != 4 or value.shape[1:] != (*frame_size, 3) or len(value) < 1:
        height, width = frame_size
        raise UserError(
            f"context frames must be uint8 [T, {height}, {width}, 3] (T >= 1; H, W = {height}, {width}, this env's frame_size); "
            f"got {value.dtype} {value.shape}"
        )
    return value


def check_reset_mask(mask: object, num_envs: int) -> np.ndarray:
    value = np.asarray(mask)
    if value.dtype != np.bool_ or value.shape != (num_envs,) or not value.any():
        raise UserError(
            f"options['reset_mask'] must be a bool array of shape ({num_envs},) with at least one True; got {value.dtype} {value.shape}"
        )
    return value


def check_prompts(prompt: object, n: int) -> list[str | None]:
    """The prompt of each of ``n`` env resets (None: keep the start's caption), or a UserError."""
    if prompt is None or isinstance(prompt, str):
        return [prompt] * n
    if isinstance(prompt, (list, tuple)) and len(prompt) == n and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise UserError(f"the prompt must be a string (or a list of {n} strings, one per env reset); got {prompt!r}")


def per_env(value: object, n: int, name: str, is_one: Callable[[object], bool]) -> list[Any]:
    """``value`` for each of ``n`` envs: repeated when ``is_one(value)``, else a sequence of ``n``."""
    if is_one(value):
        return [value] * n
    if isinstance(value, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(value, str) and len(value) == n:
        return list(value)
    raise UserError(
        f"options[{name!r}] must be one value for every env reset or a sequence of {n}, one per env; got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------------- helpers


def action_names(env_id: str, space: gym.Space[Any]) -> tuple[str, ...]:
    """The names of a ``Discrete`` space's actions (its world's, else the numbers); () for others."""
    if isinstance(space, spaces.Discrete):
        return BY_ID[env_id].actions if env_id in BY_ID else tuple(str(i) for i in range(space.n))
    return ()


def real_max_steps(env: gym.Env) -> int | None:
    """The twin's own episode length: its TimeLimit, else its ``max_steps`` attribute."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            return env._max_episode_steps
        env = env.env
    return getattr(env, "max_steps", None)


def tile(frames: np.ndarray) -> np.ndarray:
    """Frames ``[N, H, W, 3]`` in a near-square grid ``[rows * H, cols * W, 3]`` (black padding)."""
    n = len(frames)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    padded = np.zeros((rows * cols, *frames.shape[1:]), np.uint8)
    padded[:n] = frames
    return rearrange(padded, "(r c) h w ch -> (r h) (c w) ch", r=rows)


class FrameWindow:
    """A pygame window for ``render_mode="human"``: frames scaled up by a whole factor with
    nearest-neighbour sampling (the model's pixels stay sharp), paced at ``fps``.

    pygame has one display per process, so the window is (re)opened whenever another env closed it."""

    def __init__(self, title: str, fps: int, size: int = 512):
        self.title, self.fps, self.size = title, fps, size
        self.opened = False
        self.clock: pygame.time.Clock | None = None

    def show(self, frame: np.ndarray) -> None:
        import pygame

        height, width = frame.shape[:2]
        scale = max(1, self.size // max(height, width))
        size = (width * scale, height * scale)
        screen = pygame.display.get_surface() if pygame.display.get_init() else None
        if screen is None or screen.get_size() != size:
            pygame.display.init()
            screen = pygame.display.set_mode(size)
            pygame.display.set_caption(self.title)
        self.clock = self.clock or pygame.time.Clock()
        self.opened = True
        pygame.event.pump()
        surface = pygame.surfarray.make_surface(frame.transpose(1, 0, 2))
        screen.blit(pygame.transform.scale(surface, size), (0, 0))  # scale() is nearest neighbour
        pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.opened:
            import pygame

            pygame.display.quit()
            self.opened = False
