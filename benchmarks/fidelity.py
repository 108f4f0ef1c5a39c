"""Simulator fidelity and physics: how faithful is a world model's dream to its real world?

    python benchmarks/fidelity.py fidelity model=RUN_OR_MODEL [episodes=16 horizon=64 long_steps=1000 ...]
    python benchmarks/fidelity.py physics model=RUN_OR_MODEL [episodes=16 horizon=64 ...]

The same as `worldsim bench fidelity|physics` (keys in configs/bench.yaml; the metrics and what
they mean in worldsim/bench/fidelity.py and worldsim/metrics.py). Writes <mode>.json, <mode>.md,
plots and side-by-side mp4s to out= (default benchmarks/results/<mode>).
"""

from __future__ import annotations

import sys

from worldsim.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("fidelity", "physics"):
        sys.exit(f"usage: python benchmarks/fidelity.py fidelity|physics model=... [key=value ...]\n\n{__doc__}")
    sys.exit(main(["bench", *sys.argv[1:]]))
