"""Shared test set-up: headless pygame, no audio device, and one torch thread.

The tests run tiny models, for which a second thread costs more in synchronisation than it gains,
and which slow down many times over when another process holds the other core.
"""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after OMP_NUM_THREADS)

torch.set_num_threads(1)
