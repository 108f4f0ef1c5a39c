"""The sampler: new frames from pure noise by Euler steps of the flow, with classifier-free guidance.

Every generator of frames uses it: :meth:`WorldModel.predict_next` and :meth:`WorldModel.generate_image`
(full recomputation), :class:`~worldsim.simulator.WorldSimulator` (against a KV cache) and the speed
benchmark's recomputation baseline. Each passes its own ``velocity(x, sigma, step, conditioned)``: the
model run on the new frame ``x`` at level ``sigma`` behind that caller's context, told the step size
``step`` the sampler is about to take (a step-conditioned shortcut model predicts the average
velocity over it; a plain flow model ignores it), conditioned on text and actions or
(``conditioned=False``, for guidance) on neither.

The levels are uniform, ``1, 1 - 1/k, ..., 0`` for ``k`` steps, held as host floats so that a step
makes no host-device synchronisation. Not diffusers' ``FlowMatchEulerDiscreteScheduler``: its levels
run from 1 to ``sigma_min = 0.001`` and then to 0, so with k >= 2 its last network pass moves the
frame by a 0.001 step and changes nothing that shows (its k = 4 is 3 steps and a wasted pass: the
same next-frame PSNR as uniform k = 3, ``worldsim/shipped/balls/RECIPE.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from worldsim.errors import UserError, is_integer, is_number

Velocity = Callable[[torch.Tensor, float, float, bool], torch.Tensor]


def check_sampling(steps: int | None, guidance: float) -> None:
    """Raises a UserError unless ``steps`` is None (the model's default) or an integer >= 1, and
    ``guidance`` a finite number >= 1 (below 1 the mix leans on the unconditional model, which
    ignores the actions)."""
    if steps is not None and not is_integer(steps, 1):
        raise UserError(f"sampler_steps must be >= 1 (an integer), or None for the model's default; got {steps!r}")
    if not is_number(guidance, 1):
        raise UserError(f"guidance must be a finite number >= 1 (1: no classifier-free guidance), got {guidance!r}")


def noise_levels(steps: int) -> list[float]:
    """The ``steps + 1`` uniform levels from 1 to 0: every step moves the frame by ``1 / steps``."""
    if steps < 1:
        raise ValueError(f"sampler steps must be >= 1, got {steps}")
    return [1 - i / steps for i in range(steps + 1)]


def guided(run: Callable[[bool], torch.Tensor], guidance: float) -> torch.Tensor:
    """Classifier-free guidance: ``run(True)`` (conditioned on text and actions) and ``run(False)``
    (on neither) mixed as ``uncond + guidance * (cond - uncond)``; at 1, ``run(True)`` alone."""
    conditioned = run(True)
    if guidance == 1.0:
        return conditioned
    unconditioned = run(False)
    return unconditioned + guidance * (conditioned - unconditioned)


class Sampler:
    """Euler steps over :func:`noise_levels` with guidance scale ``guidance`` (1: none)."""

    def __init__(self, steps: int, guidance: float = 1.0):
        self.steps = steps
        self.guidance = float(guidance)
        self.sigmas = noise_levels(steps)

    @torch.no_grad()
    def sample(self, velocity: Velocity, noise: torch.Tensor) -> torch.Tensor:
        """Clean latents of the shape of ``noise`` (new frames at level 1), by ``steps`` Euler steps
        ``x += (sigma_next - sigma) * v``, ``v`` the guided ``velocity(x, sigma, sigma - sigma_next, conditioned)``."""
        x = noise
        for sigma, sigma_next in zip(self.sigmas[:-1], self.sigmas[1:]):
            x = x + (sigma_next - sigma) * guided(partial(velocity, x, sigma, sigma - sigma_next), self.guidance)
        return x
