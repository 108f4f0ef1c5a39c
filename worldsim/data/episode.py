"""Episode: one rollout of a real world (or one captioned still image), and its file on disk.

## File format (``.npz``, one file per episode)
A compressed NumPy zip (``np.savez_compressed``), read without pickle:

| key | dtype, shape | meaning |
| --- | --- | --- |
| ``frames`` | uint8 ``[T + 1, H, W, 3]`` | frame 0 after reset, frame t + 1 after action t |
| ``actions`` | int64 ``[T]`` or float32 ``[T, A]`` | action t, taken at frame t |
| ``rewards`` | float32 ``[T]`` | reward of action t |
| ``terminated``, ``truncated`` | bool ``[T]`` | episode end flags after action t |
| ``state/<key>`` | float64 / uint8 ``[T + 1, ...]`` | true state at every frame (``info["state"]``) |
| ``meta`` | 0-d unicode (JSON) | ``caption``, ``steps`` (T), ``frame_size``, and what the collector adds: ``env_id``, ``env_kwargs``, ``seed``, ``policy``, ... |

A still image is an episode with ``T = 0``: one frame, empty actions. Files are written to a
temporary name and renamed, so a file that exists is complete.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.atomic import atomic_write

STEP_KEYS = ("actions", "rewards", "terminated", "truncated")


@dataclass
class Episode:
    """A recorded rollout. ``T`` actions lead through ``T + 1`` frames (``T = 0``: a still image)."""

    frames: np.ndarray  # uint8 [T + 1, H, W, 3]
    actions: np.ndarray  # int64 [T] (discrete) or float32 [T, A] (continuous)
    rewards: np.ndarray  # float32 [T]
    terminated: np.ndarray  # bool [T]
    truncated: np.ndarray  # bool [T]
    states: dict[str, np.ndarray] = field(default_factory=dict)  # each [T + 1, ...]
    caption: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable: env id, kwargs, seed, ...

    def __len__(self) -> int:
        """The number of steps ``T`` (frames minus one)."""
        return len(self.frames) - 1

    @property
    def frame_size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def is_image(self) -> bool:
        return len(self) == 0

    def validate(self) -> None:
        """Raises ValueError if arrays disagree in length, shape or dtype."""
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [T + 1, H, W, 3], got {self.frames.dtype} {self.frames.shape}")
        steps = len(self)
        for key in STEP_KEYS:
            if len(getattr(self, key)) != steps:
                raise ValueError(f"{key} has {len(getattr(self, key))} entries, expected {steps} (one per action)")
        for key, value in self.states.items():
            if len(value) != steps + 1:
                raise ValueError(f"state {key!r} has {len(value)} entries, expected {steps + 1} (one per frame)")

    def save(self, path: str | Path) -> Path:
        """Writes the episode atomically to ``path`` (``.npz``) and returns the path."""
        self.validate()
        path = Path(path)
        arrays = {key: getattr(self, key) for key in ("frames", *STEP_KEYS)}
        arrays.update({f"state/{key}": value for key, value in self.states.items()})
        meta = {"caption": self.caption, "steps": len(self), "frame_size": list(self.frame_size), **self.meta}
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_write(path) as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Episode:
        """Reads an episode written by :meth:`save`; a missing or corrupt file raises a clear error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"episode file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise ValueError(f"episode file {path} is corrupt or not a worldsim episode ({error})") from error
        missing = {"frames", "meta", *STEP_KEYS} - arrays.keys()
        if missing:
            raise ValueError(f"episode file {path} lacks {sorted(missing)}; not a worldsim episode")
        meta = json.loads(str(arrays.pop("meta")))
        meta.pop("steps", None), meta.pop("frame_size", None)  # derived from the arrays
        states = {key.removeprefix("state/"): arrays.pop(key) for key in list(arrays) if key.startswith("state/")}
        episode = cls(**arrays, states=states, caption=meta.pop("caption", ""), meta=meta)
        episode.validate()
        return episode
