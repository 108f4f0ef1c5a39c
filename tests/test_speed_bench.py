"""The speed benchmark: its recomputation baseline makes the simulator's frames, it counts the DiT
passes a frame costs, its report is complete (throughput with the roofline column, window section,
every target's verdict), bad grids are refused in one line, and `worldsim bench speed` writes it. No
timing is asserted."""

import json

import pytest
import torch
from tiny_world_model import randomise, save_tiny_world_model

from worldsim.bench.speed import (
    REFERENCE_STEPS,
    TARGETS,
    Case,
    Recompute,
    SpeedGrid,
    build_model,
    passes_per_frame,
    preset,
    run_speed,
    throughput_targets,
    write_report,
)
from worldsim.cli import main
from worldsim.errors import UserError
from worldsim.model.dit import SpacetimeDiT
from worldsim.simulator import WorldSimulator
from worldsim.training.loop import sizes_of

FAST = dict(repeats=2, warmup=1, min_seconds=0.0, max_seconds=1e9)
TINY_GRID = SpeedGrid(batch_sizes=[1], sampler_steps=[1], windows=[4, 16, 64], window_batch_sizes=[1], **FAST)


def quiet(line):
    pass


@pytest.mark.parametrize("commit_pass", [True, False])
@torch.no_grad()
def test_recompute_makes_the_simulators_frames_from_the_same_noise(commit_pass):
    window, seed = 3, 5
    model = build_model(preset("tiny"), (8, 12), window, seed=0)
    randomise(model.dit)
    model.config.context_noise = 0.05  # exercises the commit noise, drawn in the same order (or the last pass's level)
    sim = WorldSimulator(model, 2, window=window, sampler_steps=2, seed=seed, commit_pass=commit_pass)
    baseline = Recompute(model, 2, "cpu", window, 2, seed=seed, commit_pass=commit_pass)
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


@pytest.mark.parametrize("steps, guidance", [(1, 1.0), (3, 1.0), (1, 2.0), (3, 1.5)])
@torch.no_grad()
def test_passes_per_frame_are_the_dit_calls_of_a_step(steps, guidance, monkeypatch):
    model = build_model(preset("tiny"), (8, 8), 2, seed=0)
    counted = passes_per_frame(model, "cache", steps, guidance, "cpu")
    recomputed = passes_per_frame(model, "recompute", steps, 1.0, "cpu")
    calls = []
    forward = SpacetimeDiT.forward

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("cache"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(SpacetimeDiT, "forward", counting)
    sim = WorldSimulator(model, 3, window=2, sampler_steps=steps, guidance=guidance, seed=0)
    sim.reset([True] * 3, torch.zeros(3, 2, 8, 8, 3, dtype=torch.uint8), torch.zeros(3, 2, dtype=torch.long))
    calls.clear()
    for _ in range(2):
        sim.step(torch.zeros(3, dtype=torch.long))
    # k sampler steps, each one pass (two with guidance: conditioned and not), and one commit pass.
    assert counted == len(calls) / 2 == steps * (2 if guidance != 1 else 1) + 1
    assert all(cache is sim.cache for cache in calls)  # every pass of a step runs against the cache
    baseline = Recompute(model, 3, "cpu", 2, steps)
    baseline.reset(torch.zeros(3, 2, 8, 8, 3, dtype=torch.uint8), torch.zeros(3, 2, dtype=torch.long))
    calls.clear()
    baseline.step(torch.zeros(3, dtype=torch.long))
    assert recomputed == len(calls) == steps  # no cache to commit to
    if steps > 1:  # without a commit pass, the sampler's last pass commits the frame
        model.config.context_noise = 0.05
        assert passes_per_frame(model, "cache", steps, guidance, "cpu", commit_pass=False) == steps * (2 if guidance != 1 else 1)


def check_report(out, report):
    data = json.loads((out / "speed.json").read_text())
    assert data["command"] == "python benchmarks/speed.py --test" and data["model"]["preset"] == "tiny"
    assert len(data["rows"]) == 6 and {r["mode"] for r in data["rows"]} == {"cache", "recompute"}
    assert (out / "speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return data, (out / "speed.md").read_text()


def test_report_has_every_figure_and_both_window_targets(tmp_path):
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], TINY_GRID, log=quiet)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    data, text = check_report(tmp_path, report)
    for row in data["rows"]:
        assert row["skipped"] is None and len(row["rounds_ms"]) == 2
        assert row["frames_per_s"] == pytest.approx(row["batch"] * row["frames_per_s_per_env"], rel=1e-3)
        assert row["steps_per_s"] == pytest.approx(1e3 / row["ms_per_step"], rel=1e-3)
        assert row["passes"] == (2 if row["mode"] == "cache" else 1)  # k = 1, and the cache's commit pass
    assert {(t["target"], t["batch"]) for t in data["targets"]} == {("growth", 1), ("speedup", 1)}
    assert all(isinstance(t["pass"], bool) and t["ratio"] > 0 and t["flops_ratio"] > 1 for t in data["targets"])
    assert text.count("**PASS** (") + text.count("**FAIL** (") == 2 and "| cpu | 1 | 64 | 1 | recompute |" in text
    assert text.count("**NOT MEASURED**") == 3  # steps, fastest and roofline need B=64
    assert "python benchmarks/speed.py --test" in text and "torch" in text


def test_throughput_report_has_the_b_list_the_roofline_column_and_the_verdicts(tmp_path):
    grid = SpeedGrid(batch_sizes=[1, 64], sampler_steps=[1, 2], windows=[], **FAST)
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], grid, log=quiet)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    data, text = json.loads((tmp_path / "speed.json").read_text()), (tmp_path / "speed.md").read_text()
    own = data["model"]["sampler_steps"]
    assert own == 4 and data["grid"]["batch_sizes"] == [1, 64] and data["rows"] == []
    assert sorted((r["batch"], r["steps"]) for r in data["throughput"]) == [(b, k) for b in (1, 64) for k in (1, 2, own)]
    assert sorted(m["batch"] for m in data["matmul"]) == [1, 64]
    for row in data["throughput"]:
        assert row["passes"] == row["steps"] + 1 and row["window"] == data["model"]["window"]
        assert row["gflops"] > 0 and row["matmul_gflops"] > 0 and row["roofline"] > 0
        assert f"| cpu | {row['steps']}{' (own)' if row['steps'] == own else ''} | {row['passes']} | {row['batch']} |" in text
    assert "| DiT GFLOP/s | matmul GFLOP/s | roofline |" in text
    targets = {(t["target"], t["steps"]) for t in data["targets"]}
    assert targets == {("steps", 1), ("roofline", 1), ("roofline", 2), ("roofline", own)}
    steps = next(t for t in data["targets"] if t["target"] == "steps")
    assert steps["reference_steps"] == own and steps["flops_ratio"] == pytest.approx((own + 1) / 2)
    for name in ("steps", "roofline"):
        assert sum(text.count(f"**{verdict}** ({name})") for verdict in ("PASS", "FAIL")) == 1
    assert TARGETS["roofline"].text.startswith("achieved GFLOP/s of the DiT step >= 60% of the matmul peak")
    assert TARGETS["roofline"].text in text and TARGETS["steps"].text in text
    assert text.count("**NOT MEASURED**") == 3 and "Not run (`windows=[]`)" in text  # fastest, growth and speedup
    assert "no fidelity to measure" in text


def test_cases_over_the_budget_are_skipped_with_the_reason(tmp_path):
    grid = SpeedGrid(batch_sizes=[1], windows=[4, 16, 64], window_batch_sizes=[1], sampler_steps=[1], max_seconds=1e-6)
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], grid, log=quiet)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    data, text = check_report(tmp_path, report)
    assert all(r["skipped"].startswith("estimated") and "ms_per_step" not in r for r in data["rows"] + data["throughput"])
    assert data["targets"] == [] and text.count("**NOT MEASURED**") == 5 and "skipped: estimated" in text


@pytest.mark.parametrize(
    "key, value",
    [("batch_sizes", []), ("batch_sizes", [0, 16]), ("batch_sizes", [1, 1]), ("batch_sizes", 64), ("sampler_steps", []),
     ("sampler_steps", [0]), ("sampler_steps", [1.5]), ("window_batch_sizes", []), ("windows", [4, -1])],
)  # fmt: skip
def test_a_bad_list_is_refused_naming_it(key, value):
    with pytest.raises(UserError, match=f"^{key} must be a .*list of distinct integers >= 1"):
        SpeedGrid(**{key: value})


@pytest.mark.parametrize("override", ["batch_sizes=[0,16]", "batch_sizes=[]", "sampler_steps=[1,1]", "sampler_steps=[0]"])
def test_cli_refuses_a_bad_list_in_one_line(override, capsys):
    assert main(["bench", "speed", "preset=tiny", "device=cpu", override]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and override.split("=")[0] + " must be" in error


def test_cli_bench_speed_writes_the_report(capsys, tmp_path):
    argv = ["bench", "speed", "preset=tiny", "frame_size=[8,8]", "device=cpu", "batch_sizes=[2]", "windows=[4]",
            "window_batch_sizes=[2]", "sampler_steps=[1]", "repeats=1", f"out={tmp_path}"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "speed.json").read_text())
    assert [(r["mode"], r["batch"], r["window"]) for r in data["rows"]] == [("cache", 2, 4), ("recompute", 2, 4)]
    assert [(r["batch"], r["steps"]) for r in data["throughput"]] == [(2, 1), (2, 4)]  # and the model's own k
    assert data["command"].startswith("worldsim bench speed preset=tiny") and (tmp_path / "speed.md").is_file()
    assert main(["bench", "speed", "frame_size=[8]"]) == 1 and "frame_size must be two" in capsys.readouterr().err


def test_a_trained_model_is_timed_at_its_own_sizes_window_and_steps(tmp_path):
    folder = save_tiny_world_model(tmp_path / "model")
    sizes, frame_size = sizes_of(str(folder))
    assert (sizes.hidden_size, sizes.depth, sizes.codec) == (32, 2, "pixels")
    assert frame_size == (16, 16)
    argv = ["bench", "speed", f"model={folder}", "device=cpu", "batch_sizes=[1]", "sampler_steps=[1]", "windows=[]",
            "repeats=1", f"out={tmp_path / 'out'}"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "out" / "speed.json").read_text())
    assert data["model"]["name"] == str(folder) and data["model"]["trained"] and data["frame_size"] == [16, 16]
    assert (data["model"]["window"], data["model"]["sampler_steps"], data["model"]["tokens_per_frame"]) == (2, 2, 16)
    # k = 1 asked, the model's own k = 2 and the steps target's reference k = 4, always timed
    assert [(r["steps"], r["window"], r["passes"]) for r in data["throughput"]] == [(1, 2, 2), (2, 2, 3), (4, 2, 5)]
    text = (tmp_path / "out" / "speed.md").read_text()
    for steps in (1, 2):
        assert f"python benchmarks/stability.py --model model-k{steps}={folder} --sampler-steps {steps}" in text


@pytest.mark.parametrize("own, asked, compared", [(2, [1], 2), (3, [1, 2], 3), (4, [1, 2], 1), (4, [], None), (1, [], 1)])
def test_the_steps_target_sets_the_models_own_k_against_the_4_step_sampler(own, asked, compared):
    # A model that ships fewer steps is judged on them; one that ships 4 on the fewest timed.
    settings = sorted({*asked, own, REFERENCE_STEPS})
    cases = [Case("cpu", "cache", 64, 3, k, passes=k + 1, flops=k + 1.0, rounds=[k + 1.0, 2 * (k + 1.0)]) for k in settings]
    found = [t for t in throughput_targets(cases, own) if t["target"] == "steps"]
    if compared is None:
        assert found == []
        return
    (target,) = found
    assert (target["steps"], target["reference_steps"]) == (compared, REFERENCE_STEPS)
    assert target["ratio"] == pytest.approx(5 / (compared + 1), abs=1e-4)  # rounded to 4 places in the report
    assert target["flops_ratio"] == pytest.approx(5 / (compared + 1), abs=1e-3)


@pytest.mark.parametrize("own, asked, compared", [(2, [1], 2), (3, [1, 2], 3), (4, [1], 4)])
def test_without_a_commit_pass_the_steps_target_still_compares_with_the_4_step_sampler_and_its_commit_pass(own, asked, compared):
    # The model's own k without a commit pass (k passes) against "today's" 4 steps and commit pass (5 passes).
    settings = sorted({(k, k == 1) for k in {*asked, own, REFERENCE_STEPS}} | {(REFERENCE_STEPS, True)})
    cases = [
        Case("cpu", "cache", 64, 3, k, commit_pass=commit, passes=k + commit, flops=k + commit, rounds=[k + commit, 2.0 * (k + commit)])
        for k, commit in settings
    ]
    (target,) = [t for t in throughput_targets(cases, own, own_commit=False) if t["target"] == "steps"]
    assert (target["steps"], target["commit_pass"], target["reference_steps"]) == (compared, False, REFERENCE_STEPS)
    assert target["ratio"] == pytest.approx(5 / compared, abs=1e-4)


def test_a_model_without_a_commit_pass_is_timed_so_beside_the_4_step_sampler_with_one(tmp_path):
    folder = save_tiny_world_model(tmp_path / "model")
    config = json.loads((folder / "worldsim.json").read_text())
    (folder / "worldsim.json").write_text(json.dumps({**config, "context_noise": 0.1, "commit_pass": False}))
    argv = ["bench", "speed", f"model={folder}", "device=cpu", "batch_sizes=[1]", "sampler_steps=[1]", "windows=[]",
            "repeats=1", f"out={tmp_path / 'out'}"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "out" / "speed.json").read_text())
    # k = 1 keeps its commit pass; the own k = 2 and k = 4 have none; the reference k = 4 has one.
    rows = [(r["steps"], r["commit_pass"], r["passes"]) for r in data["throughput"]]
    assert sorted(rows) == [(1, True, 2), (2, False, 2), (4, False, 4), (4, True, 5)]
    text = (tmp_path / "out" / "speed.md").read_text()
    assert "| cpu | 2, no commit pass (own) | 2 | 1 |" in text and "| cpu | 4 | 5 | 1 |" in text
    assert f"python benchmarks/stability.py --model model-k2-nc={folder} --sampler-steps 2 --no-commit-pass" in text


@pytest.mark.slow  # compiles (inductor): about 90 s on a cold cache
def test_compile_adds_the_models_own_k_with_compiled_passes_beside_the_eager_one(tmp_path):
    grid = SpeedGrid(batch_sizes=[1], sampler_steps=[1], windows=[], compile=True, **FAST)
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], grid, log=quiet)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    own = report["model"]["sampler_steps"]
    rows = sorted((r["steps"], r["compiled"]) for r in report["throughput"])
    assert rows == [(1, False), (own, False), (own, True)]
    compiled = next(r for r in report["throughput"] if r["compiled"])
    assert compiled["passes"] == own + 1 and compiled["frames_per_s"] > 0
    assert f"| cpu | {own} (own), compiled | {own + 1} | 1 |" in (tmp_path / "speed.md").read_text()
    with pytest.raises(UserError, match="compile must be true or false"):
        SpeedGrid(compile="yes")


def test_bf16_adds_the_models_own_k_in_bfloat16_which_only_the_fastest_target_counts(tmp_path):
    grid = SpeedGrid(batch_sizes=[1, 64], sampler_steps=[1], windows=[], bf16=True, **FAST)
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], grid, log=quiet)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    own = report["model"]["sampler_steps"]
    rows = sorted((r["batch"], r["steps"], r["precision"]) for r in report["throughput"])
    assert rows == [(b, k, p) for b in (1, 64) for k, p in ((1, "float32"), (own, "bfloat16"), (own, "float32"))]
    half = [r for r in report["throughput"] if r["precision"] == "bfloat16"]
    assert all(r["frames_per_s"] > 0 and "roofline" not in r for r in half)  # the matmul is float32's peak
    assert f"| cpu | {own} (own), bf16 | {own + 1} | 64 |" in (tmp_path / "speed.md").read_text()
    # The steps target and the rooflines count eager float32 alone; "fastest" sets the own k's fastest
    # setting (here bf16, the only other one timed) against the eager float32 4-step sampler.
    targets = sorted((t["target"], t["steps"]) for t in report["targets"])
    assert targets == [("fastest", own), ("roofline", 1), ("roofline", own), ("steps", 1)]
    fastest = next(t for t in report["targets"] if t["target"] == "fastest")
    assert fastest["precision"] == "bfloat16" and fastest["reference_steps"] == 4 and fastest["ratio"] > 0
    # The own k is the reference k here: a ratio of exactly 1 would be the bf16 case set against itself.
    assert fastest["ratio"] != 1.0
    with pytest.raises(UserError, match="bf16 must be true or false"):
        SpeedGrid(bf16="yes")


def test_bf16_times_the_cache_at_every_window_too_with_its_own_growth_target(tmp_path):
    grid = SpeedGrid(batch_sizes=[1], sampler_steps=[1], windows=[4, 16, 64], window_batch_sizes=[1], bf16=True, **FAST)
    report = run_speed(preset("tiny"), (8, 8), ["cpu"], grid, log=quiet)
    write_report(report, tmp_path, "python benchmarks/speed.py --test")
    rows = sorted((r["mode"], r["precision"], r["window"]) for r in report["rows"])
    assert rows == sorted(
        [("cache", p, w) for p in ("float32", "bfloat16") for w in (4, 16, 64)] + [("recompute", "float32", w) for w in (4, 16, 64)]
    )
    growth = {t.get("precision", "float32"): t for t in report["targets"] if t["target"] == "growth"}
    assert set(growth) == {"float32", "bfloat16"} and all(t["ratio"] > 0 for t in growth.values())
    # Recomputation runs eager in float32 only: the speedup target sets it against that cache alone.
    assert [t.get("precision", "float32") for t in report["targets"] if t["target"] == "speedup"] == ["float32"]
    text = (tmp_path / "speed.md").read_text()
    assert "| cpu | 1 | 64 | 1 | cache, bf16 |" in text and "| growth | cpu | 1 | 1, bf16 |" in text
