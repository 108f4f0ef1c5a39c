"""WorldSimulator: batched, KV-cached autoregressive generation of frames for B envs at once.

Each env holds a sliding window of its last ``W`` frames as a KV cache, preallocated on the device:
per layer, rotated keys and values ``[B, heads, (W + 1) * N, head_dim]`` (N tokens per frame) in a
ring of ``W + 1`` frame slots, and a mask of the filled slots. ``step(actions)`` denoises only the
new frame's tokens in ``k`` Euler steps against the cache, then one pass at the context noise level
commits them. A model without a commit pass (``commit_pass`` false in its config) runs its last
sampler pass at the context level instead (:func:`~worldsim.model.sampler.end_level`): that pass's
keys and values, its reward and termination, and its input frame as the committed one stand for
the commit pass, which it makes unneeded (k passes per frame instead of k + 1). Every pass writes
the new frame's keys and values in place into the ring's oldest slot, the one frame that has left
the window, and attends over the whole ring: a pass copies N tokens, never the cache. Besides the
cache each env keeps its newest frame's latents as committed (``previous``, at the context level),
which the model reads as the frame before the next one (see :mod:`worldsim.model.denoiser`). Keys
are stored rotated at a global frame counter, so slots never move and relative positions always hold; the result equals recomputing the
whole rollout with attention limited to ``W`` frames back (``SpacetimeDiT(window=W)``). The cache
is a :class:`~worldsim.model.kv_cache.KVCache`, and the frames come from the one
:class:`~worldsim.model.sampler.Sampler` that every generator of frames uses.

The simulator takes a :class:`~worldsim.model.world_model.WorldModel` (or anything with its
``dit``, ``codec``, ``text_encoder`` and ``config``) without importing its module, so that
``WorldModel.simulator()`` can make one.

The step loop makes no host-device synchronisation (no ``.item()``, no branching on tensor values)
and uses fixed shapes, so it can be captured in CUDA graphs later. Noise comes from one generator on
the device, seeded at construction: the same seed and the same calls give the same rollout.

Noise is drawn in a fixed order: per ``step``, first the new frame's initial noise
``[B, 1, C, h, w]``, then (with a commit pass) the noise that puts it at the context level for its commit pass; per reset
from context frames, their commit noise ``[n, T, C, h, w]``; per reset from a prompt, the frame's
initial noise ``[n, 1, C, h, w]`` then its commit noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from worldsim.errors import UserError, check_integer, is_integer
from worldsim.model.codec import PixelCodec, VAECodec
from worldsim.model.denoiser import Denoised, Denoiser
from worldsim.model.dit import SpacetimeDiT, TextContext
from worldsim.model.kv_cache import KVCache, Rows
from worldsim.model.sampler import Sampler, check_sampling, end_level
from worldsim.model.text import TextEncoder


class Model(Protocol):
    """What the simulator reads of a :class:`~worldsim.model.world_model.WorldModel`: its
    ``config`` (``context_frames``, ``sampler_steps``, ``frame_size``, ``context_noise``,
    ``action_space``, ``commit_pass``, ``termination_threshold``) and its parts."""

    config: Any
    dit: SpacetimeDiT
    codec: PixelCodec | VAECodec
    text_encoder: TextEncoder

    def to(self, device: str | torch.device) -> Model: ...

    def eval(self) -> Model: ...


PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: object) -> None:
    """Raises a UserError unless ``precision`` is one of :data:`PRECISIONS` (the simulator's, and
    every setting that passes it on)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


@dataclass
class StepResult:
    """What one step gives every env: ``frames`` uint8 ``[B, H, W, 3]``, ``rewards`` float
    ``[B]``, ``terminated`` bool ``[B]`` (the termination head's probability above the model's
    ``termination_threshold``), all on the simulator's device."""

    frames: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor


class WorldSimulator:
    """B envs stepping one world model together (see the module docstring).

    Args:
        model: the WorldModel.
        batch_size: B, the number of envs.
        device: where the cache lives and the model runs (the model is moved there).
        window: W, the context frames each env keeps (default: the model's training window - 1).
        sampler_steps: k Euler steps per frame (default: the model's ``sampler_steps``).
        frame_size: ``(H, W)`` of generated frames (default: the model's).
        guidance: classifier-free guidance scale on actions and text: a finite number >= 1 (1 = none).
        seed: the generator's seed, in [0, 2**64).
        commit_pass: whether a separate pass commits each new frame (default: the model's
            ``commit_pass``); False needs ``sampler_steps >= 2``, a ``context_noise`` in (0, 1) and a
            network without step conditioning (whose last pass would see a step size a context frame does not).
        precision: ``"float32"``, or ``"bfloat16"``: the network's passes under
            ``torch.autocast`` in bfloat16 (matmuls and attention in bf16, norms and softmax in
            float32), with the KV cache in bf16 (what attention reads under autocast anyway); the
            sampler's state, rewards and frames stay float32. On a CPU with
            AMX or AVX-512 BF16 the matmuls run several times faster; the frames differ from
            float32's by rounding, which compounds along a rollout (measure with the fidelity bench).
    """

    def __init__(
        self,
        model: Model,
        batch_size: int,
        device: str | torch.device = "cpu",
        window: int | None = None,
        sampler_steps: int | None = None,
        frame_size: tuple[int, int] | None = None,
        guidance: float = 1.0,
        seed: int = 0,
        commit_pass: bool | None = None,
        precision: str = "float32",
    ) -> None:
        check_integer("batch_size", batch_size)
        if window is not None:
            check_integer("window", window, note="context frames")
        check_sampling(sampler_steps, guidance)
        if not (is_integer(seed, 0) and seed < 2**64):
            raise UserError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        check_precision(precision)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.window = window if window is not None else max(1, model.config.context_frames - 1)
        self.sampler_steps = sampler_steps if sampler_steps is not None else model.config.sampler_steps
        self.commit_pass = model.config.commit_pass if commit_pass is None else commit_pass
        if not isinstance(self.commit_pass, bool):
            raise UserError(f"commit_pass must be True, False or None (the model's), got {commit_pass!r}")
        end = end_level(self.commit_pass, model.config.context_noise, self.sampler_steps)
        if not self.commit_pass and model.dit.config.step_conditioning:
            raise UserError(
                "commit_pass=False needs a network without step conditioning: its last pass sees a step size that a context frame does not"
            )
        self.sampler = Sampler(self.sampler_steps, guidance, end)
        threshold = model.config.termination_threshold
        self.termination_logit = math.log(threshold / (1 - threshold))  # the head's probability above the threshold
        self.denoiser = Denoiser(model.dit)
        self.frame_size = tuple(frame_size or model.config.frame_size)
        dit, codec = model.dit.config, model.codec
        d, p = codec.downsample, dit.patch_size
        step = d * p
        if len(self.frame_size) != 2 or not all(is_integer(x, 1) and x % step == 0 for x in self.frame_size):
            raise UserError(
                f"frame_size {self.frame_size} must be divisible by {step} (codec downsampling x patch size), two positive integers"
            )
        height, width = self.frame_size
        if dit.temporal_patch_size != 1:
            raise UserError("the simulator steps one frame at a time: it needs temporal_patch_size=1")
        self.latent_shape = (codec.latent_channels, height // d, width // d)
        tokens_per_frame = (height // d // p) * (width // d // p)
        # The window and the frame being made; the head is the slot of the oldest, out of the window.
        head_dim = dit.hidden_size // dit.num_heads
        # In bfloat16 the cache is too: attention reads it in bf16 under autocast either way, and
        # a float32 cache would be cast whole at every pass of every layer.
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        self.cache = KVCache.empty(batch_size, self.window + 1, tokens_per_frame, dit.depth, dit.num_heads, head_dim, self.device, dtype)
        # Each env's newest frame as committed, and its level (1: none yet, pure noise).
        self.previous = torch.zeros(batch_size, *self.latent_shape, device=self.device)
        self.previous_sigmas = torch.ones(batch_size, device=self.device)
        self.time = 0  # global frame counter: the temporal position of the next frame
        space = model.config.action_space  # an ActionSpace
        self.action_shape = space.shape
        self.action_dtype = torch.long if space.discrete else torch.float32
        self.text_length = getattr(model.text_encoder, "max_length", 128)  # the most tokens of a prompt
        # Each env's prompt as every layer's cross-attention keys and values, made once per prompt,
        # as wide as the longest prompt so far: the padding is masked out, and cross-attention
        # then costs what the prompts need (an empty prompt: one token), not max_length.
        self.text = self._text_context([""] * batch_size)
        self.null_text = self._text_context([""])  # guidance's unconditional text
        self.frames = torch.zeros(batch_size, height, width, 3, dtype=torch.uint8, device=self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self._last_pass: tuple[torch.Tensor, Denoised] | None = None  # input and output of the sampler's last conditioned pass

    # ------------------------------------------------------------------------------------ public

    @torch.no_grad()
    def step(self, actions: torch.Tensor) -> StepResult:
        """Generates every env's next frame given the action taken at its current frame.

        ``actions``: int ``[B]`` (discrete) or float ``[B, A]`` (continuous), on any device.
        """
        actions = torch.as_tensor(actions)
        if tuple(actions.shape) != (self.batch_size, *self.action_shape):
            raise UserError(f"actions must have shape {(self.batch_size, *self.action_shape)} (one per env), got {tuple(actions.shape)}")
        actions = actions.to(self.device, self.action_dtype).reshape(self.batch_size, 1, *self.action_shape)
        everyone = slice(None)
        taken = torch.ones(self.batch_size, 1, dtype=torch.bool, device=self.device)
        x = self._denoise(everyone, actions, taken, self.time, self.cache)
        if self.commit_pass:
            out = self._commit(everyone, x, actions, taken, self.time, before=(self.previous, self.previous_sigmas))
        else:  # the last pass, at the context level, left its keys and values at the head
            assert self._last_pass is not None
            self.previous, out = self._last_pass
            self.previous_sigmas = torch.full_like(self.previous_sigmas, self.sampler.end)
            self.cache.fill(everyone, self.cache.head)
        self.cache.advance()
        self.time += 1
        self.latents = x  # [B, 1, C, h, w]: the new frames before decoding
        self.frames = self.model.codec.decode(x)[:, 0]
        return StepResult(self.frames, out.reward[:, 0].float(), out.termination[:, 0].float() > self.termination_logit)

    @torch.no_grad()
    def reset(
        self,
        env_mask: torch.Tensor | Sequence[bool],
        context: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
        prompts: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Restarts the envs of ``env_mask`` (bool ``[B]``), leaving the others untouched.

        Args:
            context: uint8 ``[n, T, H, W, 3]`` real frames for the n chosen envs (the last ``W``
                are kept); without it each chosen env's first frame is generated from its prompt.
            actions: ``[n, T]`` (or ``[n, T, A]``): the action taken at each context frame
                (frame 0 has no incoming action; the last action is not used). Default: none.
            prompts: n captions ("" for none), conditioning everything the envs generate next.
        Returns:
            uint8 ``[n, H, W, 3]``: each chosen env's current frame.
        """
        rows = torch.as_tensor(env_mask, dtype=torch.bool).to(self.device).nonzero().flatten()
        n = len(rows)
        prompts = list(prompts) if prompts is not None else [""] * n
        if len(prompts) != n:
            raise UserError(f"got {len(prompts)} prompts for {n} envs to reset")
        self.set_prompts(rows, prompts)
        self.cache.clear(rows)
        self.previous[rows] = 0
        self.previous_sigmas[rows] = 1
        if context is None:
            return self._generate_first(rows)
        return self._commit_context(rows, context, actions)

    def fork(self, indices: Sequence[int] | torch.Tensor) -> WorldSimulator:
        """A new simulator whose envs are copies of ``indices`` (caches included), e.g. to branch
        futures for planning; it shares the model and continues the generator's stream."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        twin = object.__new__(WorldSimulator)
        twin.__dict__.update(self.__dict__)
        twin.batch_size = len(index)
        # Indexing by a tensor copies: the twin owns its state.
        twin.cache = self.cache.select(index)
        for name in ("previous", "previous_sigmas", "text", "frames"):
            setattr(twin, name, getattr(self, name)[index])
        twin.generator = torch.Generator(self.device)
        twin.generator.set_state(self.generator.get_state())
        return twin

    @property
    def filled(self) -> torch.Tensor:
        """Which of each env's frame slots hold a frame: bool ``[B, W + 1]``."""
        return self.cache.filled

    def set_prompts(self, rows: Sequence[int] | torch.Tensor, prompts: Sequence[str]) -> None:
        """Encodes ``prompts`` as the text condition of the envs ``rows`` (indices or bool mask)."""
        rows = torch.as_tensor(rows, device=self.device)
        if rows.dtype == torch.bool:
            rows = rows.nonzero().flatten()
        if not len(prompts):
            return
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise UserError(f"prompts must be strings, got {bad[0]!r}")
        text = self._text_context(prompts, self.text.width)
        if text.width > self.text.width:
            self.text = self.text.padded(text.width)
        self.text[rows] = text

    # --------------------------------------------------------------------------------- internals

    @torch.no_grad()
    def _text_context(self, prompts: Sequence[str], width: int = 1) -> TextContext:
        """The DiT's cross-attention keys and values of ``prompts``, at most ``text_length`` tokens
        each, padded to ``width`` tokens or to the longest of them."""
        tokens, mask = self.model.text_encoder(list(prompts))
        length = min(tokens.shape[1], self.text_length)
        width = max(width, length)
        padded = torch.zeros(len(prompts), width, tokens.shape[2], device=self.device)
        padded_mask = torch.zeros(len(prompts), width, dtype=torch.bool, device=self.device)
        padded[:, :length], padded_mask[:, :length] = tokens[:, :length], mask[:, :length]
        return self.model.dit.text_context(padded, padded_mask)

    def _autocast(self) -> torch.autocast:
        """The context of every network pass: autocast to bfloat16 with ``precision="bfloat16"``, else disabled."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def _noise(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def _denoise(self, rows: Rows, actions: torch.Tensor, taken: torch.Tensor, position: int, cache: KVCache | None) -> torch.Tensor:
        """New frames for ``rows`` at temporal ``position``, from noise by the sampler, against
        ``cache`` (None: the frames have no context but the one before): clean latents ``[n, 1, C, h, w]``."""
        n = actions.shape[0]
        before = self.previous[rows], self.previous_sigmas[rows]
        text, null_text, untaken = self.text[rows], self.null_text.expand(n), torch.zeros_like(taken)

        def velocity(x: torch.Tensor, sigma: float, step: float, conditioned: bool) -> torch.Tensor:
            sigmas = torch.full((n, 1), sigma, device=self.device)
            action_mask, condition = (taken, text) if conditioned else (untaken, null_text)
            with self._autocast():
                out = self.denoiser(
                    x, sigmas, actions, action_mask, condition, before=before, block_offset=position, cache=cache, step=step
                )
            if conditioned and not self.commit_pass:  # the sampler's last conditioned pass is its last call: what step() commits
                self._last_pass = x[:, -1], out
            return out.velocity

        return self.sampler.sample(velocity, self._noise((n, 1, *self.latent_shape)))

    def _commit(
        self,
        rows: Rows,
        x: torch.Tensor,
        actions: torch.Tensor,
        taken: torch.Tensor,
        position: int,
        slot: int | None = None,
        before: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Denoised:
        """Runs clean frames ``x [n, T, ...]`` of ``rows`` at the context noise level, from temporal
        ``position`` on, and keeps their keys and values and the last frame as the envs'
        ``previous``; returns the denoiser's output for them. ``slot``: the first of the T
        consecutive slots (mod W + 1) that receive the keys and values; None: a step's one frame,
        run against the cache, which writes them at its head. ``before``: the frame before
        ``x[:, 0]`` as ``(latents, levels)``; None: none (an episode start)."""
        level = self.model.config.context_noise
        noisy = (1 - level) * x + level * self._noise(x.shape)
        sigmas = torch.full(x.shape[:2], level, device=self.device)
        cache = self.cache if slot is None else None
        with self._autocast():
            out = self.denoiser(noisy, sigmas, actions, taken, self.text[rows], before=before, block_offset=position, cache=cache)
        self.previous[rows] = noisy[:, -1]
        self.previous_sigmas[rows] = level
        if slot is None:
            self.cache.fill(rows, self.cache.head)
        else:
            self.cache.store(rows, slot, out.keys_values)
        return out

    def _generate_first(self, rows: torch.Tensor) -> torch.Tensor:
        """Generates a first frame for ``rows`` from their prompts alone, as the newest frame
        (temporal position ``time - 1``, the slot before ``head``)."""
        n = len(rows)
        actions = torch.zeros((n, 1, *self.action_shape), dtype=self.action_dtype, device=self.device)
        untaken = torch.zeros(n, 1, dtype=torch.bool, device=self.device)
        x = self._denoise(rows, actions, untaken, self.time - 1, None)
        self._commit(rows, x, actions, untaken, self.time - 1, (self.cache.head - 1) % self.cache.slots)
        self._set_frames(rows, self.model.codec.decode(x)[:, 0])
        return self.frames[rows]

    def _commit_context(self, rows: torch.Tensor, context: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
        """Encodes real context frames of ``rows`` as their newest frames: the slots just before
        ``head``, temporal positions ``time - T .. time - 1``."""
        n, t = context.shape[:2]
        if n != len(rows) or tuple(context.shape[2:]) != (*self.frame_size, 3) or context.dtype != torch.uint8:
            raise UserError(
                f"context must be uint8 [{len(rows)}, T, {self.frame_size[0]}, {self.frame_size[1]}, 3] "
                f"(one row per env reset, frames of the simulator's size); got {context.dtype} {tuple(context.shape)}"
            )
        keep = min(t, self.window)
        # A frame before the kept ones is encoded too, and read clean (level 0) as the first one's predecessor.
        latents = self.model.codec.encode(context[:, max(t - keep - 1, 0) :].to(self.device))
        before = None
        if t > keep:
            before, latents = (latents[:, 0], torch.zeros(n, device=self.device)), latents[:, 1:]
        context = context[:, t - keep :].to(self.device)
        incoming = torch.zeros((n, keep, *self.action_shape), dtype=self.action_dtype, device=self.device)
        taken = torch.zeros(n, keep, dtype=torch.bool, device=self.device)
        if actions is not None:
            actions = actions.to(self.device, self.action_dtype)[:, t - keep :]
            incoming[:, 1:], taken[:, 1:] = actions[:, :-1], True  # frame j came from action j - 1
        self._commit(rows, latents, incoming, taken, self.time - keep, (self.cache.head - keep) % self.cache.slots, before=before)
        self._set_frames(rows, context[:, -1])
        return self.frames[rows]

    def _set_frames(self, rows: Rows, frames: torch.Tensor) -> None:
        """Replaces the current frames of ``rows`` in a new tensor, so frames handed out earlier keep their values."""
        updated = self.frames.clone()
        updated[rows] = frames
        self.frames = updated
