"""Simulator speed: frames/s of the KV-cached WorldSimulator against full recomputation.

    python benchmarks/speed.py [--quick] [--model tiny|small|base] [--frame-size 32 32] \
        [--device auto|cpu|cuda] [--out benchmarks/results/speed]

The same as `worldsim bench speed` (its core is worldsim/bench/speed.py, see its docstring). The
default is the full grid, B in {1, 8, 64} x W in {4, 16, 64} x k in {1, 4, 8}, both engines, on the
CPU and on CUDA where available; cases estimated to take longer than --max-seconds are skipped and
recorded. --quick times B in {1, 8}, W in {4, 16, 64}, k=4: enough to decide both targets in a few
minutes on two cores. The models have random weights (speed does not depend on training); `base`
runs on the VAE codec and gets an untrained VAE of the training defaults. Writes speed.json,
speed.md and speed.png to --out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from worldsim.bench.speed import FULL, PRESETS, QUICK, preset, resolve_devices, run_speed, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=PRESETS, default="small", help="model preset (configs/model/), random weights")
    parser.add_argument("--frame-size", type=int, nargs=2, default=(32, 32), metavar=("H", "W"))
    parser.add_argument("--quick", action="store_true", help="a subset that decides both targets in a few minutes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="override the grid's B values")
    parser.add_argument("--windows", type=int, nargs="+", help="override the grid's W values")
    parser.add_argument("--sampler-steps", type=int, nargs="+", help="override the grid's k values")
    parser.add_argument("--repeats", type=int, help="timed rounds per case")
    parser.add_argument("--max-seconds", type=float, help="skip cases estimated to take longer")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = QUICK if args.quick else FULL
    overrides = {"batch_sizes": args.batch_sizes, "windows": args.windows, "sampler_steps": args.sampler_steps,
                 "repeats": args.repeats, "max_seconds": args.max_seconds}  # fmt: skip
    grid = replace(grid, **{key: value for key, value in overrides.items() if value is not None})
    report = run_speed(preset(args.model), tuple(args.frame_size), resolve_devices(args.device), grid)
    command = shlex.join(["python", "benchmarks/speed.py", *sys.argv[1:]])
    for path in write_report(report, args.out, command):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
