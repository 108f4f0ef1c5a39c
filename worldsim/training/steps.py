"""The optimizer loop that both training stages run: the world model's (:func:`~worldsim.training.loop.train`)
and the VAE codec's (:func:`~worldsim.training.vae.train_vae`).

One readable loop, nanoGPT style (:func:`run_steps`): for each step draw ``grad_accum``
micro-batches and backpropagate, stop if a loss is not finite, clip, step AdamW under warmup +
cosine, update the EMA (for a stage that keeps one), log a CSV row every ``log_every`` steps and
write a checkpoint every ``checkpoint_every``. What differs between the stages (the objective, what
trains, the metrics, how a checkpoint is written) comes in a :class:`Stage`.

Under ``torchrun`` the objective runs in DDP (gloo on CPU, NCCL on GPU) with no change: every rank
draws its own batches of one shared order, rank 0 writes. Resume is exact: a checkpoint holds the
weights, optimizer, LR schedule, EMA and data position, and the noise of a step is seeded by the
step, so a resumed run continues the same curve.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from worldsim.data.dataset import BucketBatchSampler
from worldsim.training import checkpoint
from worldsim.training.config import TrainConfig

Batch = dict[str, Any]  # a collated batch of a dataset's items (WindowDataset: frames, actions, caption, ...)
Losses = dict[str, torch.Tensor]  # scalar losses: "loss" (minimised) and its terms


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without writing a checkpoint."""


class Placement(NamedTuple):
    """Where this process trains: its rank among ``world_size`` processes (1 without torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device


@dataclass
class Stage:
    """What a training stage puts into :func:`run_steps`: all in which the world model's run and
    the VAE's differ."""

    description: str  # of the progress bar
    loader: DataLoader[Batch]  # made by bucket_loader
    objective: nn.Module  # forward(inputs(batch), generator) -> scalar losses: "loss" (minimised) and its terms
    trainable: nn.Module  # what AdamW trains
    trainable_key: str  # the name of trainable's weights in training_state.pt
    columns: tuple[str, ...]  # of metrics.csv, out of step, epoch, the losses, lr, grad_norm, steps_per_s, tokens_per_s
    advice: str  # how to avoid a divergence, ending its error message
    # Writes a checkpoint (on rank 0) of the training state ``parts`` (a "trainable_key" module,
    # "optimizer", "schedule", "ema") at ``state``; returns its folder and what the bar shows of it.
    save: Callable[[dict[str, Any], checkpoint.State], tuple[Path, dict[str, Any]]]
    inputs: Callable[[Batch], Any] = lambda batch: batch  # what the objective gets of a batch
    ema_decay: float | None = None  # keep an EMA of trainable (parts["ema"]) at this decay; None: none
    on_ema: Callable[[nn.Module], None] | None = None  # given the EMA's copy of trainable once it exists (a teacher)
    tokens: Callable[[Batch], int] | None = None  # tokens in a batch (for tokens_per_s)


# ------------------------------------------------------------------------------------ setting up


def setup_distributed(device: str) -> Placement:
    """Where this process trains; joins the torchrun process group when launched by torchrun.
    ``device``: auto (CUDA if available), cuda or cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if "RANK" not in os.environ:
        return Placement(0, 1, torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    the_device = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    return Placement(dist.get_rank(), dist.get_world_size(), the_device)


def bucket_loader(dataset: Dataset[Batch], buckets: Sequence[Hashable], cfg: TrainConfig, place: Placement) -> DataLoader[Batch]:
    """Batches of ``cfg.batch_size`` items of ``dataset`` that share a bucket (``buckets[i]``: item
    i's), shuffled per epoch from ``cfg.seed`` in one order for all ranks, each rank its share;
    partial batches are dropped. Its ``len`` is the batches per epoch of this rank (maybe 0)."""
    sampler = BucketBatchSampler(buckets, cfg.batch_size, drop_last=True, seed=cfg.seed, rank=place.rank, world_size=place.world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers)


def lr_lambda(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warmup to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def ema_with_warmup(decay: float) -> Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor], torch.Tensor | int], None]:
    """An EMA update for ``AveragedModel`` whose decay ramps up as ``(1 + n) / (10 + n)`` (n: updates
    so far) to ``decay``, so that early checkpoints are not dominated by the initial weights."""

    @torch.no_grad()
    def update(averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor], num_averaged: torch.Tensor | int) -> None:
        n = torch.as_tensor(num_averaged)
        rate = torch.clamp((1 + n) / (10 + n), max=decay)
        for a, c in zip(averaged, current):
            a.lerp_(c, (1 - rate).to(a.dtype))

    return update


# ------------------------------------------------------------------------------------ the loop


def run_steps(
    stage: Stage, out: Path, steps: int, cfg: TrainConfig, place: Placement, resume: bool, progress: bool, settings: dict[str, Any]
) -> Path | None:
    """Trains ``stage`` up to ``steps`` optimizer steps into the run folder ``out``: ``config.json``
    (``settings``), ``metrics.csv``, ``checkpoints/step_NNNNNNN/`` (``stage.save``). ``resume``
    continues from the newest checkpoint exactly. Returns the newest checkpoint. Uses of ``cfg``:
    grad_accum, lr, weight_decay, warmup_steps, min_lr_ratio, grad_clip, log_every,
    checkpoint_every, bf16, seed."""
    rank, world_size, device = place
    ddp = DistributedDataParallel(stage.objective) if world_size > 1 else stage.objective
    optimizer = torch.optim.AdamW(stage.trainable.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, steps, cfg.min_lr_ratio))
    parts: dict[str, Any] = {stage.trainable_key: stage.trainable, "optimizer": optimizer, "schedule": schedule}
    if stage.ema_decay is not None:
        parts["ema"] = AveragedModel(stage.trainable, multi_avg_fn=ema_with_warmup(stage.ema_decay), use_buffers=True)
    ema = parts.get("ema")
    if ema is not None and stage.on_ema is not None:
        stage.on_ema(ema.module)  # the same object whose state a resume restores below
    generator = torch.Generator()

    def forward(batch: Batch) -> Losses:
        return ddp(stage.inputs(batch), generator)

    start = checkpoint.start(out, parts, resume)
    if rank == 0:
        checkpoint.write_run_config(out, **settings)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    metrics = checkpoint.MetricsWriter(out / "metrics.csv", stage.columns, enabled=rank == 0, keep_until=start.step)
    stream = batches(stage.loader, start.epoch, start.batch)
    step, epoch, index = start.step, start.epoch, start.batch
    bar = tqdm(total=steps, initial=step, desc=stage.description, disable=not progress or rank != 0, unit="step")
    tick, tokens, last = time.perf_counter(), 0, None
    while step < steps:
        # Noise, levels and dropout of a step follow from (seed, rank, step): resume needs no RNG state.
        generator.manual_seed(step_seed(cfg.seed, rank, step))
        totals, epoch, index, seen = accumulate(stream, cfg.grad_accum, forward, autocast)
        tokens += sum(map(stage.tokens, seen)) if stage.tokens else 0
        check_finite(totals, step + 1, out, stage.advice)
        grad_norm = float(nn.utils.clip_grad_norm_(stage.trainable.parameters(), cfg.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        if ema is not None:
            ema.update_parameters(stage.trainable)
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == steps:
            elapsed = time.perf_counter() - tick
            rate = cfg.log_every / elapsed if step % cfg.log_every == 0 else 0.0
            metrics.write(
                {
                    "step": step,
                    "epoch": epoch,
                    **totals,
                    "lr": schedule.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    "steps_per_s": rate,
                    "tokens_per_s": tokens / elapsed,
                }
            )
            bar.set_postfix(loss=f"{totals['loss']:.4f}", steps_per_s=f"{rate:.2f}")
            tick, tokens = time.perf_counter(), 0
        if step % cfg.checkpoint_every == 0 or step == steps:
            if rank == 0:
                last, shown = stage.save(parts, checkpoint.State(step=step, epoch=epoch, batch=index + 1))
                if shown:
                    bar.set_postfix(loss=f"{totals['loss']:.4f}", **shown)
            if world_size > 1:
                dist.barrier()
    bar.close()
    metrics.close()
    return last or checkpoint.newest(out)


def batches(loader: DataLoader[Batch], epoch: int, skip: int) -> Iterator[tuple[int, int, Batch]]:
    """``(epoch, index in epoch, batch)`` of a :func:`bucket_loader` forever, starting ``skip``
    batches into ``epoch``."""
    sampler = loader.batch_sampler
    assert isinstance(sampler, BucketBatchSampler)  # for the type checker: bucket_loader made it
    while True:
        sampler.set_epoch(epoch, skip=skip)
        for i, batch in enumerate(loader, start=skip):
            yield epoch, i, batch
        epoch, skip = epoch + 1, 0


def accumulate(
    stream: Iterator[tuple[int, int, Batch]], grad_accum: int, forward: Callable[[Batch], Losses], autocast: AbstractContextManager[Any]
) -> tuple[dict[str, float], int, int, list[Batch]]:
    """Runs ``grad_accum`` micro-batches of ``stream`` through ``forward(batch) -> losses`` and
    backpropagates ``loss / grad_accum``; returns the averaged losses, the epoch and index of the
    last batch, and the batches."""
    totals: dict[str, float] = {}
    seen = []
    for _ in range(grad_accum):
        epoch, index, batch = next(stream)
        with autocast:
            losses = forward(batch)
        (losses["loss"] / grad_accum).backward()
        for key, value in losses.items():
            totals[key] = totals.get(key, 0.0) + value.item() / grad_accum
        seen.append(batch)
    return totals, epoch, index, seen


def check_finite(totals: dict[str, float], step: int, out: Path, advice: str) -> None:
    """Raises TrainingDiverged, naming the last good checkpoint, if any loss is NaN or infinite."""
    if all(math.isfinite(v) for v in totals.values()):
        return
    terms = ", ".join(f"{k} {v}" for k, v in totals.items() if k != "loss")
    last_good = checkpoint.newest(out)
    raise TrainingDiverged(
        f"loss became {totals['loss']} ({terms}) at step {step}; stopped without saving. "
        f"The last good checkpoint is {last_good or 'none (no checkpoint yet)'}; {advice}"
    )


def step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])
