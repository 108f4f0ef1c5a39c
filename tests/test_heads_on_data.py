"""benchmarks/heads_on_data.py: the heads read teacher-forced on a collection's real frames."""

import json
import sys
from pathlib import Path

import pytest
from synthetic import make_collection
from tiny_world_model import save_tiny_world_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import heads_on_data  # noqa: E402


def test_false_alarms_recall_and_reward_error_per_model(tmp_path, capsys):
    model = save_tiny_world_model(tmp_path / "model", frame_size=(8, 8))
    data = make_collection(tmp_path / "data", episodes=3, steps=4, size=8)
    out = tmp_path / "out"
    report = heads_on_data.main(["--model", f"tiny={model}", "--data", str(data), "--episodes", "2", "--out", str(out)])
    figures = report["models"]["tiny"]
    assert report["episodes"] == 2 and figures["steps"] == 8 and 0 <= figures["false_alarms"] <= 1 and figures["reward_rmse"] >= 0
    assert json.loads((out / "heads_on_data.json").read_text())["models"]["tiny"] == figures
    assert "| tiny | " in (out / "heads_on_data.md").read_text() and "python benchmarks/heads_on_data.py --model tiny=" in report["command"]
    with pytest.raises(SystemExit):
        heads_on_data.main(["--model", "tiny", "--data", str(data)])
    assert "--model takes LABEL=PATH" in capsys.readouterr().err


def test_a_head_that_always_fires_fires_before_every_end(tmp_path):
    from worldsim.data.collection import Collection, episode_path

    data = make_collection(tmp_path / "data", episodes=3, steps=4, size=8)
    for i, episode in enumerate(Collection(data).load()):  # the first two end by termination
        episode.terminated[-1], episode.truncated[-1] = i < 2, i >= 2
        episode.save(episode_path(data, "episodes", i))
    always = save_tiny_world_model(tmp_path / "always", frame_size=(8, 8), terminates=True)
    never = save_tiny_world_model(tmp_path / "never", frame_size=(8, 8))
    report = heads_on_data.main(["--model", f"always={always}", "--model", f"never={never}", "--data", str(data), "--episodes", "3"])
    # Episodes of 4 steps: steps 1 to 3 before each of the two ends exist, 4 before does not.
    assert report["models"]["always"]["fires_before"] == {"1": 1.0, "2": 1.0, "3": 1.0, "4": None}
    assert report["models"]["never"]["fires_before"] == {"1": 0.0, "2": 0.0, "3": 0.0, "4": None}
    assert report["models"]["always"]["recall"] == 1.0 and report["terminal_steps"] == 2
