"""The demo a newcomer runs first: a world model dreaming beside the real physics, measured.

``worldsim demo`` loads the shipped ``balls`` model (or ``model=``), and for every Balls scenario
gives it the first real frames of held-out episodes and lets it dream ``horizon`` frames open loop
with the real actions, beside the real world; it also dreams one rollout from a text prompt alone.
It writes to ``out`` (``runs/demo``): ``demo.md`` (the headline figures: PSNR against copying the
last frame at a few horizons, and the PhyWorld velocity error against the parser floor),
``fidelity.png`` (PSNR and SSIM against horizon), ``real_vs_dream.png`` (a contact sheet) and
``demo.mp4`` (real | dream per scenario, then the prompt's dream), and prints what it wrote and where to go next. The figures come from
:mod:`worldsim.bench.fidelity`, the same code as ``worldsim bench fidelity|physics``, on fewer
episodes.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from worldsim.atomic import atomic_write
from worldsim.bench import fidelity
from worldsim.envs.worlds import BY_ID
from worldsim.errors import UserError
from worldsim.video import write_video

NEXT_STEPS = (
    "next: worldsim play model={model}                      play the dream with the keyboard",
    '      gym.make("worldsim/DreamBalls-v0", model="{model}")  the dream as a Gymnasium env',
    "      worldsim agent train world=balls scenario=push model={model}   train an agent in the dream",
    "      worldsim bench fidelity model={model}            the full fidelity benchmark",
)
MARKS = (1, 8, 32)


def run_demo(
    model: str = "balls",
    episodes: int = 4,
    horizon: int = 32,
    prompt: str = "a red ball falls and bounces",
    seed: int = 0,
    scale: int = 4,
    device: str = "cpu",
    out: str | Path = "runs/demo",
    progress: bool = True,
) -> dict[str, Path]:
    """Runs the demo (see the module docstring); returns the paths it wrote."""
    from worldsim.model.world_model import load

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = load(model, device)
    if world.config.env_id not in BY_ID or not BY_ID[world.config.env_id].balls:
        raise UserError(f"the demo shows a Balls world model; {model} learned {world.config.env_id}")
    settings = fidelity.Settings(episodes=episodes, horizon=horizon, long_steps=0, seed=1_000_000 + seed, device=device, progress=progress)
    groups, context = fidelity.prepare(world, settings, ("id",))
    report = {"model": model, "groups": {}, "command": "worldsim demo", "settings": {"horizon": horizon}}
    physics = {}
    for group in groups:
        group.baselines["copy_last"] = fidelity.copy_last(group)
        report["groups"][group.scenario] = fidelity.score_fidelity(group, settings)
        physics[group.scenario] = (fidelity.physics_scores(group, group.dream), fidelity.physics_scores(group, group.real))
    dreamed = dream_from_prompt(world, prompt, horizon, seed, device)
    written = {"report": out / "demo.md"}
    with atomic_write(written["report"], "w") as f:
        f.write(markdown(report, physics, model, episodes, context, prompt, time.perf_counter() - start))
    written["plot"] = fidelity.plot_fidelity(report, out)[0]
    written["video"] = write_video(out / "demo.mp4", film(groups, dreamed, prompt, scale), world.config.fps)
    written["sheet"] = out / "real_vs_dream.png"
    with atomic_write(written["sheet"], "wb") as f:
        f.write(cv2.imencode(".png", cv2.cvtColor(sheet(groups, context, scale), cv2.COLOR_RGB2BGR))[1].tobytes())
    print(headline(report, physics))
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    for line in NEXT_STEPS:
        print(line.format(model=model))
    return written


def dream_from_prompt(world, prompt: str, horizon: int, seed: int, device: str) -> np.ndarray:
    """``horizon + 1`` frames dreamed from ``prompt`` alone (no-op actions): uint8 ``[T, H, W, 3]``."""
    sim = world.simulator(1, device, seed=seed)
    frames = [sim.reset(torch.ones(1, dtype=torch.bool), prompts=[prompt]).cpu().numpy()[0]]
    for _ in range(horizon):
        frames.append(sim.step(torch.zeros(1, dtype=torch.long)).frames.cpu().numpy()[0])
    return np.stack(frames)


def film(groups, dreamed: np.ndarray, prompt: str, scale: int) -> np.ndarray:
    """One row per scenario (its first episode: real | dream), then the prompt's dream."""
    rows = []
    for group in groups:
        real, dream = upscale(group.real[0], scale), upscale(group.dream[0], scale)
        rows.append(np.concatenate([label(real, f"{group.scenario}: real"), label(dream, "dream")], axis=2))
    length = max(len(r) for r in rows)
    prompt_row = upscale(dreamed, scale)
    prompt_row = np.concatenate([label(prompt_row, "dream from text:"), label(np.zeros_like(prompt_row), prompt[:40])], axis=2)
    rows = [pad_to(r, length) for r in rows] + [pad_to(prompt_row, length)]
    width = max(r.shape[2] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, 0), (0, width - r.shape[2]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=1)


def sheet(groups, context: int, scale: int) -> np.ndarray:
    """A contact sheet: per scenario, its first episode's real frames above the dreamed ones, at
    dreamed steps 0 (the last real frame), 1, 2, 4, 8, 16, 32 (those within the horizon)."""
    horizon = groups[0].real.shape[1] - context
    steps = [h for h in (0, 1, 2, 4, 8, 16, 32) if h <= horizon]
    rows = []
    for group in groups:
        for name, frames in (("real", group.real[0]), ("dream", group.dream[0])):
            tiles = [label(upscale(frames[context - 1 + h][None], scale), f"{name} t+{h}" if h else f"{group.scenario}")[0] for h in steps]
            rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def pad_to(frames: np.ndarray, length: int) -> np.ndarray:
    """Holds the last frame so every row lasts ``length`` frames."""
    return np.concatenate([frames, frames[-1:].repeat(length - len(frames), 0)]) if len(frames) < length else frames


def label(frames: np.ndarray, text: str) -> np.ndarray:
    frames = frames.copy()
    for frame in frames:
        cv2.putText(frame, text, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return frames


def headline(report: dict, physics: dict) -> str:
    lines = ["dream vs copying the last frame (PSNR, dB), and velocity error (units/s) vs the parser floor:"]
    for scenario, entry in report["groups"].items():
        curves = entry["curves"]
        marks = [h for h in MARKS if h <= len(curves["model"]["psnr"])]
        cells = ", ".join(f"h={h} {curves['model']['psnr'][h - 1]:.1f}/{curves['copy_last']['psnr'][h - 1]:.1f}" for h in marks)
        dream, floor = (fidelity.fmt(p["velocity_error"]) for p in physics[scenario])
        lines.append(f"  {scenario:<9} {cells}; velocity error {dream} (floor {floor})")
    return "\n".join(lines)


def markdown(report: dict, physics: dict, model: str, episodes: int, context: int, prompt: str, seconds: float) -> str:
    horizon = report["settings"]["horizon"]
    marks = [h for h in MARKS if h <= horizon]
    lines = [
        f"# worldsim demo: `{model}`",
        "",
        f"`worldsim demo` ({seconds:.0f} s). For each Balls scenario, {episodes} held-out episodes: the model gets "
        f"{context} real frames, their actions and the caption, then dreams {horizon} frames open loop with the real "
        "actions, beside the real physics. `fidelity.png`: PSNR and SSIM against horizon; `demo.mp4`: real | dream per "
        f'scenario, then a dream from the prompt "{prompt}" alone.',
        "",
        "| scenario | " + " | ".join(f"PSNR h={h} dream / copy-last" for h in marks) + " | velocity error dream / parser floor |",
        "| --- | " + " | ".join("---" for _ in marks) + " | --- |",
    ]
    for scenario, entry in report["groups"].items():
        curves = entry["curves"]
        cells = [f"{curves['model']['psnr'][h - 1]:.1f} / {curves['copy_last']['psnr'][h - 1]:.1f}" for h in marks]
        dream, floor = (fidelity.fmt(p["velocity_error"]) for p in physics[scenario])
        lines.append(f"| {scenario} | {' | '.join(cells)} | {dream} / {floor} |")
    lines += [
        "",
        "Velocity error: PhyWorld's mean |v - v_hat| in world units/s, balls parsed from the frames by colour; the "
        "parser floor is the same parser on the real frames. The full benchmarks: `worldsim bench fidelity|physics`.",
        "",
    ]
    return "\n".join(lines)
