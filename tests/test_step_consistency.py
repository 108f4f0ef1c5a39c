"""benchmarks/step_consistency.py: each k's frame against the reference's, from the same noise."""

import json
import sys
from pathlib import Path

import pytest
from synthetic import make_collection
from tiny_world_model import save_tiny_world_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import step_consistency  # noqa: E402


def test_the_reference_is_at_distance_zero_and_fewer_steps_are_not(tmp_path, capsys):
    model = save_tiny_world_model(tmp_path / "model", frame_size=(8, 8))
    data = make_collection(tmp_path / "data", episodes=4, steps=6, size=8)
    out = tmp_path / "out"
    argv = ["--model", f"tiny={model}", "--data", str(data), "--samples", "6", "--context", "3", "--steps", "1", "2",
            "--reference", "4", "--out", str(out)]  # fmt: skip
    step_consistency.main(argv)
    results = json.loads((out / "step_consistency.json").read_text())["results"]["tiny"]
    assert list(results) == ["1", "2", "4"] and results["4"]["to_reference"] == 0.0
    assert results["1"]["to_reference"] > 0 and all(r["to_truth"] > 0 for r in results.values())
    text = (out / "step_consistency.md").read_text()
    assert "| tiny | " in text and "python benchmarks/step_consistency.py --model tiny=" in text
    with pytest.raises(SystemExit):
        step_consistency.main(["--model", "tiny", "--data", str(data)])
    assert "--model takes LABEL=PATH" in capsys.readouterr().err
