"""Agents trained in imagination (tiny model): the loop end to end, reloading, seeded evaluation, errors."""

import json
from dataclasses import replace

import gymnasium as gym
import pytest
from tiny_world_model import save_tiny_world_model, tiny_world_model

from worldsim.agents.imagination import evaluate_real, make_agent, train_in_dream
from worldsim.cli import main
from worldsim.data.policies import make_policy

WORLD = dict(scenario="push", frame_size=(16, 16), max_steps=8)


def test_agent_train_cli_writes_a_policy_that_reloads_and_scores_the_same_real_returns(tmp_path, capsys):
    folder = save_tiny_world_model(tmp_path / "model")
    out = tmp_path / "agent"
    argv = ["agent", "train", f"model={folder}", "world=balls", "scenario=push", "frame_size=[16,16]", "max_steps=8",
            "algo=ppo", "steps=64", "num_envs=2", "eval_episodes=3", "progress=false", f"out={out}"]  # fmt: skip
    assert main(argv) == 0
    assert "real return over 3 episodes" in capsys.readouterr().out
    report = json.loads((out / "returns.json").read_text())
    assert report["algo"] == "ppo" and report["dream_steps"] == 64 and len(report["returns"]) == 3
    assert (out / "real_vs_dream.mp4").stat().st_size > 0
    real = gym.make("worldsim/Balls-v0", **WORLD)
    policy = make_policy(str(out / "policy.zip"), real, algo="ppo")  # weights only, FrameCNN layout
    assert evaluate_real(policy.model, real, 3, report["eval_seed"]) == report["returns"]


def test_dqn_trains_in_the_dream_and_evaluation_is_seeded(tmp_path):
    report = train_in_dream(tiny_world_model(), "dqn", 32, tmp_path, num_envs=2, eval_episodes=2, progress=False, **WORLD)
    assert len(report.returns) == 2 and (tmp_path / "policy.zip").is_file()
    real = gym.make("worldsim/Balls-v0", **WORLD)
    agent = make_policy(str(tmp_path / "policy.zip"), real, algo="dqn").model
    assert evaluate_real(agent, real, 2, 5) == evaluate_real(agent, real, 2, 5)


def test_a_policy_for_other_spaces_is_refused_with_a_clear_error():
    agent = make_agent("ppo", gym.make("worldsim/Balls-v0", **WORLD), seed=0)
    with pytest.raises(ValueError, match="observation space .* differs .* same world arguments"):
        evaluate_real(agent, gym.make("worldsim/Balls-v0", scenario="push", frame_size=(32, 32)), 1, 0)
    with pytest.raises(ValueError, match="unknown algo 'sac'; choose one of ppo, dqn"):
        make_agent("sac", gym.make("worldsim/Balls-v0", **WORLD), seed=0)


def test_agent_cli_errors(tmp_path, capsys):
    folder = save_tiny_world_model(tmp_path / "model")
    assert main(["agent", "train"]) == 2 and "needs model=" in capsys.readouterr().err
    assert main(["agent", "train", f"model={folder}", "world=cartpole", f"out={tmp_path}"]) == 1
    assert "learned worldsim/Balls-v0, not world=cartpole" in capsys.readouterr().err


DYNA = dict(real_steps=40, iterations=2, model_steps=2, model_batch_size=4, dream_steps=32, num_envs=2, eval_episodes=2)


def test_dyna_runs_its_rounds_on_the_real_step_budget_and_resumes_after_a_kill(tmp_path):
    from worldsim.agents.dyna import DynaSettings, dyna, read_rows

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    first = dyna(folder, "ppo", tmp_path / "a", DynaSettings(**{**DYNA, "iterations": 1, "real_steps": 20}), progress=False, **world)
    assert [r["real_steps"] for r in first] == [20]
    # The "killed" run had finished round 1 of 2: resuming runs round 2 only, from round 1's model.
    rows = dyna(folder, "ppo", tmp_path / "a", DynaSettings(**DYNA), resume=True, progress=False, **world)
    assert [int(r["real_steps"]) for r in rows] == [20, 40] and len(read_rows(tmp_path / "a" / "dyna.csv")) == 2
    assert "iter_001" in rows[1]["model"] and (tmp_path / "a" / "policies" / "iter_001.zip").is_file()
    assert sorted(p.name for p in (tmp_path / "a" / "real").iterdir()) == ["iter_000", "iter_001"]


def test_dyna_resumed_after_a_kill_between_training_and_the_round_end_keeps_the_trained_model(tmp_path):
    from worldsim.agents.dyna import DynaSettings, dyna

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    settings = DynaSettings(**{**DYNA, "iterations": 1, "real_steps": 20})
    (row,) = dyna(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    (tmp_path / "a" / "dyna.csv").unlink()  # killed in the dream: the world model was trained, the round not logged
    (again,) = dyna(folder, "ppo", tmp_path / "a", settings, resume=True, progress=False, **world)
    assert again["model"] == row["model"] and again["real_steps"] == row["real_steps"]


def test_dyna_fresh_trains_a_new_world_model_in_its_first_round(tmp_path):
    from worldsim.agents.dyna import DynaSettings, dyna

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    rows = dyna(folder, "ppo", tmp_path / "a", DynaSettings(**DYNA, fresh=True), progress=False, **world)
    runs = [json.loads((tmp_path / "a" / "world" / f"iter_{k:03d}" / "config.json").read_text()) for k in (0, 1)]
    assert runs[0]["init"] is None and runs[1]["init"] == rows[0]["model"]  # round 2 fine-tunes round 1's model
    with pytest.raises(ValueError, match="fresh must be true or false"):
        DynaSettings(fresh="yes")


def test_model_free_resumes_from_its_last_mark_and_reads_back_a_finished_run(tmp_path):
    from worldsim.agents.dyna import DynaSettings, model_free

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    settings = DynaSettings(**{**DYNA, "real_steps": 256, "iterations": 2})  # PPO learns in rollouts of 2 x 64 steps
    first = model_free(folder, "ppo", tmp_path / "a", replace(settings, iterations=1, real_steps=128), progress=False, **world)
    assert [r["real_steps"] for r in first] == [128]
    # The "killed" run had finished mark 1 of 2: resuming trains on to the second mark only.
    rows = model_free(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    assert [r["step"] for r in rows] == [1, 2] and rows[0] == first[0] and rows[1]["real_steps"] == 256
    assert model_free(folder, "ppo", tmp_path / "a", settings, progress=False, **world) == rows  # finished: read back


def test_agent_dyna_cli_with_the_model_free_baseline(tmp_path, capsys):
    folder = save_tiny_world_model(tmp_path / "model")
    out = tmp_path / "dyna"
    argv = ["agent", "dyna", f"model={folder}", "world=balls", "scenario=push", "frame_size=[16,16]", "max_steps=10",
            "real_steps=40", "iterations=2", "model_steps=2", "model_batch_size=4", "steps=32", "num_envs=2",
            "eval_episodes=2", "baseline=true", "progress=false", f"out={out}"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "dyna: real return" in printed and "model-free: real return" in printed
    for name in ("dyna.csv", "model_free.csv", "returns.png", "policy.zip", "model_free.zip"):
        assert (out / name).stat().st_size > 0


def test_bench_rl_reports_both_methods_over_seeds(tmp_path):
    folder = save_tiny_world_model(tmp_path / "model")
    argv = ["bench", "rl", f"model={folder}", "seeds=2", "real_steps=20", "iterations=1", "model_steps=1", "dream_steps=16",
            "num_envs=2", "eval_episodes=1", "progress=false", f"work={tmp_path / 'work'}", f"out={tmp_path / 'rl'}"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "rl" / "rl.json").read_text())
    assert report["world_kwargs"] == {"scenario": "push"} and report["seeds"] == 2
    assert [len(report["curves"][m]) for m in ("dyna", "model-free")] == [1, 1]
    assert len(report["runs"]["dyna"]) == 2 and report["targets"][0]["target"].startswith("dream-trained beats model-free")
    assert "| mark | dyna real steps |" in (tmp_path / "rl" / "rl.md").read_text() and (tmp_path / "rl" / "rl.png").is_file()


def test_runs_of_neighbouring_seeds_collect_from_disjoint_episode_seeds():
    from worldsim.agents.dyna import stream_seed

    # A collection seeds its episodes s, s + 1, ...: the streams of seeds 0-2, rounds 0-4 must lie far apart.
    starts = sorted(stream_seed(seed, 0, k) for seed in range(3) for k in range(5))
    assert min(b - a for a, b in zip(starts, starts[1:])) > 100_000
    assert stream_seed(4, 0, 1) == stream_seed(4, 0, 1) and stream_seed(4, 0, 1) != stream_seed(4, 1, 1)


def test_real_and_dream_episodes_compare_lengths_and_returns_per_fixed_policy():
    from worldsim.bench.rl import episodes_markdown, episodes_real_and_dreamed

    world = dict(scenario="push", frame_size=(16, 16))
    never = episodes_real_and_dreamed(tiny_world_model(), episodes=2, seed=0, max_steps=3, **world)
    always = episodes_real_and_dreamed(tiny_world_model(terminates=True), episodes=2, seed=0, max_steps=3, **world)
    assert [r["policy"] for r in never] == ["random", "always 0", "always 1", "always 2", "always 3", "always 4"]
    assert all(r["dream_length"] == 3 for r in never) and all(r["dream_length"] == 1 for r in always)
    assert all(r["real_length"] == 3 for r in never + always)  # a push episode rarely ends in 3 steps
    assert [r["real_return"] for r in never] == [r["real_return"] for r in always]  # seeded
    assert "| always 4 | 3.0 | 1.0 |" in episodes_markdown(always, "header")


def test_rl_targets_count_the_last_mark_of_a_20000_step_budget_even_when_its_last_episode_goes_over():
    from worldsim.bench.rl import targets

    def curve(*returns):
        return [{"real_steps": 10_000 * (k + 1) + 39, "mean_return": r} for k, r in enumerate(returns)]

    settings = {"real_steps": 20_000, "iterations": 2}
    push = {"world": "worldsim/Balls-v0", "settings": settings, "curves": {"dyna": curve(0.0, 0.5), "model-free": curve(0.1, 0.4)}}
    (target,) = targets(push)
    assert target["passed"] and target["value"] == pytest.approx(0.1) and "20000-real-step mark" in target["target"]
    cartpole = {"world": "worldsim/CartPole-v0", "settings": {"real_steps": 40_000, "iterations": 4},
                "curves": {"dyna": curve(20.0, 480.0, 500.0, 500.0), "model-free": curve(9.0, 9.0, 9.0, 9.0)}}  # fmt: skip
    (target,) = targets(cartpole)
    assert target["value"] == 480.0 and target["passed"]  # marks 3 and 4 have a budget past 20,000


def test_write_table_writes_a_benchmarks_markdown_and_json_side_by_side(tmp_path):
    from worldsim.atomic import write_table

    write_table(tmp_path / "new", "t", "| a |\n", {"rows": [1]})
    assert (tmp_path / "new" / "t.md").read_text() == "| a |\n"
    assert json.loads((tmp_path / "new" / "t.json").read_text()) == {"rows": [1]}
    assert not [p for p in (tmp_path / "new").iterdir() if p.name.startswith(".")]  # no temporary files left
