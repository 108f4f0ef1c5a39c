"""WorldSimulator: batched, KV-cached autoregressive generation of frames for B envs at once.

Each env holds a sliding window of its last ``W`` frames as a KV cache, preallocated on the device:
per layer, rotated keys and values ``[B, heads, (W + 1) * N, head_dim]`` (N tokens per frame) in a
ring of ``W + 1`` frame slots, and a mask of the filled slots. ``step(actions)`` denoises only the
new frame's tokens in ``k`` Euler steps against the cache, then one pass at the context noise level
commits them. Every pass writes the new frame's keys and values in place into the ring's oldest
slot, the one frame that has left the window, and attends over the whole ring: a pass copies N
tokens, never the cache. Besides the cache each env keeps its newest
frame's latents as committed (``previous``, at the context level), which the model reads as the
frame before the next one (see :mod:`worldsim.model.dit`). Keys are stored rotated at a global frame
counter, so slots never move and relative positions always hold; the result equals recomputing the
whole rollout with attention limited to ``W`` frames back (``SpacetimeDiT(window=W)``).

The step loop makes no host-device synchronisation (no ``.item()``, no branching on tensor values)
and uses fixed shapes, so it can be captured in CUDA graphs later. Noise comes from one generator on
the device, seeded at construction: the same seed and the same calls give the same rollout.

Noise is drawn in a fixed order: per ``step``, first the new frame's initial noise
``[B, 1, C, h, w]``, then the noise that puts it at the context level for its commit pass; per reset
from context frames, their commit noise ``[n, T, C, h, w]``; per reset from a prompt, the frame's
initial noise ``[n, 1, C, h, w]`` then its commit noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worldsim.errors import UserError, is_integer
from worldsim.model.flow import check_sampling, make_scheduler
from worldsim.model.world_model import WorldModel


@dataclass
class StepResult:
    """What one step gives every env: ``frames`` uint8 ``[B, H, W, 3]``, ``rewards`` float
    ``[B]``, ``terminated`` bool ``[B]`` (termination logit > 0), all on the simulator's device."""

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
    """

    def __init__(
        self,
        model: WorldModel,
        batch_size: int,
        device: str | torch.device = "cpu",
        window: int | None = None,
        sampler_steps: int | None = None,
        frame_size: tuple[int, int] | None = None,
        guidance: float = 1.0,
        seed: int = 0,
    ):
        check_count("batch_size", batch_size)
        if window is not None:
            check_count("window", window, "frame")
        check_sampling(sampler_steps, guidance)
        if not (is_integer(seed, 0) and seed < 2**64):
            raise UserError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.window = window if window is not None else max(1, model.config.context_frames - 1)
        self.sampler_steps = sampler_steps if sampler_steps is not None else model.config.sampler_steps
        self.sigmas = make_scheduler(self.sampler_steps).sigmas.tolist()  # host floats: no syncs
        self.frame_size = tuple(frame_size or model.config.frame_size)
        self.guidance = float(guidance)
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
        self.tokens_per_frame = (height // d // p) * (width // d // p)
        heads, head_dim = dit.num_heads, dit.hidden_size // dit.num_heads
        self.slots = self.window + 1  # the window and the frame being made
        cache_shape = (batch_size, heads, self.slots * self.tokens_per_frame, head_dim)
        self.keys = [torch.zeros(cache_shape, device=self.device) for _ in range(dit.depth)]
        self.values = [torch.zeros(cache_shape, device=self.device) for _ in range(dit.depth)]
        self.filled = torch.zeros(batch_size, self.slots, dtype=torch.bool, device=self.device)
        # Each env's newest frame as committed, and its level (1: none yet, pure noise).
        self.previous = torch.zeros(batch_size, *self.latent_shape, device=self.device)
        self.previous_sigmas = torch.ones(batch_size, device=self.device)
        self.head = 0  # the slot the next frame is written to (the oldest, out of the window)
        self.time = 0  # global frame counter: the temporal position of the next frame
        discrete = model.config.action_space["type"] == "discrete"
        self.action_shape = () if discrete else tuple(model.config.action_space["shape"])
        self.action_dtype = torch.long if discrete else torch.float32
        self.text_length = getattr(model.text_encoder, "max_length", 128)
        # Each env's prompt as every layer's cross-attention keys and values, made once per prompt.
        self.text = self._text_context([""] * batch_size)
        self.null_text = self._text_context([""])  # guidance's unconditional text
        self.frames = torch.zeros(batch_size, height, width, 3, dtype=torch.uint8, device=self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

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
        cache, cache_mask = self._cache(), self._cache_mask()
        x = self._denoise(everyone, actions, taken, self.time, cache, cache_mask)
        before = self.previous, self.previous_sigmas
        out = self._commit(everyone, x, actions, taken, self.time, self.head, cache, cache_mask, before)
        self.head = (self.head + 1) % self.slots
        self.time += 1
        self.latents = x  # [B, 1, C, h, w]: the new frames before decoding
        self.frames = self.model.codec.decode(x)[:, 0]
        return StepResult(self.frames, out.reward[:, 0], out.termination[:, 0] > 0)

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
        self.filled[rows] = False
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
        twin.keys = [k[index] for k in self.keys]
        twin.values = [v[index] for v in self.values]
        for name in ("filled", "previous", "previous_sigmas", "text", "frames"):
            setattr(twin, name, getattr(self, name)[index])
        twin.generator = torch.Generator(self.device)
        twin.generator.set_state(self.generator.get_state())
        return twin

    def set_prompts(self, rows, prompts: Sequence[str]) -> None:
        """Encodes ``prompts`` as the text condition of the envs ``rows`` (indices or bool mask)."""
        rows = torch.as_tensor(rows, device=self.device)
        if rows.dtype == torch.bool:
            rows = rows.nonzero().flatten()
        if not len(prompts):
            return
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise UserError(f"prompts must be strings, got {bad[0]!r}")
        self.text[rows] = self._text_context(prompts)

    # --------------------------------------------------------------------------------- internals

    @torch.no_grad()
    def _text_context(self, prompts: Sequence[str]):
        """The DiT's cross-attention keys and values of ``prompts``, padded to ``text_length`` tokens."""
        tokens, mask = self.model.text_encoder(list(prompts))
        length = min(tokens.shape[1], self.text_length)
        padded = torch.zeros(len(prompts), self.text_length, tokens.shape[2], device=self.device)
        padded_mask = torch.zeros(len(prompts), self.text_length, dtype=torch.bool, device=self.device)
        padded[:, :length], padded_mask[:, :length] = tokens[:, :length], mask[:, :length]
        return self.model.dit.text_context(padded, padded_mask)

    def _noise(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def _cache(self):
        return list(zip(self.keys, self.values))

    def _slot(self, slot: int) -> slice:
        """The cache positions of frame slot ``slot``."""
        return slice(slot * self.tokens_per_frame, (slot + 1) * self.tokens_per_frame)

    def _cache_mask(self) -> torch.Tensor:
        return self.filled.repeat_interleave(self.tokens_per_frame, dim=1)

    def _denoise(self, rows, actions, taken, position: int, cache, cache_mask) -> torch.Tensor:
        """New frames for ``rows`` at temporal ``position``, from noise in ``k`` Euler steps:
        clean latents ``[n, 1, C, h, w]``."""
        n = actions.shape[0]
        x = self._noise((n, 1, *self.latent_shape))
        for sigma, sigma_next in zip(self.sigmas[:-1], self.sigmas[1:]):
            velocity = self._velocity(rows, x, sigma, actions, taken, position, cache, cache_mask)
            x = x + (sigma_next - sigma) * velocity
        return x

    def _velocity(self, rows, x, sigma: float, actions, taken, position: int, cache, cache_mask) -> torch.Tensor:
        """The (guided) velocity of new frames ``x [n, 1, C, h, w]`` at noise level ``sigma``."""
        n = x.shape[0]
        sigmas = torch.full((n, 1), sigma, device=self.device)

        previous, previous_sigmas = self.previous[rows], self.previous_sigmas[rows]

        def run(text, taken):
            return self.model.dit(x, sigmas, actions, taken, text, previous=previous, previous_sigmas=previous_sigmas,
                                  block_offset=position, cache=cache, cache_mask=cache_mask,
                                  cache_write=self._slot(self.head)).velocity  # fmt: skip

        conditioned = run(self.text[rows], taken)
        if self.guidance == 1.0:
            return conditioned
        unconditioned = run(self.null_text.expand(n), torch.zeros_like(taken))
        return unconditioned + self.guidance * (conditioned - unconditioned)

    def _commit(self, rows, x, actions, taken, position: int, slot: int, cache=None, cache_mask=None, before=None):
        """Runs clean frames ``x [n, T, ...]`` of ``rows`` at the context noise level, from temporal
        ``position`` on, and writes their keys and values into the ``T`` consecutive slots from
        ``slot`` (mod W + 1; with a cache, T = 1 and the pass writes them in place), and the last
        frame as the envs' ``previous``; returns the model's output for them. ``before``: the
        frame before ``x[:, 0]`` as ``(latents, levels)``; None: none (an episode start)."""
        level = self.model.config.context_noise
        noisy = (1 - level) * x + level * self._noise(x.shape)
        sigmas = torch.full(x.shape[:2], level, device=self.device)
        previous, previous_sigmas = before if before is not None else (None, None)
        write = self._slot(slot) if cache is not None else None
        out, kvs = self.model.dit(noisy, sigmas, actions, taken, self.text[rows], previous=previous,
                                  previous_sigmas=previous_sigmas, block_offset=position, cache=cache, cache_mask=cache_mask,
                                  cache_write=write, return_kv=True)  # fmt: skip
        self.previous[rows] = noisy[:, -1]
        self.previous_sigmas[rows] = level
        n_tokens = self.tokens_per_frame
        for j in range(x.shape[1]):
            slot_j = (slot + j) % self.slots
            if cache is None:
                frame = slice(j * n_tokens, (j + 1) * n_tokens)
                for layer, (k, v) in enumerate(kvs):
                    self.keys[layer][rows, :, self._slot(slot_j)] = k[:, :, frame]
                    self.values[layer][rows, :, self._slot(slot_j)] = v[:, :, frame]
            self.filled[rows, slot_j] = True
        return out

    def _generate_first(self, rows: torch.Tensor) -> torch.Tensor:
        """Generates a first frame for ``rows`` from their prompts alone, as the newest frame
        (temporal position ``time - 1``, the slot before ``head``)."""
        n = len(rows)
        actions = torch.zeros((n, 1, *self.action_shape), dtype=self.action_dtype, device=self.device)
        untaken = torch.zeros(n, 1, dtype=torch.bool, device=self.device)
        x = self._denoise(rows, actions, untaken, self.time - 1, None, None)
        self._commit(rows, x, actions, untaken, self.time - 1, (self.head - 1) % self.slots)
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
        self._commit(rows, latents, incoming, taken, self.time - keep, (self.head - keep) % self.slots, before=before)
        self._set_frames(rows, context[:, -1])
        return self.frames[rows]

    def _set_frames(self, rows, frames: torch.Tensor) -> None:
        """Replaces the current frames of ``rows`` in a new tensor, so frames handed out earlier keep their values."""
        updated = self.frames.clone()
        updated[rows] = frames
        self.frames = updated


def check_count(name: str, value, unit: str = "") -> None:
    """Raises a UserError unless ``value`` is an integer >= 1 (a bool is not a count)."""
    if not is_integer(value, 1):
        raise UserError(f"{name} must be >= 1{' ' + unit if unit else ''} (an integer), got {value!r}")
