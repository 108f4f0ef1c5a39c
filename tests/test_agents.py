"""Agents trained in imagination (tiny model): the loop end to end, reloading, seeded evaluation, errors,
and the dream-trained and model-free agents built alike."""

import json
from dataclasses import asdict, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecFrameStack
from tiny_world_model import save_tiny_world_model, tiny_world_model

from worldsim.agents.imagination import FrameStacker, evaluate_real, load_weights, make_agent, saved_frames, train_in_dream
from worldsim.cli import main
from worldsim.errors import UserError

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
    assert report["frame_stack"] == 4 and report["normalize_reward"] and report["hyperparameters"]["n_steps"] == 128
    assert (out / "real_vs_dream.mp4").stat().st_size > 0
    assert main([*argv[:-1], "frame_stack=2", "normalize_reward=false", f"out={tmp_path / 'two'}"]) == 0  # the keys reach the agent
    two = json.loads((tmp_path / "two" / "returns.json").read_text())
    assert two["frame_stack"] == 2 and two["normalize_reward"] is False
    real = gym.make("worldsim/Balls-v0", **WORLD)
    agent = make_agent("ppo", real, seed=1)
    load_weights(agent, out / "policy.zip")  # weights only: the reward statistics are not needed to act
    assert saved_frames(out / "policy.zip") == (4, 16, 16)
    assert evaluate_real(agent, real, 3, report["eval_seed"]) == report["returns"]


def test_dqn_trains_in_the_dream_on_other_wrappers_and_evaluation_is_seeded(tmp_path):
    report = train_in_dream(tiny_world_model(), "dqn", 32, tmp_path, num_envs=2, eval_episodes=2, progress=False, frame_stack=2,
                            **WORLD)  # fmt: skip
    assert len(report.returns) == 2 and (tmp_path / "policy.zip").is_file()
    real = gym.make("worldsim/Balls-v0", **WORLD)
    agent = make_agent("dqn", real, seed=0, frame_stack=2, normalize_reward=False)  # acting needs no reward statistics
    load_weights(agent, tmp_path / "policy.zip")
    assert agent.observation_space.shape == (6, 16, 16)
    assert evaluate_real(agent, real, 2, 5) == evaluate_real(agent, real, 2, 5)


def test_evaluation_stacks_the_real_frames_as_training_does():
    env_kwargs = dict(scenario="push", frame_size=(16, 16), max_steps=6)
    venv = VecFrameStack(DummyVecEnv([lambda: gym.make("worldsim/Balls-v0", **env_kwargs)]), 3, channels_order="last")
    venv.seed(7)
    env = gym.make("worldsim/Balls-v0", **env_kwargs)
    stacker = FrameStacker(env.observation_space, 3)
    ours, trained = stacker.reset(env.reset(seed=7)[0]), venv.reset()[0]
    for action in [1, 4, 4, 2]:
        np.testing.assert_array_equal(ours, trained)
        trained = venv.step(np.array([action]))[0][0]
        ours = stacker.step(env.step(action)[0])
    assert ours.shape == (16, 16, 9) and ours[..., :3].any()  # four frames in: the oldest slot is no longer blank


def test_a_policy_for_other_spaces_is_refused_with_a_clear_error(tmp_path):
    agent = make_agent("ppo", gym.make("worldsim/Balls-v0", **WORLD), seed=0)
    with pytest.raises(UserError, match="observation space .* differs .* same world arguments"):
        evaluate_real(agent, gym.make("worldsim/Balls-v0", scenario="push", frame_size=(32, 32)), 1, 0)
    with pytest.raises(UserError, match="unknown algo 'sac'; choose one of ppo, dqn"):
        make_agent("sac", gym.make("worldsim/Balls-v0", **WORLD), seed=0)
    agent.save(tmp_path / "four.zip")
    one = make_agent("ppo", gym.make("worldsim/Balls-v0", **WORLD), seed=0, frame_stack=1)
    message = "holds a policy of 4 stacked 16x16 frames, not 1 of 16x16; use frame_stack=4 and frame_size=.16,16."
    with pytest.raises(UserError, match=message):
        load_weights(one, tmp_path / "four.zip")
    bigger = make_agent("ppo", gym.make("worldsim/Balls-v0", scenario="push", frame_size=(32, 32)), seed=0)
    with pytest.raises(UserError, match="4 stacked 16x16 frames, not 4 of 32x32"):
        load_weights(bigger, tmp_path / "four.zip")
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    with pytest.raises(UserError, match="bad.zip is not an SB3 policy .zip"):
        load_weights(one, tmp_path / "bad.zip")


@pytest.mark.parametrize(
    "settings, error",
    [
        (dict(frame_stack=0), "frame_stack must be an integer >= 1 .* got 0"),
        (dict(frame_stack=2.0), "frame_stack must be an integer >= 1 .* got 2.0"),
        (dict(normalize_reward="yes"), "normalize_reward must be true or false, got 'yes'"),
    ],
)
def test_bad_agent_settings_are_clear_errors(tmp_path, settings, error):
    from worldsim.agents.dyna import DynaSettings

    with pytest.raises(UserError, match=error):
        DynaSettings(**settings)
    with pytest.raises(UserError, match=error):
        train_in_dream(tiny_world_model(), "ppo", 64, tmp_path, num_envs=2, progress=False, **settings, **WORLD)


def test_more_stacked_channels_than_rows_are_refused():
    with pytest.raises(UserError, match="frame_stack=6 stacks 18 channels on 16x16 frames; choose frame_stack < 6"):
        make_agent("ppo", gym.make("worldsim/Balls-v0", **WORLD), seed=0, frame_stack=6)


def test_an_agent_moved_to_the_next_rounds_env_keeps_its_reward_statistics():
    from worldsim.agents.imagination import move_agent

    agent = make_agent("ppo", gym.make("worldsim/Balls-v0", **WORLD), seed=0)
    statistics = agent.get_vec_normalize_env().ret_rms
    statistics.update(np.array([3.0, 5.0]))
    move_agent(agent, gym.make("worldsim/Balls-v0", **WORLD), frame_stack=4, normalize_reward=True)
    assert agent.get_vec_normalize_env().ret_rms is statistics and statistics.var > 0


def wrappers(venv) -> list[str]:
    names = []
    while isinstance(venv, VecEnvWrapper):
        names.append(type(venv).__name__)
        venv = venv.venv
    return names


@pytest.mark.parametrize("frame_stack, normalize_reward", [(4, True), (1, False)])
def test_dream_trained_and_model_free_agents_are_built_alike(tmp_path, monkeypatch, frame_stack, normalize_reward):
    from worldsim.agents import dyna as loop
    from worldsim.agents.imagination import HYPERPARAMETERS

    built = []

    def recording_make_agent(*args, **kwargs):
        built.append(make_agent(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(loop, "make_agent", recording_make_agent)
    monkeypatch.setitem(HYPERPARAMETERS, "ppo", {**HYPERPARAMETERS["ppo"], "n_steps": 4})  # short rollouts of 9 envs
    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    settings = loop.DynaSettings(**{**DYNA, "iterations": 1, "real_steps": 20, "num_envs": 9}, frame_stack=frame_stack,
                                 normalize_reward=normalize_reward)  # fmt: skip
    loop.dyna(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    loop.model_free(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    dream, free = built
    assert dream.observation_space == free.observation_space and dream.observation_space.shape == (3 * frame_stack, 16, 16)
    assert [p.shape for p in dream.policy.parameters()] == [p.shape for p in free.policy.parameters()]
    stack = ["VecFrameStack"] if frame_stack > 1 else []
    expected = [*(["VecNormalize"] if normalize_reward else []), "VecTransposeImage", *stack, "VecMonitor"]
    assert wrappers(dream.get_env()) == wrappers(free.get_env()) == expected
    assert dream.n_envs == free.n_envs == 9
    for key in HYPERPARAMETERS["ppo"]:
        assert setting(dream, key) == setting(free, key), key


def setting(agent, key: str):
    value = getattr(agent, key)
    return value(1.0) if callable(value) else value  # SB3 keeps clip_range as a schedule of the progress left


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
    heads = {"reward_weight": 2.0, "noise": {"clean_prob": 0.5}}  # any other train key, through model_train
    settings = DynaSettings(**DYNA, fresh=True, model_terminal_repeats=3, model_train=heads)
    rows = dyna(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    runs = [json.loads((tmp_path / "a" / "world" / f"iter_{k:03d}" / "config.json").read_text()) for k in (0, 1)]
    assert runs[0]["init"] is None and runs[1]["init"] == rows[0]["model"]  # round 2 fine-tunes round 1's model
    assert [run["train"]["terminal_repeats"] for run in runs] == [3, 3]  # the rounds' own, not train's default
    assert [(run["train"]["reward_weight"], run["train"]["noise"]["clean_prob"]) for run in runs] == [(2.0, 0.5)] * 2
    with pytest.raises(UserError, match="model_train cannot set batch_size: Dyna sets those itself"):
        DynaSettings(model_train={"batch_size": 4})
    with pytest.raises(ValueError, match="fresh must be true or false"):
        DynaSettings(fresh="yes")


def test_dyna_rounds_can_fine_tune_the_given_model_afresh_with_rehearsal_data_and_log_their_dream_episodes(tmp_path):
    from worldsim.agents.dyna import DynaSettings, dyna, read_rows
    from worldsim.bench.rl import markdown, summarise
    from worldsim.data.collect import collect

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    kept = str(tmp_path / "kept")
    collect("worldsim/Balls-v0", kept, 3, {"frame_size": (16, 16), "max_steps": 10}, ["push"], policy="random", progress=False)
    settings = DynaSettings(**DYNA, model_init="given", model_data=[kept])
    rows = dyna(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    runs = [json.loads((tmp_path / "a" / "world" / f"iter_{k:03d}" / "config.json").read_text()) for k in (0, 1)]
    assert [run["init"] for run in runs] == [folder, folder]  # not round 1's model: every round starts from the given one
    assert [run["data"] for run in runs] == [[str(tmp_path / "a" / "real" / "iter_000"), kept]] + [
        [str(tmp_path / "a" / "real" / f"iter_{k:03d}") for k in (0, 1)] + [kept]
    ]
    assert [int(r["real_steps"]) for r in rows] == [20, 40]  # the rehearsal frames are not real steps of the budget
    # The dream episodes are cut at the imagination horizon (15 steps).
    logged = read_rows(tmp_path / "a" / "dyna.csv")
    assert all(1 <= row["dream_length"] <= 15 and isinstance(row["dream_return"], float) for row in logged)
    marks = summarise([rows, rows])
    assert marks[1]["dream_length"] == pytest.approx(rows[1]["dream_length"])
    report = {"world": "worldsim/Balls-v0", "world_kwargs": {}, "command": "c", "seconds": 60.0, "algo": "ppo", "seeds": 1,
              "settings": asdict(settings), "model": "m", "targets": [], "hyperparameters": {},
              "curves": {"dyna": marks, "model-free": []}}  # fmt: skip
    text = markdown(report)
    assert f"2 world-model training steps of the given model on all real data so far and the collections {kept} (not counted)" in text
    assert f"| 2 | 40 | {marks[1]['mean_return']:.2f} ± 0.00 | {marks[1]['dream_length']:.1f} / " in text
    del marks[1]["dream_length"]  # a run from before the dream episodes were logged
    assert "| 2 | 40 | " in markdown(report) and "± 0.00 | - | - | - |" in markdown(report)
    with pytest.raises(UserError, match="model_init must be one of last, given, got 'first'"):
        DynaSettings(model_init="first")
    with pytest.raises(UserError, match="with model_init=given every round would"):
        DynaSettings(fresh=True, model_init="given")
    with pytest.raises(UserError, match="so model_data must be empty"):
        DynaSettings(fresh=True, model_data=[kept])
    with pytest.raises(UserError, match="model_data must be a list of collection folders, got 'kept'"):
        DynaSettings(model_data="kept")
    cartpole = str(tmp_path / "cartpole")
    collect("worldsim/CartPole-v0", cartpole, 1, {"frame_size": (16, 16)}, policy="random", progress=False)
    with pytest.raises(UserError, match=f"model_data collection {cartpole} holds episodes of worldsim/CartPole-v0, not of"):
        dyna(folder, "ppo", tmp_path / "b", DynaSettings(**DYNA, model_data=[cartpole]), progress=False, **world)


def test_dyna_with_no_model_steps_dreams_in_the_given_model_every_round(tmp_path):
    from worldsim.agents.dyna import DynaSettings, dyna
    from worldsim.bench.rl import markdown

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    rows = dyna(folder, "ppo", tmp_path / "a", DynaSettings(**{**DYNA, "model_steps": 0}), progress=False, **world)
    assert [r["model"] for r in rows] == [folder, folder] and [int(r["real_steps"]) for r in rows] == [20, 40]
    assert not (tmp_path / "a" / "world").exists() and (tmp_path / "a" / "policies" / "iter_001.zip").is_file()
    settings = asdict(DynaSettings(**{**DYNA, "model_steps": 0}))
    report = {"world": "worldsim/Balls-v0", "world_kwargs": {}, "command": "c", "seconds": 60.0, "algo": "ppo", "seeds": 1,
              "settings": settings, "model": "m", "targets": [], "hyperparameters": {},
              "curves": {"dyna": [], "model-free": []}}  # fmt: skip
    text = markdown(report)
    assert "(collect real steps with the policy -> 32 dream steps of the agent), `m` dreaming every round as it is" in text
    assert "world-model training" not in text and "The dream's simulator" not in text  # eager float32: nothing to say
    report["settings"] = {**settings, "compile": True, "precision": "bfloat16"}
    assert "The dream's simulator: compiled passes and bfloat16." in markdown(report)


def test_model_free_resumes_from_its_last_mark_and_reads_back_a_finished_run(tmp_path):
    from worldsim.agents.dyna import DynaSettings, model_free

    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    settings = DynaSettings(**{**DYNA, "real_steps": 512, "iterations": 2})  # PPO learns in rollouts of 2 x 128 steps
    first = model_free(folder, "ppo", tmp_path / "a", replace(settings, iterations=1, real_steps=256), progress=False, **world)
    assert [r["real_steps"] for r in first] == [256]
    with pytest.raises(UserError, match="model_free.zip holds a policy of 4 stacked 16x16 frames, not 2 of 16x16"):
        model_free(folder, "ppo", tmp_path / "a", replace(settings, frame_stack=2), progress=False, **world)
    # The "killed" run had finished mark 1 of 2: resuming trains on to the second mark only.
    rows = model_free(folder, "ppo", tmp_path / "a", settings, progress=False, **world)
    assert [r["step"] for r in rows] == [1, 2] and rows[0] == first[0] and rows[1]["real_steps"] == 512
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
            "num_envs=2", "eval_episodes=1", "model_free_budget=2", "progress=false", f"work={tmp_path / 'work'}",
            f"out={tmp_path / 'rl'}"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "rl" / "rl.json").read_text())
    assert report["world_kwargs"] == {"scenario": "push"} and report["seeds"] == 2
    assert [len(report["curves"][m]) for m in ("dyna", "model-free")] == [1, 2]  # model-free trains on to 2x the real steps
    assert [r["real_steps"] for r in report["runs"]["model-free"][0]][0] >= 20
    names = [t["target"] for t in report["targets"]]
    assert names == ["dream-trained within 20000 real steps >= model-free at 40", "dream-trained beats model-free at the 20-real-step mark"]
    assert len(report["runs"]["dyna"]) == 2
    assert report["hyperparameters"]["clip_range"] == 0.1 and report["settings"]["frame_stack"] == 4
    text = (tmp_path / "rl" / "rl.md").read_text()
    assert "| mark | dyna real steps |" in text and (tmp_path / "rl" / "rl.png").is_file()
    assert "Agent (both methods): PPO `CnnPolicy` with worldsim's `FrameCNN`, 2 envs, 4 stacked frames, rewards normalised" in text
    assert "n_steps=128, batch_size=256, n_epochs=4, learning_rate=0.00025" in text
    assert "(lr 0.0003, batch 16, windows ending an episode drawn 8x)" in text


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


def test_frame_ends_end_dream_episodes_where_the_world_reads_an_end_off_a_frame(monkeypatch):
    import dataclasses

    import worldsim.bench.rl as rl
    from worldsim.envs.worlds import world as world_of_id

    world = dict(scenario="push", frame_size=(16, 16))
    with pytest.raises(UserError, match="frames show its ends; worldsim/Balls-v0 has none"):
        rl.episodes_real_and_dreamed(tiny_world_model(), episodes=2, seed=0, max_steps=3, frame_ends=True, **world)
    frames = []

    def reads(shown_at: int):
        def shows_end(frame):
            frames.append(frame.shape)
            return len(frames) >= shown_at

        return lambda env_id: dataclasses.replace(world_of_id(env_id), shows_end=shows_end)

    monkeypatch.setattr(rl, "world", reads(1))  # every frame shows an end: each episode ends at its first step
    rows = rl.episodes_real_and_dreamed(tiny_world_model(), episodes=2, seed=0, max_steps=3, frame_ends=True, **world)
    assert all(r["dream_length"] == 3 and r["dream_length_frames"] == 1 for r in rows)
    assert len(frames) == 2 * 6 and set(frames) == {(16, 16, 3)}  # each env's first frame, then no more reading
    assert "| always 4 | 3.0 | 3.0 | 1.0 |" in rl.episodes_markdown(rows, "header")
    frames.clear()
    monkeypatch.setattr(rl, "world", reads(10**6))  # no frame does: the head's ends stand
    ended = rl.episodes_real_and_dreamed(tiny_world_model(terminates=True), episodes=2, seed=0, max_steps=3, frame_ends=True, **world)
    assert all(r["dream_length"] == 1 and r["dream_length_frames"] == 1 for r in ended) and not frames  # ended: none read


def test_a_saved_policy_plays_real_and_dream_episodes_on_its_own_stacked_frames(tmp_path, monkeypatch):
    from worldsim.bench.rl import episodes_real_and_dreamed
    from worldsim.data.policies import SB3Policy

    world = dict(scenario="push", frame_size=(16, 16))
    path = tmp_path / "agent.zip"
    make_agent("ppo", gym.make("worldsim/Balls-v0", **world), seed=0).save(path)  # 4 stacked frames, as worldsim agent trains
    seen, call = [], SB3Policy.__call__

    def recording(self, observation, info):
        seen.append(observation.shape)
        return call(self, observation, info)

    monkeypatch.setattr(SB3Policy, "__call__", recording)
    rows = episodes_real_and_dreamed(tiny_world_model(terminates=True), episodes=2, seed=0, max_steps=3, policies=[str(path)], **world)
    assert rows[-1]["policy"] == str(path) and len(rows) == 7
    assert rows[-1]["dream_length"] == 1 and rows[-1]["real_length"] == 3
    assert len(seen) == 2 * 3 + 2 and set(seen) == {(16, 16, 3)}  # 2 real episodes of 3 steps, one dream step of 2 envs


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
    same_budget, goal = targets(cartpole)
    assert goal["value"] == 480.0 and goal["passed"]  # marks 3 and 4 have a budget past 20,000
    assert same_budget["value"] == 471.0 and "20000-real-step mark" in same_budget["target"]
    longer = {**cartpole, "settings": {"real_steps": 20_000, "iterations": 2}, "model_free_budget": 3,
              "curves": {"dyna": curve(20.0, 480.0), "model-free": curve(9.0, 30.0, 200.0, 490.0, 500.0, 500.0, 500.0)}}  # fmt: skip
    efficiency, _, _ = targets(longer)  # model-free's last mark within 3 x 20,000 is its 6th (60,000)
    assert efficiency["value"] == -20.0 and not efficiency["passed"] and efficiency["target"].endswith("model-free at 60000")


def test_write_table_writes_a_benchmarks_markdown_and_json_side_by_side(tmp_path):
    from worldsim.atomic import write_table

    write_table(tmp_path / "new", "t", "| a |\n", {"rows": [1]})
    assert (tmp_path / "new" / "t.md").read_text() == "| a |\n"
    assert json.loads((tmp_path / "new" / "t.json").read_text()) == {"rows": [1]}
    assert not [p for p in (tmp_path / "new").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_dyna_dreams_from_real_frames_of_its_collections_with_a_short_horizon(tmp_path, monkeypatch):
    import worldsim.envs.dream as dream
    from worldsim.agents.dyna import DynaSettings, dyna

    made = []

    class Recorded(dream.DreamVectorEnv):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(dream, "DreamVectorEnv", Recorded)
    folder = str(save_tiny_world_model(tmp_path / "model"))
    world = dict(scenario="push", frame_size=(16, 16), max_steps=10)
    dyna(folder, "ppo", tmp_path / "a", DynaSettings(**DYNA, imagination_horizon=3), progress=False, **world)
    assert [m["horizon"] for m in made] == [3, 3]
    assert [[Path(r).name for r in m["replay"]] for m in made] == [["iter_000"], ["iter_000", "iter_001"]]  # every round so far
    dyna(folder, "ppo", tmp_path / "b", DynaSettings(**DYNA, replay_starts=False, imagination_horizon=None), progress=False, **world)
    assert [(m["replay"], m["horizon"]) for m in made[2:]] == [(None, None), (None, None)]
    for bad, message in (({"imagination_horizon": 0}, "imagination_horizon must be an integer >= 1 or null"),
                         ({"replay_starts": "yes"}, "replay_starts must be true or false")):  # fmt: skip
        with pytest.raises(UserError, match=message):
            DynaSettings(**bad)
