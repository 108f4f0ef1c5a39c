import json
import math
import os
import stat
import zipfile

import gymnasium as gym
import numpy as np
import pytest

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.data import collect as collect_module
from worldsim.data.collect import collect, record_episode
from worldsim.data.collection import Collection
from worldsim.data.policies import make_policy
from worldsim.errors import MissingFileError, UserError

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
    first = Collection(tmp_path / "d").paths()[0]
    whole = first.read_bytes()
    first.write_bytes(whole[:100])
    repaired = collect(**args, out=tmp_path / "d", episodes=1000, steps=60)  # a damaged episode is outside the budget
    assert (repaired.episodes, repaired.repaired) == (1, 1) and first.read_bytes() == whole
    assert collect(**args, out=tmp_path / "d", episodes=1000, steps=120).total_episodes > len(lengths)


def test_other_settings_do_not_mix_into_a_collection(tmp_path):
    collect(**BALLS, out=tmp_path / "d", episodes=1, progress=False)
    with pytest.raises(UserError, match="already holds a collection with other settings.*seed"):
        collect(**BALLS, out=tmp_path / "d", episodes=1, seed=7, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is not a worldsim collection"):
        collect(**BALLS, out=tmp_path / "junk", episodes=1, progress=False)


def test_bad_inputs_fail_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown Balls scenario 'bounce'"):
        collect(**BALLS, out=tmp_path / "a", episodes=1, scenarios=["bounce"], progress=False)
    with pytest.raises(ValueError, match="unknown policy 'clever'"):
        collect(**BALLS, out=tmp_path / "b", episodes=1, policy="clever", progress=False)
    with pytest.raises(UserError, match="has no still images"):
        collect("worldsim/CartPole-v0", out=tmp_path / "c", episodes=1, stills=1, progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")


def test_missing_dataset_path_is_a_clear_error(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist; create it with `worldsim collect"):
        Collection(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="has no collection.json"):
        Collection(tmp_path / "empty")


def flip_a_frames_byte(path):
    """Flips one byte inside the compressed frames of an episode file (bit rot the zip structure does not show)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("frames.npy")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_resumed_collection_collects_damaged_files_again_and_sweeps_temporaries(tmp_path):
    args = dict(**BALLS, episodes=5, stills=2, scenarios=["push"], progress=False)
    collect(**args, out=tmp_path / "whole")
    collect(**args, out=tmp_path / "hurt")
    episodes, stills = tmp_path / "hurt" / "episodes", tmp_path / "hurt" / "stills"
    (episodes / "000001.npz").write_bytes((episodes / "000001.npz").read_bytes()[:-200])  # truncated: BadZipFile
    (episodes / "000003.npz").write_bytes(b"")  # zero-length: EOFError
    flip_a_frames_byte(episodes / "000004.npz")
    (stills / "000000.npz").write_bytes((stills / "000000.npz").read_bytes()[:50])
    (episodes / ".000005.npz.k1ll3d.tmp").write_bytes(b"half an episode")
    (tmp_path / "hurt" / ".collection.json.k1ll3d.tmp").write_text("{")
    summary = collect(**args, out=tmp_path / "hurt")
    assert (summary.episodes, summary.stills, summary.repaired) == (3, 1, 4) and "4 damaged files" in str(summary)
    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "hurt") for p in (tmp_path / "hurt").rglob("*") if p.is_file())
    for name in files:  # byte-identical to a run that was never damaged
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "hurt" / name).read_bytes(), name


def test_collected_files_are_readable_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        collect(**BALLS, out=tmp_path / "d", episodes=1, progress=False)
    finally:
        os.umask(old)
    for path in (tmp_path / "d" / "collection.json", tmp_path / "d" / "episodes" / "000000.npz"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"seed": -5}, "seed must be an integer >= 0, got seed=-5"),
        ({"seed": 1.5}, "seed must be an integer >= 0"),
        ({"episodes": -1}, "episodes must be an integer >= 0"),
        ({"episodes": True}, "episodes must be an integer >= 0"),
        ({"stills": -2}, "stills must be an integer >= 0"),
        ({"steps": -1}, "steps must be an integer >= 0"),
        ({"epsilon": 1.5}, r"epsilon, the probability of a random action, must be in \[0, 1\], got epsilon=1.5"),
        ({"epsilon": math.nan}, r"must be in \[0, 1\], got epsilon=nan"),
        ({"epsilon": "0.1"}, r"must be in \[0, 1\]"),
        ({"algo": "sac"}, "algo must be one of ppo, a2c, dqn"),
        ({"policy": 3}, "policy must be a policy name or the path of an SB3 .zip"),
        ({"scenarios": "push"}, "scenarios must be a list of scenario names"),
        ({"env_kwargs": [1]}, "env_kwargs must be a dict"),
        ({"env_id": "worldsim/Nothing-v0"}, "unknown env id 'worldsim/Nothing-v0'.*worldsim/Balls-v0"),
    ],
)
def test_a_bad_argument_fails_before_anything_is_written(tmp_path, bad, message):
    args = {**BALLS, "episodes": 1, "progress": False, **bad}
    with pytest.raises(UserError, match=message):
        collect(**args, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [("{not json", "is not valid JSON"), ("[1, 2, 3]", r"holds \[1, 2, 3\]")])
def test_a_broken_collection_json_is_named(tmp_path, text, message):
    collect(**BALLS, out=tmp_path / "d", episodes=1, progress=False)
    (tmp_path / "d" / "collection.json").write_text(text)
    expected = f"{tmp_path / 'd' / 'collection.json'} {message}.*JSON object of settings"
    with pytest.raises(UserError, match=expected):
        Collection(tmp_path / "d")
    with pytest.raises(UserError, match=expected):
        collect(**BALLS, out=tmp_path / "d", episodes=1, progress=False)


def test_out_must_be_a_folder_and_a_killed_first_write_resumes(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="out=.*file is a file, not a folder"):
        collect(**BALLS, out=tmp_path / "file", episodes=1, progress=False)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".collection.json.k1ll3d.tmp").write_text("{")  # killed while writing the first settings
    assert collect(**BALLS, out=tmp_path / "d", episodes=1, progress=False).total_episodes == 1
    assert not list((tmp_path / "d").rglob("*.tmp"))
