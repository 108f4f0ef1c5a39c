"""Rectified flow (flow matching) with per-frame noise levels, as diffusers' FlowMatchEuler uses it.

A frame at noise level ``sigma`` in [0, 1] is ``x = (1 - sigma) * x0 + sigma * noise``; the model
predicts the velocity ``noise - x0``, and Euler steps ``x += (sigma_next - sigma) * v`` walk it from
``sigma = 1`` to 0 (``FlowMatchEulerDiscreteScheduler.step``; timestep = ``sigma * 1000``).

The network itself is preconditioned as in EDM (Karras et al., 2022), rewritten for this path: it
sees ``c_in * x`` and its output ``F`` gives the clean estimate ``c_skip * x + c_out * F``, from
which the velocity follows. At high noise the network then predicts the frame rather than having to
pass the noise through, which a small model learns many times faster. Training weights the velocity
error by :func:`loss_weight`, which makes it the unit-variance error of ``F``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from worldsim.errors import UserError, is_integer, is_number


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
    clean_prob: float = 0.0

    def sample(self, batch: int, frames: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
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


def preconditioning(sigmas: torch.Tensor, data_std) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c_in, c_skip, c_out)`` for noise levels ``sigmas`` (any shape) and data of std
    ``data_std`` (a float, or a tensor of ``sigmas``' shape)."""
    keep = 1 - sigmas
    total = (keep * data_std) ** 2 + sigmas**2
    return total.rsqrt(), keep * data_std**2 / total, sigmas * data_std * total.rsqrt()


def loss_weight(sigmas: torch.Tensor, data_std) -> torch.Tensor:
    """The weight of the squared velocity error at ``sigmas``: ``sigma^2 / c_out^2``, in [1, 1/data_std^2]."""
    return ((1 - sigmas) * data_std) ** 2 / data_std**2 + sigmas**2 / data_std**2


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Noisy latents ``[B, T, C, h, w]`` at per-frame levels ``sigmas [B, T]``."""
    s = sigmas[:, :, None, None, None].to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def check_sampling(steps: int | None, guidance: float) -> None:
    """Raises a UserError unless ``steps`` is None (the model's default) or an integer >= 1, and
    ``guidance`` a finite number >= 1 (below 1 the mix leans on the unconditional model, which
    ignores the actions)."""
    if steps is not None and not is_integer(steps, 1):
        raise UserError(f"sampler_steps must be >= 1 (an integer), or None for the model's default; got {steps!r}")
    if not is_number(guidance, 1):
        raise UserError(f"guidance must be a finite number >= 1 (1: no classifier-free guidance), got {guidance!r}")


def make_scheduler(steps: int, shift: float = 1.0, device=None) -> FlowMatchEulerDiscreteScheduler:
    """A diffusers Euler flow-matching scheduler set to ``steps`` steps from sigma 1 to 0."""
    if steps < 1:
        raise ValueError(f"sampler steps must be >= 1, got {steps}")
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    scheduler.set_timesteps(steps, device=device)
    return scheduler


@torch.no_grad()
def sample_frames(denoise, shape, steps: int, generator: torch.Generator | None = None, device=None, noise=None):
    """Denoises new frames from pure noise with ``steps`` Euler steps.

    ``denoise(x [B, T_new, C, h, w], sigma: float) -> velocity`` runs the model on the new frames at
    level ``sigma`` (the caller puts them after their context). Returns the clean latents.
    """
    scheduler = make_scheduler(steps, device=device)
    x = noise if noise is not None else torch.randn(shape, generator=generator).to(device)
    for t in scheduler.timesteps:
        sigma = float(t) / scheduler.config.num_train_timesteps
        x = scheduler.step(denoise(x, sigma), t, x).prev_sample
    return x
