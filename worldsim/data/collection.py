"""Collection: a folder of episodes (and captioned stills) from one world, as written by collect.

## Layout
```
DIR/
  collection.json          settings it was collected with (env id, kwargs, policy, seed, ...)
  episodes/000000.npz ...  one Episode per file (see worldsim.data.episode)
  stills/000000.npz ...    captioned still images: episodes with one frame and no actions
```
Episode ``i`` is collected with seed ``seed + i``, so a collection is the same whether it was
written in one run or resumed after an interruption.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.atomic import atomic_write
from worldsim.data.episode import Episode

SETTINGS_FILE = "collection.json"
KINDS = ("episodes", "stills")


@dataclass(frozen=True)
class EpisodeRef:
    """Where an episode lives and what it holds, read from its file's small ``meta`` entry."""

    path: Path
    steps: int  # T: number of actions; 0 for a still image
    frame_size: tuple[int, int]  # (H, W)
    caption: str
    terminated: bool = False  # the episode ended by termination (not truncation or the collector's limit)


class Collection:
    """A collection folder: its settings and its episode files, in index order."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        settings_path = self.root / SETTINGS_FILE
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset path {self.root} does not exist; create it with `worldsim collect ... out={self.root}`"
            )
        if not settings_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a worldsim collection: it has no {SETTINGS_FILE}")
        self.settings: dict[str, Any] = json.loads(settings_path.read_text())

    def paths(self, kind: str = "episodes") -> list[Path]:
        """The finished files of ``kind`` ("episodes" or "stills"), sorted by index."""
        return sorted((self.root / kind).glob("[0-9]*.npz"))

    def refs(self, kind: str = "episodes") -> list[EpisodeRef]:
        """Length, frame size and caption of every file of ``kind``, without loading frames."""
        return [read_ref(path) for path in self.paths(kind)]

    def load(self, kind: str = "episodes") -> list[Episode]:
        return [Episode.load(path) for path in self.paths(kind)]

    def __len__(self) -> int:
        return len(self.paths("episodes"))


def create_collection(root: str | Path, settings: dict[str, Any], resume_ignores: tuple[str, ...] = ()) -> Collection:
    """Creates ``root`` with ``settings``, or reopens it if it holds the same settings.

    Keys in ``resume_ignores`` (e.g. the number of episodes) may differ from the stored settings.
    A folder collected with other settings raises ValueError rather than mixing two datasets.
    """
    root = Path(root)
    settings = json.loads(json.dumps(settings))  # compare as stored: tuples become lists
    settings_path = root / SETTINGS_FILE
    if settings_path.is_file():
        stored = json.loads(settings_path.read_text())
        differ = sorted(k for k in stored.keys() | settings.keys() if k not in resume_ignores and stored.get(k) != settings.get(k))
        if differ:
            details = "; ".join(f"{k}: stored {stored.get(k)!r}, asked {settings.get(k)!r}" for k in differ)
            raise ValueError(f"{root} already holds a collection with other settings ({details}); choose another out=")
    elif root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} exists and is not a worldsim collection; choose an empty or new out=")
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path, settings)
    return Collection(root)


def episode_path(root: Path, kind: str, index: int) -> Path:
    return root / kind / f"{index:06d}.npz"


def read_ref(path: Path) -> EpisodeRef:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            terminated = bool(data["terminated"][-1]) if int(meta["steps"]) else False
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"episode file {path} is corrupt or not a worldsim episode ({error})") from error
    return EpisodeRef(path, int(meta["steps"]), tuple(meta["frame_size"]), meta.get("caption", ""), terminated)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
