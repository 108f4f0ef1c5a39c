"""Collection: a folder of episodes (and captioned stills) from one world, as written by collect.

## Layout
```
DIR/
  collection.json          settings it was collected with (env id, kwargs, policy, seed, ...)
  episodes/000000.npz ...  one Episode per file (see worldsim.data.episode)
  stills/000000.npz ...    captioned still images: episodes with one frame and no actions
```
Episode ``i`` is collected with seed ``seed + i``, so a collection is the same whether it was
written in one run or resumed after an interruption. Files are written atomically; a file damaged
afterwards (truncated by a full disk or a crash, emptied, bit rot) is refused by readers with an
error naming it, and deleted by :meth:`Collection.discard_damaged` so that a resumed run rewrites it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldsim.atomic import atomic_write, temp_glob
from worldsim.data.episode import Episode, damage, read_arrays
from worldsim.errors import MissingFileError, UserError

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
            raise MissingFileError(f"dataset path {self.root} does not exist; create it with `worldsim collect ... out={self.root}`")
        if not settings_path.is_file():
            raise MissingFileError(f"{self.root} is not a worldsim collection: it has no {SETTINGS_FILE}")
        self.settings: dict[str, Any] = read_settings(settings_path)

    def paths(self, kind: str = "episodes") -> list[Path]:
        """The finished files of ``kind`` ("episodes" or "stills"), sorted by index."""
        return sorted((self.root / kind).glob("[0-9]*.npz"))

    def refs(self, kind: str = "episodes") -> list[EpisodeRef]:
        """Length, frame size and caption of every file of ``kind``, without loading frames.

        Raises UserError naming the damaged files: their zip structure and the CRCs of ``meta`` and
        ``terminated`` are checked here (:func:`~worldsim.data.episode.read_arrays`), the CRCs of the
        other arrays when an episode is loaded.
        """
        refs, damaged = [], []
        for path in self.paths(kind):
            try:
                refs.append(read_ref(path))
            except UserError as error:
                damaged.append(str(error))
        if damaged:
            more = f"; and {len(damaged) - 3} more" if len(damaged) > 3 else ""
            raise UserError(
                f"{len(damaged)} {kind} file(s) of the collection {self.root} cannot be read: {'; '.join(damaged[:3])}{more}. "
                "Rerun the command that wrote it with the same settings to rewrite them (worldsim collect does), or delete them"
            )
        return refs

    def load(self, kind: str = "episodes") -> list[Episode]:
        return [Episode.load(path) for path in self.paths(kind)]

    def __len__(self) -> int:
        return len(self.paths("episodes"))

    def discard_damaged(self) -> list[Path]:
        """Deletes damaged episode and still files and the temporary files of killed writes; for a resumed writer.

        Returns the damaged paths: rewriting them (same index, same seed) restores the collection.
        """
        stale = [*self.root.glob(temp_glob(SETTINGS_FILE))]
        stale += [path for kind in KINDS for path in (self.root / kind).glob(temp_glob("*"))]
        for path in stale:
            path.unlink()
        damaged = [path for kind in KINDS for path in self.paths(kind) if damage(path) is not None]
        for path in damaged:
            path.unlink()
        return damaged


def create_collection(root: str | Path, settings: dict[str, Any], resume_ignores: tuple[str, ...] = ()) -> Collection:
    """Creates ``root`` with ``settings``, or reopens it if it holds the same settings.

    Keys in ``resume_ignores`` (e.g. the number of episodes) may differ from the stored settings.
    A folder collected with other settings raises UserError rather than mixing two datasets.
    """
    root = Path(root)
    settings = json.loads(json.dumps(settings))  # compare as stored: tuples become lists
    settings_path = root / SETTINGS_FILE
    if root.exists() and not root.is_dir():
        raise UserError(f"out={root} is a file, not a folder; choose an empty or new folder")
    if settings_path.is_file():
        stored = read_settings(settings_path)
        differ = sorted(k for k in stored.keys() | settings.keys() if k not in resume_ignores and stored.get(k) != settings.get(k))
        if differ:
            details = "; ".join(f"{k}: stored {stored.get(k)!r}, asked {settings.get(k)!r}" for k in differ)
            raise UserError(f"{root} already holds a collection with other settings ({details}); choose another out=")
    # A kill while the first collection.json was written leaves only its temporary file.
    elif root.exists() and any(p for p in root.iterdir() if not p.match(temp_glob(SETTINGS_FILE))):
        raise UserError(f"{root} exists and is not a worldsim collection; choose an empty or new out=")
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path, settings)
    return Collection(root)


def episode_path(root: Path, kind: str, index: int) -> Path:
    return root / kind / f"{index:06d}.npz"


def read_ref(path: Path) -> EpisodeRef:
    arrays = read_arrays(path, keys=("meta", "terminated"))
    try:
        meta = json.loads(str(arrays["meta"]))
        steps, frame_size = int(meta["steps"]), tuple(meta["frame_size"])
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"episode file {path} has no worldsim meta ({type(error).__name__}: {error})") from error
    terminated = bool(arrays["terminated"][-1]) if steps else False
    return EpisodeRef(path, steps, frame_size, meta.get("caption", ""), terminated)


def read_settings(path: Path) -> dict[str, Any]:
    """The settings in a collection's ``collection.json``, which must be a JSON object."""
    expected = "it must be the JSON object of settings that collect writes"
    try:
        settings = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}); {expected}") from error
    if not isinstance(settings, dict):
        raise UserError(f"{path} holds {json.dumps(settings)[:40]}; {expected}")
    return settings


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
