"""Atomic file writes: a file that exists under its final name is always complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary file beside ``path``; on a clean exit it is synced and renamed to ``path``.

    If the block raises (or the process dies), ``path`` keeps its old content and the temporary
    file is removed (or, after a kill, left as a hidden ``.NAME.*.tmp`` that readers ignore).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(out: str | Path, stem: str, markdown: str, data: dict) -> None:
    """Writes a benchmark's table ``out/stem.md`` and its figures ``out/stem.json``, atomically."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / f"{stem}.md", "w") as f:
        f.write(markdown)
    with atomic_write(out / f"{stem}.json", "w") as f:
        json.dump(data, f, indent=2)
