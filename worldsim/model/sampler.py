"""The sampler: new frames from pure noise by Euler steps of the flow, with classifier-free guidance.

Every generator of frames uses it: :meth:`WorldModel.predict_next` and :meth:`WorldModel.generate_image`
(full recomputation), :class:`~worldsim.simulator.WorldSimulator` (against a KV cache) and the speed
benchmark's recomputation baseline. Each passes its own ``velocity(x, sigma, step, conditioned)``: the
model run on the new frame ``x`` at level ``sigma`` behind that caller's context, told the step size
``step`` the sampler is about to take (a step-conditioned shortcut model predicts the average
velocity over it; a plain flow model ignores it), conditioned on text and actions or
(``conditioned=False``, for guidance) on neither.

The levels are uniform, ``1, 1 - 1/k, ..., 0`` for ``k`` steps, held as host floats so that a step
makes no host-device synchronisation. A sampler with an ``end`` level ``c > 0`` (a model without a
commit pass, :class:`~worldsim.simulator.WorldSimulator`) spreads its first ``k - 1`` steps uniformly
from 1 to ``c`` and makes the last from ``c`` to 0: that last pass sees the frame at the level of a
context frame, so its keys and values can stand for the frame in the cache. Not diffusers'
``FlowMatchEulerDiscreteScheduler``: its levels run from 1 to ``sigma_min = 0.001`` and then to 0,
so with k >= 2 its last network pass moves the frame by a 0.001 step and changes nothing that shows
(its k = 4 is 3 steps and a wasted pass: the same next-frame PSNR as uniform k = 3,
``worldsim/shipped/balls/RECIPE.md``).
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


def end_level(commit_pass: bool, context_noise: float, steps: int) -> float:
    """The ``end`` level of a model's sampler: 0 with a commit pass; without one (``commit_pass``
    false), its ``context_noise``, which must then be in (0, 1) with ``steps >= 2``."""
    if commit_pass:
        return 0.0
    if steps < 2:
        raise UserError(f"a model without a commit pass (commit_pass=false) needs sampler_steps >= 2, got {steps}")
    if not (is_number(context_noise) and 0 < context_noise < 1):
        raise UserError(
            f"a model without a commit pass (commit_pass=false) needs a context_noise in (0, 1), the level of its "
            f"last sampler pass; got {context_noise!r}"
        )
    return float(context_noise)


def noise_levels(steps: int, end: float = 0.0) -> list[float]:
    """The ``steps + 1`` levels from 1 to 0: uniform (every step moves the frame by ``1 / steps``),
    or with ``end`` in (0, 1) and ``steps >= 2``, ``steps - 1`` uniform steps from 1 to ``end``, then 0."""
    if steps < 1:
        raise ValueError(f"sampler steps must be >= 1, got {steps}")
    if end == 0.0:
        return [1 - i / steps for i in range(steps + 1)]
    if not (0.0 < end < 1.0 and steps >= 2):
        raise ValueError(f"an end level needs 0 < end < 1 and steps >= 2, got end={end}, steps={steps}")
    return [1 - i * (1 - end) / (steps - 1) for i in range(steps)] + [0.0]


def guided(run: Callable[[bool], torch.Tensor], guidance: float) -> torch.Tensor:
    """Classifier-free guidance: ``run(False)`` (on neither text nor actions) then ``run(True)``
    (conditioned on both) mixed as ``uncond + guidance * (cond - uncond)``; at 1, ``run(True)``
    alone. The conditioned run comes last, so that the keys and values a pass leaves in a cache are its."""
    if guidance == 1.0:
        return run(True)
    unconditioned = run(False)
    conditioned = run(True)
    return unconditioned + guidance * (conditioned - unconditioned)


class Sampler:
    """Euler steps over :func:`noise_levels` (``steps``, ``end``) with guidance scale ``guidance`` (1: none)."""

    def __init__(self, steps: int, guidance: float = 1.0, end: float = 0.0):
        self.steps = steps
        self.guidance = float(guidance)
        self.end = float(end)
        self.sigmas = noise_levels(steps, self.end)

    @torch.no_grad()
    def sample(self, velocity: Velocity, noise: torch.Tensor) -> torch.Tensor:
        """Clean latents of the shape of ``noise`` (new frames at level 1), by ``steps`` Euler steps
        ``x += (sigma_next - sigma) * v``, ``v`` the guided ``velocity(x, sigma, sigma - sigma_next, conditioned)``."""
        x = noise
        for sigma, sigma_next in zip(self.sigmas[:-1], self.sigmas[1:]):
            x = x + (sigma_next - sigma) * guided(partial(velocity, x, sigma, sigma - sigma_next), self.guidance)
        return x
