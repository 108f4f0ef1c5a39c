import shutil
import zipfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from worldsim.data.collect import collect
from worldsim.data.collection import Collection
from worldsim.data.dataset import BucketBatchSampler, WindowDataset
from worldsim.errors import MissingFileError, UserError


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    common = dict(env_id="worldsim/Balls-v0", progress=False)
    collect(**common, env_kwargs={"frame_size": (16, 16), "max_steps": 9}, out=base / "square",
            episodes=3, scenarios=["push"], policy="random", stills=4)  # fmt: skip
    collect(**common, env_kwargs={"frame_size": (16, 24), "max_steps": 5}, out=base / "wide",
            episodes=2, scenarios=["uniform"])  # fmt: skip
    return base / "square", base / "wide"


def test_windows_cover_every_start_and_stills(roots):
    square, wide = roots
    dataset = WindowDataset([square, wide], window_lengths=[4, 8])
    steps = [r.steps for r in Collection(square).refs()] + [r.steps for r in Collection(wide).refs()]
    expected = sum(max(0, s + 2 - t) for s in steps for t in (4, 8)) + 4
    assert len(dataset) == expected
    assert set(dataset.buckets) == {(4, 16, 16), (8, 16, 16), (4, 16, 24), (1, 16, 16)}


def test_each_frame_carries_the_action_that_led_into_it(roots):
    square, _ = roots
    dataset = WindowDataset(square, window_lengths=4, images=False)
    episode = Collection(square).load()[0]
    first, later = dataset[0], dataset[2]  # windows starting at frames 0 and 2 of episode 0
    np.testing.assert_array_equal(first["frames"].numpy(), episode.frames[:4])
    assert first["action_mask"].tolist() == [False, True, True, True]
    assert first["actions"].tolist() == [0, *episode.actions[:3].tolist()]
    np.testing.assert_allclose(first["rewards"].numpy(), [0, *episode.rewards[:3]])
    assert later["action_mask"].all()
    assert later["actions"].tolist() == episode.actions[1:5].tolist()
    assert later["terminated"].tolist() == episode.terminated[1:5].tolist()
    assert first["frames"].dtype == torch.uint8 and first["actions"].dtype == torch.int64
    assert first["caption"] == episode.caption and not first["is_image"]


def test_windows_ending_an_episode_by_termination_are_repeated(tmp_path):
    root = tmp_path / "cartpole"
    collect(env_id="worldsim/CartPole-v0", env_kwargs={"frame_size": (16, 16)}, out=root, episodes=2, policy="random",
            seed=0, progress=False)  # fmt: skip
    ends = [r for r in Collection(root).refs() if r.terminated]
    assert len(ends) == 2  # random pushes topple the pole long before CartPole's 500-step limit
    plain = WindowDataset(root, window_lengths=4, images=False)
    repeated = WindowDataset(root, window_lengths=4, images=False, terminal_repeats=5)
    assert len(repeated) == len(plain) + 4 * len(ends)
    ending = [repeated[i]["terminated"].tolist() for i in range(len(repeated)) if repeated[i]["terminated"].any()]
    assert ending == [[False, False, False, True]] * (5 * len(ends))
    assert sum(bool(plain[i]["terminated"].any()) for i in range(len(plain))) == len(ends)


def test_stills_are_one_frame_images(roots):
    square, _ = roots
    dataset = WindowDataset(square, window_lengths=4)
    item = next(dataset[i] for i in range(len(dataset)) if dataset.buckets[i][0] == 1)
    assert item["is_image"] and item["frames"].shape == (1, 16, 16, 3)
    assert not item["action_mask"].any() and item["caption"]


def test_bucketed_batches_have_one_shape_and_no_padding(roots):
    dataset = WindowDataset(list(roots), window_lengths=[4, 8])
    sampler = BucketBatchSampler(dataset.buckets, batch_size=5, seed=1)
    seen = []
    for batch in DataLoader(dataset, batch_sampler=sampler):
        t, h, w = batch["frames"].shape[1:4]
        assert batch["frames"].shape[0] <= 5
        seen.extend([(t, h, w)] * len(batch["caption"]))
    assert sorted(seen) == sorted(dataset.buckets)  # every window once, in its own shape


def test_sampler_is_seeded_and_shards_across_ranks():
    buckets = [i % 3 for i in range(50)]
    a = list(BucketBatchSampler(buckets, 4, seed=3))
    assert a == list(BucketBatchSampler(buckets, 4, seed=3))
    other = BucketBatchSampler(buckets, 4, seed=3)
    other.set_epoch(1)
    assert list(other) != a
    ranks = [list(BucketBatchSampler(buckets, 4, seed=3, rank=r, world_size=2, drop_last=True)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) > 0
    flat = [set(i for b in r for i in b) for r in ranks]
    assert not flat[0] & flat[1]
    for batch in ranks[0] + ranks[1]:
        assert len({buckets[i] for i in batch}) == 1 and len(batch) == 4


def test_bad_arguments_are_rejected(roots, tmp_path):
    with pytest.raises(UserError, match="window lengths, stride and terminal_repeats must be positive"):
        WindowDataset(roots[0], window_lengths=0)
    with pytest.raises(UserError, match="terminal_repeats must be positive"):
        WindowDataset(roots[0], window_lengths=4, terminal_repeats=0)
    with pytest.raises(UserError, match="no windows of length"):
        WindowDataset(roots[1], window_lengths=50, images=False)
    with pytest.raises(MissingFileError, match="does not exist"):
        WindowDataset(tmp_path / "missing")
    with pytest.raises(UserError, match="batch_size must be positive"):
        BucketBatchSampler([0], 0)


@pytest.mark.parametrize("damage", ["truncate", "empty", "still"])
def test_a_damaged_file_is_refused_by_name(roots, tmp_path, damage):
    root = shutil.copytree(roots[0], tmp_path / "copy")
    path = root / ("stills" if damage == "still" else "episodes") / "000001.npz"
    path.write_bytes(b"" if damage == "empty" else path.read_bytes()[:-30])
    problem = "is damaged: it is empty" if damage == "empty" else "is damaged or not a worldsim episode .BadZipFile"
    kind = path.parent.name
    expected = f"1 {kind} file.s. of the collection {root} cannot be read: episode file {path} {problem}.*Rerun"
    with pytest.raises(UserError, match=expected):
        WindowDataset(root, window_lengths=4)


def test_rotten_frames_are_refused_by_name_when_loaded(roots, tmp_path):
    root = shutil.copytree(roots[0], tmp_path / "copy")
    path = Collection(root).paths()[1]  # the dataset loads episode 0 to learn the action dtype
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("frames.npy")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    dataset = WindowDataset(root, window_lengths=4, images=False)  # the quick check skips the frames
    with pytest.raises(UserError, match=f"episode file {path} is damaged.*Bad CRC-32 for file 'frames.npy'"):
        dataset[next(i for i, window in enumerate(dataset.windows) if window.ref.path == path)]
