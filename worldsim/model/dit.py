"""SpacetimeDiT: a frame-causal diffusion transformer on spacetime patches of latent video.

Latents ``[B, T, C, h, w]`` are cut into patches of ``pt`` frames by ``p x p`` pixels; each patch is
a token with a 3-D rotary position ``(t, y, x)``. Rotary positions are relative, and relative
positions alone cannot tell where the frame's edges are (a ball's wall, a pole's track), so each
token also gets fixed Fourier features of its place *within the frame* (row and column as fractions
of the frame), projected linearly: no position table, any size and aspect ratio. A token attends to every token of its own and
earlier temporal blocks (so cached keys of past frames are exact; keys are cached already rotated,
their positions baked in), and cross-attends to text.
Every frame has its own noise level (diffusion forcing); the level and the action that led into
the frame modulate each block through adaLN-Zero, as does the level of the frame before it.

Most of a world does not move between two frames, so each frame's patches carry, as extra input
channels, the co-located patch of the frame just before it, as GameNGen and DIAMOND stack past
frames. This module is the network alone: it maps its (preconditioned) inputs to the raw output
``F``, a reward and a termination logit per frame. The EDM preconditioning centred on the frame
before, which turns ``F`` into a clean estimate and a velocity, is :mod:`worldsim.model.denoiser`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, FrozenDict, register_to_config
from diffusers.models import ModelMixin
from einops import rearrange
from torch import nn

from worldsim.model.flow import NUM_TRAIN_TIMESTEPS
from worldsim.model.kv_cache import KVCache, Rows
from worldsim.model.rope import apply_rotary, grid_positions, rotary_angles


@dataclass
class NetworkOutput:
    """What the network gives per frame: ``prediction [B, T, C, h, w]``, its raw output ``F`` (the
    denoiser's preconditioning makes it a clean estimate), ``reward [B, T]`` and ``termination
    [B, T]`` (logits); and per layer this pass's rotated ``keys_values`` ``[B, heads, S, head_dim]``."""

    prediction: torch.Tensor
    reward: torch.Tensor
    termination: torch.Tensor
    keys_values: list[tuple[torch.Tensor, torch.Tensor]]


Write = slice | torch.Tensor  # where a pass writes its keys and values in a cache: a slice, or its indices


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x [B, T, N, D]`` (N tokens per block) under one ``shift``, ``scale [B, T, 1, D]`` per block."""
    return x * (1 + scale) + shift


def per_block(x: torch.Tensor, tokens_per_block: int) -> torch.Tensor:
    """Tokens ``[B, T * N, D]`` as ``[B, T, N, D]`` (a view), so that a block's conditioning
    ``[B, T, 1, D]`` broadcasts over its N tokens instead of being repeated N times."""
    return x.unflatten(1, (-1, tokens_per_block))


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask (True: attend) as the additive one attention adds to its scores,
    0 or -inf: what ``scaled_dot_product_attention`` makes of a boolean mask at every call,
    made once per pass for all layers (the same scores, bit for bit)."""
    return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, float("-inf"))


def frame_fourier_features(height: int, width: int, bands: int, device: torch.device | str | None = None) -> torch.Tensor:
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


class TanhGELU(nn.GELU):
    """GELU's tanh approximation ``0.5 x (1 + tanh(z))``, ``z = sqrt(2 / pi) (x + 0.044715 x^3)``.
    Eager, it is ``nn.GELU(approximate="tanh")``; compiled, the same function written as
    ``x * sigmoid(2 z)`` (``0.5 (1 + tanh(z)) = sigmoid(2 z)``), which inductor makes from a
    vectorised exp, where its CPU tanh is slow enough to rival the MLP's matmuls. No parameters:
    state dicts are those of ``nn.GELU``."""

    def __init__(self) -> None:
        super().__init__(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return x * torch.sigmoid(GELU_SCALE * (x + 0.044715 * x * x * x))
        return super().forward(x)


GELU_SCALE = 2 * math.sqrt(2 / math.pi)


class Attention(nn.Module):
    """Multi-head self-attention with QK-norm and 3-D rotary positions; may attend to cached keys."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rotation: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        write: Write | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Self-attention of ``x [B, S, D]``, over the tokens of ``cache`` when given.

        ``rotation``: the cosines and sines ``[S, 1, head_dim / 2]`` of the tokens' rotary angles;
        ``mask``: what each token's scores get added (:func:`additive_mask` of
        :func:`attention_mask`); ``cache``: this layer's buffers of rotated ``(keys, values)``
        ``[B, heads, S_c, head_dim]`` of earlier tokens, into whose positions ``write`` (a slice of
        length S, or their S indices: the compiled pass's, so that the place can move without a
        recompilation) this call first writes its own, in place, so that nothing is concatenated.
        Returns the output ``[B, S, D]`` and this call's rotated ``(keys, values)``.
        """
        q, k, v = self.project(x, rotation)
        keys, values = self.cached(k, v, cache, write)
        return self.attend(q, keys, values, mask), (k, v)

    def project(self, x: torch.Tensor, rotation: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, S, D]`` -> normalised, rotated queries and keys and the values, ``[B, heads, S, head_dim]``."""
        # Normalised and rotated as [B, S, heads, head_dim], where a head's channels are contiguous
        # (RMSNorm runs twice as fast there as on the heads-first view, with the same result).
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).unbind(2)
        q = apply_rotary(self.q_norm(q), rotation).transpose(1, 2)
        k = apply_rotary(self.k_norm(k), rotation).transpose(1, 2)
        return q, k, v.transpose(1, 2)

    @staticmethod
    def cached(
        k: torch.Tensor, v: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None, write: Write | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values to attend over: ``k``, ``v`` themselves, or with a ``cache`` its whole
        buffers, into which they are first written at ``write``, in place."""
        if cache is None:
            return k, v
        keys, values = cache
        keys[:, :, write] = k.to(keys.dtype)  # in the cache's dtype (bfloat16 for a bf16 simulator)
        values[:, :, write] = v.to(values.dtype)
        return keys, values

    def attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention of the queries over ``keys``, ``values`` (all ``[B, heads, S, head_dim]``) -> ``[B, S, D]``."""
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask.to(q.dtype))  # bf16 under autocast
        return self.proj(rearrange(out, "b h s d -> b s (h d)"))


def attention_mask(positions: torch.Tensor, cache: KVCache | None = None, window: int | None = None) -> torch.Tensor:
    """Which keys each token at ``positions [S, 3]`` attends to: its own and earlier blocks (at
    most ``window`` blocks back when given), and with a cache its filled slots, the tokens
    themselves sitting at its write positions. Returns bool ``[S, S]``, or ``[B, 1, S, S_c]``."""
    t = positions[:, 0]
    mask = t[None, :] <= t[:, None]
    if window is not None:
        mask = mask & (t[None, :] >= t[:, None] - window)
    if cache is None:
        return mask
    cached = cache.mask()[:, None, None, :].repeat(1, 1, len(t), 1)
    cached[..., cache.write_positions(len(t))] = mask
    return cached


@dataclass
class TextContext:
    """Text as the blocks' cross-attention reads it: per layer, keys and values
    ``[B, heads, L, head_dim]``, and the mask ``[B, L]`` of real (not padding) tokens.

    ``SpacetimeDiT.text_context`` makes it from the text encoder's tokens; ``forward`` reads it, so
    that a caller reuses it across calls, as the simulator does while an env's prompt stays the same."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor

    def __getitem__(self, rows: Rows) -> TextContext:
        return TextContext([k[rows] for k in self.keys], [v[rows] for v in self.values], self.mask[rows])

    def __setitem__(self, rows: Rows, other: TextContext) -> None:
        for mine, theirs in zip(self.keys + self.values + [self.mask], other.keys + other.values + [other.mask]):
            mine[rows] = theirs

    @property
    def width(self) -> int:
        """L, the text tokens a row holds (real ones and padding)."""
        return int(self.mask.shape[1])

    def padded(self, width: int) -> TextContext:
        """The same context with ``width`` >= L tokens per row, the new ones padding (masked out):
        cross-attention reads it exactly as before."""
        grow = width - self.width
        if grow < 0:
            raise ValueError(f"cannot pad {self.width} text tokens to {width}")
        pad = lambda t: F.pad(t, (0, 0, 0, grow))  # noqa: E731  [B, heads, L, head_dim] along L
        return TextContext([pad(k) for k in self.keys], [pad(v) for v in self.values], F.pad(self.mask, (0, grow)))

    def expand(self, batch: int) -> TextContext:
        """A one-row context repeated ``batch`` times (a view)."""
        grow = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return TextContext([grow(k) for k in self.keys], [grow(v) for v in self.values], grow(self.mask))


class CrossAttention(nn.Module):
    """Attention from video tokens to text tokens (padding masked)."""

    def __init__(self, dim: int, num_heads: int) -> None:
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
        """``x [B, S, D]``, text ``keys``/``values`` (:meth:`keys_values`), ``text_mask [B, 1, 1, L]``
        (additive: :func:`additive_mask` of the real tokens) -> ``[B, S, D]``."""
        q = rearrange(self.q(x), "b s (h d) -> b h s d", h=self.num_heads)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=text_mask.to(q.dtype))
        return self.proj(rearrange(out, "b h s d -> b s (h d)"))

    def one_token(self, values: torch.Tensor) -> torch.Tensor:
        """Cross-attention to a text of one token per row (every row holds at least one real token,
        so that one is real): the softmax over one key is 1 whatever the query, so every video
        token's output is the projected value, ``[B, 1, D]``. What an empty caption costs (the
        worlds that take actions and no text), without the query, the scores or the norm before them."""
        return self.proj(rearrange(values, "b h l d -> b l (h d)"))


class DiTBlock(nn.Module):
    """Self-attention, cross-attention to text and an MLP; self-attention and MLP under adaLN-Zero."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = CrossAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), TanhGELU(), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        tokens_per_block: int,
        text: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        rotation: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        write: Write | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B, S, D]``; ``cond [B, S / tokens_per_block, D]``: one conditioning vector per block;
        ``text``: this layer's ``(keys, values, mask)`` for cross-attention; ``rotation``, ``mask``,
        ``cache``, ``write``: as :meth:`Attention.forward`."""
        q, k, v, mod = self.before_attention(x, cond, tokens_per_block, rotation)
        keys, values = Attention.cached(k, v, cache, write)
        return self.after_attention(x, q, keys, values, mask, mod, tokens_per_block, text), (k, v)

    # The block on either side of the cache's write, in two parts (the write between them).

    def before_attention(
        self, x: torch.Tensor, cond: torch.Tensor, tokens_per_block: int, rotation: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The queries, keys and values of ``x`` (:meth:`Attention.project`) and the block's modulation ``[B, T, 1, 6D]``."""
        mod = self.adaLN_modulation(cond)[:, :, None]  # [B, T, 1, 6D]: broadcast over a block's tokens
        shift_a, scale_a = mod[..., : 2 * x.shape[-1]].chunk(2, dim=-1)
        modulated = modulate(per_block(self.norm1(x), tokens_per_block), shift_a, scale_a).flatten(1, 2)
        q, k, v = self.attn.project(modulated, rotation)
        return q, k, v, mod

    def after_attention(
        self,
        x: torch.Tensor,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        mod: torch.Tensor,
        tokens_per_block: int,
        text: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The block's output: ``x`` plus the gated self-attention of ``q`` over ``keys``, ``values``
        (:meth:`Attention.attend`), the cross-attention to text and the gated MLP."""
        n = tokens_per_block
        _, _, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)
        x = x + (gate_a * per_block(self.attn.attend(q, keys, values, mask), n)).flatten(1, 2)
        text_keys, text_values, text_mask = text
        if text_keys.shape[2] == 1:
            x = x + self.cross.one_token(text_values)
        else:
            x = x + self.cross(self.norm2(x), text_keys, text_values, text_mask)
        mlp = self.mlp(modulate(per_block(self.norm3(x), n), shift_m, scale_m))
        return x + (gate_m * mlp).flatten(1, 2)


HEAD_POOLINGS = ("mean", "attention")


class AttentionPool(nn.Module):
    """Multi-head attention of one learned query over a frame's tokens ``[B, T, N, D] -> [B, T, D]``.

    The values are the tokens themselves (each head a slice of them) and the query starts at zero,
    so a fresh pool is the tokens' mean: a model trained with mean pooling, fine-tuned with this
    one, starts as itself."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.key = nn.Linear(dim, dim)
        self.query = nn.Parameter(torch.zeros(num_heads, dim // num_heads))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        keys = rearrange(self.key(tokens), "b t n (h e) -> b t n h e", h=self.num_heads)
        weights = torch.einsum("btnhe,he->btnh", keys, self.query * keys.shape[-1] ** -0.5).softmax(dim=2)
        values = rearrange(tokens, "b t n (h e) -> b t n h e", h=self.num_heads)
        return rearrange(torch.einsum("btnh,btnhe->bthe", weights, values), "b t h e -> b t (h e)")


class DiTConfig(FrozenDict):
    """The type of ``SpacetimeDiT.config``: diffusers' frozen dict of the constructor's arguments,
    which it also sets as attributes (diffusers itself types ``config`` as a plain dict)."""

    in_channels: int
    patch_size: int
    temporal_patch_size: int
    hidden_size: int
    depth: int
    num_heads: int
    mlp_ratio: float
    num_actions: int
    action_dim: int
    text_dim: int
    rope_theta: float
    frequency_dim: int
    data_std: float
    position_bands: int
    residual_std: float
    step_conditioning: bool
    head_pooling: str


class SpacetimeDiT(ModelMixin, ConfigMixin):
    """The world model's network. See the module docstring; shapes are in :meth:`forward`.

    Actions are discrete (``num_actions > 0``: ids ``[B, T]``) or continuous (``action_dim > 0``:
    vectors ``[B, T, action_dim]``). A frame whose ``action_mask`` is False (an episode's first
    frame, a still image, or an action dropped for classifier-free guidance) gets a learned null
    action.
    """

    config_name = "config.json"  # type: ignore[assignment]  # diffusers types the base's as None
    config: DiTConfig

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
        step_conditioning: bool = False,
        head_pooling: str = "mean",
    ) -> None:
        super().__init__()
        if head_pooling not in HEAD_POOLINGS:
            raise ValueError(f"head_pooling must be one of {', '.join(HEAD_POOLINGS)}, got {head_pooling!r}")
        if (num_actions > 0) == (action_dim > 0):
            raise ValueError(f"give exactly one of num_actions (discrete) or action_dim (continuous), got {num_actions} and {action_dim}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
        p, pt, d = patch_size, temporal_patch_size, hidden_size
        self.patch_embed = nn.Linear(2 * in_channels * pt * p * p, d)  # the frame and the frame before it
        self.position_embed = nn.Linear(4 * position_bands, d)
        self.sigma_embed = nn.Sequential(nn.Linear(frequency_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.previous_sigma_embed = nn.Linear(frequency_dim, d)
        # Shortcut models: the newest frame's sampler step size d is an input (0: the flow's own
        # velocity), so that one pass can be trained to jump as far as two passes of d / 2 would.
        self.step_embed = nn.Sequential(nn.Linear(frequency_dim, d), nn.SiLU(), nn.Linear(d, d)) if step_conditioning else None
        self.action_embed: nn.Embedding | nn.Linear
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
        # A frame's tokens -> one feature vector for the heads: their mean, or a learned query's
        # attention over them (which can single out the few tokens where a small event happens).
        self.head_pool = AttentionPool(d, num_heads) if head_pooling == "attention" else None
        self.heads = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 2 * pt))  # reward, termination per frame
        self.compiled_pass: Callable[..., Any] | None = None  # compile_passes: against a cache
        self.compiled_start: Callable[..., Any] | None = None  # and without one, outside training
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linear layers; adaLN-Zero: every block starts as the identity, output zero."""

        def basic(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic)
        # Unit-scale condition embeddings: the adaLN layers start at zero, so their first
        # gradients are proportional to these vectors (0.02-scale ones take a small model
        # thousands of steps to wake up).
        nn.init.normal_(self.action_embed.weight, std=1.0)
        last_layers = [block.adaLN_modulation[-1] for block in self.typed_blocks] + [self.final_modulation[-1], self.final_linear]
        if self.step_embed is not None:  # d = 0 then changes nothing: a flow model fine-tuned with it starts as itself
            last_layers.append(self.step_embed[-1])
        for layer in cast("list[nn.Linear]", last_layers):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def compile_passes(self, **options: Any) -> None:
        """Compiles the passes against a KV cache (the simulator's steps) with
        ``torch.compile(**options)`` (inductor), each pass one graph: patch embedding, conditioning,
        every block with its in-place cache write, the final layer and heads. The tokens' places
        (rotary angles, masks, where the cache is written) are made outside it and enter as data,
        so a sliding window never recompiles: one graph per frame size (torch's automatic dynamic
        shapes make the batch dimension symbolic at the second batch size). Passes
        without a cache outside training (episode starts: resets from real frames or a prompt)
        are compiled as graphs of their own (:meth:`run_start`); training's stay eager (no graph
        is made while gradients are on). Fused, the elementwise work
        (norms, modulations, rotary positions, gates, GELU) and most per-operation call overhead go;
        the weights are the same and the outputs match the eager ones to float rounding."""
        if self.compiled_pass is None:
            self.compiled_pass = torch.compile(self.run_pass, **options)
            self.compiled_start = torch.compile(self.run_start, **options)

    @property
    def typed_blocks(self) -> Iterable[DiTBlock]:
        """``blocks``, as what they are (``nn.ModuleList`` types its items as plain modules)."""
        return cast("Iterable[DiTBlock]", self.blocks)

    # ------------------------------------------------------------------------------- conditioning

    def condition(
        self,
        sigmas: torch.Tensor,
        previous_sigmas: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        step: torch.Tensor | float = 0.0,
    ) -> torch.Tensor:
        """Per-block conditioning ``[B, T / pt, D]`` from the noise levels ``[B, T]`` of each frame
        and of the frame before it, the actions, and (a step-conditioned network) the newest
        frame's sampler step size ``step`` (a float or ``[B]``; the other frames' is 0)."""
        frequencies = self.config.frequency_dim
        c = self.sigma_embed(timestep_embedding(sigmas * NUM_TRAIN_TIMESTEPS, frequencies))
        c = c + self.previous_sigma_embed(timestep_embedding(previous_sigmas * NUM_TRAIN_TIMESTEPS, frequencies))
        if self.step_embed is not None:
            steps = torch.zeros_like(sigmas)
            steps[:, -1] = step if isinstance(step, float) else step.to(sigmas.dtype)
            c = c + self.step_embed(timestep_embedding(steps * NUM_TRAIN_TIMESTEPS, frequencies))
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
        keys, values = zip(*(block.cross.keys_values(projected) for block in self.typed_blocks))
        return TextContext(list(keys), list(values), text_mask)

    # ------------------------------------------------------------------------------------ forward

    def forward(
        self,
        x: torch.Tensor,
        before: torch.Tensor,
        sigmas: torch.Tensor,
        before_sigmas: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: TextContext,
        *,
        block_offset: int = 0,
        cache: KVCache | None = None,
        window: int | None = None,
        step: torch.Tensor | float = 0.0,
    ) -> NetworkOutput:
        """The raw output ``F``, reward and termination of every frame.

        Args:
            x: each frame's input ``[B, T, C, h, w]``; ``T`` a multiple of ``pt``, ``h`` and ``w`` of ``p``.
            before: the input ``[B, T, C, h, w]`` of the frame just before each one.
            sigmas, before_sigmas: the noise levels ``[B, T]`` in ``[0, 1]`` of the frames and of
                the frames before them (1 = pure noise).
            actions: int ``[B, T]`` or float ``[B, T, A]``: the action that led into each frame.
            action_mask: bool ``[B, T]``: False where a frame has no (or a dropped) action.
            text: the text's :class:`TextContext` (from :meth:`text_context`).
            block_offset: temporal position of the first block of ``x``.
            cache: keys and values of tokens of earlier blocks, which need only precede
                ``block_offset`` (their positions are baked in). The pass writes its own tokens'
                keys and values into it in place (at its head) and attends over all its filled slots.
            window: without a cache, how many earlier blocks a block sees (None: all); the
                simulator's sliding window equals recomputation with this window.
            step: the sampler step size of the newest frame, a float or ``[B]`` (0: the flow's
                velocity); read by a ``step_conditioning`` network only.
        """
        b, t, c, h, w = x.shape
        p, pt = self.config.patch_size, self.config.temporal_patch_size
        if t % pt or h % p or w % p:
            raise ValueError(f"latents [B, T, C, h, w] = {tuple(x.shape)} need T divisible by {pt} and h, w by {p}")
        # What depends on the tokens' places alone, made on the host side of a compiled pass and
        # shared by every layer: rotary angles, who sees whom, where the cache is written.
        positions = grid_positions(t // pt, h // p, w // p, t_offset=block_offset, device=x.device)
        angles = rotary_angles(positions, self.config.hidden_size // self.config.num_heads, self.config.rope_theta)
        rotation = angles.cos()[:, None], angles.sin()[:, None]  # [S, 1, head_dim / 2]: over heads
        mask = additive_mask(attention_mask(positions, cache, window))
        text_mask = additive_mask(text.mask)[:, None, None, :]
        inputs = (x, before, sigmas, before_sigmas, actions, action_mask, text.keys, text.values, text_mask, rotation, mask)
        if cache is None:
            if self.compiled_start is None or torch.is_grad_enabled():  # training stays eager
                return self.run_pass(*inputs, step=step)
            step = torch.as_tensor(step, dtype=torch.float32, device=x.device)
            return cast("NetworkOutput", self.compiled_start(*inputs, step=step))
        write = cache.write_positions(positions.shape[0])
        if self.compiled_pass is None:
            return self.run_pass(*inputs, cache.keys, cache.values, write, step=step)
        # The write's place and the step size as data, not guards: one graph for every place and step.
        places = torch.arange(write.start, write.stop, device=x.device)
        step = torch.as_tensor(step, dtype=torch.float32, device=x.device)
        return cast("NetworkOutput", self.compiled_pass(*inputs, cache.keys, cache.values, places, step=step))

    def run_pass(
        self,
        x: torch.Tensor,
        before: torch.Tensor,
        sigmas: torch.Tensor,
        before_sigmas: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text_keys: list[torch.Tensor],
        text_values: list[torch.Tensor],
        text_mask: torch.Tensor,
        rotation: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        cache_keys: list[torch.Tensor] | None = None,
        cache_values: list[torch.Tensor] | None = None,
        write: Write | None = None,
        *,
        step: torch.Tensor | float = 0.0,
    ) -> NetworkOutput:
        """:meth:`forward` from the tokens on, given what their places make (``rotation``,
        ``mask``, the additive ``text_mask`` and the cache's ``write``): a function of tensors
        alone, the one :meth:`compile_passes` compiles."""
        b, t, c, h, w = x.shape
        p, pt = self.config.patch_size, self.config.temporal_patch_size
        tokens = rearrange(torch.cat([x, before], dim=2), "b (t pt) c (h p1) (w p2) -> b (t h w) (pt p1 p2 c)", pt=pt, p1=p, p2=p)
        grid = (t // pt, h // p, w // p)
        tokens_per_block = grid[1] * grid[2]
        place = self.position_embed(frame_fourier_features(grid[1], grid[2], self.config.position_bands, x.device))
        tokens = self.patch_embed(tokens) + place.repeat(grid[0], 1)
        cond = self.condition(sigmas, before_sigmas, actions, action_mask, step)
        keys_values = []
        for i, block in enumerate(self.typed_blocks):
            layer_cache = (cache_keys[i], cache_values[i]) if cache_keys is not None and cache_values is not None else None
            layer_text = (text_keys[i], text_values[i], text_mask)
            tokens, kv = block(tokens, cond, tokens_per_block, layer_text, rotation, mask, layer_cache, write)
            keys_values.append(kv)
        return self.final_layer(tokens, cond, tokens_per_block, grid, c, keys_values)

    def run_start(self, *inputs: Any, step: torch.Tensor) -> NetworkOutput:
        """:meth:`run_pass` without a cache (an episode's start from real frames or a prompt),
        its own function so that :meth:`compile_passes` gives it its own graphs: compiled through
        ``run_pass`` itself, its other shapes would make that graph's dimensions dynamic (slower)."""
        return self.run_pass(*inputs, step=step)

    def final_layer(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        tokens_per_block: int,
        grid: tuple[int, int, int],
        channels: int,
        keys_values: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> NetworkOutput:
        """Tokens ``x [B, S, D]`` -> per-frame output ``F``, reward and termination."""
        shift, scale = self.final_modulation(cond)[:, :, None].chunk(2, dim=-1)
        hidden = modulate(per_block(self.final_norm(x), tokens_per_block), shift, scale).flatten(1, 2)
        p, pt = self.config.patch_size, self.config.temporal_patch_size
        prediction = rearrange(
            self.final_linear(hidden),
            "b (t h w) (pt p1 p2 c) -> b (t pt) c (h p1) (w p2)",
            t=grid[0],
            h=grid[1],
            w=grid[2],
            pt=pt,
            p1=p,
            p2=p,
            c=channels,
        )
        frames = rearrange(hidden, "b (t n) d -> b t n d", t=grid[0])
        pooled = frames.mean(dim=2) if self.head_pool is None else self.head_pool(frames)
        heads = rearrange(self.heads(pooled), "b t (pt two) -> two b (t pt)", two=2)
        return NetworkOutput(prediction, reward=heads[0], termination=heads[1], keys_values=keys_values)
