"""Simulator speed: frames per second of the KV-cached WorldSimulator against full recomputation.

For each device, batch ``B``, window ``W`` and sampler steps ``k`` of a grid it times two engines
on a world model of a preset's sizes with random weights (speed does not depend on training):

- ``cache``: :class:`~worldsim.simulator.WorldSimulator`. A step denoises only the new frame's
  tokens against the cached keys and values of the last ``W`` frames (``k`` passes), then commits
  the frame's keys and values (one more pass).
- ``recompute``: :class:`Recompute`, the same simulator without a cache. For each of the ``k``
  steps of the same sampler it runs the DiT over the last ``W`` frames plus the new one, attention
  limited to ``W`` frames back, as an uncached frame-by-frame generator must.

Both start from a full window of ``W`` context frames and decode every frame they make, so a step
is what an env sees. The cases of one ``(device, B, k)`` are built together and timed in rounds,
each round running every case once (order reversed every other round), so that other work on the
machine slows both sides of a ratio alike. A case's time is the median of its rounds; a ratio is
the median of its per-round ratios. A case whose estimated time (FLOPs over a measured
throughput) exceeds the budget is skipped and recorded with the reason.

Targets, reported as PASS/FAIL and never asserted: with the cache, step time grows at most 2x from
``W=4`` to ``W=64`` (same ``B``, ``k``); the cache is at least 4x faster than recomputation at ``W=16``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from worldsim.atomic import write_table
from worldsim.errors import UserError
from worldsim.model.action_space import ActionSpace
from worldsim.model.codec import VAECodec, small_vae
from worldsim.model.denoiser import Denoiser
from worldsim.model.sampler import Sampler
from worldsim.model.world_model import WorldModel, WorldModelConfig
from worldsim.simulator import WorldSimulator
from worldsim.training.config import ModelConfig, from_dict
from worldsim.training.loop import build_world_model

MODES = ("cache", "recompute")
PRESETS = ("tiny", "small", "base")
GROWTH_WINDOWS, GROWTH_LIMIT = (4, 64), 2.0  # target: cached step time at W=64 over W=4 at most this
SPEEDUP_WINDOW, SPEEDUP_MIN = 16, 4.0  # target: recompute step time over cached at W=16 at least this


@dataclass
class SpeedGrid:
    """What to time and how long (``configs/bench/speed.yaml``'s grid keys, through :class:`worldsim.bench.config.SpeedConfig`)."""

    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64])
    windows: list[int] = field(default_factory=lambda: [4, 16, 64])
    sampler_steps: list[int] = field(default_factory=lambda: [1, 4, 8])
    repeats: int = 5  # timed rounds per case; its time is their median
    warmup: int = 2  # steps per case before the rounds (at least 1: the last one sets their length)
    min_seconds: float = 0.5  # a round runs a case for at least this long (whole steps)
    max_seconds: float = 120.0  # a case estimated (or, after warmup, measured) to need longer is skipped
    seed: int = 0


FULL = SpeedGrid()
# Enough to decide both targets (W=4, 16, 64 at one k) in a few minutes on two busy cores.
QUICK = SpeedGrid(batch_sizes=[1, 8], windows=[4, 16, 64], sampler_steps=[4], repeats=3, min_seconds=0.25, max_seconds=40.0)


# ------------------------------------------------------------------------------------- the model


def preset(name: str) -> ModelConfig:
    """The sizes of ``configs/model/<name>.yaml`` (read from the installed package)."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = OmegaConf.create(resources.files("worldsim.configs").joinpath("model", f"{name}.yaml").read_text())
    return model_config(cfg)


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


# -------------------------------------------------------------------------------- the baseline


class Recompute:
    """B envs generated without a KV cache: each keeps its last ``W`` frames' latents and, for each
    of the ``k`` sampler steps, runs the DiT over them plus the new frame (attention limited to
    ``W`` frames back). The interface and noise order are :class:`WorldSimulator`'s, so from the
    same seed it makes the same frames while an env's history fits in its window; later the
    cache's keys of the oldest frame also carry what that frame saw before (their layers look
    ``W`` frames further back each), which a recomputation of ``W`` frames has forgotten.
    """

    def __init__(self, model: WorldModel, batch_size: int, device, window: int, sampler_steps: int, seed: int = 0):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size, self.window = batch_size, window
        self.sampler = Sampler(sampler_steps)
        self.denoiser = Denoiser(model.dit)
        self.level = model.config.context_noise
        self.generator = torch.Generator(self.device).manual_seed(seed)
        # The simulator cross-attends to text padded to the encoder's max_length, its keys and
        # values made once per prompt: so does this.
        with torch.no_grad():
            text, mask = model.text_encoder([""] * batch_size)
            pad = getattr(model.text_encoder, "max_length", text.shape[1]) - text.shape[1]
            self.text = model.dit.text_context(F.pad(text, (0, 0, 0, pad)).to(self.device), F.pad(mask, (0, pad)).to(self.device))
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

        def velocity(x: torch.Tensor, sigma: float, conditioned: bool) -> torch.Tensor:  # no guidance: always conditioned
            sigmas = torch.cat([context_sigmas, torch.full((b, 1), sigma, device=self.device)], dim=1)
            latents = torch.cat([self.latents, x], dim=1)
            out = self.denoiser(latents, sigmas, actions, taken, self.text, before=self.before, block_offset=self.first, window=self.window)
            return out.velocity[:, -1:]

        x = self.sampler.sample(velocity, self._noise((b, 1, *self.latents.shape[2:])))
        committed = (1 - self.level) * x + self.level * self._noise(x.shape)
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


def make_engine(mode: str, model: WorldModel, batch: int, window: int, steps: int, device: str, seed: int):
    """A ``cache`` (WorldSimulator) or ``recompute`` engine with a full window of random context."""
    engine_class = WorldSimulator if mode == "cache" else Recompute
    engine = engine_class(model, batch, device, window=window, sampler_steps=steps, seed=seed)
    rng = torch.Generator().manual_seed(seed)
    context = torch.randint(0, 256, (batch, window, *model.config.frame_size, 3), dtype=torch.uint8, generator=rng)
    actions = torch.randint(0, 5, (batch, window), generator=rng)
    if mode == "cache":
        engine.reset(torch.ones(batch, dtype=torch.bool), context, actions)
    else:
        engine.reset(context, actions)
    return engine


# ----------------------------------------------------------------------------------- estimates


def forward_flops(batch: int, queries: int, keys: int, text_tokens: int, hidden: int, depth: int, mlp_ratio: float) -> float:
    """Approximate FLOPs of one DiT pass: ``queries`` tokens per env attending to ``keys`` tokens."""
    linear = (4 + 2 + 2 * mlp_ratio) * hidden**2 * queries + 2 * hidden**2 * text_tokens  # qkv, proj, cross q/proj, mlp; cross kv
    attention = 2 * queries * (keys + text_tokens) * hidden  # scores and weighted sums, self and cross
    return 2 * batch * depth * (linear + attention)


def step_flops(mode: str, batch: int, window: int, steps: int, tokens: int, model: WorldModel) -> float:
    """Approximate FLOPs of one step of ``batch`` envs (``tokens`` per frame)."""
    dit = model.dit.config
    text = getattr(model.text_encoder, "max_length", 1)
    size = {"text_tokens": text, "hidden": dit.hidden_size, "depth": dit.depth, "mlp_ratio": dit.mlp_ratio}
    if mode == "cache":  # k denoising passes and one commit pass of the new frame's tokens
        return (steps + 1) * forward_flops(batch, tokens, (window + 1) * tokens, **size)
    return steps * forward_flops(batch, (window + 1) * tokens, (window + 1) * tokens, **size)


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
    (after one untimed), a scale for the time estimates."""
    engine = make_engine("recompute", model, batch, 4, 1, device, seed)
    step = partial(engine.step, torch.zeros(batch, dtype=torch.long))
    step()
    tokens = frame_tokens(model)
    seconds = statistics.median(time_steps(step, 1, device) for _ in range(3))
    return step_flops("recompute", batch, 4, 1, tokens, model) / seconds


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
    """One engine at one setting, and what timing it gave (seconds per step of each round)."""

    device: str
    mode: str
    batch: int
    window: int
    steps: int
    flops: float = 0.0  # estimated FLOPs per step
    estimated_s: float = 0.0  # estimated seconds for warmup and rounds
    skipped: str | None = None  # why it was not timed
    steps_per_round: int = 0
    rounds: list[float] = field(default_factory=list)


def plan(cases: list[Case], models: dict[int, WorldModel], grid: SpeedGrid, flops_per_s: float) -> None:
    """Estimates each case's time and memory; marks those over the budget as skipped."""
    for case in cases:
        model = models[case.window]
        tokens = frame_tokens(model)
        case.flops = step_flops(case.mode, case.batch, case.window, case.steps, tokens, model)
        per_step = case.flops / flops_per_s
        case.estimated_s = per_step * (grid.warmup + grid.repeats * max(1, math.ceil(grid.min_seconds / per_step)))
        memory, free = step_bytes(case.mode, case.batch, case.window, tokens, model), free_bytes(case.device)
        if case.estimated_s > grid.max_seconds:
            case.skipped = f"estimated {case.estimated_s:.0f} s ({per_step:.2f} s/step) > budget {grid.max_seconds:.0f} s"
        elif memory > free / 2:
            case.skipped = f"estimated {memory / 1e9:.1f} GB > half the free {free / 1e9:.1f} GB"


def measure_group(cases: list[Case], models: dict[int, WorldModel], grid: SpeedGrid, log: Callable[[str], None]) -> None:
    """Times the cases of one (device, B, k) in interleaved rounds (see the module docstring)."""
    runners = {}
    for case in cases:
        if case.skipped:
            continue
        engine = make_engine(case.mode, models[case.window], case.batch, case.window, case.steps, case.device, grid.seed)
        actions = torch.randint(0, 5, (case.batch,), generator=torch.Generator().manual_seed(grid.seed)).to(case.device)
        step = partial(engine.step, actions)
        for _ in range(grid.warmup - 1):
            step()
        first = time_steps(step, 1, case.device)  # the last warmup step sets the round length
        if first * grid.repeats > grid.max_seconds:  # the estimate missed (it counts FLOPs, not memory traffic)
            case.skipped = f"measured {first:.2f} s/step in warmup: {grid.repeats} rounds > budget {grid.max_seconds:.0f} s"
            continue
        case.steps_per_round = max(1, min(100, math.ceil(grid.min_seconds / first)))
        runners[id(case)] = (case, step)
    order = list(runners.values())
    for round_ in range(grid.repeats):
        for case, step in order if round_ % 2 == 0 else order[::-1]:
            case.rounds.append(time_steps(step, case.steps_per_round, case.device))
    for case, _ in order:
        log(f"{describe(case)}: {1e3 * statistics.median(case.rounds):9.2f} ms/step")


def describe(case: Case) -> str:
    return f"{case.device} {case.mode:9s} B={case.batch:<3d} W={case.window:<3d} k={case.steps}"


def run_speed(sizes: ModelConfig, frame_size: tuple[int, int], devices: list[str], grid: SpeedGrid, log=print) -> dict:
    """Times the grid on each device; returns the report (rows, targets, machine) as a dict."""
    start, load_before = time.perf_counter(), os.getloadavg()
    models = {w: build_model(sizes, frame_size, w, grid.seed) for w in grid.windows}
    cases, throughputs = [], {}
    for device in devices:
        # A batch of 8 keeps the CPU calibration short; a GPU needs a large batch to show its speed.
        calibration_batch = max(grid.batch_sizes) if device.startswith("cuda") else min(8, max(grid.batch_sizes))
        throughputs[device] = throughput(models[grid.windows[0]], device, calibration_batch, grid.seed)
        log(f"{device}: the DiT runs at {throughputs[device] / 1e9:.1f} GFLOP/s (calibration)")
        for batch in grid.batch_sizes:
            for steps in grid.sampler_steps:
                group = [Case(device, mode, batch, w, steps) for w in grid.windows for mode in MODES]
                plan(group, models, grid, throughputs[device])
                planned = sum(c.estimated_s for c in group if not c.skipped)
                log(f"{device} B={batch} k={steps}: timing {sum(not c.skipped for c in group)} cases (estimated {planned:.0f} s)")
                measure_group(group, models, grid, log)
                cases += group
                for case in group:
                    if case.skipped:
                        log(f"{describe(case)}: skipped ({case.skipped})")
    rows = [row(case) for case in cases]
    model = models[grid.windows[0]]
    parameters = sum(p.numel() for p in model.dit.parameters())
    return {
        "model": {"preset": preset_name(sizes), "sizes": asdict(sizes), "parameters": parameters, "tokens_per_frame": frame_tokens(model)},
        "frame_size": list(frame_size),
        "grid": asdict(grid),
        "rows": rows,
        "targets": targets(cases),
        "machine": machine(devices, throughputs, load_before),
        "seconds": round(time.perf_counter() - start, 1),
    }


def row(case: Case) -> dict:
    """A case as a JSON row; a timed one carries steps/s, frames/s per env and in total, ms/step."""
    out = {key: getattr(case, key) for key in ("device", "mode", "batch", "window", "steps", "skipped", "steps_per_round")}
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


# ------------------------------------------------------------------------------------- targets


def paired_ratio(numerator: Case, denominator: Case) -> float:
    """The median over rounds of the ratio of two cases' step times (timed side by side)."""
    return statistics.median(a / b for a, b in zip(numerator.rounds, denominator.rounds))


def targets(cases: list[Case]) -> list[dict]:
    """Both targets for every (device, B, k) where their cases were timed: the measured ratio, and
    the ratio of estimated FLOPs that the arithmetic alone would give."""
    timed = {(c.device, c.mode, c.batch, c.window, c.steps): c for c in cases if not c.skipped}
    results = []
    for device, batch, steps in sorted({(c.device, c.batch, c.steps) for c in cases}):
        pairs = (
            ("growth", GROWTH_LIMIT, ("cache", GROWTH_WINDOWS[1]), ("cache", GROWTH_WINDOWS[0])),
            ("speedup", SPEEDUP_MIN, ("recompute", SPEEDUP_WINDOW), ("cache", SPEEDUP_WINDOW)),
        )
        for name, limit, (mode_a, window_a), (mode_b, window_b) in pairs:
            slow, fast = timed.get((device, mode_a, batch, window_a, steps)), timed.get((device, mode_b, batch, window_b, steps))
            if not (slow and fast):
                continue
            ratio = paired_ratio(slow, fast)
            results.append({
                "target": name, "device": device, "batch": batch, "steps": steps, "ratio": round(ratio, 3),
                "flops_ratio": round(slow.flops / fast.flops, 3), "limit": limit,
                "pass": ratio <= limit if name == "growth" else ratio >= limit,
            })  # fmt: skip
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
    """The report as markdown: what was run, the targets, the table, the machine."""
    model = report["model"]
    h, w = report["frame_size"]
    lines = [
        "# Simulator speed: KV cache vs full recomputation",
        "",
        f"`{report['command']}` ({report['seconds']:.0f} s)",
        "",
        (
            f"Model `{model['preset']}` with random weights ({model['parameters'] / 1e6:.1f}M DiT parameters, "
            f"{codec_text(model['sizes'])}), {h}x{w} frames = {model['tokens_per_frame']} tokens per frame. "
            "`cache` is `WorldSimulator.step` (k denoising passes of the new frame against the cached last W frames, "
            "plus one commit pass); `recompute` runs the DiT over the last W frames plus the new one for each of the "
            "k sampler steps. Both decode every frame, and from the same noise they make the same frames while an "
            "env's history fits in its window (`tests/test_speed_bench.py`). Times are medians of interleaved rounds; "
            "ratios are medians of per-round ratios."
        ),
        "",
        "## Targets",
        "",
        *target_lines(report["targets"]),
        "",
        "## Results",
        "",
        "| device | B | W | k | engine | ms/step | steps/s | frames/s per env | frames/s total |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        head = f"| {r['device']} | {r['batch']} | {r['window']} | {r['steps']} | {r['mode']} |"
        if r["skipped"]:
            lines.append(f"{head} skipped: {r['skipped']} | | | |")
        else:
            figures = (r["ms_per_step"], r["steps_per_s"], r["frames_per_s_per_env"])
            lines.append(f"{head} {' | '.join(f'{x:.2f}' for x in figures)} | {r['frames_per_s']:.1f} |")
    lines += [
        "",
        "## Machine",
        "",
        machine_text(report["machine"]),
        "",
        "![frames/s vs window](speed.png)",
    ]
    return "\n".join(lines) + "\n"


def machine_text(m: dict) -> str:
    threads = f"{m['torch_threads']} thread{'s' * (m['torch_threads'] != 1)}"
    gpu = f", {m['cuda_device']}" if "cuda_device" in m else ""
    throughputs = ", ".join(f"{device} {gflops} GFLOP/s" for device, gflops in m["gflops"].items())
    return (
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} with {threads}, Python {m['python']}{gpu}. "
        f"Load average (1, 5, 15 min) before: {m['load_average_before']}, after: {m['load_average_after']}. "
        f"Measured DiT throughput: {throughputs}."
    )


def codec_text(sizes: dict) -> str:
    if sizes["codec"] != "vae":
        return f"{sizes['codec']} codec"
    return f"VAE codec from {sizes['vae']}" if sizes["vae"] else "an untrained VAE codec of the training defaults"


TARGETS = {
    "growth": f"with the cache, step time grows at most {GROWTH_LIMIT:g}x from W={GROWTH_WINDOWS[0]} to W={GROWTH_WINDOWS[1]} (same B, k)",
    "speedup": f"the cache is at least {SPEEDUP_MIN:g}x faster than recomputation at W={SPEEDUP_WINDOW} (same B, k)",
}


def target_lines(results: list[dict]) -> list[str]:
    """Each target's verdict over every (device, B, k) measured, then a table of the ratios."""
    lines = []
    for name, text in TARGETS.items():
        found = [r for r in results if r["target"] == name]
        failed = sum(not r["pass"] for r in found)
        if not found:
            lines.append(f"- **NOT MEASURED** ({name}): {text}; no (device, B, k) had both of its cases timed.")
        else:
            verdict = f"**FAIL** ({name}): {failed} of {len(found)} measured (device, B, k) miss" if failed else (
                f"**PASS** ({name}): all {len(found)} measured (device, B, k) meet")  # fmt: skip
            lines.append(f"- {verdict} the target: {text}.")
    lines += [
        "",
        "| target | device | B | k | measured ratio | FLOPs ratio | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(target_row(r) for r in sorted(results, key=lambda r: (r["target"], r["device"], r["batch"], r["steps"]))),
        "",
        (
            "FLOPs ratio: the ratio of the two cases' estimated arithmetic (linear layers, self-attention over the cached "
            "or recomputed tokens, cross-attention to text), what the ratio would be if time followed arithmetic alone; "
            "a measured ratio well above it points at overheads such as memory traffic."
        ),
    ]
    return lines


def target_row(r: dict) -> str:
    verdict = "PASS" if r["pass"] else "FAIL"
    cells = (r["target"], r["device"], r["batch"], r["steps"], f"{r['ratio']:.2f}x", f"{r['flops_ratio']:.2f}x", verdict)
    return "| " + " | ".join(map(str, cells)) + " |"


def plot(report: dict, path: Path) -> None:
    """Total frames/s against W, one panel per (device, k), one colour per B; solid: cache,
    dashed: recompute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in report["rows"] if not r["skipped"]]
    panels = sorted({(r["device"], r["steps"]) for r in report["rows"]})
    batches = sorted({r["batch"] for r in report["rows"]})
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 4.5 * len(panels)), 4.2), squeeze=False)
    for ax, (device, steps) in zip(axes[0], panels):
        for colour, batch in enumerate(batches):
            for mode, style in zip(MODES, ("-", "--")):
                points = sorted((r["window"], r["frames_per_s"]) for r in rows
                                if (r["device"], r["steps"], r["batch"], r["mode"]) == (device, steps, batch, mode))  # fmt: skip
                if points:
                    ax.plot(*zip(*points), style, marker="o", color=f"C{colour}", label=f"B={batch} {mode}")
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="window W (frames)", ylabel="frames/s (all envs)", title=f"{device}, k={steps}")
        ax.set_xticks(report["grid"]["windows"], [str(w) for w in report["grid"]["windows"]])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"worldsim simulator speed, model {report['model']['preset']}, {'x'.join(map(str, report['frame_size']))} frames")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
