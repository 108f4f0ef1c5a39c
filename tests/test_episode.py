import numpy as np
import pytest

from worldsim.data.episode import Episode


def make_episode(steps=3, size=(8, 12), seed=0):
    rng = np.random.default_rng(seed)
    return Episode(
        frames=rng.integers(0, 256, (steps + 1, *size, 3), dtype=np.uint8),
        actions=rng.integers(0, 5, steps),
        rewards=rng.normal(size=steps).astype(np.float32),
        terminated=np.arange(steps) == steps - 1,
        truncated=np.zeros(steps, bool),
        states={"positions": rng.normal(size=(steps + 1, 2, 2)), "colors": np.zeros((steps + 1, 2, 3), np.uint8)},
        caption="a red ball moves left",
        meta={"seed": seed, "env_id": "worldsim/Balls-v0"},
    )


def test_save_load_round_trip(tmp_path):
    episode = make_episode()
    loaded = Episode.load(episode.save(tmp_path / "e.npz"))
    for key in ("frames", "actions", "rewards", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(episode, key))
        assert getattr(loaded, key).dtype == getattr(episode, key).dtype
    assert loaded.states.keys() == episode.states.keys()
    np.testing.assert_array_equal(loaded.states["positions"], episode.states["positions"])
    assert loaded.caption == episode.caption and loaded.meta == episode.meta
    assert len(loaded) == 3 and loaded.frame_size == (8, 12) and not loaded.is_image


def test_save_leaves_no_temporary_files(tmp_path):
    make_episode().save(tmp_path / "e.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["e.npz"]


def test_still_image_is_a_one_frame_episode(tmp_path):
    episode = make_episode(steps=0)
    loaded = Episode.load(episode.save(tmp_path / "still.npz"))
    assert loaded.is_image and loaded.frames.shape == (1, 8, 12, 3)


def test_mismatched_lengths_are_rejected(tmp_path):
    episode = make_episode()
    episode.rewards = episode.rewards[:-1]
    with pytest.raises(ValueError, match="rewards has 2 entries, expected 3"):
        episode.save(tmp_path / "e.npz")
    episode = make_episode()
    episode.frames = episode.frames.astype(np.float32)
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T \+ 1, H, W, 3\]"):
        episode.validate()


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Episode.load(tmp_path / "nope.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="corrupt or not a worldsim episode"):
        Episode.load(corrupt)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        Episode.load(tmp_path / "other.npz")
