"""Configs of a training run, mirrored by ``configs/model/*.yaml``, ``configs/train/*.yaml`` and the
``vae:`` block of ``configs/train.yaml``; the CLI binds those YAML groups to these dataclasses
(Hydra structured configs: :func:`worldsim.cli.register_schemas`), composes them typed and turns
them into the dataclasses once."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from worldsim.errors import UserError, accepted_number, is_integer, is_number
from worldsim.model.dit import HEAD_POOLINGS
from worldsim.model.flow import NoiseSchedule


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
    step_conditioning: bool = False  # the DiT is told the sampler step size (shortcut models: train.shortcut_prob)
    head_pooling: str = "mean"  # how the reward and termination heads read a frame's tokens: mean | attention

    def __post_init__(self):
        if self.codec not in ("pixels", "vae"):
            raise UserError(f"model.codec must be pixels or vae, got {self.codec!r}")
        if self.head_pooling not in HEAD_POOLINGS:
            raise UserError(f"model.head_pooling must be {' or '.join(HEAD_POOLINGS)}, got {self.head_pooling!r}")
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
    noise: NoiseSchedule = field(default_factory=NoiseSchedule)  # how noise levels are drawn (train.noise.*)
    terminal_repeats: int = 8  # windows ending on a terminated episode's last frame are drawn this many times as often
    # ... and count 1 / terminal_repeats in the flow loss: the repeats then teach the heads the ends
    # without teaching the dynamics that episodes end (a pole falls) more often than the data show.
    terminal_flow_reweight: bool = False
    rollout_prob: float = 0.0  # share of windows whose context ends in frames the model generated itself (self-forcing)
    rollout_frames: int = 2  # frames generated for such a window (at most its length - 2), just before its last
    rollout_steps: int = 4  # sampler steps per generated frame (match the inference sampler)
    head_rollout_prob: float = 0.0  # share of the heads' windows whose last frame the model makes (heads that read dreamed frames)
    # Shortcut models (Frans et al. 2024; Dreamer 4's shortcut forcing): that share of the windows has
    # its last frame at a level on the grid of a step size d from 1, 1/2, ... 1/shortcut_steps and
    # learns to take the step d in one pass as two passes of d / 2 of the model itself take it (no
    # gradient through those; the finest steps bootstrap from the flow's velocity). Needs
    # model.step_conditioning; then 1, 2 or 4 sampler steps make frames a 1-step flow model blurs.
    shortcut_prob: float = 0.0
    shortcut_steps: int = 8  # the finest step size is 1 / shortcut_steps (a power of two)
    shortcut_teacher: str = "model"  # who takes the two half steps: "model" (the weights trained) or "ema" (their EMA, slower)
    shortcut_weight: float = 0.0  # frames' worth of error a shortcut frame counts for (0: its window's length)
    # Motion weighting: a frame's flow error counts (1 + motion_weight) times as much where its latent
    # differs from the frame before it (by more than 0.01 in any channel, grown by one cell) as
    # elsewhere, the frame's weights rescaled to mean 1, so that small moving things (a pole, a ball),
    # whose sub-pixel motion carries the dynamics and the actions' effect, are not drowned out by
    # the background. 0: every cell alike.
    motion_weight: float = 0.0
    reward_weight: float = 1.0
    termination_weight: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    num_workers: int = 0
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.noise, dict):  # as a run folder's config.json stores it
            self.noise = from_dict(NoiseSchedule, self.noise, "train.noise")
        lengths = self.window_lengths
        if not (isinstance(lengths, list) and lengths and all(is_integer(n, 1) for n in lengths)):
            raise UserError(f"train.window_lengths must be a non-empty list of integers >= 1, e.g. [8], got {lengths!r}")
        check_fields(self, "train", TRAIN_RULES)
        check_fields(self.noise, "train.noise", NOISE_RULES)
        if self.shortcut_teacher not in ("model", "ema"):
            raise UserError(f"train.shortcut_teacher must be model or ema, got {self.shortcut_teacher!r}")
        if self.shortcut_steps & (self.shortcut_steps - 1):
            raise UserError(f"train.shortcut_steps must be a power of two (1, 2, 4, 8, ...), got {self.shortcut_steps!r}")


@dataclass
class VAEConfig:
    """The AutoencoderKL that ``worldsim train stage=vae`` trains (the ``vae:`` block of ``configs/train.yaml``)."""

    latent_channels: int = 4
    downsample: int = 4  # 2 | 4 | 8
    width: int = 64
    kl_weight: float = 1e-6

    def __post_init__(self):
        if self.downsample not in (2, 4, 8) or isinstance(self.downsample, bool):
            raise UserError(f"vae.downsample must be 2, 4 or 8, got {self.downsample!r}")
        check_fields(self, "vae", VAE_RULES)


# (type, lowest, highest, lowest excluded) of each numeric or bool field; None: no bound.
MODEL_RULES = {
    name: (int, 1, None, False)
    for name in ("patch_size", "temporal_patch_size", "hidden_size", "depth", "num_heads", "text_dim", "text_depth", "text_heads")
}
MODEL_RULES["mlp_ratio"] = (float, 0, None, True)
MODEL_RULES["step_conditioning"] = (bool, None, None, False)
FRACTION = (float, 0, 1, False)
TRAIN_RULES = {
    **{
        name: (int, 1, None, False)
        for name in (
            "batch_size",
            "grad_accum",
            "terminal_repeats",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "rollout_frames",
            "rollout_steps",
            "shortcut_steps",
        )
    },
    **{name: (int, 0, None, False) for name in ("warmup_steps", "num_workers", "seed")},
    **{
        name: FRACTION
        for name in ("min_lr_ratio", "ema_decay", "text_dropout", "action_dropout", "rollout_prob", "shortcut_prob", "head_rollout_prob")
    },
    **{
        name: (float, 0, None, False)
        for name in ("weight_decay", "reward_weight", "termination_weight", "shortcut_weight", "motion_weight")
    },
    **{name: (float, 0, None, True) for name in ("lr", "grad_clip")},
    "images": (bool, None, None, False),
    "bf16": (bool, None, None, False),
    "terminal_flow_reweight": (bool, None, None, False),
}
NOISE_RULES = {
    **{name: FRACTION for name in ("context_prob", "context_noise_max", "uniform_prob", "clean_prob")},
    "logit_mean": (float, None, None, False),
    "logit_std": (float, 0, None, True),
}
VAE_RULES = {"latent_channels": (int, 1, None, False), "width": (int, 1, None, False), "kl_weight": (float, 0, None, False)}

# Spellings from before the noise settings were nested (``train.context_noise_max``): still read on
# the command line and in the config.json of older run folders.
FLAT_NOISE_KEYS = tuple(f.name for f in fields(NoiseSchedule))


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
    """``cls(**values)``, with an error that names unknown keys and the valid ones. A TrainConfig
    also takes the flat noise keys of older run folders (``context_noise_max``: ``noise.context_noise_max``)."""
    values = dict(values)
    if cls is TrainConfig:
        flat = {key: values.pop(key) for key in FLAT_NOISE_KEYS if key in values}
        if flat:
            values["noise"] = {**(values.get("noise") or {}), **flat}
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"unknown {what} key(s) {unknown}; valid keys: {', '.join(names)}")
    return cls(**values)
