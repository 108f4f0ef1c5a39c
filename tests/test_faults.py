"""Faults: ``kill -9`` of ``worldsim collect`` and ``worldsim train`` at random moments, then the
same command again. The commands run under tests/fault_runner.py, which holds every atomic write
open 50 ms before its rename, so that many kills land inside a write. Nothing finished may be lost beyond one
checkpoint interval, no temporary or damaged file may be left, both checkpoint loaders must agree
after every kill, and the resumed result must equal an uninterrupted run byte for byte.

The default suite kills each command twice; ``make test-slow`` kills each 20 times.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from worldsim.model.world_model import model_folder
from worldsim.training import checkpoint

COLLECT = ["collect", "world=balls", "scenario=[uniform,push]", "episodes=24", "frame_size=[16,16]", "progress=false"]
TRAIN = ["train", "model=tiny", "train=smoke", "steps=40", "train.checkpoint_every=4", "progress=false"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


RUNNER = Path(__file__).with_name("fault_runner.py")


def worldsim(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), *argv], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(*argv: str) -> None:
    """Runs a command to its end."""
    process = worldsim(*argv)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


def killed(argv: list[str], progressed, delay: float) -> bool:
    """Starts a command, waits until ``progressed()`` (it has done some work), then kills it with
    SIGKILL ``delay`` seconds later; False if it ended first."""
    process = worldsim(*argv)
    while process.poll() is None and not progressed():
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return True
    assert process.returncode == 0, process.stderr.read()[-3000:]
    return False


def count(root: Path, pattern: str) -> int:
    return len(list(root.rglob(pattern))) if root.exists() else 0


def rows(metrics: Path) -> int:
    return len(metrics.read_text().splitlines()) - 1 if metrics.is_file() else 0


def stamp(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.is_file() else None


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary files and folders: what a kill inside a write leaves until the next run sweeps it."""
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def check_inside_writes(inside: int, kills: int) -> None:
    # A kill comes 0-80 ms (train: 0-160 ms) after a file or log row appears, and each write is held
    # open 50 ms, so many land inside one; in 20 kills none doing so would be a broken harness.
    if kills >= 20:
        assert inside >= 1, f"none of {kills} kills landed inside a write"


def kill_points(kills: int, seed: int) -> list[tuple[int, float]]:
    """Per kill: how many new files or log rows to wait for (1-3), then a delay of 0-80 ms, so
    that kills land all over the work, often inside one of its writes (each held open 50 ms)."""
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, 4)), float(rng.uniform(0, 0.08))) for _ in range(kills)]


def kills_for(request) -> int:
    return 20 if request.node.get_closest_marker("slow") else 2


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted collection and a training run on it."""
    root = tmp_path_factory.mktemp("faults")
    finish(*COLLECT, f"out={root / 'data'}")
    finish(*TRAIN, f"data={root / 'data'}", f"out={root / 'run'}")
    return root


def collect_with_kills(reference, tmp_path, kills):
    root = reference
    out = tmp_path / "data"
    argv = [*COLLECT, f"out={out}"]
    landed = inside = 0
    for more, delay in kill_points(kills, seed=kills):
        done = count(out, "*.npz")
        landed += killed(argv, lambda done=done, more=more: count(out, "*.npz") >= done + more, delay)
        inside += bool(leftovers(out)) if out.exists() else 0
    finish(*argv)
    assert landed >= kills // 2, f"only {landed} of {kills} kills landed before the run ended"
    check_inside_writes(inside, kills)
    assert leftovers(out) == []
    assert files(out) == files(root / "data")  # every episode and collection.json, byte for byte


def train_with_kills(reference, tmp_path, kills):
    root = reference
    out = tmp_path / "run"
    argv = [*TRAIN, f"data={root / 'data'}", f"out={out}"]
    landed = inside = 0
    for more, delay in kill_points(kills, seed=100 + kills):
        resume = [] if checkpoint.newest(out) is None else ["resume=true"]
        newest = checkpoint.newest(out)
        done = int(newest.name.split("_")[1]) if newest else 0  # a resumed run logs again from here
        metrics, before = out / "metrics.csv", stamp(out / "metrics.csv")
        # The killed run's rows stay in metrics.csv until the new run rewrites it: count after that.
        landed += killed(argv + resume, lambda m=metrics, b=before, n=done + more: stamp(m) != b and rows(m) >= n, 2 * delay)
        inside += bool(out.exists() and leftovers(out))
        newest = checkpoint.newest(out)
        if newest is None:
            continue
        assert model_folder(out) == newest  # worldsim.load and resume=true read the same checkpoint
        logged = [int(row["step"]) for row in csv.DictReader((out / "metrics.csv").open())]
        assert int(newest.name.split("_")[1]) >= max(logged) - 4  # at most one interval (checkpoint_every=4) lost
    finish(*argv, *(["resume=true"] if checkpoint.newest(out) else []))
    assert landed >= kills // 2, f"only {landed} of {kills} kills landed before the run ended"
    check_inside_writes(inside, kills)
    assert leftovers(out) == []
    final, expected = out / "checkpoints" / "step_0000040", root / "run" / "checkpoints" / "step_0000040"
    for part in ("dit/diffusion_pytorch_model.safetensors", "text_encoder/diffusion_pytorch_model.safetensors"):
        got, want = load_file(final / part), load_file(expected / part)
        assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in want), part


def test_collect_survives_kills(reference, tmp_path, request):
    collect_with_kills(reference, tmp_path, kills_for(request))


def test_train_survives_kills(reference, tmp_path, request):
    train_with_kills(reference, tmp_path, kills_for(request))


@pytest.mark.slow
def test_collect_survives_twenty_kills(reference, tmp_path, request):
    collect_with_kills(reference, tmp_path, kills_for(request))


@pytest.mark.slow
def test_train_survives_twenty_kills(reference, tmp_path, request):
    train_with_kills(reference, tmp_path, kills_for(request))


# ------------------------------------------------------------------------------ damaged files
# Every kind of file worldsim reads, damaged three ways: each must be refused with a UserError
# that names the file (or its folder), never loaded silently or crashed on with a raw traceback.

DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: bytes(np.random.default_rng(0).integers(0, 256, max(len(data), 64), dtype=np.uint8)),
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A collection, a model folder, a training run and an SB3 policy, made once; tests damage copies."""
    import gymnasium as gym
    from synthetic import make_collection
    from tiny_world_model import save_tiny_world_model

    from worldsim.agents.imagination import make_agent
    from worldsim.training.config import ModelConfig, TrainConfig
    from worldsim.training.loop import train

    root = tmp_path_factory.mktemp("artifacts")
    data = make_collection(root / "data", episodes=4)
    save_tiny_world_model(root / "model")
    tiny = ModelConfig(hidden_size=32, depth=2, num_heads=2, text_dim=32, text_depth=1, text_heads=2)
    train([data], root / "run", 2, tiny, TrainConfig(batch_size=4, window_lengths=[3], checkpoint_every=2, log_every=1), progress=False)
    push = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16))
    make_agent("ppo", push, seed=0).save(root / "policy.zip")
    return root


def read_collection(root: Path) -> None:
    from worldsim.data.dataset import WindowDataset

    WindowDataset(root / "data", window_lengths=3)


def read_model(root: Path) -> None:
    import worldsim

    worldsim.load(root / "model")


def read_run_model(root: Path) -> None:
    import worldsim

    worldsim.load(root / "run")


def resume_run(root: Path) -> None:
    from worldsim.training.config import ModelConfig, TrainConfig
    from worldsim.training.loop import train

    tiny = ModelConfig(hidden_size=32, depth=2, num_heads=2, text_dim=32, text_depth=1, text_heads=2)
    cfg = TrainConfig(batch_size=4, window_lengths=[3], checkpoint_every=2, log_every=1)
    train([root / "data"], root / "run", 4, tiny, cfg, resume=True, progress=False)


def read_policy(root: Path) -> None:
    import gymnasium as gym

    from worldsim.data.policies import make_policy

    make_policy(str(root / "policy.zip"), gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16)))


FILES = {  # what is damaged (a glob below the artifacts) -> what reads it
    "episode": ("data/episodes/*.npz", read_collection),
    "collection.json": ("data/collection.json", read_collection),
    "DiT weights": ("model/dit/*.safetensors", read_model),
    "text encoder weights": ("model/text_encoder/*.safetensors", read_model),
    "DiT config": ("model/dit/config.json", read_model),
    "worldsim.json": ("model/worldsim.json", read_model),
    "manifest.json": ("model/manifest.json", read_model),
    "run checkpoint weights": ("run/checkpoints/step_0000002/dit/*.safetensors", read_run_model),
    "training state": ("run/checkpoints/step_0000002/training_state.pt", resume_run),
    "metrics.csv": ("run/metrics.csv", resume_run),
    "SB3 policy": ("policy.zip", read_policy),
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("kind", FILES)
def test_a_damaged_file_is_refused_by_name(kind, damage, artifacts, tmp_path):
    import shutil

    from worldsim.errors import UserError

    root = tmp_path / "copy"
    shutil.copytree(artifacts, root)
    pattern, read = FILES[kind]
    path = sorted(root.glob(pattern))[0]
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    if (kind, damage) == ("metrics.csv", "truncated"):
        # Rows are appended as a run goes, so a kill can cut its last line short: a resumed run
        # drops that line and keeps the whole rows before it, and only those.
        read(root)
        rows = list(csv.DictReader(path.open()))
        steps = [int(r["step"]) for r in rows]
        assert steps == sorted(set(steps)) and steps[-2:] == [3, 4] and all(None not in r.values() for r in rows)
        return
    with pytest.raises(UserError) as refused:
        read(root)
    named = str(path) in str(refused.value) or str(path.parent) in str(refused.value)
    assert named, f"the error does not name {path}: {refused.value}"
