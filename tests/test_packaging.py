"""The wheel installs envs/ and agents/ as worldsim.envs and worldsim.agents, never as global names."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.util, sys
import worldsim, worldsim.envs, worldsim.agents, gymnasium as gym
from worldsim.cli import compose
root = sys.argv[1]
assert worldsim.envs.__file__.startswith(root), worldsim.envs.__file__
assert importlib.util.find_spec("envs") is None, "a global 'envs' package is importable"
assert importlib.util.find_spec("agents") is None, "a global 'agents' package is importable"
assert compose("collect", ["world=cartpole"]).world.env_id == "worldsim/CartPole-v0"
from worldsim.bench.speed import preset  # `worldsim bench speed` runs from the wheel
assert preset("tiny").hidden_size == 32 and compose("bench", ["preset=tiny"], ["bench=speed"]).preset == "tiny"
from worldsim.model.world_model import shipped_models
assert sorted(shipped_models()) == ["balls", "cartpole"] and all(str(p).startswith(root) for p in shipped_models().values())
env = gym.make("worldsim/Balls-v0", frame_size=(8, 8))
assert env.reset(seed=0)[0].shape == (8, 8, 3)
print("ok")
"""


def test_wheel_installs_under_the_worldsim_namespace(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("worldsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "worldsim/envs/balls.py" in names and "worldsim/agents/__init__.py" in names
    assert "worldsim/configs/collect.yaml" in names and "worldsim/configs/world/balls.yaml" in names
    assert "worldsim/bench/speed.py" in names and "worldsim/configs/bench.yaml" in names and "worldsim/configs/bench/speed.yaml" in names
    assert {f"worldsim/shipped/{name}/dit/diffusion_pytorch_model.safetensors" for name in ("balls", "cartpole")} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("envs", "agents", "configs", "tests", "benchmarks")]
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # PYTHONPATH comes before the editable install's finder, so this imports the wheel's files;
    # the cwd is outside the repo so that its top-level folders are not on the path.
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "SDL_AUDIODRIVER": "dummy"},
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
