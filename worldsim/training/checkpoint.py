"""Run folders: checkpoints written atomically, exact resume, the run's config and metrics CSV.

```
RUN/
  config.json                 data, steps, model, train and world settings of the run
  metrics.csv                 one row per log step (loss terms, lr, grad norm, steps/s, tokens/s)
  checkpoints/step_0001000/   a WorldModel folder with the EMA weights (worldsim.load reads it)
      training_state.pt       raw weights, optimizer, LR schedule, EMA, data position
```
A checkpoint counts only once its ``training_state.pt`` exists (for ``worldsim.load`` and resume
alike: :func:`~worldsim.model.world_model.complete_checkpoints`); both are written to temporary
names and renamed, so a killed run leaves at worst an unfinished folder that both ignore. Training state
loads with ``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import pickle
import shutil
import zipfile
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import torch

from worldsim.atomic import atomic_write
from worldsim.errors import MissingFileError, UserError
from worldsim.model.world_model import STATE_FILE, WorldModel, complete_checkpoints


@dataclass(frozen=True)
class State:
    """Where a run stands: optimizer steps done, and the next batch (epoch, index in epoch)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    return complete_checkpoints(out)


def has_checkpoints(out: Path) -> bool:
    return bool(checkpoints(out))


def newest(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def save(out: Path, model: WorldModel, ema, parts: dict[str, Any], state: State, keep: int) -> Path:
    """Writes checkpoint ``step_NNNNNNN`` of a world model run (the EMA weights as the model, and
    the training state of ``parts``) and prunes all but the newest ``keep``."""
    path = out / "checkpoints" / f"step_{state.step:07d}"
    path.parent.mkdir(parents=True, exist_ok=True)
    averaged = copy.deepcopy(model)
    for name, module in ema.module.items():
        getattr(averaged, name).load_state_dict(module.state_dict())
    averaged.save_pretrained(path)
    save_state(path, parts, state)
    prune(out, keep)
    return path


def save_state(path: Path, parts: dict[str, Any], state: State) -> None:
    """Writes ``path/training_state.pt``: the state dict of each part (modules, optimizer, LR
    schedule, EMA, ...) and ``state``; from then on the checkpoint ``path`` counts as complete."""
    training_state = {name: part.state_dict() for name, part in parts.items()} | {"state": asdict(state)}
    with atomic_write(path / STATE_FILE) as f:
        torch.save(training_state, f)


def load_state(out: Path, parts: dict[str, Any]) -> State:
    """Restores the newest complete checkpoint of ``out`` into ``parts`` and returns its State."""
    path = newest(out)
    if path is None:
        raise MissingFileError(f"resume=true but {out} has no complete checkpoint to resume from")
    try:
        saved = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        for name, part in parts.items():
            part.load_state_dict(saved[name])
        return State(**saved["state"])
    except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise UserError(
            f"checkpoint {path} is corrupt or from another model ({(str(error) or type(error).__name__).splitlines()[0]}); "
            "delete that folder to resume from the one before it"
        ) from error


def prune(out: Path, keep: int) -> None:
    """Deletes all complete checkpoints of ``out`` but the newest ``keep`` (none if keep <= 0)."""
    for old in checkpoints(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)


def start(out: Path, parts: dict[str, Any], resume: bool) -> State:
    """Where a run begins: the newest checkpoint restored into ``parts`` when ``resume``, else the
    start, refusing to mix a new run into a folder that already holds checkpoints."""
    if resume:
        return load_state(out, parts)
    if has_checkpoints(out):
        raise UserError(f"{out} already holds checkpoints; pass resume=true to continue it or choose another out=")
    return State()


def write_run_config(out: Path, **settings) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plain = {k: asdict(v) if is_dataclass(v) else v for k, v in settings.items()}
    with atomic_write(out / "config.json", "w") as f:
        json.dump(plain, f, indent=2, default=list)


class MetricsWriter:
    """Appends rows to a CSV; on resume it first drops rows past the resumed step (so a curve has
    no duplicates) and keeps the rest, rewriting the file atomically (a kill then keeps the old one)."""

    def __init__(self, path: Path, columns: tuple[str, ...], enabled: bool = True, keep_until: int = 0):
        self.enabled = enabled
        if not enabled:
            return
        kept = kept_rows(path, keep_until) if path.is_file() and keep_until > 0 else []
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as f:
            header = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            header.writeheader()
            header.writerows(kept)
        self.file = path.open("a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")

    def write(self, row: dict) -> None:
        if self.enabled:
            self.writer.writerow(row)
            self.file.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.close()


def kept_rows(path: Path, keep_until: int) -> list[dict[str, str]]:
    """The rows of a run's CSV log (``metrics.csv``, ``dyna.csv``) up to step ``keep_until``. Rows
    are appended as the run goes, so a kill can leave the last line unfinished (no newline): it is
    dropped. Any other damage is a UserError naming the file."""
    try:
        text = path.read_text()
        text = text[: text.rfind("\n") + 1]  # without an unfinished last line
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise ValueError(f"no header with a step column (found {reader.fieldnames})")
        for number, row in enumerate(rows, start=2):
            if None in row or None in row.values():
                raise ValueError(f"line {number} has {len(row) - (None in row)} columns, the header {len(reader.fieldnames)}")
            int(row["step"])
    except (UnicodeDecodeError, csv.Error, ValueError) as error:
        raise UserError(f"{path} is damaged ({error}); move it away to resume without the rows logged so far") from error
    return [row for row in rows if int(row["step"]) <= keep_until]
