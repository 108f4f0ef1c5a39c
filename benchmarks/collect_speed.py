"""Collection speed of the real worlds: frames per second written to disk by `worldsim collect`.

    python benchmarks/collect_speed.py [--episodes 20] [--out benchmarks/results]

Writes ``collect_speed.json`` and ``collect_speed.md`` to ``--out``. One process, one core busy.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch

from worldsim.atomic import write_table
from worldsim.data.collect import collect

CASES = [
    ("worldsim/Balls-v0", {"frame_size": (64, 64)}, "uniform"),
    ("worldsim/Balls-v0", {"frame_size": (64, 64)}, "collision"),
    ("worldsim/Balls-v0", {"frame_size": (64, 64)}, "parabola"),
    ("worldsim/Balls-v0", {"frame_size": (64, 64)}, "push"),
    ("worldsim/Balls-v0", {"frame_size": (32, 32)}, "collision"),
    ("worldsim/Balls-v0", {"frame_size": (48, 96)}, "collision"),
    ("worldsim/CartPole-v0", {"frame_size": (64, 64)}, None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = []
    for env_id, kwargs, scenario in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            summary = collect(env_id, Path(tmp) / "d", args.episodes, kwargs, [scenario] if scenario else None, progress=False)
        rows.append(
            {
                "env_id": env_id,
                "scenario": scenario,
                "frame_size": list(kwargs["frame_size"]),
                "episodes": summary.episodes,
                "frames": summary.frames,
                "seconds": round(summary.seconds, 3),
                "frames_per_s": round(summary.frames_per_second, 1),
                "bytes_per_frame": round(summary.bytes / summary.frames, 1),
            }
        )
        print(rows[-1])
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__}
    lines = [
        "# Collection speed",
        "",
        f"`python benchmarks/collect_speed.py --episodes {args.episodes}` on {machine['cores']} cores ({machine['cpu']}).",
        "Frames/s counts every frame written (reset frame included), policy `auto`, compressed `.npz` on disk.",
        "",
        "| world | scenario | frame size | episodes | frames | frames/s | bytes/frame |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        size = "x".join(map(str, r["frame_size"]))
        lines.append(
            f"| {r['env_id']} | {r['scenario'] or '-'} | {size} | {r['episodes']} | {r['frames']} | {r['frames_per_s']:.0f} | "
            f"{r['bytes_per_frame']:.0f} |"
        )
    write_table(args.out, "collect_speed", "\n".join(lines) + "\n", {"machine": machine, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
