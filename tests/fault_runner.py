"""``python tests/fault_runner.py ARGS``: the ``worldsim`` command with every atomic write held open
50 ms after its data is synced and before its rename (``os.fsync`` sleeps), so that a ``kill -9``
from tests/test_faults.py often lands inside a write."""

import os
import sys
import time

sync = os.fsync


def slow_fsync(fd: int) -> None:
    sync(fd)
    time.sleep(0.05)


os.fsync = slow_fsync

from worldsim.cli import main  # noqa: E402  (after the patch, which every later import sees)

sys.exit(main(sys.argv[1:]))
