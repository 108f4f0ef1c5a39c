"""Configs of a training run, mirrored by ``configs/model/*.yaml`` and ``configs/train/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from worldsim.errors import UserError, accepted_number, is_integer, is_number


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

    def __post_init__(self):
        if self.codec not in ("pixels", "vae"):
            raise UserError(f"model.codec must be pixels or vae, got {self.codec!r}")
        if self.vae is not None and not isinstance(self.vae, str):
            raise UserError(f"model.vae must be a run folder's path or null, got {self.vae!r}")
        check_fields(self, "model", MODEL_RULES)
        for width, heads in (("hidden_size", "num_heads"), ("text_dim", "text_heads")):
            if getattr(self, width) % getattr(self, heads):
                raise UserError(f"model.{width}={getattr(self, width)} must be divisible by model.{heads}={getattr(self, heads)}")
        head_dim = self.hidden_size // self.num_heads
        if head_dim % 2 or head_dim < 6:  # the DiT's 3-D rotary embeddings split a head in even bands
            raise UserError(f"model.hidden_size / model.num_heads = {head_dim} must be even and >= 6")


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

    def __post_init__(self):
        lengths = self.window_lengths
        if not (isinstance(lengths, list) and lengths and all(is_integer(n, 1) for n in lengths)):
            raise UserError(f"train.window_lengths must be a non-empty list of integers >= 1, e.g. [8], got {lengths!r}")
        check_fields(self, "train", TRAIN_RULES)


# (type, lowest, highest, lowest excluded) of each numeric or bool field; None: no bound.
MODEL_RULES = {name: (int, 1, None, False) for name in ("patch_size", "temporal_patch_size", "hidden_size", "depth", "num_heads",
                                                          "text_dim", "text_depth", "text_heads")}  # fmt: skip
MODEL_RULES["mlp_ratio"] = (float, 0, None, True)
FRACTION = (float, 0, 1, False)
TRAIN_RULES = {
    **{name: (int, 1, None, False) for name in ("batch_size", "grad_accum", "terminal_repeats", "log_every", "checkpoint_every",
                                                 "keep_checkpoints")},  # fmt: skip
    **{name: (int, 0, None, False) for name in ("warmup_steps", "num_workers", "seed")},
    **{name: FRACTION for name in ("min_lr_ratio", "ema_decay", "text_dropout", "action_dropout", "context_prob", "context_noise_max",
                                   "uniform_prob", "clean_prob")},  # fmt: skip
    **{name: (float, 0, None, False) for name in ("weight_decay", "reward_weight", "termination_weight")},
    **{name: (float, 0, None, True) for name in ("lr", "grad_clip", "logit_std")},
    "logit_mean": (float, None, None, False),
    "images": (bool, None, None, False),
    "bf16": (bool, None, None, False),
}


def check_fields(config, what: str, rules: dict[str, tuple]) -> None:
    """Raises a UserError naming ``what.field`` unless each field of ``rules`` has its type and lies in its range."""
    for name, (kind, low, high, open_low) in rules.items():
        value = getattr(config, name)
        if kind is bool:
            valid, accepted = isinstance(value, bool), "true or false"
        else:  # an int is a fine float
            valid = is_number(value, low, high, open_low) and (kind is not int or is_integer(value))
            accepted = accepted_number(low, high, open_low, integer=kind is int)
        if not valid:
            raise UserError(f"{what}.{name} must be {accepted}, got {value!r}")


def from_dict(cls, values: dict[str, Any], what: str):
    """``cls(**values)``, with an error that names unknown keys and the valid ones."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"unknown {what} key(s) {unknown}; valid keys: {', '.join(names)}")
    return cls(**values)
