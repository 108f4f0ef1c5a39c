"""`worldsim bench fidelity|physics` on a tiny random model: reports, alignment, determinism, errors."""

import json

import numpy as np
import pytest
from tiny_world_model import save_tiny_world_model, tiny_world_model

from worldsim.bench import fidelity
from worldsim.cli import main

FAST = dict(episodes=2, horizon=4, long_steps=6, long_rollouts=1, progress=False)


def without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "seconds"}


def test_a_dream_equal_to_the_real_world_scores_the_ceiling_and_the_parser_floor(monkeypatch):
    monkeypatch.setattr(fidelity, "dream", lambda model, group, actions, settings: group.real.copy())
    model = tiny_world_model()
    settings = fidelity.Settings(**{**FAST, "long_steps": 0}, scenarios=("collision", "push"))
    result = fidelity.run_fidelity(model, settings)
    report = result.report
    assert [g.name for g in result.groups] == ["collision/id", "push/id"] and result.long_frames is None  # long_steps=0
    for name in ("collision/id", "push/id"):
        entry = report["groups"][name]
        assert entry["curves"]["model"]["psnr"] == [60.0] * 4 and entry["curves"]["model"]["ssim"] == pytest.approx([1.0] * 4)
        assert entry["motion"]["model"] == {**entry["motion"]["model"], "spatial_iou": 1.0, "spatiotemporal_iou": 1.0,
                                            "weighted_spatial_iou": 1.0, "mse": 0.0}  # fmt: skip
        assert entry["motion"]["model"]["physics_iq"] == 100.0
    assert report["groups"]["push/id"]["controllability"] == [0.0] * 4  # random actions dreamed the same frames
    assert "controllability" not in report["groups"]["collision/id"]  # no-op policy: nothing to randomise
    physics = fidelity.run_physics(model, settings).report
    assert set(physics["groups"]) == {"collision/id", "push/id", "collision/ood"}
    for entry in physics["groups"].values():
        assert entry["model"] == entry["parser_floor"]
    inside = [row for row in physics["targets"] if ": id error" in row["target"]]
    assert len(inside) == 2 and all(row["ratio"] == 1.0 and row["passed"] for row in inside)


def test_copy_last_and_constant_velocity_baselines_line_up_with_the_real_frames():
    model = tiny_world_model()
    settings = fidelity.Settings(**FAST)
    (group,), context = fidelity.prepare(model, settings, ("id",), ["uniform"])
    moved = fidelity.constant_velocity(group, (16, 16))
    # A lone ball far from the walls moves in a straight line: constant velocity is the truth at h=1.
    np.testing.assert_array_equal(moved[:, :context], group.real[:, :context])
    assert (fidelity.metrics.psnr(moved[:, context], group.real[:, context]) > 40).all()
    twin = fidelity.physical_variance(model, group, 0.0)
    np.testing.assert_array_equal(twin, group.real)  # no nudge: the same take


def test_fidelity_cli_writes_every_section_and_is_reproducible(tmp_path):
    folder = save_tiny_world_model(tmp_path / "model")
    argv = ["bench", "fidelity", f"model={folder}", "episodes=2", "horizon=4", "long_steps=6", "long_rollouts=1",
            "videos=1", "scenario=[collision,push]", "progress=false", "device=cpu"]  # fmt: skip
    assert main([*argv, f"out={tmp_path / 'a'}"]) == 0
    report = json.loads((tmp_path / "a" / "fidelity.json").read_text())
    assert set(report["groups"]) == {"collision/id", "push/id", "all"}
    curves = report["groups"]["collision/id"]["curves"]
    assert set(curves) == {"model", "copy_last", "constant_velocity", "physical_variance"}
    assert all(len(c["psnr"]) == len(c["ssim"]) == 4 for c in curves.values())
    assert len(report["groups"]["push/id"]["controllability"]) == 4
    assert set(report["heads"]) == {"collision", "push"} and report["heads"]["push"]["steps"] > 0
    assert [len(r["valid"]) for r in report["long_rollouts"].values()] == [6, 6]
    assert {row["baseline"] for row in report["targets"]} == {"copy_last", "constant_velocity", "physical_variance"}
    for name in ("fidelity.md", "fidelity.png", "long_rollouts.png", "videos/fidelity-push-id.mp4", "videos/long_rollouts.mp4"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    assert "## Motion masks (Physics-IQ)" in (tmp_path / "a" / "fidelity.md").read_text()
    assert main([*argv, f"out={tmp_path / 'b'}"]) == 0
    again = json.loads((tmp_path / "b" / "fidelity.json").read_text())
    assert without_timing(again)["groups"] == without_timing(report)["groups"]


def test_physics_cli_and_its_errors(tmp_path, capsys):
    folder = save_tiny_world_model(tmp_path / "model")
    argv = ["bench", "physics", f"model={folder}", "episodes=1", "horizon=3", "scenario=parabola", "progress=false"]
    assert main([*argv, f"out={tmp_path / 'p'}"]) == 0
    report = json.loads((tmp_path / "p" / "physics.json").read_text())
    assert set(report["groups"]) == {"parabola/id", "parabola/ood"}
    assert report["groups"]["parabola/id"]["parser_floor"]["count_violations"] == 0.0
    assert (tmp_path / "p" / "physics.md").is_file() and (tmp_path / "p" / "physics.png").is_file()
    capsys.readouterr()
    assert main(["bench", "physics"]) == 2 and "needs model=" in capsys.readouterr().err
    cartpole = save_tiny_world_model(tmp_path / "cartpole", env_id="worldsim/CartPole-v0")
    assert main(["bench", "physics", f"model={cartpole}", "progress=false"]) == 1
    assert "parses Balls frames" in capsys.readouterr().err
    assert main([*argv, "scenario=bounce"]) == 1 and "unknown Balls scenario 'bounce'" in capsys.readouterr().err
    assert main([*argv, "horizon=2"]) == 1 and "horizon must be at least 3" in capsys.readouterr().err


def test_the_report_is_plain_json_and_the_videos_frames_travel_beside_it(tmp_path):
    model = tiny_world_model()
    settings = fidelity.Settings(**{**FAST, "long_rollouts": 2, "videos": 1}, scenarios=("collision", "push"))
    result = fidelity.run_fidelity(model, settings)
    before = json.dumps(result.report)  # plain data: an array, a group or frames inside would be a TypeError
    assert list(result.report["long_rollouts"]) == ["collision", "push"]
    assert result.long_frames.shape == (4, 6, 16, 16, 3) and result.long_frames.dtype == np.uint8
    assert [g.name for g in result.groups] == ["collision/id", "push/id"] and result.groups[0].dream.shape == (2, 3 + 4, 16, 16, 3)
    first = fidelity.write_report(result, "fidelity", tmp_path / "a", "cmd", "tiny")
    second = fidelity.write_report(result, "fidelity", tmp_path / "b", "cmd", "tiny")  # writing leaves the result as it was
    assert json.dumps(result.report) == before
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
