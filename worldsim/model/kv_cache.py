"""KVCache: the rotated keys and values of earlier frames' tokens, per layer, in a ring of frame slots.

A frame's ``N`` tokens occupy one slot of ``N`` consecutive positions. Keys are stored rotated (their
temporal positions baked in), so slots never move: the ring's ``head`` is the slot the next frame
goes to, the oldest one, which has left the window. A pass of :class:`~worldsim.model.dit.SpacetimeDiT`
given the cache writes its own tokens' keys and values there in place and attends over the whole
ring, its empty slots masked out: no copy of the cache per pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Rows = slice | torch.Tensor  # the batch rows an operation touches: all (a slice) or indices / a mask


@dataclass
class KVCache:
    """Per layer, keys and values ``[B, heads, slots * N, head_dim]``; ``filled`` bool ``[B, slots]``
    marks the slots that hold a frame; ``tokens_per_frame`` is N; ``head`` the slot written next."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    filled: torch.Tensor
    tokens_per_frame: int
    head: int = 0

    @classmethod
    def empty(
        cls,
        batch: int,
        slots: int,
        tokens_per_frame: int,
        depth: int,
        heads: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> KVCache:
        """A cache of ``slots`` empty frame slots for ``batch`` rows, preallocated on ``device``."""
        shape = (batch, heads, slots * tokens_per_frame, head_dim)
        keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)]
        values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)]
        return cls(keys, values, torch.zeros(batch, slots, dtype=torch.bool, device=device), tokens_per_frame)

    @property
    def slots(self) -> int:
        return self.filled.shape[1]

    def positions(self, slot: int) -> slice:
        """The token positions of frame slot ``slot``."""
        return slice(slot * self.tokens_per_frame, (slot + 1) * self.tokens_per_frame)

    def mask(self) -> torch.Tensor:
        """Which positions hold a frame's tokens: bool ``[B, slots * N]``."""
        return self.filled.repeat_interleave(self.tokens_per_frame, dim=1)

    def write_positions(self, tokens: int) -> slice:
        """Where a pass over ``tokens`` new tokens writes them: from the head slot on."""
        start = self.head * self.tokens_per_frame
        return slice(start, start + tokens)

    def store(self, rows: Rows, slot: int, keys_values: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Copies the per-layer ``(keys, values)`` ``[n, heads, T * N, head_dim]`` of an uncached pass
        over T frames of ``rows`` into the T consecutive slots from ``slot`` (mod slots), filled."""
        frames = keys_values[0][0].shape[2] // self.tokens_per_frame
        for j in range(frames):
            target, frame = self.positions((slot + j) % self.slots), slice(j * self.tokens_per_frame, (j + 1) * self.tokens_per_frame)
            for layer, (k, v) in enumerate(keys_values):
                # in the cache's dtype (a float32 pass's in a bfloat16 cache, a bfloat16 pass's in a float32 one)
                self.keys[layer][rows, :, target] = k[:, :, frame].to(self.keys[layer].dtype)
                self.values[layer][rows, :, target] = v[:, :, frame].to(self.values[layer].dtype)
        self.fill(rows, slot, frames)

    def fill(self, rows: Rows, slot: int, frames: int = 1) -> None:
        """Marks ``frames`` consecutive slots from ``slot`` (mod slots) of ``rows`` as filled."""
        for j in range(frames):
            self.filled[rows, (slot + j) % self.slots] = True

    def clear(self, rows: Rows) -> None:
        """Empties every slot of ``rows``."""
        self.filled[rows] = False

    def advance(self) -> None:
        """Moves the head on by one slot, after a frame was written at it."""
        self.head = (self.head + 1) % self.slots

    def select(self, index: torch.Tensor) -> KVCache:
        """A copy of the rows ``index`` (long ``[n]``)."""
        return KVCache([k[index] for k in self.keys], [v[index] for v in self.values], self.filled[index], self.tokens_per_frame, self.head)
