"""benchmarks/action_response.py: real states branched under every held action, in the world and the dream."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_world_model import save_tiny_world_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import action_response  # noqa: E402


def test_gain_and_error_of_a_perfect_a_deaf_and_a_reversed_dream():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 240, (4, 2, 3, 6, 6, 3)).astype(np.uint8)
    real[:, 1, 0] = real[:, 0, 0]  # no effect at h = 1
    running = np.ones((4, 2, 3), bool)
    running[0, 1, 2] = False  # start 0's second branch ended: its last step does not count
    perfect = action_response.compare(real, running, real)
    assert perfect[0] == {"horizon": 1, "pairs": 4, "effect": 0.0, "gain": None, "error": None, "noise": None}
    assert [r["pairs"] for r in perfect] == [4, 4, 3]
    assert all(r["gain"] == pytest.approx(1) and r["error"] == pytest.approx(0) for r in perfect[1:])
    deaf = real.copy()
    deaf[:, 1] = deaf[:, 0]  # the dream ignores the action
    assert all(r["gain"] == pytest.approx(0) and r["error"] == pytest.approx(1) for r in action_response.compare(real, running, deaf)[1:])
    reversed_ = real[:, ::-1]  # the actions' effects swapped
    assert all(r["error"] == pytest.approx(2) for r in action_response.compare(real, running, reversed_)[1:])
    # Noise: two dreams of a branch differing by 8 levels everywhere, against the real effect's RMS.
    again = real + np.uint8(8)
    rows = action_response.compare(real, running, real, again)
    assert rows[0]["noise"] is None and perfect[1]["noise"] is None
    assert all(r["noise"] == pytest.approx(8 / 255 / r["effect"], rel=1e-5) for r in rows[1:])


def test_cartpole_branches_show_an_action_from_the_second_frame(tmp_path, capsys):
    model = save_tiny_world_model(tmp_path / "model", env_id="worldsim/CartPole-v0", frame_size=(16, 16))
    out = tmp_path / "out"
    report = action_response.main(["--model", f"tiny={model}", "--starts", "3", "--horizon", "3", "--out", str(out)])
    real = report["real"]
    # CartPole's Euler step moves the pole by its old velocity: both branches' first frames are equal.
    assert real[0]["effect"] == 0.0 and real[1]["effect"] > 0 and real[2]["effect"] > real[1]["effect"]
    rows = report["models"]["tiny"]["rows"]
    assert rows[0]["gain"] is None and all(r["gain"] >= 0 and r["error"] >= 0 and r["noise"] >= 0 for r in rows[1:])
    assert json.loads((out / "action_response.json").read_text())["models"]["tiny"]["rows"] == rows
    assert (
        "| tiny: gain | - |" in (out / "action_response.md").read_text()
        and "| tiny: noise | - |" in (out / "action_response.md").read_text()
    )
    assert report["command"].startswith("python benchmarks/action_response.py --model tiny=")
    for argv, message in (
        (["--model", "tiny"], "--model takes LABEL=PATH"),
        (["--model", f"tiny={model}", "--horizon", "0"], "--horizon must be at least 1, got 0"),
        (["--model", f"tiny={model}", "--policy", "nope.zip"], "--policy takes 'random' or a saved SB3 policy file"),
    ):
        with pytest.raises(SystemExit):
            action_response.main(argv)
        assert message in capsys.readouterr().err
