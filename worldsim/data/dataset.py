"""Training windows: T consecutive frames of recorded episodes (and stills as T = 1), bucketed by shape.

Each frame of a window carries what led *into* it: the action taken at the previous frame, the
reward of that action and whether it ended the episode. An episode's first frame (and a still
image) has no incoming action: its ``action_mask`` is False and its action is zero.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from worldsim.data.collection import Collection, EpisodeRef
from worldsim.data.episode import Episode
from worldsim.errors import UserError


@dataclass(frozen=True)
class Window:
    """Frames ``start .. start + length - 1`` of the episode ``ref``."""

    ref: EpisodeRef
    start: int
    length: int

    @property
    def bucket(self) -> tuple[int, int, int]:
        """``(T, H, W)``: windows of one bucket stack into one batch without padding."""
        return (self.length, *self.ref.frame_size)


class WindowDataset(Dataset):
    """Windows of ``window_lengths`` frames from one or more collections, plus their still images.

    ``roots`` may mix frame sizes and worlds with the same kind of actions; pair it with
    :class:`BucketBatchSampler` so that every batch has one ``(T, H, W)``. Episodes shorter than a
    window length give no window of that length. Loaded episodes are kept in memory when ``cache``.
    A damaged file raises UserError naming it: when the dataset is built (its zip structure, see
    :meth:`Collection.refs`) or, for a bad CRC of its frames or actions, when it is loaded.
    A window that ends on a terminated episode's last frame is listed ``terminal_repeats`` times: an
    episode of T steps gives about T windows but one end, too rare for the termination head alone.

    An item is a dict of tensors:
    ``frames`` uint8 ``[T, H, W, 3]``; ``actions`` int64 ``[T]`` (discrete) or float32 ``[T, A]``;
    ``action_mask`` bool ``[T]``; ``rewards`` float32 ``[T]``; ``terminated`` bool ``[T]``;
    ``is_image`` bool; and ``caption`` str.
    """

    def __init__(
        self,
        roots: str | Path | Sequence[str | Path],
        window_lengths: int | Sequence[int] = 8,
        stride: int = 1,
        images: bool = True,
        cache: bool = True,
        terminal_repeats: int = 1,
    ):
        roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
        lengths = [window_lengths] if isinstance(window_lengths, int) else list(window_lengths)
        if not roots:
            raise UserError("WindowDataset needs at least one collection folder")
        if not lengths or min(lengths) < 1 or stride < 1 or terminal_repeats < 1:
            raise UserError(
                f"window lengths, stride and terminal_repeats must be positive, got {window_lengths!r}, {stride!r} and {terminal_repeats!r}"
            )
        collections = [Collection(root) for root in roots]
        self.windows: list[Window] = []
        for collection in collections:
            for ref in collection.refs("episodes"):
                for length in lengths:
                    starts = range(0, ref.steps + 2 - length, stride)
                    self.windows.extend(Window(ref, start, length) for start in starts)
                    if ref.terminated and ref.steps + 1 >= length:  # the window ending on the last frame
                        self.windows.extend([Window(ref, ref.steps + 1 - length, length)] * (terminal_repeats - 1))
            if images:
                self.windows.extend(Window(ref, 0, 1) for ref in collection.refs("stills"))
        if not self.windows:
            raise UserError(f"no windows of length {lengths} in {[str(r) for r in roots]}: are the episodes shorter?")
        self.buckets = [window.bucket for window in self.windows]  # (T, H, W) per item, for the sampler
        self.action_shape, self.action_dtype = check_actions_agree(collections)
        self.cache = cache
        self._episodes: dict[Path, Episode] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        window = self.windows[index]
        episode = self._episode(window.ref.path)
        frame_ids = np.arange(window.start, window.start + window.length)
        has_action = frame_ids > 0
        step_ids = np.maximum(frame_ids - 1, 0)  # step t leads from frame t to frame t + 1

        def incoming(values: np.ndarray, dtype) -> torch.Tensor:
            out = np.zeros((window.length, *values.shape[1:]), dtype=dtype)
            if len(values):
                out[has_action] = values[step_ids[has_action]]
            return torch.from_numpy(out)

        return {
            "frames": torch.from_numpy(episode.frames[window.start : window.start + window.length].copy()),
            "actions": incoming(episode.actions.reshape(len(episode.actions), *self.action_shape), self.action_dtype),
            "action_mask": torch.from_numpy(has_action),
            "rewards": incoming(episode.rewards, np.float32),
            "terminated": incoming(episode.terminated, bool),
            "is_image": episode.is_image,
            "caption": episode.caption,
        }

    def _episode(self, path: Path) -> Episode:
        if path in self._episodes:
            return self._episodes[path]
        episode = Episode.load(path)
        if self.cache:
            self._episodes[path] = episode
        return episode


def check_actions_agree(collections: Sequence[Collection]) -> tuple[tuple[int, ...], np.dtype]:
    """The action shape (``()`` or ``(A,)``) and dtype shared by all collections' episodes."""
    kinds = {}
    for collection in collections:
        paths = collection.paths("episodes")
        if paths:
            actions = Episode.load(paths[0]).actions
            kinds[str(collection.root)] = (tuple(actions.shape[1:]), actions.dtype)
    if len(set(kinds.values())) > 1:
        raise UserError(f"collections disagree on actions (shape, dtype): {kinds}; train them in separate datasets")
    return next(iter(kinds.values()), ((), np.dtype(np.int64)))


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices that share one bucket key, so a batch has one ``(T, H, W)``.

    Every epoch shuffles items within buckets and the order of batches, from ``seed`` and the epoch
    (call :meth:`set_epoch`). Under DDP each of ``world_size`` ranks takes every ``world_size``-th
    batch of the same order, trimmed so that all ranks take the same number of batches.
    """

    def __init__(
        self,
        buckets: Sequence[Hashable],
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise UserError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.groups: dict[Hashable, list[int]] = defaultdict(list)
        for index, key in enumerate(buckets):
            self.groups[key].append(index)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Selects the epoch's order; ``skip`` leaves out its first batches (to resume mid-epoch)."""
        self.epoch, self.skip = epoch, skip

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        batches = []
        for key in sorted(self.groups, key=repr):
            indices = list(self.groups[key])
            if self.shuffle:
                rng.shuffle(indices)
            for i in range(0, len(indices), self.batch_size):
                batch = indices[i : i + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size
        return batches[:usable][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches()[self.skip :])

    def __len__(self) -> int:
        """Batches in a whole epoch for this rank."""
        return len(self._batches())
