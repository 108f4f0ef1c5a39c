"""Minari import: a dataset recorded from a worldsim world comes back as the same episodes."""

from __future__ import annotations

import sys

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.data.episode import Episode
from worldsim.data.minari_import import import_minari
from worldsim.errors import MissingFileError, UserError

# Minari nags about dataset metadata (author, code permalink, ...) that tiny test datasets lack.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is set to None:UserWarning"),
    pytest.mark.filterwarnings("ignore:env_spec is None:UserWarning"),
]

BALLS = {"scenario": "push", "frame_size": (16, 16), "max_steps": 10}


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def stack_infos(infos: list) -> dict | tuple | list:
    """Per-step infos as one nested structure of per-step lists, as DataCollector builds them."""
    first = infos[0]
    if isinstance(first, dict):
        return {key: stack_infos([info[key] for info in infos]) for key in first}
    if isinstance(first, tuple):
        return tuple(stack_infos([info[i] for info in infos]) for i in range(len(first)))
    return list(infos)


def rollout(env: gym.Env, seed: int) -> dict:
    """One episode of random actions: what the env returned at every step."""
    obs, info = env.reset(seed=seed)
    record = {"observations": [obs], "infos": [info]}
    record.update(actions=[], rewards=[], terminations=[], truncations=[])
    action_rng = np.random.default_rng(seed)
    while True:
        action = int(action_rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        for key, value in zip(record, (obs, info, action, reward, terminated, truncated)):
            record[key].append(value)
        if terminated or truncated:
            return record


def record_dataset(dataset_id: str, env: gym.Env, episodes: int, recorder: str, record_infos: bool = True) -> list:
    """Records ``episodes`` rollouts of ``env`` as the Minari dataset ``dataset_id``; returns them.

    ``recorder``: "buffers" (``create_dataset_from_buffers``) or "collector" (``DataCollector``,
    which needs jax, Minari's ``create`` extra).
    """
    if recorder == "collector":
        pytest.importorskip("jax", reason='minari.DataCollector needs jax: pip install "minari[create]"')
        collector = minari.DataCollector(env, record_infos=record_infos)
        records = [rollout(collector, seed) for seed in range(episodes)]
        collector.create_dataset(dataset_id)
        return records
    records = [rollout(env, seed) for seed in range(episodes)]
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=i,
            observations=r["observations"],
            actions=r["actions"],
            rewards=r["rewards"],
            terminations=r["terminations"],
            truncations=r["truncations"],
            infos=stack_infos(r["infos"]) if record_infos else None,
        )
        for i, r in enumerate(records)
    ]
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env)
    return records


@pytest.mark.parametrize("recorder", ["buffers", "collector"])
def test_round_trip_keeps_frames_actions_states_and_captions(tmp_path, recorder):
    env = gym.make("worldsim/Balls-v0", **BALLS)
    records = record_dataset("test/balls/push-v0", env, episodes=3, recorder=recorder)
    collection = import_minari("test/balls/push-v0", tmp_path / "out")
    episodes = collection.load()
    assert len(episodes) == 3
    dataset = minari.load_dataset("test/balls/push-v0")
    for i, (episode, record) in enumerate(zip(episodes, records)):
        # 16 x 16 frames are below Minari's JPEG threshold (32), so they are stored losslessly.
        np.testing.assert_array_equal(episode.frames, np.stack(record["observations"]))
        np.testing.assert_array_equal(episode.frames, dataset[i].observations)
        assert episode.actions.dtype == np.int64
        np.testing.assert_array_equal(episode.actions, record["actions"])
        assert episode.rewards.dtype == np.float32
        np.testing.assert_allclose(episode.rewards, record["rewards"], rtol=1e-6)
        np.testing.assert_array_equal(episode.terminated, record["terminations"])
        np.testing.assert_array_equal(episode.truncated, record["truncations"])
        assert episode.terminated[-1] or episode.truncated[-1]
        assert set(episode.states) == {"positions", "velocities", "radii", "masses", "colors"}
        for key, value in episode.states.items():
            np.testing.assert_array_equal(value, np.stack([info["state"][key] for info in record["infos"]]))
        assert episode.caption == record["infos"][0]["caption"] != ""
        assert episode.meta["env_id"] == "worldsim/Balls-v0"
        assert episode.meta["seed"] == i and episode.meta["minari_episode"] == i
    assert collection.settings["env_kwargs"]["scenario"] == "push"


def test_large_frames_come_back_as_minari_decodes_them(tmp_path):
    env = gym.make("worldsim/Balls-v0", **{**BALLS, "frame_size": (32, 32), "max_steps": 3})
    (record,) = record_dataset("test/balls/jpeg-v0", env, episodes=1, recorder="buffers")
    collection = import_minari("test/balls/jpeg-v0", tmp_path / "out")
    (episode,) = collection.load()
    # Minari JPEG-encodes images of 32 x 32 and more by default: the import holds its decoded frames.
    np.testing.assert_array_equal(episode.frames, minari.load_dataset("test/balls/jpeg-v0")[0].observations)
    assert collection.settings["minari_jpeg_encoding"] is True
    raw = np.stack(record["observations"]).astype(int)
    assert 0 < np.abs(episode.frames - raw).mean() < 8


def test_caption_argument_fills_in_when_infos_were_not_recorded(tmp_path):
    env = gym.make("worldsim/Balls-v0", **BALLS)
    record_dataset("test/balls/noinfo-v0", env, episodes=1, recorder="buffers", record_infos=False)
    (episode,) = import_minari("test/balls/noinfo-v0", tmp_path / "out", caption="a red ball is pushed").load()
    assert episode.caption == "a red ball is pushed"
    assert episode.states == {}


def test_import_resumes_and_refuses_other_settings(tmp_path):
    env = gym.make("worldsim/Balls-v0", **BALLS)
    record_dataset("test/balls/push-v0", env, episodes=3, recorder="buffers")
    out = tmp_path / "out"
    first = import_minari("test/balls/push-v0", out)
    paths = first.paths()
    kept = paths[0].stat().st_mtime_ns
    lost = Episode.load(paths[1])
    paths[1].unlink()  # as if the first run had been interrupted before episode 1
    whole = paths[2].read_bytes()
    paths[2].write_bytes(whole[:-40])  # and episode 2 had been damaged since
    (paths[2].parent / ".000003.npz.k1ll3d.tmp").write_bytes(b"half")
    again = import_minari("test/balls/push-v0", out)
    assert again.paths() == paths and paths[2].read_bytes() == whole
    assert not list(out.rglob("*.tmp"))
    assert paths[0].stat().st_mtime_ns == kept  # finished files are not rewritten
    redone = Episode.load(paths[1])
    np.testing.assert_array_equal(redone.frames, lost.frames)
    assert (redone.caption, redone.meta) == (lost.caption, lost.meta)
    with pytest.raises(UserError, match="other settings"):
        import_minari("test/balls/push-v0", out, caption="another caption")


def test_dict_observations_and_box_actions(tmp_path):
    image = gym.spaces.Box(0, 255, (8, 12, 3), np.uint8)
    observation_space = gym.spaces.Dict({"pixels": image, "vector": gym.spaces.Box(-1, 1, (4,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    rng = np.random.default_rng(0)
    steps = 5
    pixels = rng.integers(0, 256, (steps + 1, 8, 12, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (steps, 2)).astype(np.float32)
    buffer = EpisodeBuffer(
        observations={"pixels": list(pixels), "vector": list(rng.uniform(-1, 1, (steps + 1, 4)).astype(np.float32))},
        actions=list(actions),
        rewards=[0.5] * steps,
        terminations=[False] * steps,
        truncations=[False] * (steps - 1) + [True],
    )
    minari.create_dataset_from_buffers("test/synthetic-v0", [buffer], observation_space=observation_space, action_space=action_space)
    collection = import_minari("test/synthetic-v0", tmp_path / "out", caption="noise")
    (episode,) = collection.load()
    np.testing.assert_array_equal(episode.frames, pixels)
    assert episode.actions.dtype == np.float32 and episode.actions.shape == (steps, 2)
    np.testing.assert_array_equal(episode.actions, actions)
    assert episode.caption == "noise"
    assert collection.settings["observation_key"] == "pixels" and collection.settings["env_id"] is None
    with pytest.raises(UserError, match="'vector' is not one of them"):
        import_minari("test/synthetic-v0", tmp_path / "other", observation_key="vector")


def test_vector_observations_are_refused(tmp_path):
    env = gym.make("CartPole-v1")
    record_dataset("test/cartpole/random-v0", env, episodes=1, recorder="buffers", record_infos=False)
    with pytest.raises(UserError, match="uint8 H x W x 3 image observations"):
        import_minari("test/cartpole/random-v0", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_missing_dataset_names_the_minari_folder(tmp_path):
    with pytest.raises(MissingFileError, match="MINARI_DATASETS_PATH"):
        import_minari("test/nothing/here-v0", tmp_path / "out")


def test_missing_minari_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` raise ImportError
    with pytest.raises(ImportError, match=r"worldsim\[minari\]"):
        import_minari("test/balls/push-v0", tmp_path / "out")
