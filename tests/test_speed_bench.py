"""The speed benchmark: its recomputation baseline makes the simulator's frames, its report is
complete, and `worldsim bench speed` writes it. No timing is asserted."""

import json

import pytest
import torch
from tiny_world_model import randomise

from worldsim.bench.speed import Recompute, SpeedGrid, build_model, preset, run_speed, write_report
from worldsim.cli import main
from worldsim.simulator import WorldSimulator

TINY_GRID = SpeedGrid(batch_sizes=[1], windows=[4, 16, 64], sampler_steps=[1], repeats=2, warmup=1, min_seconds=0.0, max_seconds=1e9)


@torch.no_grad()
def test_recompute_makes_the_simulators_frames_from_the_same_noise():
    window, seed = 3, 5
    model = build_model(preset("tiny"), (8, 12), window, seed=0)
    randomise(model.dit)
    model.config.context_noise = 0.05  # exercises the commit noise, drawn in the same order
    sim = WorldSimulator(model, 2, window=window, sampler_steps=2, seed=seed)
    baseline = Recompute(model, 2, "cpu", window, 2, seed=seed)
    context = torch.randint(0, 256, (2, 1, 8, 12, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    sim.reset([True, True], context, torch.tensor([[2], [3]]))
    baseline.reset(context, torch.tensor([[2], [3]]))
    rng = torch.Generator().manual_seed(2)
    # Exact while each env's history fits in the window: 1 context frame + `window` new ones.
    for _ in range(window):
        actions = torch.randint(0, 5, (2,), generator=rng)
        sim.step(actions)
        latents = baseline.step(actions)
        assert (sim.latents - latents).abs().max() < 1e-4
        assert (sim.frames.int() - baseline.frames.int()).abs().max() <= 1  # rounding may flip
    assert baseline.latents.shape[1] == window  # the baseline keeps a full window, no more
    # The agreement involves the context: another first frame gives other frames.
    other = Recompute(model, 2, "cpu", window, 2, seed=seed)
    other.reset(255 - context, torch.tensor([[2], [3]]))
    baseline = Recompute(model, 2, "cpu", window, 2, seed=seed)
    baseline.reset(context, torch.tensor([[2], [3]]))
    assert (other.step(torch.zeros(2, dtype=torch.long)) - baseline.step(torch.zeros(2, dtype=torch.long))).abs().max() > 1e-2


def check_report(out, report):
    data = json.loads((out / "speed.json").read_text())
    assert data["command"] == "python benchmarks/speed.py --test" and data["model"]["preset"] == "tiny"
    assert len(data["rows"]) == 6 and {r["mode"] for r in data["rows"]} == {"cache", "recompute"}
    assert (out / "speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return data, (out / "speed.md").read_text()


def test_report_has_every_figure_and_both_targets(tmp_path):
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], TINY_GRID, log=lambda line: None)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    data, text = check_report(tmp_path, report)
    for row in data["rows"]:
        assert row["skipped"] is None and len(row["rounds_ms"]) == 2
        assert row["frames_per_s"] == pytest.approx(row["batch"] * row["frames_per_s_per_env"], rel=1e-3)
        assert row["steps_per_s"] == pytest.approx(1e3 / row["ms_per_step"], rel=1e-3)
    assert {(t["target"], t["batch"]) for t in data["targets"]} == {("growth", 1), ("speedup", 1)}
    assert all(isinstance(t["pass"], bool) and t["ratio"] > 0 and t["flops_ratio"] > 1 for t in data["targets"])
    assert text.count("**PASS** (") + text.count("**FAIL** (") == 2 and "| cpu | 1 | 64 | 1 | recompute |" in text
    assert "python benchmarks/speed.py --test" in text and "torch" in text


def test_cases_over_the_budget_are_skipped_with_the_reason(tmp_path):
    grid = SpeedGrid(batch_sizes=[1], windows=[4, 16, 64], sampler_steps=[1], max_seconds=1e-6)
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], grid, log=lambda line: None)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    data, text = check_report(tmp_path, report)
    assert all(r["skipped"].startswith("estimated") and "ms_per_step" not in r for r in data["rows"])
    assert data["targets"] == [] and text.count("**NOT MEASURED**") == 2 and "skipped: estimated" in text


def test_cli_bench_speed_writes_the_report(capsys, tmp_path):
    argv = ["bench", "speed", "preset=tiny", "frame_size=[8,8]", "device=cpu", "batch_sizes=[2]", "windows=[4]",
            "sampler_steps=[1]", "repeats=1", f"out={tmp_path}"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "speed.json").read_text())
    assert [(r["mode"], r["batch"], r["window"]) for r in data["rows"]] == [("cache", 2, 4), ("recompute", 2, 4)]
    assert data["command"].startswith("worldsim bench speed preset=tiny") and (tmp_path / "speed.md").is_file()
    assert main(["bench", "speed", "frame_size=[8]"]) == 1 and "frame_size must be two" in capsys.readouterr().err


def test_a_trained_model_is_timed_at_its_own_sizes(tmp_path):
    from tiny_world_model import save_tiny_world_model

    from worldsim.training.loop import sizes_of

    folder = save_tiny_world_model(tmp_path / "model")
    sizes, frame_size = sizes_of(str(folder))
    assert (sizes.hidden_size, sizes.depth, sizes.codec) == (32, 2, "pixels")
    assert frame_size == (16, 16)
