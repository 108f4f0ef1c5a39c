import json

import gymnasium as gym
import numpy as np
import pytest

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.data import collect as collect_module
from worldsim.data.collect import collect, record_episode
from worldsim.data.collection import Collection
from worldsim.data.policies import make_policy

BALLS = dict(env_id="worldsim/Balls-v0", env_kwargs={"frame_size": (16, 16), "max_steps": 6})


def test_collect_then_read_round_trip(tmp_path):
    summary = collect(**BALLS, out=tmp_path / "d", episodes=4, scenarios=["collision", "push"], stills=2, progress=False)
    assert (summary.episodes, summary.stills, summary.total_episodes) == (4, 2, 4)
    assert summary.frames == sum(len(e.frames) for e in Collection(tmp_path / "d").load()) + 2
    assert summary.bytes > 0 and summary.frames_per_second > 0
    collection = Collection(tmp_path / "d")
    episodes = collection.load()
    assert [e.meta["env_kwargs"]["scenario"] for e in episodes] == ["collision", "push", "collision", "push"]
    # Episode i is the real env's rollout from seed i with the same policy.
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16), max_steps=6)
    again = record_episode(env, make_policy("auto", env), seed=1)
    np.testing.assert_array_equal(episodes[1].frames, again.frames)
    np.testing.assert_array_equal(episodes[1].actions, again.actions)
    np.testing.assert_array_equal(episodes[1].states["positions"], again.states["positions"])
    assert episodes[1].caption == again.caption and episodes[1].caption
    for episode in episodes:
        assert episode.frames.shape[1:] == (16, 16, 3)
        assert episode.states["positions"].shape[0] == len(episode) + 1
        assert episode.terminated[-1] or episode.truncated[-1]
    stills = collection.load("stills")
    assert len(stills) == 2 and all(s.is_image and s.caption for s in stills)
    settings = json.loads((tmp_path / "d" / "collection.json").read_text())
    assert settings["env_id"] == "worldsim/Balls-v0" and settings["scenarios"] == ["collision", "push"]


def test_interrupted_collection_resumes_to_the_same_data(tmp_path, monkeypatch):
    args = dict(**BALLS, episodes=5, scenarios=["uniform"], progress=False)
    collect(**args, out=tmp_path / "whole")

    real = collect_module.record_episode
    calls = {"n": 0}

    def dies_on_third(env, policy, seed):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(env, policy, seed)

    monkeypatch.setattr(collect_module, "record_episode", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        collect(**args, out=tmp_path / "cut")
    assert len(Collection(tmp_path / "cut")) == 2
    assert not list((tmp_path / "cut").rglob("*.tmp"))
    monkeypatch.setattr(collect_module, "record_episode", real)
    summary = collect(**args, out=tmp_path / "cut")
    assert summary.episodes == 3 and summary.total_episodes == 5
    for a, b in zip(Collection(tmp_path / "whole").load(), Collection(tmp_path / "cut").load()):
        np.testing.assert_array_equal(a.frames, b.frames)
        assert a.caption == b.caption


def test_more_episodes_extend_a_collection(tmp_path):
    collect(**BALLS, out=tmp_path / "d", episodes=2, progress=False)
    summary = collect(**BALLS, out=tmp_path / "d", episodes=3, progress=False)
    assert summary.episodes == 1 and summary.total_episodes == 3


def test_a_step_budget_stops_after_the_episode_that_reaches_it(tmp_path):
    # CartPole episodes of the random policy differ in length; a budget ends on the episode that reaches it.
    args = dict(env_id="worldsim/CartPole-v0", env_kwargs={"frame_size": (16, 16)}, policy="random", progress=False)
    summary = collect(**args, out=tmp_path / "d", episodes=1000, steps=60)
    lengths = [ref.steps for ref in Collection(tmp_path / "d").refs()]
    assert summary.episodes == len(lengths) < 1000 and sum(lengths) >= 60 > sum(lengths[:-1])
    assert collect(**args, out=tmp_path / "d", episodes=1000, steps=60).episodes == 0  # resumed: already spent
    assert collect(**args, out=tmp_path / "d", episodes=1000, steps=120).total_episodes > len(lengths)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        collect(**args, out=tmp_path / "e", episodes=1, steps=-1)


def test_other_settings_do_not_mix_into_a_collection(tmp_path):
    collect(**BALLS, out=tmp_path / "d", episodes=1, progress=False)
    with pytest.raises(ValueError, match="already holds a collection with other settings.*seed"):
        collect(**BALLS, out=tmp_path / "d", episodes=1, seed=7, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a worldsim collection"):
        collect(**BALLS, out=tmp_path / "junk", episodes=1, progress=False)


def test_bad_inputs_fail_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown Balls scenario 'bounce'"):
        collect(**BALLS, out=tmp_path / "a", episodes=1, scenarios=["bounce"], progress=False)
    with pytest.raises(ValueError, match="unknown policy 'clever'"):
        collect(**BALLS, out=tmp_path / "b", episodes=1, policy="clever", progress=False)
    with pytest.raises(ValueError, match="has no still images"):
        collect("worldsim/CartPole-v0", out=tmp_path / "c", episodes=1, stills=1, progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")


def test_missing_dataset_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it with `worldsim collect"):
        Collection(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no collection.json"):
        Collection(tmp_path / "empty")
