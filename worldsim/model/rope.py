"""3-D rotary position embedding over (t, y, x): relative positions in time and space, no table.

A head's channels are split in three bands, one per axis; each band rotates channel pairs by
``position * frequency``. Since attention scores then depend only on position *differences*, one
set of weights serves any duration, resolution and aspect ratio, and a key cached already rotated
for its frame's place on a global frame counter stays valid however far the window slides (the
simulator caches keys that way).
"""

from __future__ import annotations

import math

import torch


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels per axis ``(t, y, x)``: y and x get equal even bands, t the (even) rest."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"head dim must be even and >= 6 for 3-D rotary embeddings, got {head_dim}")
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


def grid_positions(blocks: int, height: int, width: int, t_offset: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """Positions ``(t, y, x)`` of tokens in t-major, then y, then x order: float ``[blocks*height*width, 3]``."""
    t = torch.arange(t_offset, t_offset + blocks, device=device)
    y = torch.arange(height, device=device)
    x = torch.arange(width, device=device)
    grid = torch.stack(torch.meshgrid(t, y, x, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3).float()


def rotary_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles ``[S, head_dim / 2]`` for positions ``[S, 3]``."""
    angles = []
    for axis, dim in enumerate(axis_dims(head_dim)):
        inv_freq = theta ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float64) / dim)
        angles.append(positions[:, axis : axis + 1].double() * inv_freq)
    # Reduced mod 2 pi in float64 before the cast, so that positions far along a long rollout keep
    # their precision (cos and sin are 2 pi periodic).
    return torch.remainder(torch.cat(angles, dim=-1), 2 * math.pi).float()


def apply_rotary(x: torch.Tensor, angles: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotates channel pairs of ``x [B, heads, S, head_dim]`` by ``angles [S, head_dim / 2]``, or
    by their ``(cos, sin)`` when given those (a caller rotating many tensors computes them once),
    which may be of any shape that broadcasts against ``x``'s pairs (e.g. ``[S, 1, head_dim / 2]``
    for ``x [B, S, heads, head_dim]``)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    cos, sin = angles if isinstance(angles, tuple) else (angles.cos(), angles.sin())
    real = pairs[..., 0] * cos - pairs[..., 1] * sin
    imag = pairs[..., 0] * sin + pairs[..., 1] * cos
    return torch.stack((real, imag), dim=-1).flatten(-2).to(x.dtype)
