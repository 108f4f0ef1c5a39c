import zipfile

import numpy as np
import pytest

from worldsim.data.episode import Episode, damage, read_arrays
from worldsim.errors import MissingFileError, UserError


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
    with pytest.raises(UserError, match="rewards has 2 entries, expected 3"):
        episode.save(tmp_path / "e.npz")
    episode = make_episode()
    episode.frames = episode.frames.astype(np.float32)
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T \+ 1, H, W, 3\]"):
        episode.validate()


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        Episode.load(tmp_path / "nope.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match=f"episode file {corrupt} is damaged or not a worldsim episode"):
        Episode.load(corrupt)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(UserError, match="lacks"):
        Episode.load(tmp_path / "other.npz")
    assert "lacks" in damage(tmp_path / "other.npz")


def frames_offset(path):
    """The offset of the middle of the compressed frames in an episode file."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("frames.npy")
    return info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2


def test_damaged_files_are_named_truncated_emptied_or_rotten(tmp_path):
    path = make_episode(steps=20, size=(32, 32)).save(tmp_path / "e.npz")
    whole, offset = path.read_bytes(), frames_offset(path)
    assert damage(path) is None and read_arrays(path, keys=("meta",)).keys() == {"meta"}
    path.write_bytes(whole[:-10])  # truncated: its central directory is gone
    assert damage(path).startswith(f"episode file {path} is damaged or not a worldsim episode (BadZipFile")
    path.write_bytes(b"")
    assert damage(path) == f"episode file {path} is damaged: it is empty"
    rotten = bytearray(whole)
    rotten[offset] ^= 0xFF
    path.write_bytes(bytes(rotten))
    read_arrays(path, keys=("meta", "terminated"))  # a quick read leaves the frames to load time
    assert "Bad CRC-32 for file 'frames.npy'" in damage(path)
    with pytest.raises(UserError, match=f"episode file {path} is damaged.*Bad CRC-32 for file 'frames.npy'"):
        Episode.load(path)
    rotten = bytearray(whole)
    rotten[whole.index(b"meta.npy") - 30] ^= 0xFF  # the local header of meta
    path.write_bytes(bytes(rotten))
    with pytest.raises(UserError, match="Bad magic number for file header"):
        read_arrays(path, keys=())
