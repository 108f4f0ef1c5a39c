"""Atomic file writes: a file that exists under its final name is always complete."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temp_glob(name: str) -> str:
    """The glob of the temporary files that a killed ``atomic_write`` leaves beside a file called ``name``."""
    return f".{name}.*.tmp"


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Opens a temporary file beside ``path``; on a clean exit it is synced and renamed to ``path``.

    If the block raises (or the process dies), ``path`` keeps its old content and the temporary
    file is removed (or, after a kill, left as a hidden ``.NAME.*.tmp`` that readers ignore).
    The file gets the permissions a plain ``open(path, "w")`` gives a new file (0666 less the umask).
    """
    path = Path(path)
    tmp = path.parent / temp_glob(path.name).replace("*", secrets.token_hex(8))
    # Not tempfile.mkstemp: it creates files 0600, so a shared dataset or model would be unreadable by
    # others. Mode 0666 lets the kernel apply the umask (and any default ACL) as it does for open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (read from /proc where it can be, since setting it to read it back is not
    atomic for other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_permissions(folder: str | Path) -> None:
    """Gives every file below ``folder`` the permissions a plain ``open(path, "w")`` gives a new
    file (0666 less the umask). Writers that create their files 0600 (safetensors does) would
    otherwise leave a shared model folder unreadable by the others it is shared with."""
    mode = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yields a hidden temporary folder beside ``path`` to fill; on a clean exit it replaces
    ``path``, which is whole at every moment it exists (the old one is moved aside, then removed).
    If the block raises, ``path`` is left as it was; after a kill, the hidden ``.NAME.tmp`` (or
    ``.NAME.old``) is left, and the next call for ``path`` removes it."""
    path = Path(path)
    fresh, stale = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    for leftover in (fresh, stale):
        shutil.rmtree(leftover, ignore_errors=True)
    fresh.mkdir(parents=True)
    try:
        yield fresh
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if path.exists():
        path.rename(stale)
    fresh.rename(path)
    shutil.rmtree(stale, ignore_errors=True)


def write_table(out: str | Path, stem: str, markdown: str, data: dict[str, Any]) -> None:
    """Writes a benchmark's table ``out/stem.md`` and its figures ``out/stem.json``, atomically."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / f"{stem}.md", "w") as f:
        f.write(markdown)
    with atomic_write(out / f"{stem}.json", "w") as f:
        json.dump(data, f, indent=2)
