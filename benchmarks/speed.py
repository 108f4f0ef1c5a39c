"""Simulator speed: frames/s per sampler setting against the matmul peak; KV cache vs recomputation.

    python benchmarks/speed.py [--quick] [--model small|tiny|base|NAME|FOLDER] [--frame-size 32 32] \
        [--batch-sizes 1 16 64] [--sampler-steps 1 2 4] [--guidance 1] [--windows 4 16 64] \
        [--window-batch-sizes 1 8] [--compile] [--bf16] [--device auto|cpu|cuda] [--threads N] [--out benchmarks/results/speed]

The same as `worldsim bench speed` (its core is worldsim/bench/speed.py, see its docstring). --model
is a preset's sizes with random weights (speed does not depend on training; `base` runs on the VAE
codec and gets an untrained VAE of the training defaults) or a trained model (a shipped name such as
`balls`, a model folder or a run folder), timed at its own sizes, frame size, window and sampler
steps. The default grid times the throughput of B in {1, 16, 64} x k in {1, 2, 4} (and the model's
own k) beside a matmul of the same sizes, and the cache against recomputation for B in {1, 8} x
W in {4, 16, 64} x the same k, on the CPU and on CUDA where available; cases estimated to take longer
than --max-seconds are skipped and recorded. --quick times B in {1, 8}, W in {4, 16, 64}, k=4 (the
window targets in a few minutes on two cores; give --batch-sizes 1 16 64 --sampler-steps 1 2 4 for
the throughput targets). --compile and --bf16 also time the model's own k at each B, and the cache
at each W and k, with compiled passes and in bfloat16 (both: also the two together); growth is then
read for each setting. Writes speed.json, speed.md and speed.png to --out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from worldsim.bench.speed import FULL, PRESETS, QUICK, preset, resolve_devices, run_speed, write_report
from worldsim.errors import UserError
from worldsim.training.loop import sizes_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help=f"a preset ({', '.join(PRESETS)}; random weights) or a trained model")
    parser.add_argument("--frame-size", type=int, nargs=2, metavar=("H", "W"), help="default: the model's own, or 32 32 for a preset")
    parser.add_argument("--quick", action="store_true", help="a subset that decides the window targets in a few minutes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="throughput: B values")
    parser.add_argument("--sampler-steps", type=int, nargs="+", help="the sampler settings k (the model's own is added)")
    parser.add_argument("--guidance", type=float, help="throughput's classifier-free guidance (default 1: none)")
    parser.add_argument("--windows", type=int, nargs="*", help="cache vs recompute: W values (none given: not run)")
    parser.add_argument("--window-batch-sizes", type=int, nargs="+", help="cache vs recompute: B values")
    parser.add_argument("--compile", action="store_true", help="also time the cache with compiled passes (compile=true)")
    parser.add_argument("--bf16", action="store_true", help="also time the cache in bfloat16 (bf16=true); with --compile, both")
    parser.add_argument("--repeats", type=int, help="timed rounds per case")
    parser.add_argument("--max-seconds", type=float, help="skip cases estimated to take longer")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keys = ("batch_sizes", "sampler_steps", "guidance", "windows", "window_batch_sizes", "repeats", "max_seconds")
    overrides = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    overrides.update({key: True for key in ("compile", "bf16") if getattr(args, key)})
    if args.model in PRESETS:
        sizes, frame_size = preset(args.model), (32, 32)
    else:
        (sizes, frame_size), overrides["model"] = sizes_of(args.model), args.model
    try:
        grid = replace(QUICK if args.quick else FULL, **overrides)
    except UserError as error:
        parser.error(str(error))  # a bad list: one line, and the usage
    report = run_speed(sizes, tuple(args.frame_size or frame_size), resolve_devices(args.device), grid)
    command = shlex.join(["python", "benchmarks/speed.py", *sys.argv[1:]])
    for path in write_report(report, args.out, command):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
