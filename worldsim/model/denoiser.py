"""Denoiser: the EDM preconditioning, centred on the frame before, around the SpacetimeDiT network.

The network is preconditioned as in EDM (Karras et al., 2022), rewritten for the flow-matching path
(:mod:`worldsim.model.flow`): it sees ``c_in * x`` and its output ``F`` gives the clean estimate
``c_skip * x + c_out * F``, from which the velocity follows. At high noise the network then predicts
the frame rather than having to pass the noise through, which a small model learns many times
faster. Training weights the velocity error by :func:`loss_weight`, which makes it the
unit-variance error of ``F``.

Most of a world does not move between two frames, so the preconditioning is centred on the frame
before: a frame's clean estimate is its *reference* (the best linear estimate of the previous frame
from its noisy version: the previous frame itself when it is clean, nothing when it is pure noise)
plus the EDM-preconditioned estimate of the residual, whose spread is ``residual_std`` plus what the
previous frame's noise hides. An untrained network thus repeats the last frame exactly, and
training teaches it what moves. The frame before the first one is an argument (the simulator
passes the newest cached frame); without it, it is pure noise (level 1, zero signal): an episode start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldsim.model.dit import SpacetimeDiT, TextContext
from worldsim.model.kv_cache import KVCache


@dataclass
class Denoised:
    """Per frame: the clean estimate ``denoised [B, T, C, h, w]`` and the flow-matching
    ``velocity`` that takes the input there; ``reward [B, T]`` and ``termination [B, T]`` (logits);
    ``loss_weight [B, T]``, the weight that makes a frame's squared velocity error the
    unit-variance error of the network's output; and per layer the pass's rotated ``keys_values``."""

    denoised: torch.Tensor
    velocity: torch.Tensor
    reward: torch.Tensor
    termination: torch.Tensor
    loss_weight: torch.Tensor
    keys_values: list[tuple[torch.Tensor, torch.Tensor]]


def preconditioning(sigmas: torch.Tensor, data_std: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c_in, c_skip, c_out)`` for noise levels ``sigmas`` (any shape) and data of std
    ``data_std`` (a float, or a tensor of ``sigmas``' shape)."""
    keep = 1 - sigmas
    total = (keep * data_std) ** 2 + sigmas**2
    return total.rsqrt(), keep * data_std**2 / total, sigmas * data_std * total.rsqrt()


def loss_weight(sigmas: torch.Tensor, data_std: float | torch.Tensor) -> torch.Tensor:
    """The weight of the squared velocity error at ``sigmas``: ``sigma^2 / c_out^2``, in [1, 1/data_std^2]."""
    return ((1 - sigmas) * data_std) ** 2 / data_std**2 + sigmas**2 / data_std**2


class Denoiser:
    """Clean estimates and velocities of noisy frames from ``network``, whose config gives
    ``data_std`` and ``residual_std`` (read at each call: training measures the latter)."""

    def __init__(self, network: SpacetimeDiT) -> None:
        self.network = network

    def __call__(
        self,
        latents: torch.Tensor,
        sigmas: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: TextContext,
        *,
        before: tuple[torch.Tensor, torch.Tensor] | None = None,
        block_offset: int = 0,
        cache: KVCache | None = None,
        window: int | None = None,
        step: torch.Tensor | float = 0.0,
    ) -> Denoised:
        """Denoises every frame.

        Args:
            latents: noisy latents ``[B, T, C, h, w]`` at levels ``sigmas [B, T]`` in ``[0, 1]``.
            actions, action_mask, text, block_offset, cache, window, step: as :meth:`SpacetimeDiT.forward`
                (``step``: the sampler step size of the last frame, for a step-conditioned network).
            before: the frame before ``latents[:, 0]``, noisy latents ``[B, C, h, w]``, and its
                levels ``[B]``; None: there is none (an episode start).
        """
        frames_before, before_sigmas = self.frames_before(latents, sigmas, before)
        reference, spread = self.reference(frames_before, before_sigmas)
        c_in, c_skip, c_out = (c[:, :, None, None, None] for c in preconditioning(sigmas, spread))
        residual = latents - (1 - sigmas[:, :, None, None, None]) * reference  # (1 - s) (x0 - reference) + s noise
        before_in = preconditioning(before_sigmas, self.network.config.data_std)[0][:, :, None, None, None]
        out = self.network(
            residual * c_in,
            frames_before * before_in,
            sigmas,
            before_sigmas,
            actions,
            action_mask,
            text,
            block_offset=block_offset,
            cache=cache,
            window=window,
            step=step,
        )
        denoised = reference + c_skip * residual + c_out * out.prediction
        velocity = (latents - denoised) / sigmas[:, :, None, None, None].clamp(min=1e-6)
        return Denoised(denoised, velocity, out.reward, out.termination, loss_weight(sigmas, spread), out.keys_values)

    def reference(self, before: torch.Tensor, before_sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame's reference ``[B, T, C, h, w]``, the linear least-squares estimate of its
        predecessor from the noisy ``before`` at levels ``before_sigmas [B, T]``, and the spread
        ``[B, T]`` of the frame around it: ``residual_std`` and what the noise hides, combined."""
        s, level = self.network.config.data_std, before_sigmas
        total = ((1 - level) * s) ** 2 + level**2
        shrink = (1 - level) * s**2 / total
        spread = (self.network.config.residual_std**2 + s**2 * level**2 / total).sqrt()
        return shrink[:, :, None, None, None] * before, spread

    @staticmethod
    def frames_before(
        latents: torch.Tensor, sigmas: torch.Tensor, before: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For every frame, the frame just before it and its level: ``[B, T, C, h, w]``, ``[B, T]``."""
        if before is None:
            previous, previous_sigmas = torch.zeros_like(latents[:, 0]), torch.ones_like(sigmas[:, 0])
        else:
            previous, previous_sigmas = before
        if previous.shape != latents[:, 0].shape or previous_sigmas.shape != sigmas[:, 0].shape:
            raise ValueError(
                f"the frame before must be [B, C, h, w] = {tuple(latents[:, 0].shape)} with levels [B] = "
                f"{tuple(sigmas[:, 0].shape)}; got {tuple(previous.shape)} and {tuple(previous_sigmas.shape)}"
            )
        frames = torch.cat([previous[:, None].to(latents.dtype), latents[:, :-1]], dim=1)
        return frames, torch.cat([previous_sigmas[:, None].to(sigmas.dtype), sigmas[:, :-1]], dim=1)
