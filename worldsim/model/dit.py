"""SpacetimeDiT: a frame-causal diffusion transformer on spacetime patches of latent video.

Latents ``[B, T, C, h, w]`` are cut into patches of ``pt`` frames by ``p x p`` pixels; each patch is
a token with a 3-D rotary position ``(t, y, x)``. Rotary positions are relative, and relative
positions alone cannot tell where the frame's edges are (a ball's wall, a pole's track), so each
token also gets fixed Fourier features of its place *within the frame* (row and column as fractions
of the frame), projected linearly: no position table, any size and aspect ratio. A token attends to every token of its own and
earlier temporal blocks (so cached keys of past frames are exact; keys are cached already rotated,
their positions baked in), and cross-attends to text.
Every frame has its own noise level (diffusion forcing); the level and the action that led into
the frame modulate each block through adaLN-Zero. Per frame it predicts the flow-matching velocity
of its latents, the reward and a termination logit.

Most of a world does not move between two frames, so the network works on the change. Each
frame's patches carry, as extra input channels, the co-located patch of the frame just before it
(at that frame's own noise level, which conditions the block too), as GameNGen and DIAMOND stack
past frames; and the preconditioning is centred on it: a frame's clean estimate is its
*reference* (the best linear estimate of the previous frame from its noisy version: the previous
frame itself when it is clean, nothing when it is pure noise) plus the EDM-preconditioned estimate
of the residual, whose spread is ``residual_std`` plus what the previous frame's noise hides. An
untrained network thus repeats the last frame exactly, and training teaches it what moves. The
frame before the first one is an argument (the simulator passes the newest cached frame); without
it, it is pure noise (level 1, zero signal): an episode start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from einops import rearrange
from torch import nn

from worldsim.model.flow import loss_weight, preconditioning
from worldsim.model.rope import apply_rotary, grid_positions, rotary_angles

NUM_TRAIN_TIMESTEPS = 1000  # noise level sigma in [0, 1] is embedded as the timestep sigma * 1000


@dataclass
class DiTOutput:
    """Per-frame predictions: ``velocity [B, T, C, h, w]``, ``reward [B, T]``, ``termination [B, T]``
    (logits), and ``loss_weight [B, T]``, the weight that makes a frame's squared velocity error the
    unit-variance error of the network's output (for training).

    (Inside ``final_layer``, ``velocity`` briefly holds the raw network output, which ``forward``
    turns into the velocity.)"""

    velocity: torch.Tensor
    reward: torch.Tensor
    termination: torch.Tensor
    loss_weight: torch.Tensor | None = None


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def frame_fourier_features(height: int, width: int, bands: int, device=None) -> torch.Tensor:
    """Fourier features ``[height * width, 4 * bands]`` of each cell's centre as fractions of the
    frame, ``sin/cos(2^k * pi * fraction)`` for rows and columns, k < ``bands``."""
    ys = (torch.arange(height, device=device) + 0.5) / height
    xs = (torch.arange(width, device=device) + 0.5) / width
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)  # [h w, 2]
    angles = grid[:, :, None] * (math.pi * 2.0 ** torch.arange(bands, device=device))  # [h w, 2, bands]
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[..., dim]`` of timesteps ``t [...]`` (DiT / diffusers convention)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with QK-norm and 3-D rotary positions; may attend to cached keys."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, angles, mask, cache=None, cache_write=None):
        """Self-attention of ``x [B, S, D]``, over the tokens of ``cache`` when given.

        ``angles [S, head_dim / 2]``: the tokens' rotary angles; ``mask``: which keys each token
        sees (:func:`attention_mask`); ``cache``: buffers of rotated ``(keys, values)``
        ``[B, heads, S_c, head_dim]`` of earlier tokens (this call's ``kv`` output), into whose
        positions ``cache_write`` (a slice of length S) this call first writes its own, in place,
        so that nothing is concatenated. Returns the output ``[B, S, D]`` and this call's rotated
        ``(keys, values)``.
        """
        q, k, v = rearrange(self.qkv(x), "b s (three h d) -> three b h s d", three=3, h=self.num_heads)
        q = apply_rotary(self.q_norm(q), angles)
        k = apply_rotary(self.k_norm(k), angles)
        keys, values = k, v
        if cache is not None:
            keys, values = cache
            keys[:, :, cache_write] = k
            values[:, :, cache_write] = v
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.proj(rearrange(out, "b h s d -> b s (h d)")), (k, v)


def attention_mask(
    positions: torch.Tensor, cache_mask: torch.Tensor | None = None, window: int | None = None, cache_write: slice | None = None
) -> torch.Tensor:
    """Which keys each token at ``positions [S, 3]`` attends to: its own and earlier blocks (at
    most ``window`` blocks back when given), and with a cache the filled slots of
    ``cache_mask [B, S_c]``, where the tokens themselves sit at ``cache_write``.
    Returns bool ``[S, S]``, or ``[B, 1, S, S_c]`` with a cache."""
    t = positions[:, 0]
    mask = t[None, :] <= t[:, None]
    if window is not None:
        mask = mask & (t[None, :] >= t[:, None] - window)
    if cache_mask is None:
        return mask
    cached = cache_mask[:, None, None, :].repeat(1, 1, len(t), 1)
    cached[..., cache_write] = mask
    return cached


@dataclass
class TextContext:
    """Text as the blocks' cross-attention reads it: per layer, keys and values
    ``[B, heads, L, head_dim]``, and the mask ``[B, L]`` of real (not padding) tokens.

    ``SpacetimeDiT.text_context`` makes it; pass it to ``forward`` as ``text`` to reuse it across
    calls, as the simulator does while an env's prompt stays the same."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor

    def __getitem__(self, rows) -> TextContext:
        return TextContext([k[rows] for k in self.keys], [v[rows] for v in self.values], self.mask[rows])

    def __setitem__(self, rows, other: TextContext) -> None:
        for mine, theirs in zip(self.keys + self.values + [self.mask], other.keys + other.values + [other.mask]):
            mine[rows] = theirs

    def expand(self, batch: int) -> TextContext:
        """A one-row context repeated ``batch`` times (a view)."""
        grow = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return TextContext([grow(k) for k in self.keys], [grow(v) for v in self.values], grow(self.mask))


class CrossAttention(nn.Module):
    """Attention from video tokens to text tokens (padding masked)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def keys_values(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``text [B, L, D]`` -> keys and values ``[B, heads, L, head_dim]``."""
        k, v = rearrange(self.kv(text), "b l (two h d) -> two b h l d", two=2, h=self.num_heads)
        return k, v

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """``x [B, S, D]``, text ``keys``/``values`` (:meth:`keys_values`), ``text_mask [B, L]`` -> ``[B, S, D]``."""
        q = rearrange(self.q(x), "b s (h d) -> b h s d", h=self.num_heads)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=text_mask[:, None, None, :])
        return self.proj(rearrange(out, "b h s d -> b s (h d)"))


class DiTBlock(nn.Module):
    """Self-attention, cross-attention to text and an MLP; self-attention and MLP under adaLN-Zero."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = CrossAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, cond, tokens_per_block, text, angles, mask, cache=None, cache_write=None):
        """``x [B, S, D]``; ``cond [B, S / tokens_per_block, D]``: one conditioning vector per block;
        ``text``: this layer's ``(keys, values, mask)`` for cross-attention."""
        mod = self.adaLN_modulation(cond).repeat_interleave(tokens_per_block, dim=1)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)
        attended, kv = self.attn(modulate(self.norm1(x), shift_a, scale_a), angles, mask, cache, cache_write)
        x = x + gate_a * attended
        x = x + self.cross(self.norm2(x), *text)
        x = x + gate_m * self.mlp(modulate(self.norm3(x), shift_m, scale_m))
        return x, kv


class SpacetimeDiT(ModelMixin, ConfigMixin):
    """The world model's denoiser. See the module docstring; shapes are in :meth:`forward`.

    Actions are discrete (``num_actions > 0``: ids ``[B, T]``) or continuous (``action_dim > 0``:
    vectors ``[B, T, action_dim]``). A frame whose ``action_mask`` is False (an episode's first
    frame, a still image, or an action dropped for classifier-free guidance) gets a learned null
    action.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        patch_size: int = 2,
        temporal_patch_size: int = 1,
        hidden_size: int = 256,
        depth: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_actions: int = 0,
        action_dim: int = 0,
        text_dim: int = 128,
        rope_theta: float = 10000.0,
        frequency_dim: int = 256,
        data_std: float = 0.5,
        position_bands: int = 6,
        residual_std: float = 0.1,
    ):
        super().__init__()
        if (num_actions > 0) == (action_dim > 0):
            raise ValueError(f"give exactly one of num_actions (discrete) or action_dim (continuous), got {num_actions} and {action_dim}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
        p, pt, d = patch_size, temporal_patch_size, hidden_size
        self.patch_embed = nn.Linear(2 * in_channels * pt * p * p, d)  # the frame and the frame before it
        self.position_embed = nn.Linear(4 * position_bands, d)
        self.sigma_embed = nn.Sequential(nn.Linear(frequency_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.previous_sigma_embed = nn.Linear(frequency_dim, d)
        if num_actions:
            self.action_embed = nn.Embedding(num_actions + 1, d)  # the last id is the null action
        else:
            self.action_embed = nn.Linear(action_dim, d)
            self.null_action = nn.Parameter(torch.zeros(d))
        self.block_cond = nn.Linear(pt * d, d) if pt > 1 else nn.Identity()
        self.text_proj = nn.Linear(text_dim, d)
        self.blocks = nn.ModuleList([DiTBlock(d, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.final_linear = nn.Linear(d, pt * p * p * in_channels)
        self.heads = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 2 * pt))  # reward, termination per frame
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linear layers; adaLN-Zero: every block starts as the identity, output zero."""

        def basic(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic)
        # Unit-scale condition embeddings: the adaLN layers start at zero, so their first
        # gradients are proportional to these vectors (0.02-scale ones take a small model
        # thousands of steps to wake up).
        nn.init.normal_(self.action_embed.weight, std=1.0)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_modulation[-1], self.final_linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------------------- conditioning

    def condition(self, sigmas, previous_sigmas, actions, action_mask) -> torch.Tensor:
        """Per-block conditioning ``[B, T / pt, D]`` from the noise levels ``[B, T]`` of each frame
        and of the frame before it, and the actions."""
        frequencies = self.config.frequency_dim
        c = self.sigma_embed(timestep_embedding(sigmas * NUM_TRAIN_TIMESTEPS, frequencies))
        c = c + self.previous_sigma_embed(timestep_embedding(previous_sigmas * NUM_TRAIN_TIMESTEPS, frequencies))
        if self.config.num_actions:
            ids = torch.where(action_mask, actions.long(), self.config.num_actions)
            c = c + self.action_embed(ids)
        else:
            embedded = self.action_embed(actions.to(c.dtype))
            c = c + torch.where(action_mask[..., None], embedded, self.null_action.to(c.dtype))
        return self.block_cond(rearrange(c, "b (t pt) d -> b t (pt d)", pt=self.config.temporal_patch_size))

    def text_context(self, text: torch.Tensor, text_mask: torch.Tensor) -> TextContext:
        """Text encoder tokens ``[B, L, text_dim]`` and their mask ``[B, L]`` -> every layer's
        cross-attention keys and values."""
        projected = self.text_proj(text)
        keys, values = zip(*(block.cross.keys_values(projected) for block in self.blocks))
        return TextContext(list(keys), list(values), text_mask)

    # ------------------------------------------------------------------------------------ forward

    def forward(
        self,
        latents: torch.Tensor,
        sigmas: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: torch.Tensor | TextContext,
        text_mask: torch.Tensor | None = None,
        *,
        previous: torch.Tensor | None = None,
        previous_sigmas: torch.Tensor | None = None,
        block_offset: int = 0,
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        cache_mask: torch.Tensor | None = None,
        cache_write: slice | None = None,
        window: int | None = None,
        return_kv: bool = False,
    ):
        """Predicts velocity, reward and termination for every frame.

        Args:
            latents: noisy latents ``[B, T, C, h, w]``; ``T`` a multiple of ``pt``, ``h`` and ``w`` of ``p``.
            sigmas: noise level of each frame ``[B, T]`` in ``[0, 1]`` (1 = pure noise).
            actions: int ``[B, T]`` or float ``[B, T, A]``: the action that led into each frame.
            action_mask: bool ``[B, T]``: False where a frame has no (or a dropped) action.
            text: text encoder tokens ``[B, L, text_dim]`` with ``text_mask`` bool ``[B, L]``, or
                their :class:`TextContext` (from :meth:`text_context`; ``text_mask`` unused).
            previous: noisy latents ``[B, C, h, w]`` of the frame before ``latents[:, 0]``, at
                levels ``previous_sigmas [B]``; None: there is none (an episode start).
            block_offset: temporal position of the first block of ``latents``.
            cache: per layer, buffers of rotated ``(keys, values)`` ``[B, heads, S_c, head_dim]``
                of tokens of earlier blocks (from ``return_kv``), any order; ``cache_mask [B, S_c]``
                marks the filled ones. Their positions are baked in, so they need only precede
                ``block_offset``. This call writes its own keys and values into the buffers at
                ``cache_write`` (a slice of S = T * tokens-per-frame positions; their mask entries
                are ignored) and attends over the whole buffer: no copy of the cache per pass.
            window: without a cache, how many earlier blocks a block sees (None: all); the
                simulator's sliding window equals recomputation with this window.
            return_kv: also return this call's per-layer rotated ``(keys, values)``.

        Returns:
            :class:`DiTOutput`, and the list of per-layer ``(keys, values)`` if ``return_kv``.
        """
        b, t, c, h, w = latents.shape
        p, pt = self.config.patch_size, self.config.temporal_patch_size
        if t % pt or h % p or w % p:
            raise ValueError(f"latents [B, T, C, h, w] = {tuple(latents.shape)} need T divisible by {pt} and h, w by {p}")
        before, before_sigmas = self.frames_before(latents, sigmas, previous, previous_sigmas)
        reference, spread = self.reference(before, before_sigmas)
        c_in, c_skip, c_out = (c[:, :, None, None, None] for c in preconditioning(sigmas, spread))
        residual = latents - (1 - sigmas[:, :, None, None, None]) * reference  # (1 - s) (x0 - reference) + s noise
        before_in = preconditioning(before_sigmas, self.config.data_std)[0][:, :, None, None, None]
        x = torch.cat([residual * c_in, before * before_in], dim=2)
        x = rearrange(x, "b (t pt) c (h p1) (w p2) -> b (t h w) (pt p1 p2 c)", pt=pt, p1=p, p2=p)
        grid = (t // pt, h // p, w // p)
        tokens_per_block = grid[1] * grid[2]
        place = self.position_embed(frame_fourier_features(grid[1], grid[2], self.config.position_bands, x.device))
        x = self.patch_embed(x) + place.repeat(grid[0], 1)
        positions = grid_positions(*grid, t_offset=block_offset, device=x.device)
        # Shared by every layer: rotary angles and who sees whom depend on positions alone.
        angles = rotary_angles(positions, self.config.hidden_size // self.config.num_heads, self.config.rope_theta)
        if cache is not None and (cache_mask is None or cache_write is None):
            raise ValueError("a cache needs cache_mask (its filled slots) and cache_write (where this call's tokens go)")
        mask = attention_mask(positions, cache_mask if cache is not None else None, window, cache_write)
        cond = self.condition(sigmas, before_sigmas, actions, action_mask)
        if not isinstance(text, TextContext):
            text = self.text_context(text, text_mask)
        kvs = []
        for i, block in enumerate(self.blocks):
            layer_cache = cache[i] if cache is not None else None
            layer_text = (text.keys[i], text.values[i], text.mask)
            x, kv = block(x, cond, tokens_per_block, layer_text, angles, mask, layer_cache, cache_write)
            kvs.append(kv)
        output = self.final_layer(x, cond, tokens_per_block, grid, c)
        # The network's output F gives the clean estimate; the velocity is what takes x there.
        denoised = reference + c_skip * residual + c_out * output.velocity
        output.velocity = (latents - denoised) / sigmas[:, :, None, None, None].clamp(min=1e-6)
        output.loss_weight = loss_weight(sigmas, spread)
        return (output, kvs) if return_kv else output

    def reference(self, before: torch.Tensor, before_sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame's reference ``[B, T, C, h, w]``, the linear least-squares estimate of its
        predecessor from the noisy ``before`` at levels ``before_sigmas [B, T]``, and the spread
        ``[B, T]`` of the frame around it: ``residual_std`` and what the noise hides, combined."""
        s, level = self.config.data_std, before_sigmas
        total = ((1 - level) * s) ** 2 + level**2
        shrink = (1 - level) * s**2 / total
        spread = (self.config.residual_std**2 + s**2 * level**2 / total).sqrt()
        return shrink[:, :, None, None, None] * before, spread

    @staticmethod
    def frames_before(latents, sigmas, previous, previous_sigmas):
        """For every frame, the frame just before it and its level: ``[B, T, C, h, w]``, ``[B, T]``."""
        if (previous is None) != (previous_sigmas is None):
            raise ValueError("give previous and previous_sigmas together (the frame before the first and its noise level)")
        if previous is None:
            previous = torch.zeros_like(latents[:, 0])
            previous_sigmas = torch.ones_like(sigmas[:, 0])
        if previous.shape != latents[:, 0].shape or previous_sigmas.shape != sigmas[:, 0].shape:
            raise ValueError(
                f"previous must be [B, C, h, w] = {tuple(latents[:, 0].shape)} and previous_sigmas [B] = "
                f"{tuple(sigmas[:, 0].shape)}; got {tuple(previous.shape)} and {tuple(previous_sigmas.shape)}"
            )
        before = torch.cat([previous[:, None].to(latents.dtype), latents[:, :-1]], dim=1)
        return before, torch.cat([previous_sigmas[:, None].to(sigmas.dtype), sigmas[:, :-1]], dim=1)

    def final_layer(self, x, cond, tokens_per_block, grid, channels) -> DiTOutput:
        shift, scale = self.final_modulation(cond).repeat_interleave(tokens_per_block, dim=1).chunk(2, dim=-1)
        hidden = modulate(self.final_norm(x), shift, scale)
        p, pt = self.config.patch_size, self.config.temporal_patch_size
        velocity = rearrange(
            self.final_linear(hidden),
            "b (t h w) (pt p1 p2 c) -> b (t pt) c (h p1) (w p2)",
            t=grid[0], h=grid[1], w=grid[2], pt=pt, p1=p, p2=p, c=channels,
        )  # fmt: skip
        pooled = rearrange(hidden, "b (t n) d -> b t n d", t=grid[0]).mean(dim=2)
        heads = rearrange(self.heads(pooled), "b t (pt two) -> two b (t pt)", two=2)
        return DiTOutput(velocity=velocity, reward=heads[0], termination=heads[1])

