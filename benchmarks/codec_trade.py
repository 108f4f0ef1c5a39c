"""Pixels or a VAE for dream throughput? The shipped DiT sizes on both codecs, a step timed in its parts.

    python benchmarks/codec_trade.py [--frame-sizes 32 64] [--batch-sizes 1 16 64] [--steps 3] \
        [--window 3] [--repeats 5] [--min-seconds 0.5] [--threads 1] [--out benchmarks/results/codec-trade]

For each square frame size S it builds two world models with random weights (speed does not depend
on training) and the shipped models' DiT sizes (``configs/model/cpu.yaml``: hidden 128, depth 4):

- ``pixels``: the pixels codec with 4x4 patches, (S/4)^2 tokens per frame (the shipped models);
- ``vae``: the VAE codec of the training defaults (``small_vae()``, 4x downsampling, 4 latent
  channels) with 2x2 patches, (S/8)^2 tokens per frame (the ``base`` preset's patching), so a VAE
  model's DiT works on a quarter of the tokens.

Each model's :class:`~worldsim.simulator.WorldSimulator` steps B envs (``--steps`` sampler steps plus
the commit pass, window ``--window``, every frame decoded: what an agent or the viewer gets), and the
decode of one step's B frames is timed alone, in interleaved rounds (order reversed every other
round) so that other work on the machine slows every case alike. A case's time is the median of its
rounds; the ratio ``vae / pixels`` is the median of the per-round ratios of the two steps. Writes
``codec_trade.md`` and ``codec_trade.json`` to ``--out``.

It answers when a VAE model is the better trade for dream *throughput*. Its fidelity is another
question: a VAE model can be no more faithful than the VAE's reconstructions, which this does not
measure.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from worldsim.atomic import write_table
from worldsim.bench.speed import build_model, cpu_name, model_sizes, time_steps

CODECS = {"pixels": {"codec": "pixels", "patch_size": 4}, "vae": {"codec": "vae", "vae": None, "patch_size": 2}}


def engines(size: int, batch: int, steps: int, window: int, seed: int = 0) -> dict:
    """Per codec: the simulator's step and the decode of its frames, each a no-argument callable."""
    out, shipped = {}, model_sizes("cpu")  # the shipped models' DiT sizes
    for name, overrides in CODECS.items():
        model = build_model(replace(shipped, **overrides), (size, size), window, seed)
        sim = model.simulator(batch, window=window, sampler_steps=steps, seed=seed)
        context = torch.randint(0, 256, (batch, window, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
        sim.reset(torch.ones(batch, dtype=torch.bool), context, torch.zeros(batch, window, dtype=torch.long))
        actions = torch.zeros(batch, dtype=torch.long)
        sim.step(actions)  # warm-up; its latents are what the decode case decodes
        latents = sim.latents.clone()
        tokens = (size // model.codec.downsample // model.dit.config.patch_size) ** 2
        out[name] = {"step": partial(sim.step, actions), "decode": torch.no_grad()(partial(model.codec.decode, latents)), "tokens": tokens}
    return out


def measure(size: int, batch: int, args: argparse.Namespace) -> list[dict]:
    """The rows of one (frame size, B): per codec, ms per step and per decode, frames/s, the ratio."""
    built = engines(size, batch, args.steps, args.window)
    cases = [(codec, part) for codec in CODECS for part in ("step", "decode")]
    calls = {case: max(1, round(args.min_seconds / max(time_steps(built[case[0]][case[1]], 1, "cpu"), 1e-6))) for case in cases}
    rounds: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for r in range(args.repeats):
        for case in cases if r % 2 == 0 else cases[::-1]:
            rounds[case].append(time_steps(built[case[0]][case[1]], calls[case], "cpu"))
    ratio = statistics.median(v / p for v, p in zip(rounds["vae", "step"], rounds["pixels", "step"]))
    rows = []
    for codec in CODECS:
        step, decode = statistics.median(rounds[codec, "step"]), statistics.median(rounds[codec, "decode"])
        rows.append(
            {
                "frame_size": size,
                "batch": batch,
                "codec": codec,
                "tokens_per_frame": built[codec]["tokens"],
                "ms_per_step": round(1e3 * step, 2),
                "ms_decode": round(1e3 * decode, 2),
                "decode_share": round(decode / step, 3),
                "frames_per_s": round(batch / step, 2),
                "step_time_over_pixels": round(ratio if codec == "vae" else 1.0, 3),
            }
        )
    return rows


def markdown(report: dict) -> str:
    lines = [
        "# Pixels or a VAE for dream throughput",
        "",
        f"`{report['command']}` ({report['seconds']:.0f} s)",
        "",
        (
            f"Random weights, the shipped models' DiT sizes (hidden 128, depth 4; `configs/model/cpu.yaml`): `pixels` with 4x4 "
            f"patches, `vae` the training defaults' VAE (`small_vae()`, 4x downsampling) with 2x2 patches. `WorldSimulator.step` "
            f"of B envs with {report['steps']} sampler steps and the commit pass, window {report['window']}, every frame decoded; "
            f"decode: the codec's decode of one step's B frames, timed alone in the same rounds. Medians of "
            f"{report['repeats']} interleaved rounds, {report['threads']} thread(s), {report['cpu']}. vae / pixels: the median "
            "of per-round ratios of the two step times (above 1: the VAE model is slower)."
        ),
        "",
        "| frame | B | codec | tokens/frame | ms/step | of which decode | frames/s | vae / pixels step time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        ratio = f"{r['step_time_over_pixels']:.2f}x" if r["codec"] == "vae" else "-"
        lines.append(
            f"| {r['frame_size']}x{r['frame_size']} | {r['batch']} | {r['codec']} | {r['tokens_per_frame']} | {r['ms_per_step']:.1f} | "
            f"{r['ms_decode']:.1f} ({r['decode_share']:.0%}) | {r['frames_per_s']:.1f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-sizes", type=int, nargs="+", default=[32, 64], help="square frame sizes, multiples of 8")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=3, help="sampler steps per frame (the shipped models': 3)")
    parser.add_argument("--window", type=int, default=3, help="context frames each env keeps (the shipped models': 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per case")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="a round runs a case for at least this long (whole calls)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/codec-trade"))
    args = parser.parse_args(argv)
    bad = [s for s in args.frame_sizes if s < 8 or s % 8]
    if bad or min(args.batch_sizes + [args.steps, args.window, args.repeats, args.threads]) < 1:
        parser.error("--frame-sizes must be multiples of 8; --batch-sizes, --steps, --window, --repeats and --threads at least 1")
    threads, start, rows = torch.get_num_threads(), time.perf_counter(), []
    torch.set_num_threads(args.threads)
    try:
        for size in args.frame_sizes:
            for batch in args.batch_sizes:
                rows += measure(size, batch, args)
                print(f"{size}x{size} B={batch}: " + ", ".join(f"{r['codec']} {r['ms_per_step']:.1f} ms" for r in rows[-2:]), flush=True)
    finally:
        torch.set_num_threads(threads)
    argv_text = shlex.join(sys.argv[1:] if argv is None else argv)
    report = {
        "command": f"python benchmarks/codec_trade.py {argv_text}".strip(),
        "steps": args.steps,
        "window": args.window,
        "repeats": args.repeats,
        "threads": args.threads,
        "cpu": cpu_name(),
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_table(args.out, "codec_trade", markdown(report), report)
    return report


if __name__ == "__main__":
    main()
