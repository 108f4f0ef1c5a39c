"""Rectified flow (flow matching) with per-frame noise levels, as diffusers' FlowMatchEuler uses it.

A frame at noise level ``sigma`` in [0, 1] is ``x = (1 - sigma) * x0 + sigma * noise``; the model
predicts the velocity ``noise - x0``, and Euler steps ``x += (sigma_next - sigma) * v`` walk it from
``sigma = 1`` to 0 (:mod:`worldsim.model.sampler`). A level is embedded, and scheduled by diffusers,
as the timestep ``sigma * NUM_TRAIN_TIMESTEPS``.

The network predicting the velocity is preconditioned as in EDM: :mod:`worldsim.model.denoiser`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NUM_TRAIN_TIMESTEPS = 1000  # noise level sigma in [0, 1] is the timestep sigma * 1000


@dataclass(frozen=True)
class NoiseSchedule:
    """How training draws noise levels ``[B, T]`` (diffusion forcing + GameNGen context noise).

    With probability ``context_prob`` a sample is "clean context, noisy last frame": all frames but
    the last share one small level drawn from ``[0, context_noise_max]`` (context noise
    augmentation; the model sees the level), the last frame gets a level from the main law. Other
    samples draw every frame's level independently (diffusion forcing). With probability
    ``clean_prob`` a sample is instead all at one context level, as the simulator's commit pass sees
    a frame: the reward and termination heads, trained on frames at context levels, then also
    learn from a window's last frame, the only place an episode's last (terminal) frame appears.
    The main law mixes a
    logit-normal (``logit_mean``, ``logit_std``) with a share ``uniform_prob`` of uniform levels, so
    that the highest levels, where sampling starts and the context decides everything, are trained.
    """

    context_prob: float = 0.5
    context_noise_max: float = 0.1
    logit_mean: float = 0.5
    logit_std: float = 1.2
    uniform_prob: float = 0.25
    clean_prob: float = 0.1

    def sample(
        self, batch: int, frames: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Noise levels ``[batch, frames]`` in (0, 1]."""
        normal = torch.randn(batch, frames, generator=generator) * self.logit_std + self.logit_mean
        uniform = 1 - torch.rand(batch, frames, generator=generator)  # (0, 1]
        pick = torch.rand(batch, frames, generator=generator) < self.uniform_prob
        sigmas = torch.where(pick, uniform, torch.sigmoid(normal))
        context = torch.rand(batch, generator=generator) < self.context_prob
        context &= frames > 1
        levels = torch.rand(batch, 1, generator=generator) * self.context_noise_max
        clean_context = torch.cat([levels.expand(batch, frames - 1), sigmas[:, -1:]], dim=1)
        sigmas = torch.where(context[:, None], clean_context, sigmas)
        if self.clean_prob > 0:  # drawn only when used, so that runs without it keep their noise
            clean = torch.rand(batch, generator=generator) < self.clean_prob
            sigmas = torch.where(clean[:, None], levels.expand(batch, frames), sigmas)
        return sigmas.to(device)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Noisy latents ``[B, T, C, h, w]`` at per-frame levels ``sigmas [B, T]``."""
    s = sigmas[:, :, None, None, None].to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0
