"""Configs of a training run, mirrored by ``configs/model/*.yaml`` and ``configs/train/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class ModelConfig:
    """Sizes of the world model (``configs/model/``: tiny, small, base)."""

    codec: str = "pixels"  # pixels | vae
    vae: str | None = None  # for codec=vae: a `worldsim train stage=vae` run folder (holding vae/)
    patch_size: int = 2
    temporal_patch_size: int = 1
    hidden_size: int = 256
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 128
    text_depth: int = 2
    text_heads: int = 4


@dataclass
class TrainConfig:
    """How to train (``configs/train/``)."""

    batch_size: int = 32  # per rank and per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    window_lengths: list[int] = field(default_factory=lambda: [8])  # frames per training window
    images: bool = True  # train on the collections' captioned stills as one-frame videos too
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    text_dropout: float = 0.1  # captions replaced by "" (classifier-free guidance on text)
    action_dropout: float = 0.1  # samples whose actions are all nulled (guidance on actions)
    context_prob: float = 0.5  # share of "clean context + noisy last frame" samples
    context_noise_max: float = 0.1  # context noise augmentation: levels drawn from [0, this]
    logit_mean: float = 0.5  # noise levels of noisy frames: sigmoid(normal(logit_mean, logit_std)),
    logit_std: float = 1.2  # a positive mean favouring the high levels where the context must be used,
    uniform_prob: float = 0.25  # mixed with this share of uniform levels in (0, 1]
    clean_prob: float = 0.1  # share of all-context-level samples: the heads learn from the last frame too
    terminal_repeats: int = 8  # windows ending on a terminated episode's last frame are drawn this many times as often
    reward_weight: float = 1.0
    termination_weight: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    num_workers: int = 0
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    seed: int = 0


def from_dict(cls, values: dict[str, Any], what: str):
    """``cls(**values)``, with an error that names unknown keys and the valid ones."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; valid keys: {', '.join(names)}")
    return cls(**values)
