"""Simulator speed: frames per second of the KV-cached WorldSimulator per sampler setting, against
the machine's matmul peak, and against full recomputation.

A run times one world model: a trained one (``SpeedGrid.model``: a shipped name, model folder or run
folder; its weights, sizes, frame size, window and sampler steps) or a preset's sizes with random
weights (speed does not depend on training; the window and sampler steps are those of a freshly
trained model). It has two sections:

- ``throughput``: for each sampler setting ``k`` of ``sampler_steps`` (and, always, the model's own
  ``k`` and the 4-step sampler, the two sides of the steps target) and each ``B`` of ``batch_sizes``,
  :class:`~worldsim.simulator.WorldSimulator` stepping ``B`` envs at the model's own window. Its DiT
  passes per frame are counted (a hook on the DiT's forward during one step, :func:`passes_per_frame`),
  its FLOPs estimated from them (:func:`forward_flops`), and beside it, in the same rounds, a plain
  matmul of the DiT's widest layer ``[B * N, D] x [D, mlp_ratio * D]`` (N tokens per frame) shows
  what the machine does at best with such shapes at the run's thread count. The roofline ratio is
  the step's achieved FLOP/s over the matmul's.
- ``window``: for each ``B`` of ``window_batch_sizes``, ``k`` of ``sampler_steps`` and ``W`` of
  ``windows`` (``[]``: none), two engines without guidance (and with ``compile`` / ``bf16`` the
  cache also compiled and in bfloat16, each setting its own growth target):

  - ``cache``: :class:`~worldsim.simulator.WorldSimulator`. A step denoises only the new frame's
    tokens against the cached keys and values of the last ``W`` frames (``k`` passes), then commits
    the frame's keys and values (one more pass).
  - ``recompute``: :class:`Recompute`, the same simulator without a cache. For each of the ``k``
    steps of the same sampler it runs the DiT over the last ``W`` frames plus the new one, attention
    limited to ``W`` frames back, as an uncached frame-by-frame generator must.

Every engine starts from a full window of context frames and decodes every frame it makes, so a
step is what an env sees. The cases of one group (throughput: one ``(device, B)``; window: one
``(device, B, k)``) are built together and timed in rounds, each round running every case once
(order reversed every other round), so that other work on the machine slows both sides of a ratio
alike. A case's time is the median of its rounds; a ratio is the median of its per-round ratios. A
case whose estimated time (FLOPs over a measured throughput) exceeds the budget is skipped and
recorded with the reason.

Targets, reported as PASS/FAIL and never asserted (:data:`TARGETS`): at ``B=64`` the model's own
sampler steps (the fewest timed, for a model whose own are 4) make at least 3x the frames/s of the
4-step sampler; at ``B=64`` the step
achieves at least 60% of the matmul's FLOP/s; with the cache, step time grows at most 2x from
``W=4`` to ``W=64`` (same ``B``, ``k`` and setting); the cache is at least 4x faster than recomputation at ``W=16``.
Fidelity is not measured here: the report names the commands that measure it for each setting.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
from omegaconf import OmegaConf

from worldsim.atomic import atomic_write, write_table
from worldsim.errors import UserError, check_bool, check_integer, is_integer, is_number
from worldsim.model.action_space import ActionSpace
from worldsim.model.codec import VAECodec, small_vae
from worldsim.model.denoiser import Denoiser
from worldsim.model.sampler import Sampler, check_sampling, end_level
from worldsim.model.world_model import WorldModel, WorldModelConfig, load
from worldsim.simulator import WorldSimulator
from worldsim.training.config import ModelConfig, TrainConfig, from_dict
from worldsim.training.loop import build_world_model

MODES = ("cache", "recompute")  # the window section's engines; the throughput section times the cache beside a matmul
PRESETS = ("tiny", "small", "base")
TARGET_BATCH = 64  # the B of the throughput targets
REFERENCE_STEPS = 4  # the steps target's reference: the 4-step sampler (5 passes per frame)
STEPS_GAIN_MIN = 3.0  # target: frames/s of the model's own k (or the fewest timed) over k = REFERENCE_STEPS, at least this
ROOFLINE_MIN = 0.6  # target: the step's achieved FLOP/s over the matmul's, at least this
GROWTH_WINDOWS, GROWTH_LIMIT = (4, 64), 2.0  # target: cached step time at W=64 over W=4 at most this
SPEEDUP_WINDOW, SPEEDUP_MIN = 16, 4.0  # target: recompute step time over cached at W=16 at least this


@dataclass
class SpeedGrid:
    """What to time and how long (``configs/bench/speed.yaml``'s grid keys, through :class:`worldsim.bench.config.SpeedConfig`).

    Checked as it is made: a bad list or number is a one-line :class:`~worldsim.errors.UserError`.
    """

    model: str | None = None  # a trained world model (shipped name, model or run folder); None: random weights
    batch_sizes: list[int] = field(default_factory=lambda: [1, 16, 64])  # throughput: B
    sampler_steps: list[int] = field(default_factory=lambda: [1, 2, 4])  # the sampler settings k (both sections)
    guidance: float = 1.0  # throughput's classifier-free guidance (the window section has none: its baseline has none)
    windows: list[int] = field(default_factory=lambda: [4, 16, 64])  # window section: W ([]: no window section)
    window_batch_sizes: list[int] = field(default_factory=lambda: [1, 8])  # window section: B
    repeats: int = 5  # timed rounds per case; its time is their median
    warmup: int = 2  # steps per case before the rounds (at least 1: the last one sets their length)
    min_seconds: float = 0.5  # a round runs a case for at least this long (whole steps)
    max_seconds: float = 120.0  # a case estimated (or, after warmup, measured) to need longer is skipped
    seed: int = 0
    # Throughput: also time the model's own k with its cached passes compiled (SpacetimeDiT.compile_passes);
    # window: the cache at every W and k so too.
    compile: bool = False
    # The same in bfloat16 (WorldSimulator precision), compiled too with compile.
    bf16: bool = False

    def __post_init__(self) -> None:
        self.batch_sizes = counts("batch_sizes", self.batch_sizes, "[1, 16, 64]")
        self.sampler_steps = counts("sampler_steps", self.sampler_steps, "[1, 2, 4]")
        self.windows = counts("windows", self.windows, "[4, 16, 64], or [] for no window section", allow_empty=True)
        self.window_batch_sizes = counts("window_batch_sizes", self.window_batch_sizes, "[1, 8]")
        check_sampling(None, self.guidance)
        self.guidance = float(self.guidance)
        check_integer("repeats", self.repeats)
        check_integer("warmup", self.warmup, note="its last step sets the round length")
        check_integer("seed", self.seed, low=0)
        check_bool("compile", self.compile)
        check_bool("bf16", self.bf16)
        if not is_number(self.min_seconds, 0):
            raise UserError(f"min_seconds must be a finite number >= 0, got {self.min_seconds!r}")
        if not is_number(self.max_seconds, 0, open_low=True):
            raise UserError(f"max_seconds must be a finite number > 0, got {self.max_seconds!r}")
        if self.model is not None and not (isinstance(self.model, str) and self.model):
            raise UserError(f"model must be a shipped name, model folder or run folder, got {self.model!r}")


def counts(name: str, values: object, example: str, allow_empty: bool = False) -> list[int]:
    """``values`` as a list of ints if it is a list of distinct integers >= 1 (empty only if
    ``allow_empty``), else a UserError that names ``name``, what it takes and the bad value."""
    ok = isinstance(values, Sequence) and not isinstance(values, str) and (allow_empty or len(values) > 0)
    if not (ok and all(is_integer(v, 1) for v in values) and len(set(values)) == len(values)):  # type: ignore[arg-type]
        kind = "a list" if allow_empty else "a non-empty list"
        raise UserError(f"{name} must be {kind} of distinct integers >= 1, e.g. {example}; got {values!r}")
    return [int(v) for v in values]  # type: ignore[union-attr]


FULL = SpeedGrid()
# The old quick grid (tests/test_configs.py holds it): both window targets in a few minutes on two
# busy cores. The throughput targets need B=64 and a k below the model's: add batch_sizes=[1,16,64] sampler_steps=[1,2,4].
QUICK = SpeedGrid(batch_sizes=[1, 8], windows=[4, 16, 64], sampler_steps=[4], repeats=3, min_seconds=0.25, max_seconds=40.0)


# ------------------------------------------------------------------------------------- the model


def preset(name: str) -> ModelConfig:
    """The sizes of a timing preset (:data:`PRESETS`), ``configs/model/<name>.yaml``."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return model_sizes(name)


def model_sizes(name: str) -> ModelConfig:
    """The sizes of ``configs/model/<name>.yaml`` (read from the installed package), e.g. ``cpu``: the shipped models'."""
    return model_config(OmegaConf.create(resources.files("worldsim.configs").joinpath("model", f"{name}.yaml").read_text()))


def model_config(cfg) -> ModelConfig:
    """A ModelConfig from a model preset's DictConfig; a missing ``vae`` (``???``) becomes None."""
    values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    values.pop("defaults", None)  # the preset's schema (base_model: ModelConfig itself)
    if OmegaConf.is_missing(cfg, "vae"):
        values["vae"] = None
    return from_dict(ModelConfig, values, "model")


def preset_name(sizes: ModelConfig) -> str:
    """The preset whose sizes these are, or "custom"."""
    return next((name for name in PRESETS if replace(preset(name), vae=None) == replace(sizes, vae=None)), "custom")


def build_model(sizes: ModelConfig, frame_size: tuple[int, int], window: int, seed: int) -> WorldModel:
    """A freshly initialised world model for a 5-action discrete world, trained on ``window + 1``
    frames. A ``vae`` codec without a trained VAE gets an untrained one of the training defaults."""
    world = WorldModelConfig(frame_size=tuple(frame_size), action_space=ActionSpace("discrete", n=5), context_frames=window + 1)
    torch.manual_seed(seed)
    if sizes.codec != "vae" or sizes.vae is not None:
        return build_world_model(sizes, world).eval()
    with tempfile.TemporaryDirectory() as folder:
        VAECodec(small_vae()).save_pretrained(Path(folder))
        return build_world_model(replace(sizes, vae=folder), world).eval()


def timed_model(sizes: ModelConfig, frame_size: tuple[int, int], grid: SpeedGrid) -> WorldModel:
    """The model a run times: ``grid.model`` (its trained weights) at ``frame_size``, or fresh
    weights of ``sizes`` with the window (``TrainConfig``'s) and sampler steps (``WorldModelConfig``'s)
    that ``worldsim train`` gives a model by default."""
    if grid.model is None:
        return build_model(sizes, frame_size, max(TrainConfig().window_lengths) - 1, grid.seed)
    model = load(grid.model).eval()
    model.config.frame_size = tuple(frame_size)  # this run's own copy: the engines make frames of this size
    return model


def own_window(model: WorldModel) -> int:
    """The window a simulator of ``model`` keeps by default: its training window - 1."""
    return max(1, model.config.context_frames - 1)


# -------------------------------------------------------------------------------- the baseline


class Recompute:
    """B envs generated without a KV cache: each keeps its last ``W`` frames' latents and, for each
    of the ``k`` sampler steps, runs the DiT over them plus the new frame (attention limited to
    ``W`` frames back). The interface and noise order are :class:`WorldSimulator`'s, so from the
    same seed it makes the same frames while an env's history fits in its window; later the
    cache's keys of the oldest frame also carry what that frame saw before (their layers look
    ``W`` frames further back each), which a recomputation of ``W`` frames has forgotten.
    """

    def __init__(
        self, model: WorldModel, batch_size: int, device, window: int, sampler_steps: int, seed: int = 0, commit_pass: bool = True
    ):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size, self.window = batch_size, window
        self.level = model.config.context_noise
        self.commit_pass = commit_pass
        self.sampler = Sampler(sampler_steps, end=end_level(commit_pass, self.level, sampler_steps))
        self.denoiser = Denoiser(model.dit)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        # The simulator cross-attends to the empty prompt's tokens, its keys and values made once
        # per prompt: so does this.
        with torch.no_grad():
            text, mask = model.text_encoder([""] * batch_size)
            self.text = model.dit.text_context(text.to(self.device), mask.to(self.device))
        self.time = 0  # temporal position of the next frame, as in the simulator

    @torch.no_grad()
    def reset(self, context: torch.Tensor, actions: torch.Tensor) -> None:
        """Every env restarts from uint8 ``context [B, T, H, W, 3]`` (the last ``W`` frames are
        kept) and ``actions [B, T]``, the action taken at each context frame."""
        keep = min(context.shape[1], self.window)
        latents = self.model.codec.encode(context[:, -keep:].to(self.device))
        self.latents = (1 - self.level) * latents + self.level * self._noise(latents.shape)  # [B, T, C, h, w]
        actions = actions[:, -keep:].to(self.device)
        self.actions = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)  # frame j came from action j - 1
        self.taken = torch.ones(actions.shape, dtype=torch.bool, device=self.device)
        self.taken[:, 0] = False
        self.first = self.time - keep  # temporal position of the first kept frame
        self.before = None  # the frame before the first kept one and its level, once one has been dropped

    @torch.no_grad()
    def step(self, actions: torch.Tensor) -> torch.Tensor:
        """Generates every env's next frame after ``actions [B]``; returns its latents ``[B, 1, C, h, w]``
        (the uint8 frames ``[B, H, W, 3]`` are in ``self.frames``)."""
        b, t = self.latents.shape[:2]
        actions = torch.cat([self.actions, actions.to(self.device).reshape(b, 1)], dim=1)
        taken = torch.cat([self.taken, torch.ones(b, 1, dtype=torch.bool, device=self.device)], dim=1)
        context_sigmas = torch.full((b, t), self.level, device=self.device)

        last_input = []

        def velocity(x: torch.Tensor, sigma: float, step: float, conditioned: bool) -> torch.Tensor:  # no guidance: always conditioned
            sigmas = torch.cat([context_sigmas, torch.full((b, 1), sigma, device=self.device)], dim=1)
            latents = torch.cat([self.latents, x], dim=1)
            out = self.denoiser(
                latents, sigmas, actions, taken, self.text, before=self.before, block_offset=self.first, window=self.window, step=step
            )
            last_input[:] = [x]
            return out.velocity[:, -1:]

        x = self.sampler.sample(velocity, self._noise((b, 1, *self.latents.shape[2:])))
        # As the simulator commits: fresh noise for its commit pass, or the frame as its last pass saw it.
        committed = (1 - self.level) * x + self.level * self._noise(x.shape) if self.commit_pass else last_input[0]
        latents = torch.cat([self.latents, committed], dim=1)
        if latents.shape[1] > self.window:
            self.before = latents[:, -self.window - 1], torch.full((b,), self.level, device=self.device)
        self.latents = latents[:, -self.window :]
        self.actions, self.taken = actions[:, -self.window :], taken[:, -self.window :]
        self.first += t + 1 - self.latents.shape[1]
        self.time += 1
        self.frames = self.model.codec.decode(x)[:, 0]
        return x

    def _noise(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)


def commits(own_commit: bool, steps: int) -> bool:
    """Whether a model whose own setting is ``own_commit`` runs a commit pass at ``steps`` sampler
    steps: one step always needs it (:func:`~worldsim.model.sampler.end_level`)."""
    return own_commit or steps == 1


def make_engine(
    mode: str,
    model: WorldModel,
    batch: int,
    window: int,
    steps: int,
    device: str,
    seed: int,
    guidance: float = 1.0,
    commit_pass: bool = True,
    precision: str = "float32",
):
    """A ``cache`` (WorldSimulator, with ``guidance`` and ``precision``) or ``recompute`` engine
    (neither) with a full window of random context, with or without a commit pass."""
    if mode == "cache":
        engine = WorldSimulator(
            model,
            batch,
            device,
            window=window,
            sampler_steps=steps,
            guidance=guidance,
            seed=seed,
            commit_pass=commit_pass,
            precision=precision,
        )
    else:
        engine = Recompute(model, batch, device, window=window, sampler_steps=steps, seed=seed, commit_pass=commit_pass)
    rng = torch.Generator().manual_seed(seed)
    context = torch.randint(0, 256, (batch, window, *model.config.frame_size, 3), dtype=torch.uint8, generator=rng)
    actions = torch.randint(0, 5, (batch, window), generator=rng)
    if isinstance(engine, WorldSimulator):
        engine.reset(torch.ones(batch, dtype=torch.bool), context, actions)
    else:
        engine.reset(context, actions)
    return engine


def matmul(rows: int, hidden: int, mlp_ratio: float, device: str) -> Callable[[], torch.Tensor]:
    """A plain float32 matmul of the DiT's widest layer over ``rows`` tokens, ``[rows, hidden] x
    [hidden, mlp_ratio * hidden]`` into a preallocated output: what the machine does at best with
    the shapes of a step (:func:`matmul_flops` FLOPs a call)."""
    rng = torch.Generator().manual_seed(0)
    a = torch.randn(rows, hidden, generator=rng).to(device)
    b = torch.randn(hidden, int(mlp_ratio * hidden), generator=rng).to(device)
    return partial(torch.mm, a, b, out=torch.empty(rows, b.shape[1], device=device))


def matmul_flops(rows: int, hidden: int, mlp_ratio: float) -> float:
    return 2.0 * rows * hidden * int(mlp_ratio * hidden)


# ------------------------------------------------------------------------------- passes, estimates


def count_passes(dit: torch.nn.Module, step: Callable[[], object]) -> int:
    """Runs ``step`` once and returns how many times it ran ``dit`` (a hook on its forward counts)."""
    calls = 0

    def count(module: torch.nn.Module, args: object) -> None:
        nonlocal calls
        calls += 1

    handle = dit.register_forward_pre_hook(count)
    try:
        step()
    finally:
        handle.remove()
    return calls


def passes_per_frame(
    model: WorldModel, mode: str, steps: int, guidance: float, device: str, seed: int = 0, commit_pass: bool = True
) -> int:
    """DiT passes per frame of a ``mode`` engine with ``steps`` sampler steps, ``guidance`` and
    ``commit_pass``, counted on one step of one env (the engines make as many passes whatever B and W)."""
    engine = make_engine(mode, model, 1, 1, steps, device, seed, guidance, commit_pass)
    return count_passes(model.dit, partial(engine.step, torch.zeros(1, dtype=torch.long)))


def forward_flops(batch: int, queries: int, keys: int, text_tokens: int, hidden: int, depth: int, mlp_ratio: float) -> float:
    """Approximate FLOPs of one DiT pass: ``queries`` tokens per env attending to ``keys`` tokens
    and ``text_tokens`` text tokens. The text's keys and values are not counted: every engine here
    makes them once per prompt, not per pass. A one-token text (the empty prompt) costs one
    projection per env, as the network computes it (``CrossAttention.one_token``)."""
    linear = (4 + 2 * mlp_ratio) * hidden**2 * queries  # qkv and proj, mlp
    if text_tokens == 1:
        cross = hidden**2  # the projected value, once
    else:
        cross = 2 * hidden**2 * queries + 2 * queries * text_tokens * hidden  # q and proj; scores and weighted sums
    attention = 2 * queries * keys * hidden  # self-attention's scores and weighted sums
    return 2 * batch * depth * (linear + cross + attention)


def always_timed(own_steps: int) -> str:
    """The sentence naming the sampler settings every run times: the model's own and the reference."""
    if own_steps == REFERENCE_STEPS:
        return f"The model's own k = {own_steps} (the reference) is always timed."
    return f"The model's own k = {own_steps} and k = {REFERENCE_STEPS} are always timed."


def step_flops(mode: str, batch: int, window: int, passes: int, tokens: int, model: WorldModel) -> float:
    """Approximate FLOPs of one step of ``batch`` envs (``tokens`` per frame) that runs the DiT
    ``passes`` times: over the new frame's tokens against the cache, or (``recompute``) over the
    last ``window`` frames and the new one."""
    dit = model.dit.config
    text = model.text_encoder([""])[1].shape[1]  # the empty prompt's tokens, as the runs use
    size = {"text_tokens": text, "hidden": dit.hidden_size, "depth": dit.depth, "mlp_ratio": dit.mlp_ratio}
    queries = tokens if mode == "cache" else (window + 1) * tokens
    return passes * forward_flops(batch, queries, (window + 1) * tokens, **size)


def case_flops(case: Case, model: WorldModel) -> float:
    """Approximate FLOPs of one call of a case: an engine's step, or the matmul."""
    dit, tokens = model.dit.config, frame_tokens(model)
    if case.mode == "matmul":
        return matmul_flops(case.batch * tokens, dit.hidden_size, dit.mlp_ratio)
    return step_flops(case.mode, case.batch, case.window, case.passes, tokens, model)


def step_bytes(mode: str, batch: int, window: int, tokens: int, model: WorldModel) -> float:
    """Approximate memory of an engine: its cache and one pass's activations (float32)."""
    dit = model.dit.config
    queries = tokens if mode == "cache" else (window + 1) * tokens
    cache = 2 * dit.depth * batch * window * tokens * dit.hidden_size if mode == "cache" else 0
    activations = batch * (queries + window * tokens) * dit.hidden_size * (4 + dit.mlp_ratio)
    return 4 * (cache + activations)


def free_bytes(device: str) -> float:
    """Memory available on ``device`` now."""
    if device.startswith("cuda"):
        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def throughput(model: WorldModel, device: str, batch: int, seed: int) -> float:
    """Measured FLOP/s of the DiT on ``device``: median of 3 passes over 5 frames of ``batch`` envs
    (after one untimed, which counts them), a scale for the time estimates."""
    engine = make_engine("recompute", model, batch, 4, 1, device, seed)
    step = partial(engine.step, torch.zeros(batch, dtype=torch.long))
    passes = count_passes(model.dit, step)
    seconds = statistics.median(time_steps(step, 1, device) for _ in range(3))
    return step_flops("recompute", batch, 4, passes, frame_tokens(model), model) / seconds


def frame_tokens(model: WorldModel) -> int:
    """Tokens per frame of ``model`` at its frame size."""
    d, p = model.codec.downsample, model.dit.config.patch_size
    height, width = model.config.frame_size
    return (height // d // p) * (width // d // p)


# -------------------------------------------------------------------------------------- timing


def time_steps(step: Callable[[], object], n: int, device: str) -> float:
    """Seconds per step of ``n`` calls of ``step`` (the device synchronised around them)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / n


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


@dataclass
class Case:
    """One engine (or the matmul) at one setting, and what timing it gave (seconds per call of each round)."""

    device: str
    mode: str  # cache, recompute or matmul
    batch: int
    window: int  # 0 for the matmul
    steps: int  # sampler steps k; 0 for the matmul
    guidance: float = 1.0
    commit_pass: bool = True  # False: the sampler's last pass commits the frame (k passes, not k + 1)
    compiled: bool = False  # the model's cached passes compiled (SpacetimeDiT.compile_passes)
    precision: str = "float32"  # the simulator's (float32 or bfloat16 autocast)
    passes: int = 0  # DiT passes per step, counted (passes_per_frame); 0 for the matmul
    flops: float = 0.0  # estimated FLOPs per call
    estimated_s: float = 0.0  # estimated seconds for warmup and rounds
    skipped: str | None = None  # why it was not timed
    steps_per_round: int = 0
    rounds: list[float] = field(default_factory=list)

    @property
    def plain(self) -> bool:
        """Eager and in float32: the engine as the steps target compares it (and every matmul)."""
        return not self.compiled and self.precision == "float32"


def count(cases: list[Case], model: WorldModel, seed: int, counted: dict[tuple, int]) -> None:
    """Sets each engine case's ``passes``, counted once per (device, mode, k, guidance) in ``counted``."""
    for case in cases:
        if case.mode == "matmul":
            continue
        key = (case.device, case.mode, case.steps, case.guidance, case.commit_pass)
        if key not in counted:
            counted[key] = passes_per_frame(model, case.mode, case.steps, case.guidance, case.device, seed, case.commit_pass)
        case.passes = counted[key]


def plan(cases: list[Case], model: WorldModel, grid: SpeedGrid, flops_per_s: float) -> None:
    """Estimates each case's time and memory; marks those over the budget as skipped."""
    for case in cases:
        case.flops = case_flops(case, model)
        per_step = case.flops / flops_per_s
        case.estimated_s = per_step * (grid.warmup + grid.repeats * max(1, math.ceil(grid.min_seconds / per_step)))
        if case.mode == "matmul":
            continue  # a few MB, a fraction of a step
        memory, free = step_bytes(case.mode, case.batch, case.window, frame_tokens(model), model), free_bytes(case.device)
        if case.estimated_s > grid.max_seconds:
            case.skipped = f"estimated {case.estimated_s:.0f} s ({per_step:.2f} s/step) > budget {grid.max_seconds:.0f} s"
        elif memory > free / 2:
            case.skipped = f"estimated {memory / 1e9:.1f} GB > half the free {free / 1e9:.1f} GB"


def runner(case: Case, model: WorldModel, seed: int) -> Callable[[], object]:
    """One call of a case: an engine's step of every env, or the matmul. A ``compiled`` case runs
    a copy of ``model`` whose cached passes are compiled, made once per model."""
    if case.mode == "matmul":
        dit = model.dit.config
        return matmul(case.batch * frame_tokens(model), dit.hidden_size, dit.mlp_ratio, case.device)
    if case.compiled:
        model = compiled_copy(model)
    engine = make_engine(
        case.mode, model, case.batch, case.window, case.steps, case.device, seed, case.guidance, case.commit_pass, case.precision
    )
    actions = torch.randint(0, 5, (case.batch,), generator=torch.Generator().manual_seed(seed)).to(case.device)
    return partial(engine.step, actions)


COMPILED: dict[str, WorldModel] = {}  # the run's eager model ("eager") and its compiled copy ("compiled")


def compiled_copy(model: WorldModel) -> WorldModel:
    """A copy of ``model`` with its DiT's cached passes compiled (:meth:`SpacetimeDiT.compile_passes`),
    made once per run: held beside the model it copies, so that another run's model, even one
    at the same address, gets its own."""
    if COMPILED.get("eager") is not model:
        twin = copy.deepcopy(model)
        twin.dit.compile_passes()
        COMPILED.update(eager=model, compiled=twin)
    return COMPILED["compiled"]


def measure_group(cases: list[Case], model: WorldModel, grid: SpeedGrid, log: Callable[[str], None]) -> None:
    """Times the cases of one group in interleaved rounds (see the module docstring)."""
    runners = []
    for case in cases:
        if case.skipped:
            continue
        step = runner(case, model, grid.seed)
        for _ in range(grid.warmup - 1):
            step()
        first = time_steps(step, 1, case.device)  # the last warmup step sets the round length
        if first * grid.repeats > grid.max_seconds:  # the estimate missed (it counts FLOPs, not memory traffic)
            case.skipped = f"measured {first:.2f} s/step in warmup: {grid.repeats} rounds > budget {grid.max_seconds:.0f} s"
            continue
        most = 10_000 if case.mode == "matmul" else 100  # a matmul of one env's tokens takes microseconds
        case.steps_per_round = max(1, min(most, math.ceil(grid.min_seconds / max(first, 1e-9))))
        runners.append((case, step))
    for round_ in range(grid.repeats):
        for case, step in runners if round_ % 2 == 0 else runners[::-1]:
            case.rounds.append(time_steps(step, case.steps_per_round, case.device))
    for case, _ in runners:
        log(f"{describe(case)}: {1e3 * statistics.median(case.rounds):9.3f} ms/call")


def describe(case: Case) -> str:
    if case.mode == "matmul":
        return f"{case.device} matmul    B={case.batch:<3d}"
    guidance = f" g={case.guidance:g}" if case.guidance != 1 else ""
    commit = "" if case.commit_pass else " no-commit-pass"
    compiled = " compiled" if case.compiled else ""
    bf16 = " bf16" if case.precision == "bfloat16" else ""
    return f"{case.device} {case.mode:9s} B={case.batch:<3d} W={case.window:<3d} k={case.steps}{guidance}{commit}{compiled}{bf16}"


def run_speed(sizes: ModelConfig, frame_size: tuple[int, int], devices: list[str], grid: SpeedGrid, log=print) -> dict:
    """Times both sections on each device; returns the report (rows, targets, machine) as a dict.

    ``sizes``: the sizes to time with random weights; when ``grid.model`` names a trained model,
    its own (as :func:`~worldsim.training.loop.sizes_of` gives them), which the report names while
    the run times its weights. ``frame_size``: ``(H, W)`` of the frames made.
    """
    start, load_before = time.perf_counter(), os.getloadavg()
    model = timed_model(sizes, frame_size, grid)
    own_steps, window, own_commit = model.config.sampler_steps, own_window(model), model.config.commit_pass
    # Every k as the model samples (its commit pass or none; k = 1 always has one), and the steps
    # target's reference: the 4-step sampler with its commit pass.
    settings = sorted({(k, commits(own_commit, k)) for k in {*grid.sampler_steps, own_steps, REFERENCE_STEPS}} | {(REFERENCE_STEPS, True)})
    fast, slow, throughputs, counted = [], [], {}, {}
    for device in devices:
        # A batch of 8 keeps the CPU calibration short; a GPU needs a large batch to show its speed.
        largest = max(grid.batch_sizes + grid.window_batch_sizes)
        throughputs[device] = throughput(model, device, largest if device.startswith("cuda") else min(8, largest), grid.seed)
        log(f"{device}: the DiT runs at {throughputs[device] / 1e9:.1f} GFLOP/s (calibration)")
        for batch in grid.batch_sizes:
            group = [Case(device, "cache", batch, window, k, grid.guidance, commit) for k, commit in settings]
            own = (device, "cache", batch, window, own_steps, grid.guidance, commits(own_commit, own_steps))
            group += [Case(*own, compiled=compiled, precision=precision) for compiled, precision in variants(grid)]
            group.append(Case(device, "matmul", batch, 0, 0))
            time_group(f"{device} throughput B={batch}", group, model, grid, throughputs[device], counted, log)
            fast += group
        for batch in grid.window_batch_sizes if grid.windows else []:
            for steps in grid.sampler_steps:
                commit = commits(own_commit, steps)
                group = [Case(device, mode, batch, w, steps, commit_pass=commit) for w in grid.windows for mode in MODES]
                group += [
                    Case(device, "cache", batch, w, steps, commit_pass=commit, compiled=compiled, precision=precision)
                    for compiled, precision in variants(grid)
                    for w in grid.windows
                ]
                time_group(f"{device} window B={batch} k={steps}", group, model, grid, throughputs[device], counted, log)
                slow += group
    matmuls = {(c.device, c.batch): c for c in fast if c.mode == "matmul"}
    return {
        "model": {
            "name": grid.model or preset_name(sizes),
            "trained": grid.model is not None,
            "preset": preset_name(sizes),
            "sizes": asdict(sizes),
            "parameters": sum(p.numel() for p in model.dit.parameters()),
            "tokens_per_frame": frame_tokens(model),
            "sampler_steps": own_steps,
            "commit_pass": own_commit,
            "window": window,
        },
        "frame_size": list(model.config.frame_size),
        "grid": asdict(grid),
        "throughput": [throughput_row(c, matmuls[c.device, c.batch]) for c in fast if c.mode == "cache"],
        "matmul": [matmul_row(c, model) for c in matmuls.values()],
        "rows": [row(case) for case in slow],
        "targets": throughput_targets(fast, own_steps, own_commit) + window_targets(slow),
        "machine": machine(devices, throughputs, load_before),
        "seconds": round(time.perf_counter() - start, 1),
    }


def variants(grid: SpeedGrid) -> list[tuple[bool, str]]:
    """The (compiled, precision) settings a run times beside eager float32: compiled with
    ``compile``, bfloat16 with ``bf16``, and both with both."""
    both = [(True, "bfloat16")] if grid.compile and grid.bf16 else []
    return [(True, "float32")] * grid.compile + [(False, "bfloat16")] * grid.bf16 + both


def time_group(label: str, cases: list[Case], model: WorldModel, grid: SpeedGrid, flops_per_s: float, counted: dict, log) -> None:
    """Counts the passes of one group's cases, plans and times them, logging what it does and skips."""
    count(cases, model, grid.seed, counted)
    plan(cases, model, grid, flops_per_s)
    planned = sum(c.estimated_s for c in cases if not c.skipped)
    log(f"{label}: timing {sum(not c.skipped for c in cases)} cases (estimated {planned:.0f} s)")
    measure_group(cases, model, grid, log)
    for case in cases:
        if case.skipped:
            log(f"{describe(case)}: skipped ({case.skipped})")


def row(case: Case) -> dict:
    """An engine case as a JSON row; a timed one carries steps/s, frames/s per env and in total, ms/step."""
    keys = ("device", "mode", "batch", "window", "steps", "guidance", "commit_pass", "compiled", "precision", "passes", "skipped")
    keys += ("steps_per_round",)
    out = {key: getattr(case, key) for key in keys}
    out["estimated_s"] = round(case.estimated_s, 2)
    if case.skipped:
        return out
    seconds = statistics.median(case.rounds)
    out.update(
        ms_per_step=round(1e3 * seconds, 3),
        steps_per_s=round(1 / seconds, 3),
        frames_per_s_per_env=round(1 / seconds, 3),  # every step makes one frame per env
        frames_per_s=round(case.batch / seconds, 3),
        rounds_ms=[round(1e3 * s, 3) for s in case.rounds],
    )
    return out


def throughput_row(case: Case, matmul: Case) -> dict:
    """A throughput case's row, with its achieved GFLOP/s, the matmul's of its B and their ratio."""
    out = row(case)
    if case.skipped or matmul.skipped or case.precision != "float32":  # the matmul is float32's peak
        return out
    out.update(
        gflops=round(case.flops / statistics.median(case.rounds) / 1e9, 2),
        matmul_gflops=round(matmul.flops / statistics.median(matmul.rounds) / 1e9, 2),
        roofline=round(roofline(case, matmul), 4),
    )
    return out


def matmul_row(case: Case, model: WorldModel) -> dict:
    dit = model.dit.config
    rows = case.batch * frame_tokens(model)
    out = {"device": case.device, "batch": case.batch, "shape": [rows, dit.hidden_size, int(dit.mlp_ratio * dit.hidden_size)]}
    out.update(skipped=case.skipped, calls_per_round=case.steps_per_round)
    if not case.skipped:
        seconds = statistics.median(case.rounds)
        out.update(ms_per_call=round(1e3 * seconds, 4), gflops=round(case.flops / seconds / 1e9, 2))
        out["rounds_ms"] = [round(1e3 * s, 4) for s in case.rounds]
    return out


# ------------------------------------------------------------------------------------- targets


class Target(NamedTuple):
    text: str  # what it asks
    limit: float
    at_most: bool  # it passes with a ratio <= limit (else >= limit)
    needs: str  # what a run must time to decide it


TARGETS = {
    "steps": Target(
        f"at B={TARGET_BATCH}, the model's own sampler_steps (for a model whose own are {REFERENCE_STEPS}, the fewest "
        f"timed) make at least {STEPS_GAIN_MIN:g}x the frames/s of the {REFERENCE_STEPS}-step sampler",
        STEPS_GAIN_MIN,
        False,
        f"B={TARGET_BATCH} in batch_sizes, and a k below {REFERENCE_STEPS} (the model's own or in sampler_steps)",
    ),
    "fastest": Target(
        f"at B={TARGET_BATCH}, the fastest timed setting of the model's own sampler (compiled passes, bfloat16) makes at "
        f"least {STEPS_GAIN_MIN:g}x the frames/s of the eager float32 {REFERENCE_STEPS}-step sampler (its fidelity: "
        "`benchmarks/results/precision/`)",
        STEPS_GAIN_MIN,
        False,
        f"B={TARGET_BATCH} in batch_sizes, and compile=true or bf16=true",
    ),
    "roofline": Target(
        f"achieved GFLOP/s of the DiT step >= {ROOFLINE_MIN:.0%} of the matmul peak measured in the same rounds, at B={TARGET_BATCH}",
        ROOFLINE_MIN,
        False,
        f"B={TARGET_BATCH} in batch_sizes",
    ),
    "growth": Target(
        f"with the cache, step time grows at most {GROWTH_LIMIT:g}x from W={GROWTH_WINDOWS[0]} to W={GROWTH_WINDOWS[1]} "
        "(same B, k and setting: eager or compiled, float32 or bf16)",
        GROWTH_LIMIT,
        True,
        f"W={GROWTH_WINDOWS[0]} and W={GROWTH_WINDOWS[1]} in windows",
    ),
    "speedup": Target(
        f"the cache is at least {SPEEDUP_MIN:g}x faster than recomputation at W={SPEEDUP_WINDOW} (same B, k)",
        SPEEDUP_MIN,
        False,
        f"W={SPEEDUP_WINDOW} in windows",
    ),
}


def paired_ratio(numerator: Case, denominator: Case) -> float:
    """The median over rounds of the ratio of two cases' step times (timed side by side)."""
    return statistics.median(a / b for a, b in zip(numerator.rounds, denominator.rounds))


def roofline(case: Case, matmul: Case) -> float:
    """The median over rounds of a case's achieved FLOP/s over the matmul's (timed side by side)."""
    return statistics.median((case.flops / a) / (matmul.flops / b) for a, b in zip(case.rounds, matmul.rounds))


def result(name: str, device: str, batch: int, steps: int, ratio: float, flops_ratio: float | None, **extra) -> dict:
    """A target's figures at one (device, B, k) and its verdict."""
    target = TARGETS[name]
    out = {"target": name, "device": device, "batch": batch, "steps": steps, **extra, "ratio": round(ratio, 4)}
    out["flops_ratio"] = None if flops_ratio is None else round(flops_ratio, 3)  # None: not a ratio of two steps
    return {**out, "limit": target.limit, "pass": ratio <= target.limit if target.at_most else ratio >= target.limit}


def throughput_targets(cases: list[Case], own_steps: int, own_commit: bool = True) -> list[dict]:
    """The steps and roofline targets for every device where their cases at B=64 were timed: the
    steps target compares the model's own sampler (its k, with or without its commit pass) with
    the 4-step sampler and its commit pass."""
    # The plain engines and the matmuls (a compiled or bf16 case of the same k must not stand for its engine).
    timed = {(c.device, c.mode, c.batch, c.steps, c.commit_pass): c for c in cases if c.plain and not c.skipped}
    results = []
    for device in sorted({c.device for c in cases}):
        at_target = [c for c in cases if (c.device, c.mode, c.batch) == (device, "cache", TARGET_BATCH)]
        engines = sorted((c for c in at_target if c.plain), key=lambda c: c.steps)  # the steps target compares samplers
        reference = timed.get((device, "cache", TARGET_BATCH, REFERENCE_STEPS, True))
        fast = next((c for c in engines if (c.steps, c.commit_pass) == (own_steps, commits(own_commit, own_steps))), None)
        if own_steps >= REFERENCE_STEPS and own_commit:  # the fewest timed
            fast = min(engines, key=lambda c: c.steps, default=None)
        fast = None if fast is None or fast.skipped else fast
        if reference and fast and fast is not reference:
            ratio = paired_ratio(reference, fast)  # step time of the 4-step sampler over the fast k: their frames/s the other way round
            flops = reference.flops / fast.flops
            results.append(
                result(
                    "steps", device, TARGET_BATCH, fast.steps, ratio, flops, reference_steps=REFERENCE_STEPS, commit_pass=fast.commit_pass
                )
            )
        # The model's own k as fast as this run makes it (compiled, bf16) against the same reference.
        variants = [c for c in at_target if not (c.skipped or c.plain) and c.steps == own_steps]
        fastest = min(variants, key=lambda c: statistics.median(c.rounds), default=None)
        if reference and fastest:
            extra = dict(commit_pass=fastest.commit_pass, compiled=fastest.compiled, precision=fastest.precision)
            ratio, flops = paired_ratio(reference, fastest), reference.flops / fastest.flops
            results.append(result("fastest", device, TARGET_BATCH, fastest.steps, ratio, flops, reference_steps=REFERENCE_STEPS, **extra))
        matmul = timed.get((device, "matmul", TARGET_BATCH, 0, True))
        for case in sorted(at_target, key=lambda c: (c.steps, c.compiled)):
            if matmul and not case.skipped and case.precision == "float32":  # the matmul is float32's peak
                ratio = roofline(case, matmul)
                results.append(
                    result("roofline", device, TARGET_BATCH, case.steps, ratio, None, commit_pass=case.commit_pass, compiled=case.compiled)
                )
    return results


def window_targets(cases: list[Case]) -> list[dict]:
    """The growth and speedup targets for every (device, B, k) where their cases were timed: the
    measured ratio, and the ratio of estimated FLOPs that the arithmetic alone would give. Growth
    is read for each setting of the cache (eager or compiled, float32 or bfloat16) on its own;
    speedup sets the eager float32 cache against recomputation, which is timed so alone."""
    timed = {(c.device, c.mode, c.batch, c.window, c.steps, c.compiled, c.precision): c for c in cases if not c.skipped}
    results = []
    for device, batch, steps, compiled, precision in sorted({(c.device, c.batch, c.steps, c.compiled, c.precision) for c in cases}):
        setting = (compiled, precision)
        pairs = [("growth", ("cache", GROWTH_WINDOWS[1]), ("cache", GROWTH_WINDOWS[0]))]
        if setting == (False, "float32"):
            pairs.append(("speedup", ("recompute", SPEEDUP_WINDOW), ("cache", SPEEDUP_WINDOW)))
        for name, (mode_a, window_a), (mode_b, window_b) in pairs:
            slow = timed.get((device, mode_a, batch, window_a, steps, *setting))
            fast = timed.get((device, mode_b, batch, window_b, steps, *setting))
            if slow and fast:
                extra = dict(compiled=compiled, precision=precision) if setting != (False, "float32") else {}
                results.append(result(name, device, batch, steps, paired_ratio(slow, fast), slow.flops / fast.flops, **extra))
    return results


def machine(devices: list[str], throughputs: dict[str, float], load_before: tuple[float, ...]) -> dict:
    """What the numbers were measured on, and how busy the machine was (load averages)."""
    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "gflops": {d: round(t / 1e9, 1) for d, t in throughputs.items()},
    }
    if any(d.startswith("cuda") for d in devices):
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if names:
            return names[0]
    return platform.processor() or platform.machine()


def resolve_devices(device: str) -> list[str]:
    """``auto``: the CPU, and CUDA where available; ``cpu``; ``cuda``."""
    if device == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if device not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda, but torch sees no CUDA device here; use device=cpu or auto")
    return [device]


# ------------------------------------------------------------------------------------- outputs


def write_report(report: dict, out: str | Path, command: str) -> list[Path]:
    """Writes ``speed.json``, ``speed.md`` and ``speed.png`` to ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**report, "command": command}
    paths = [out / "speed.json", out / "speed.md", out / "speed.png"]
    write_table(out, "speed", markdown(report), report)
    plot(report, paths[2])
    return paths


def markdown(report: dict) -> str:
    """The report as markdown: what was run, the targets, both sections, fidelity's place, the machine."""
    lines = [
        "# Simulator speed: frames/s per sampler setting, roofline, KV cache vs recomputation",
        "",
        f"`{report['command']}` ({report['seconds']:.0f} s)",
        "",
        model_text(report),
        "",
        "## Targets",
        "",
        *target_lines(report["targets"]),
        "",
        *throughput_lines(report),
        "",
        *fidelity_lines(report),
        "",
        *window_lines(report),
        "",
        "## Machine",
        "",
        machine_text(report["machine"]),
        "",
        "![frames/s against B and W](speed.png)",
    ]
    return "\n".join(lines) + "\n"


def model_text(report: dict) -> str:
    model, (h, w) = report["model"], report["frame_size"]
    weights = f"trained (`{model['name']}`)" if model["trained"] else f"`{model['preset']}` sizes with random weights"
    own = "its own" if model["trained"] else "what `worldsim train` gives a model by default"
    return (
        f"Model: {weights}, {model['parameters'] / 1e6:.1f}M DiT parameters, {codec_text(model['sizes'])}, {h}x{w} frames = "
        f"{model['tokens_per_frame']} tokens per frame; sampler steps k = {model['sampler_steps']} and window "
        f"W = {model['window']} ({own}). Times are medians of interleaved rounds; ratios are medians of per-round ratios."
    )


def throughput_lines(report: dict) -> list[str]:
    grid = report["grid"]
    guidance = f"classifier-free guidance {grid['guidance']:g}" if grid["guidance"] != 1 else "no guidance"
    lines = [
        "## Dream throughput",
        "",
        (
            f"`WorldSimulator.step` of B envs at the model's window W = {report['model']['window']}, {guidance}, every frame "
            "decoded. Passes/frame: DiT forward calls of one step, counted by a hook on the DiT. DiT GFLOP/s: the estimated "
            "FLOPs of those passes (`forward_flops`) over the whole step's time. Matmul GFLOP/s: a plain float32 `torch.mm` "
            "of the DiT's widest layer over the step's tokens, [B x tokens, hidden] x [hidden, mlp_ratio x hidden], at the "
            "run's thread count, timed in the same rounds: the machine's peak for those shapes. Roofline: DiT GFLOP/s over "
            f"matmul GFLOP/s (median of per-round ratios). {always_timed(report['model']['sampler_steps'])} Compiled: "
            '`SpacetimeDiT.compile_passes`. bf16: the simulator\'s `precision="bfloat16"` (the passes under bfloat16 '
            "autocast), whose GFLOP/s are not set against the float32 matmul (and which no target counts)."
        ),
        "",
        "| device | k | passes/frame | B | W | ms/step | frames/s per env | frames/s total | DiT GFLOP/s | matmul GFLOP/s | roofline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    own = report["model"]["sampler_steps"], report["model"].get("commit_pass", True)

    def order(r: dict) -> tuple:
        return (
            r["device"],
            r["steps"],
            -r.get("commit_pass", True),
            r.get("compiled", False),
            r.get("precision") == "bfloat16",
            r["batch"],
        )

    for r in sorted(report["throughput"], key=order):
        commit = r.get("commit_pass", True)
        steps = f"{r['steps']}{'' if commit else ', no commit pass'}" + (" (own)" if (r["steps"], commit) == own else "")
        steps += how_run(r)
        head = f"| {r['device']} | {steps} | {r['passes']} | {r['batch']} | {r['window']} |"
        if r["skipped"]:
            lines.append(f"{head} skipped: {r['skipped']} | | | | | |")
            continue
        figures = f"{r['ms_per_step']:.2f} | {r['frames_per_s_per_env']:.2f} | {r['frames_per_s']:.1f}"
        peak = f"{r['gflops']:.1f} | {r['matmul_gflops']:.1f} | {r['roofline']:.0%}" if "roofline" in r else "| |"
        lines.append(f"{head} {figures} | {peak} |")
    return lines


def fidelity_lines(report: dict) -> list[str]:
    """Where the fidelity of each timed sampler setting comes from: this benchmark measures none."""
    lines = ["## Fidelity of the same sampler settings", ""]
    model = report["model"]
    if not model["trained"]:
        return [*lines, "Random weights make noise: there is no fidelity to measure. Time a trained model (`model=...`) for this section."]
    settings = sorted({(r["steps"], r["passes"], r.get("commit_pass", True)) for r in report["throughput"]})
    label = Path(model["name"]).name
    lines += [
        (
            "Not measured by this benchmark, which times only. Open-loop PSNR at h = 1, 8 and 16 and long-rollout validity "
            "of each setting come from the fidelity benchmark, one run per k (or `worldsim bench fidelity "
            f"model={model['name']} sampler_steps=K`); paste its figures beside this table from its own report."
        ),
        "",
        "| k | passes/frame | fidelity: the command that measures it |",
        "| --- | --- | --- |",
    ]
    for steps, passes, commit in settings:
        suffix, flag = ("", "") if commit else ("-nc", " --no-commit-pass")
        command = f"python benchmarks/stability.py --model {label}-k{steps}{suffix}={model['name']} --sampler-steps {steps}{flag}"
        lines.append(f"| {steps}{'' if commit else ', no commit pass'} | {passes} | `{command}` |")
    return lines


def window_lines(report: dict) -> list[str]:
    lines = ["## Window: KV cache vs full recomputation", ""]
    if not report["rows"]:
        return [*lines, "Not run (`windows=[]`)."]
    lines += [
        (
            "`cache` is `WorldSimulator.step` (k denoising passes of the new frame against the cached last W frames, "
            "plus one commit pass); `recompute` runs the DiT over the last W frames plus the new one for each of the "
            "k sampler steps. Neither uses guidance. Both decode every frame, and from the same noise they make the same "
            "frames while an env's history fits in its window (`tests/test_speed_bench.py`). Compiled, bf16: the cache "
            "as the throughput section times it so (recomputation is timed eager in float32 only)."
        ),
        "",
        "| device | B | W | k | engine | ms/step | steps/s | frames/s per env | frames/s total |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        head = f"| {r['device']} | {r['batch']} | {r['window']} | {r['steps']} | {r['mode']}{how_run(r)} |"
        if r["skipped"]:
            lines.append(f"{head} skipped: {r['skipped']} | | | |")
        else:
            figures = (r["ms_per_step"], r["steps_per_s"], r["frames_per_s_per_env"])
            lines.append(f"{head} {' | '.join(f'{x:.2f}' for x in figures)} | {r['frames_per_s']:.1f} |")
    return lines


def machine_text(m: dict) -> str:
    threads = f"{m['torch_threads']} thread{'s' * (m['torch_threads'] != 1)}"
    gpu = f", {m['cuda_device']}" if "cuda_device" in m else ""
    throughputs = ", ".join(f"{device} {gflops} GFLOP/s" for device, gflops in m["gflops"].items())
    return (
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} with {threads}, Python {m['python']}{gpu}. "
        f"Load average (1, 5, 15 min) before: {m['load_average_before']}, after: {m['load_average_after']}. "
        f"Measured DiT throughput (recomputation, the time estimates' scale): {throughputs}."
    )


def codec_text(sizes: dict) -> str:
    if sizes["codec"] != "vae":
        return f"{sizes['codec']} codec"
    return f"VAE codec from {sizes['vae']}" if sizes["vae"] else "an untrained VAE codec of the training defaults"


def target_lines(results: list[dict]) -> list[str]:
    """Each target's verdict over every (device, B, k) measured, then a table of the ratios."""
    lines = []
    for name, target in TARGETS.items():
        found = [r for r in results if r["target"] == name]
        failed = sum(not r["pass"] for r in found)
        if not found:
            lines.append(f"- **NOT MEASURED** ({name}): {target.text}; it needs {target.needs}, and those cases timed.")
        else:
            verdict = (
                f"**FAIL** ({name}): {failed} of {len(found)} measured (device, B, k) miss"
                if failed
                else f"**PASS** ({name}): all {len(found)} measured (device, B, k) meet"
            )
            lines.append(f"- {verdict} the target: {target.text}.")
    lines += [
        "",
        "| target | device | B | k | measured ratio | FLOPs ratio | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(target_row(r) for r in sorted(results, key=lambda r: (list(TARGETS).index(r["target"]), r["device"], r["batch"], r["steps"]))),
        "",
        (
            f"steps: frames/s of the model's own k (or the fewest timed) over k = {REFERENCE_STEPS} (k column: that k vs "
            f"{REFERENCE_STEPS}), both eager in float32. fastest: the same for the fastest timed setting of the model's own k "
            f"(compiled, bf16) over the eager float32 k = {REFERENCE_STEPS}. roofline: the DiT "
            "step's achieved GFLOP/s over the matmul's. growth: cached step time at the larger W over the smaller. speedup: "
            "recomputation's step time over the cache's. FLOPs ratio: the ratio of the two cases' estimated arithmetic "
            "(linear layers, self-attention over the cached or recomputed tokens, cross-attention to text), what the ratio "
            "would be if time followed arithmetic alone; a measured ratio well above it points at overheads such as memory traffic."
        ),
    ]
    return lines


def how_run(r: dict) -> str:
    """``", compiled"`` and ``", bf16"`` as a row (or a target's) case ran so; "" for a plain one (and reports from before)."""
    return (", compiled" if r.get("compiled") else "") + (", bf16" if r.get("precision") == "bfloat16" else "")


def target_row(r: dict) -> str:
    own = f"{r['steps']}{'' if r.get('commit_pass', True) else ', no commit pass'}" + how_run(r)  # before: a commit pass
    steps = f"{own} vs {r['reference_steps']}" if "reference_steps" in r else own
    ratio = f"{r['ratio']:.0%}" if r["target"] == "roofline" else f"{r['ratio']:.2f}x"
    flops = "-" if r["flops_ratio"] is None else f"{r['flops_ratio']:.2f}x"
    cells = (r["target"], r["device"], r["batch"], steps, ratio, flops, "PASS" if r["pass"] else "FAIL")
    return "| " + " | ".join(map(str, cells)) + " |"


def plot(report: dict, path: Path) -> None:
    """Total frames/s against B, one panel per device, one line per k; then against W, one panel
    per (device, k), one colour per B (solid: cache, dashed: recompute, dotted: the cache compiled or in bf16)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fast = [r for r in report["throughput"] if not r["skipped"]]
    devices = sorted({r["device"] for r in report["throughput"]})
    panels = sorted({(r["device"], r["steps"]) for r in report["rows"]})
    count = len(devices) + len(panels)
    fig, axes = plt.subplots(1, count, figsize=(max(6.0, 4.5 * count), 4.2), squeeze=False)
    for ax, device in zip(axes[0], devices):
        # One line per sampler setting (k, commit pass) and way of running it (eager float32: solid).
        settings = sorted({(r["steps"], r.get("commit_pass", True), how_run(r)) for r in fast if r["device"] == device})
        colours = {key: f"C{i}" for i, key in enumerate(sorted({(k, commit) for k, commit, _ in settings}))}
        for steps, commit, how in settings:
            points = sorted(
                (r["batch"], r["frames_per_s"], r["passes"])
                for r in fast
                if (r["device"], r["steps"], r.get("commit_pass", True), how_run(r)) == (device, steps, commit, how)
            )
            style_ = "-o" if not how else ":" + MARKERS[how]
            label = f"k={steps}{'' if commit else ' no commit'} ({points[0][2]} passes){how}"
            ax.plot([p[0] for p in points], [p[1] for p in points], style_, color=colours[steps, commit], label=label)
        style(ax, report["grid"]["batch_sizes"], "envs B", f"{device}, W={report['model']['window']}")
    for ax, (device, steps) in zip(axes[0][len(devices) :], panels):
        window_panel(ax, report, device, steps)
    name = report["model"]["name"]
    fig.suptitle(f"worldsim simulator speed, model {name}, {'x'.join(map(str, report['frame_size']))} frames")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def window_panel(ax, report: dict, device: str, steps: int) -> None:
    rows = [r for r in report["rows"] if not r["skipped"]]
    # Each engine as timed plain (solid: cache, dashed: recompute), then the cache's other settings (dotted).
    lines = [(mode, "") for mode in MODES] + [("cache", how) for how in sorted({how_run(r) for r in rows} - {""})]
    for colour, batch in enumerate(sorted({r["batch"] for r in report["rows"]})):
        for mode, how in lines:
            points = sorted(
                (r["window"], r["frames_per_s"])
                for r in rows
                if (r["device"], r["steps"], r["batch"], r["mode"], how_run(r)) == (device, steps, batch, mode, how)
            )
            line = ":" if how else {"cache": "-", "recompute": "--"}[mode]
            if points:
                ax.plot(*zip(*points), line, marker=MARKERS.get(how, "o"), color=f"C{colour}", label=f"B={batch} {mode}{how}")
    style(ax, report["grid"]["windows"], "window W (frames)", f"{device}, k={steps}")


MARKERS = {", compiled": "^", ", bf16": "s", ", compiled, bf16": "D"}  # the plots' markers for how_run's settings


def style(ax, ticks: list[int], xlabel: str, title: str) -> None:
    """Log-log axes with ``ticks`` on x, a grid and a legend."""
    import matplotlib.ticker

    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel=xlabel, ylabel="frames/s (all envs)", title=title)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
