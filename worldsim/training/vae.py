"""Training the VAE codec (``worldsim train stage=vae``): a small ``AutoencoderKL`` from scratch, per frame.

The same loop as the world model's (:func:`~worldsim.training.steps.run_steps`) on bucketed batches
of single frames: AdamW under warmup + cosine, gradient accumulation and clipping, bf16 autocast on
CUDA, DDP under ``torchrun``, a metrics CSV and exact resume. The loss is the latent-diffusion one: the
reconstruction MSE on [-1, 1] plus ``kl_weight`` times the KL to N(0, I), both summed per frame (and
divided by the frame's pixel count so that ``loss`` reads as a per-pixel MSE). No EMA: the codec is
frozen before the world model trains on its latents, and a slowly moving decoder buys nothing there.

Every episode file whose index is a multiple of ``HOLDOUT_EVERY`` (about 5 %) is held out of
training to measure the reconstruction PSNR. At every checkpoint the latent normalisation is
measured on training frames and stored in the VAE's config (``shift_factor``, ``scaling_factor``),
so that :class:`~worldsim.model.codec.VAECodec` hands the world model latents of zero mean and unit
variance.

```
RUN/
  config.json, metrics.csv          as for the world model (metrics: loss, recon, kl, lr, ...)
  vae/                              the latest VAE: ``load_codec("vae", RUN)`` reads it
  vae_eval.json                     held-out PSNR and latent statistics of the latest checkpoint
  checkpoints/step_0001000/vae/     the VAE at that step (diffusers folder, safetensors, manifest)
                 training_state.pt  raw weights, optimizer, LR schedule, data position
```
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn
from torch.utils.data import DataLoader, Subset

from worldsim.atomic import atomic_folder, atomic_write
from worldsim.data.collection import Collection
from worldsim.data.dataset import BucketBatchSampler, WindowDataset
from worldsim.errors import UserError, check_integer
from worldsim.model.codec import VAECodec, frames_to_unit, small_vae
from worldsim.training import checkpoint
from worldsim.training.config import TrainConfig, VAEConfig
from worldsim.training.steps import Stage, bucket_loader, run_steps, setup_distributed

METRICS = ("step", "epoch", "loss", "recon", "kl", "lr", "grad_norm", "steps_per_s")
HOLDOUT_EVERY = 20  # episode files 0, 20, 40, ... of each collection are held out
STATS_FRAMES = 1024  # training frames measured for the latent normalisation
EVAL_FRAMES = 1024  # held-out frames measured for the PSNR
EVAL_FILE = "vae_eval.json"


class VAELoss(nn.Module):
    """The VAE objective on a batch of frames (the module DDP wraps).

    ``forward(frames: uint8 [B, H, W, 3], generator)`` returns scalar ``loss``, ``recon`` (MSE per
    pixel on [-1, 1]) and ``kl`` (KL divergence per frame, summed over the latent grid).
    """

    def __init__(self, vae: AutoencoderKL, kl_weight: float):
        super().__init__()
        self.vae, self.kl_weight = vae, kl_weight

    def forward(self, frames: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        device = next(self.vae.parameters()).device
        x = frames_to_unit(frames.to(device))
        posterior = self.vae.encode(x).latent_dist
        mean, logvar = posterior.mean.float(), posterior.logvar.float()
        noise = torch.randn(mean.shape, generator=generator).to(device)
        reconstruction = self.vae.decode(mean + torch.exp(0.5 * logvar) * noise).sample
        recon = F.mse_loss(reconstruction.float(), x)
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
        loss = recon + self.kl_weight * kl / x[0].numel()
        return {"loss": loss, "recon": recon, "kl": kl}


# ------------------------------------------------------------------------------------ data


def split_holdout(dataset: WindowDataset, roots: Sequence[str | Path]) -> tuple[list[int], list[int]]:
    """``(train, held_out)`` item indices: items of every ``HOLDOUT_EVERY``-th episode file of each
    collection are held out; stills always train."""
    held_paths = {path for root in roots for path in Collection(root).paths("episodes")[::HOLDOUT_EVERY]}
    train, held_out = [], []
    for index, window in enumerate(dataset.windows):
        (held_out if window.ref.path in held_paths else train).append(index)
    return train, held_out


def spread(indices: list[int], most: int) -> list[int]:
    """At most ``most`` of ``indices``, evenly spaced (deterministic)."""
    if len(indices) <= most:
        return indices
    return [indices[i] for i in np.linspace(0, len(indices) - 1, most).round().astype(int)]


def frame_batches(dataset: WindowDataset, indices: list[int], batch_size: int) -> Iterator[torch.Tensor]:
    """The frames of ``indices`` in batches of one size, uint8 ``[B, H, W, 3]``, in a fixed order."""
    sampler = BucketBatchSampler([dataset.buckets[i] for i in indices], batch_size, shuffle=False)
    for batch in DataLoader(Subset(dataset, indices), batch_sampler=sampler):
        yield batch["frames"][:, 0]


def check_frame_sizes(dataset: WindowDataset, downsample: int) -> None:
    sizes = sorted({bucket[1:] for bucket in dataset.buckets})
    bad = [size for size in sizes if size[0] % downsample or size[1] % downsample]
    if bad:
        raise UserError(
            f"frame sizes {bad} are not divisible by the VAE's downsample={downsample}; "
            "choose a downsample (2, 4 or 8) that divides every frame side"
        )


# ------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def latent_stats(vae: AutoencoderKL, frames: Iterator[torch.Tensor]) -> dict[str, float | list[float]]:
    """Mean and std of the posterior means over ``frames`` (overall and per channel)."""
    device = next(vae.parameters()).device
    total = total_sq = None
    count = 0
    for batch in frames:
        z = vae.encode(frames_to_unit(batch.to(device))).latent_dist.mean.double()
        sums, sums_sq = z.sum(dim=(0, 2, 3)), (z**2).sum(dim=(0, 2, 3))
        total = sums if total is None else total + sums
        total_sq = sums_sq if total_sq is None else total_sq + sums_sq
        count += z[:, 0].numel()
    mean = total.sum() / (count * len(total))
    std = (total_sq.sum() / (count * len(total)) - mean**2).clamp(min=1e-12).sqrt()
    channel_mean = total / count
    channel_std = (total_sq / count - channel_mean**2).clamp(min=0).sqrt()
    return {"mean": float(mean), "std": float(std), "channel_mean": channel_mean.tolist(), "channel_std": channel_std.tolist()}


@torch.no_grad()
def reconstruction_psnr(codec: VAECodec, frames: Iterator[torch.Tensor]) -> float:
    """Mean per-frame PSNR (dB) of ``codec``'s uint8 reconstructions of ``frames``."""
    device = next(codec.parameters()).device
    psnrs = []
    for batch in frames:
        restored = codec.decode(codec.encode(batch[:, None].to(device)))[:, 0].cpu()
        mse = ((restored.float() - batch.float()) ** 2).mean(dim=(1, 2, 3))
        psnrs.append(10 * torch.log10(255.0**2 / mse.clamp(min=1e-10)))
    return float(torch.cat(psnrs).mean())


def calibrate(vae: AutoencoderKL, dataset: WindowDataset, train: list[int], held_out: list[int], batch_size: int) -> dict:
    """Stores the latent normalisation in ``vae``'s config and returns the evaluation record."""
    was_training = vae.training
    vae.eval()
    raw = latent_stats(vae, frame_batches(dataset, spread(train, STATS_FRAMES), batch_size))
    vae.register_to_config(shift_factor=raw["mean"], scaling_factor=1.0 / raw["std"])
    held_frames = frame_batches(dataset, spread(held_out, EVAL_FRAMES), batch_size)
    psnr = reconstruction_psnr(VAECodec(vae), held_frames) if held_out else None  # a collection of stills only
    vae.train(was_training)
    return {
        "heldout_psnr_db": psnr,
        "heldout_frames": min(len(held_out), EVAL_FRAMES),
        "stats_frames": min(len(train), STATS_FRAMES),
        "shift_factor": raw["mean"],
        "scaling_factor": 1.0 / raw["std"],
        "latent_channel_mean": raw["channel_mean"],
        "latent_channel_std": raw["channel_std"],
    }


# ------------------------------------------------------------------------------------ run folder


def save_checkpoint(out: Path, vae: AutoencoderKL, parts: dict[str, Any], state: checkpoint.State, evaluation: dict, keep: int) -> Path:
    """Writes ``checkpoints/step_NNNNNNN/`` (``vae/`` + training state), refreshes ``out/vae`` and
    ``out/vae_eval.json``, and prunes all checkpoints but ``keep``."""
    path = out / "checkpoints" / f"step_{state.step:07d}"
    VAECodec(vae).save_pretrained(path)
    checkpoint.save_state(path, parts, state)
    replace_folder(path / "vae", out / "vae")
    with atomic_write(out / EVAL_FILE, "w") as f:
        json.dump({"step": state.step, **evaluation}, f, indent=2)
    checkpoint.prune(out, keep)
    return path


def replace_folder(source: Path, dest: Path) -> None:
    """Makes ``dest`` a copy of ``source``; ``dest`` is whole at every moment it exists."""
    with atomic_folder(dest) as fresh:
        shutil.copytree(source, fresh, dirs_exist_ok=True)


# ------------------------------------------------------------------------------------ training


def train_vae(
    data: list[str | Path],
    out: str | Path,
    steps: int,
    vae_cfg: VAEConfig,
    cfg: TrainConfig,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> Path | None:
    """Trains a VAE codec of ``vae_cfg``'s sizes on the frames of the collections ``data`` for
    ``steps`` optimizer steps into the run folder ``out``; returns the last checkpoint. ``resume``
    continues from the newest checkpoint exactly: weights, optimizer, schedule, data position (noise
    follows from the step). Uses of ``cfg``: batch_size (frames), grad_accum, lr, weight_decay,
    warmup_steps, min_lr_ratio, grad_clip, log_every, checkpoint_every, keep_checkpoints,
    num_workers, bf16, seed."""
    check_integer("steps", steps)
    torch.manual_seed(cfg.seed)
    vae = small_vae(vae_cfg.latent_channels, vae_cfg.downsample, vae_cfg.width)  # raises UserError for a bad width
    out = Path(out)
    place = setup_distributed(device)
    dataset = WindowDataset(data, window_lengths=1, images=True)
    check_frame_sizes(dataset, vae_cfg.downsample)
    train, held_out = split_holdout(dataset, data)
    loader = bucket_loader(Subset(dataset, train), [dataset.buckets[i] for i in train], cfg, place)
    if len(loader) == 0:
        raise UserError(
            f"no full batch of {cfg.batch_size} frames per rank among {len(train)} training frames "
            f"({len(held_out)} held out): collect more episodes or lower batch_size"
        )
    vae.to(place.device)

    def save(parts: dict[str, Any], state: checkpoint.State) -> tuple[Path, dict[str, Any]]:
        evaluation = calibrate(vae, dataset, train, held_out, cfg.batch_size)
        path = save_checkpoint(out, vae, parts, state, evaluation, cfg.keep_checkpoints)
        return path, {"heldout_psnr_db": evaluation["heldout_psnr_db"]}

    stage = Stage(
        description=f"train vae {out.name}",
        loader=loader,
        objective=VAELoss(vae, vae_cfg.kl_weight),
        trainable=vae,
        trainable_key="vae",
        columns=METRICS,
        advice=f"try a lower lr (now {cfg.lr}) or kl_weight (now {vae_cfg.kl_weight})",
        save=save,
        inputs=lambda batch: batch["frames"][:, 0],  # one-frame windows: [B, 1, H, W, 3] -> [B, H, W, 3]
    )
    settings = dict(stage="vae", data=[str(d) for d in data], steps=steps, vae=vae_cfg, train=cfg)
    return run_steps(stage, out, steps, cfg, place, resume, progress, settings)
