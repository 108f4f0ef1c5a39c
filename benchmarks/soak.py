"""Soak: many dream envs stepped for a long time. Does memory stay flat, step time steady, no NaN?

    python benchmarks/soak.py --model balls [--envs 16] [--steps 10000] [--every 250] \
        [--world-kwargs '{"scenario": "push"}'] [--seed 0] [--out FOLDER]

It makes ``envs`` dream envs of ``model`` as one vector env (``gym.make_vec``, one batch of the
simulator, autoreset in the same step), resets them with ``seed`` and steps them ``steps`` times
with uniformly random actions. Every ``every`` vector steps it records the process's resident
memory (RSS), the mean step time since the last record and the NaN count so far (observations,
rewards). Memory growth is measured from the first record (after warm-up: caches, allocator pools
and the first resets are in place) to the last; the target is <= 5%. Writes ``soak.md``,
``soak.json`` (every record: plottable) and ``soak.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.atomic import atomic_write, write_table
from worldsim.model.world_model import load

GROWTH_TARGET = 0.05


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux: /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(model: str, envs: int, steps: int, every: int, seed: int, world_kwargs: dict) -> dict:
    world = load(model)
    env_id = world.config.env_id.replace("worldsim/", "worldsim/Dream")
    venv = gym.make_vec(env_id, num_envs=envs, vectorization_mode="vector_entry_point", model=model, **world_kwargs)
    rng = np.random.default_rng(seed)
    venv.action_space.seed(seed)
    venv.reset(seed=seed)
    records, nans, episodes, last = [], 0, 0, time.perf_counter()
    for step in range(1, steps + 1):
        obs, rewards, terminated, truncated, _ = venv.step(rng.integers(0, venv.single_action_space.n, envs))
        nans += int(np.isnan(rewards).sum())  # observations are uint8: a NaN frame shows as its rewards
        episodes += int((terminated | truncated).sum())
        if step % every == 0:
            now = time.perf_counter()
            records.append(
                {
                    "step": step,
                    "rss_mib": round(rss_mib(), 1),
                    "step_ms": round(1000 * (now - last) / every, 2),
                    "nans": nans,
                    "episodes": episodes,
                }
            )
            last = now
            print(records[-1], flush=True)
    venv.close()
    first, final = records[0], records[-1]
    growth = (final["rss_mib"] - first["rss_mib"]) / first["rss_mib"]
    return {
        "model": model,
        "envs": envs,
        "steps": steps,
        "every": every,
        "seed": seed,
        "world_kwargs": world_kwargs,
        "threads": torch.get_num_threads(),
        "memory_growth": round(growth, 4),
        "nans": nans,
        "episodes": episodes,
        "passed": growth <= GROWTH_TARGET and nans == 0,
        "records": records,
    }


def markdown(result: dict, command: str) -> str:
    records = result["records"]
    first, final = records[0], records[-1]
    times = [r["step_ms"] for r in records]
    verdict = "PASS" if result["passed"] else "FAIL"
    return (
        f"# Soak: {result['envs']} dream envs of `{result['model']}` for {result['steps']:,} vector steps\n\n"
        f"`{command}` ({result['threads']} torch threads; random actions, autoreset; {result['episodes']:,} episodes ended)\n\n"
        "| measure | value |\n| --- | --- |\n"
        f"| resident memory at step {first['step']:,} (after warm-up) | {first['rss_mib']:.1f} MiB |\n"
        f"| resident memory at step {final['step']:,} | {final['rss_mib']:.1f} MiB |\n"
        f"| growth (target <= {GROWTH_TARGET:.0%}) | {result['memory_growth']:+.2%}: **{verdict}** |\n"
        f"| NaN rewards | {result['nans']} |\n"
        f"| vector step time: first / median / last record | {times[0]:.1f} / {float(np.median(times)):.1f} / {times[-1]:.1f} ms |\n\n"
        "Every record (each `every` vector steps) is in `soak.json`; `soak.png` plots memory and step time.\n"
    )


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in result["records"]]
    fig, (memory, timing) = plt.subplots(1, 2, figsize=(10, 3.5))
    memory.plot(steps, [r["rss_mib"] for r in result["records"]])
    memory.set(xlabel="vector step", ylabel="resident memory (MiB)", title="memory")
    memory.set_ylim(bottom=0)
    timing.plot(steps, [r["step_ms"] for r in result["records"]])
    timing.set(xlabel="vector step", ylabel="ms per vector step", title=f"{result['envs']} envs")
    timing.set_ylim(bottom=0)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="balls", help="a world model: shipped name, model or run folder")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--world-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"scenario": "push"}\'')
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.envs < 1 or args.every < 1 or args.steps < 2 * args.every:
        parser.error(f"need envs >= 1, every >= 1 and steps >= 2 * every; got envs={args.envs}, every={args.every}, steps={args.steps}")
    result = soak(args.model, args.envs, args.steps, args.every, args.seed, args.world_kwargs)
    text = markdown(result, f"python benchmarks/soak.py {shlex.join(sys.argv[1:])}")
    print(text, end="")
    if args.out is not None:
        write_table(args.out, "soak", text, result)
        plot(result, args.out / "soak.png")


if __name__ == "__main__":
    main()
