"""benchmarks/dream_drift.py: how far a closed-loop CartPole dream drifts off the world's drawings."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from tiny_world_model import save_tiny_world_model

from worldsim.agents.imagination import make_agent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dream_drift  # noqa: E402

CARTPOLE = {"env_id": "worldsim/CartPole-v0", "num_actions": 2}


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    """An untrained PPO agent of worldsim's defaults for 16x16 pixel CartPole, saved."""
    path = tmp_path_factory.mktemp("policy") / "policy.zip"
    make_agent("ppo", gym.make("worldsim/CartPole-v0", frame_size=(16, 16)), seed=0).save(path)
    return path


def test_a_random_model_drifts_off_the_drawings_the_world_stays_on_them(tmp_path, policy):
    ends = save_tiny_world_model(tmp_path / "ends", terminates=True, **CARTPOLE)
    never = save_tiny_world_model(tmp_path / "never", **CARTPOLE)
    argv = ["--model", f"ends={ends}", "--model", f"never={never}", "--policy", str(policy)]
    report = dream_drift.main([*argv, "--episodes", "2", "--steps", "4", "--every", "2", "--out", str(tmp_path / "out")])
    assert report["checked"] == [1, 2, 4]
    # The world's own frames are CartPole drawings (16x16 here, 8 episodes of 20 steps: error 0.0);
    # a random network's are not (at least 29.5 over the same 8 x 20 frames).
    real, dreamed = report["real"]["summary"], report["models"]["never"]["summary"]
    assert real["1"]["median"] < 1.0 and dreamed["1"]["median"] > 20.0
    # The head's ends are noted, not obeyed: the always-ending model ended every env at step 1 and
    # still dreamed all 4 steps; the never-ending one ended none.
    assert report["models"]["ends"]["ends"] == [1, 1] and all(e > 20.0 for e in report["models"]["ends"]["end_errors"])
    assert report["models"]["never"]["ends"] == [None, None] and len(report["models"]["never"]["errors"][0]) == 3
    text = (tmp_path / "out" / "dream_drift.md").read_text()
    assert "| ends |" in text and "2 of 2 | 1 |" in text and "| never |" in text and "0 of 2 | - | - |" in text
    assert json.loads((tmp_path / "out" / "dream_drift.json").read_text())["models"]["ends"]["ends"] == [1, 1]
    assert (tmp_path / "out" / "dream_drift.png").stat().st_size > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--policy", "nope.zip"], "--policy takes a saved SB3 policy file (.zip)"),
        (["--every", "0"], "--episodes, --steps, --every and --sampler-steps must be integers >= 1, got 16, 100, 0, None"),
        (["--model", "nolabel"], "--model takes LABEL=PATH"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(tmp_path, policy, capsys, extra, message):
    model = save_tiny_world_model(tmp_path / "m", **CARTPOLE)
    argv = ["--model", f"m={model}", "--policy", str(policy), *extra]
    with pytest.raises(SystemExit):
        dream_drift.main(argv)
    assert message in capsys.readouterr().err


def test_a_model_of_another_world_is_refused(tmp_path, policy):
    balls = save_tiny_world_model(tmp_path / "balls")
    with pytest.raises(SystemExit, match="measures CartPole models .* is a model of worldsim/Balls-v0"):
        dream_drift.main(["--model", f"balls={balls}", "--policy", str(policy)])
