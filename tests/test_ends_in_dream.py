"""benchmarks/ends_in_dream.py: dream branches from real frames before each episode's end."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_collection
from tiny_world_model import save_tiny_world_model

from worldsim.data.collection import Collection, episode_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ends_in_dream  # noqa: E402


def ending_collection(root: Path) -> Path:
    """Six synthetic episodes of 8 steps; the first four end by termination, the others are truncated."""
    make_collection(root, episodes=6, steps=8, size=16)
    for i, episode in enumerate(Collection(root).load()):
        if i < 4:
            episode.terminated[-1], episode.truncated[-1] = True, False
        episode.save(episode_path(root, "episodes", i))
    return root


def test_a_dream_that_always_ends_ends_early_and_one_that_never_does_never(tmp_path, capsys):
    data = ending_collection(tmp_path / "data")
    always = save_tiny_world_model(tmp_path / "always", terminates=True)
    never = save_tiny_world_model(tmp_path / "never")
    out = tmp_path / "out"
    argv = ["--model", f"always={always}", "--model", f"never={never}", "--data", str(data), "--before", "1", "4", "--late", "2"]
    report = ends_in_dream.main([*argv, "--out", str(out)])
    rows = {label: {r["row"]: r for r in table} for label, table in report["models"].items()}
    # Every dream step of `always` terminates: on time one step before an end, early four before.
    assert rows["always"]["1 before"]["on_time"] == 1.0 and rows["always"]["4 before"]["early"] == 1.0
    assert rows["never"]["1 before"]["never"] == rows["never"]["4 before"]["never"] == 1.0
    # Control branches start >= 4 + 2 steps before an end (or in the two episodes that do not end).
    assert rows["always"]["control"]["false_ends"] == 1.0 and rows["never"]["control"]["false_ends"] == 0.0
    assert rows["never"]["4 before"]["branches"] == 4 and rows["never"]["control"]["branches"] == 6
    # The real return is what the data paid over the replayed steps.
    episodes = Collection(data).load()
    assert rows["never"]["4 before"]["real_return"] == pytest.approx(np.mean([e.rewards[-4:].sum() for e in episodes[:4]]))
    assert json.loads((out / "ends_in_dream.json").read_text())["models"] == report["models"]
    assert "| always | 1 before | 4 | 1.00 |" in (out / "ends_in_dream.md").read_text()
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", str(never), "--data", str(data)])
    assert "--model takes LABEL=PATH" in capsys.readouterr().err
    truncated = make_collection(tmp_path / "truncated", episodes=2, steps=4, size=16)
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", f"never={never}", "--data", str(truncated)])
    assert "ends by termination" in capsys.readouterr().err
