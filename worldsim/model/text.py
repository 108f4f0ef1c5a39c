"""Text encoders: captions -> token embeddings for the DiT's cross-attention.

The default, :class:`ByteTextEncoder`, is a small transformer over UTF-8 bytes trained together
with the world model, so nothing is downloaded. Any module with the :class:`TextEncoder` interface
(a ``dim`` and a call that maps captions to ``(tokens, mask)``) plugs in instead, e.g. a local
pretrained encoder wrapped by the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models import ModelMixin
from torch import nn

BOS, PAD = 256, 257  # byte values are 0..255


class TextEncoder(Protocol):
    """Maps captions to token embeddings ``[B, L, dim]`` and a mask ``[B, L]`` (True = a token).

    Every row must hold at least one token, so that the empty caption (the unconditional input of
    classifier-free guidance) still has something to attend to.
    """

    dim: int

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


class ByteTextEncoder(ModelMixin, ConfigMixin):
    """A small pre-norm transformer over a BOS token and the caption's UTF-8 bytes."""

    config_name = "config.json"  # type: ignore[assignment]  # diffusers types the base's as None

    @register_to_config
    def __init__(self, dim: int = 128, depth: int = 2, num_heads: int = 4, max_length: int = 128) -> None:
        super().__init__()
        self.dim = dim
        self.max_length = max_length
        self.embed = nn.Embedding(258, dim)
        self.position = nn.Parameter(torch.zeros(max_length, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, num_heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Byte ids ``[B, L]`` (BOS first, PAD after the end) and mask ``[B, L]``; long captions are cut."""
        rows = [[BOS, *caption.encode("utf-8")[: self.max_length - 1]] for caption in captions]
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids.to(self.position.device), ids != PAD

    def forward(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``captions`` (B strings) -> tokens float ``[B, L, dim]``, mask bool ``[B, L]``."""
        ids, mask = self.tokenize(captions)
        x = self.embed(ids) + self.position[: ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=~mask)
        return self.norm(x), mask
