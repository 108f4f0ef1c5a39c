"""Codecs: frames <-> latent grids, one frame at a time so generation stays frame by frame.

- ``pixels``: the identity, frames scaled to [-1, 1]; for tiny frames and tests.
- ``vae``: a small diffusers ``AutoencoderKL`` trained from scratch (``worldsim train stage=vae``);
  latents are normalised with the ``shift_factor`` and ``scaling_factor`` of its config, measured
  on the training frames, so that they have zero mean and unit variance like the noise. Its folder
  ``vae/`` carries a manifest of its weights (:mod:`worldsim.model.manifest`), checked on loading.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.models import AutoencoderKL
from einops import rearrange
from torch import nn

from worldsim.atomic import open_permissions
from worldsim.errors import MissingFileError, UserError
from worldsim.model import manifest

CODECS = ("pixels", "vae")


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float ``[..., 3, H, W]`` in [-1, 1]."""
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def unit_to_frames(x: torch.Tensor) -> torch.Tensor:
    """float ``[..., 3, H, W]`` in [-1, 1] -> uint8 ``[..., H, W, 3]`` (clamped, rounded)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)


class PixelCodec(nn.Module):
    """The identity codec: a latent is the frame itself in [-1, 1] (``C = 3``, no downsampling)."""

    name = "pixels"
    latent_channels = 3
    downsample = 1

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float ``[B, T, 3, H, W]``."""
        return frames_to_unit(frames)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """float ``[B, T, 3, H, W]`` -> uint8 ``[B, T, H, W, 3]``."""
        return unit_to_frames(latents)

    def save_pretrained(self, path: str | Path) -> None:
        pass  # nothing to store


class VAECodec(nn.Module):
    """A diffusers ``AutoencoderKL`` applied per frame; ``downsample = 2 ** (levels - 1)``."""

    name = "vae"

    def __init__(self, vae: AutoencoderKL, chunk: int = 256) -> None:
        super().__init__()
        self.vae = vae
        self.chunk = chunk  # frames per encoder call, bounding memory for long videos
        # diffusers types a config as a plain dict (it also has the keys as attributes).
        self.latent_channels: int = vae.config["latent_channels"]
        self.downsample = 2 ** (len(vae.config["block_out_channels"]) - 1)

    @property
    def scale(self) -> float:
        return float(self.vae.config["scaling_factor"])

    @property
    def shift(self) -> float:
        return float(self.vae.config["shift_factor"] or 0.0)

    def encode(self, frames: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> normalised latents ``[B, T, C, H / d, W / d]``
        (the posterior mode, or a sample of it when ``sample``)."""
        b = frames.shape[0]
        x = rearrange(frames_to_unit(frames), "b t c h w -> (b t) c h w")
        out = []
        for part in x.split(self.chunk):
            posterior = self.vae.encode(part).latent_dist
            out.append(posterior.sample() if sample else posterior.mode())
        z = (torch.cat(out) - self.shift) * self.scale
        return rearrange(z, "(b t) c h w -> b t c h w", b=b)

    def decode_unit(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[B, T, C, h, w]`` -> frames in [-1, 1] ``[B, T, 3, H, W]``."""
        b = latents.shape[0]
        z = rearrange(latents, "b t c h w -> (b t) c h w") / self.scale + self.shift
        x = torch.cat([self.vae.decode(part).sample for part in z.split(self.chunk)])
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[B, T, C, h, w]`` -> uint8 ``[B, T, H, W, 3]``."""
        return unit_to_frames(self.decode_unit(latents))

    def save_pretrained(self, path: str | Path) -> None:
        """Writes ``path/vae``: the diffusers folder and its manifest."""
        self.vae.save_pretrained(Path(path) / "vae")
        manifest.write(Path(path) / "vae")
        open_permissions(Path(path) / "vae")


def small_vae(latent_channels: int = 4, downsample: int = 4, width: int = 64) -> AutoencoderKL:
    """A small ``AutoencoderKL`` for our frames: ``downsample`` in {2, 4, 8}, channels ``width`` ->
    ``2 * width``; a few hundred thousand parameters at the defaults."""
    if downsample not in (2, 4, 8):
        raise UserError(f"vae downsample must be 2, 4 or 8, got {downsample}")
    # GroupNorm uses min(32, width // 2) groups, which must divide every block's channels.
    if width < 2 or not (width <= 64 and width % 2 == 0 or width % 32 == 0):
        raise UserError(f"vae width must be an even number up to 64 or a multiple of 32, got {width}")
    levels = {2: 2, 4: 3, 8: 4}[downsample]
    channels = tuple(min(width * 2**i, 2 * width) for i in range(levels))
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=min(32, width // 2),
        sample_size=64,
        scaling_factor=1.0,  # measured on the data after training (diffusers' default suits SD only)
    )


def load_codec(name: str, path: str | Path | None = None, verify: bool = True) -> PixelCodec | VAECodec:
    """The codec called ``name``; ``vae`` reads ``path/vae`` (a diffusers AutoencoderKL folder), after
    checking it against its manifest unless ``verify`` is False (a caller that checked a manifest
    covering it)."""
    if name == "pixels":
        return PixelCodec()
    if name == "vae":
        if path is None or not (Path(path) / "vae" / "config.json").is_file():
            raise MissingFileError(f"vae codec: no trained VAE at {path}/vae; train one with `worldsim train stage=vae`")
        if verify:
            manifest.verify(Path(path) / "vae")
        return VAECodec(manifest.load_exact(AutoencoderKL, Path(path) / "vae"))
    raise UserError(f"unknown codec {name!r}; choose one of {', '.join(CODECS)}")
