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
