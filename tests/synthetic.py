"""A synthetic world for model tests: an 8x8 frame with a 2x2 block, red or blue as the caption
says, that action k puts at place ``PLACES[k]``. The next frame is a function of the action and the
caption alone, so a tiny model that uses its conditioning learns it in a few hundred steps (moving
the block relative to where it was, which needs attention to the last frame, takes a tiny model
thousands)."""

from pathlib import Path

import numpy as np

from worldsim.data.collection import create_collection, episode_path
from worldsim.data.episode import Episode

PLACES = np.array([(4, 2), (0, 0), (0, 6), (6, 0), (6, 6)])  # (row, column) of the block's corner (patch-aligned)
COLORS = {"red": (230, 40, 40), "blue": (40, 80, 230)}


def draw(position, color, size=8) -> np.ndarray:
    frame = np.zeros((size, size, 3), np.uint8)
    rows = (np.arange(2) + position[0]) % size
    cols = (np.arange(2) + position[1]) % size
    frame[np.ix_(rows, cols)] = COLORS[color]
    return frame


def make_collection(root: Path, episodes: int = 16, steps: int = 6, size: int = 8, seed: int = 0) -> Path:
    settings = {"env_id": "worldsim/Balls-v0", "env_kwargs": {"frame_size": [size, size]}, "seed": seed}
    create_collection(root, settings)
    rng = np.random.default_rng(seed)
    for i in range(episodes):
        color = ("red", "blue")[i % 2]
        actions = rng.integers(0, 5, steps)
        frames = [draw(rng.integers(0, size, 2), color, size)]
        frames += [draw(PLACES[action], color, size) for action in actions]
        Episode(
            frames=np.stack(frames),
            actions=actions.astype(np.int64),
            rewards=(actions == 4).astype(np.float32),
            terminated=np.zeros(steps, bool),
            truncated=np.arange(steps) == steps - 1,
            caption=f"a {color} block",
        ).save(episode_path(root, "episodes", i))
    return root
