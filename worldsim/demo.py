"""The demo a newcomer runs first.

No trained world model ships yet (that arrives with the "Shipped models and the out-of-the-box
demo" issue), so for now the demo shows the ground truth a model learns: the four Balls scenarios
side by side, as an mp4 video and a PNG contact sheet, with each episode's caption.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from worldsim.data.collect import record_episode
from worldsim.data.policies import make_policy
from worldsim.envs.balls import FPS, SCENARIOS
from worldsim.video import write_video


def run_demo(frame_size: tuple[int, int], steps: int, seed: int, scale: int, out: str | Path) -> dict[str, Path]:
    """Rolls every Balls scenario for ``steps`` frames and writes ``real_worlds.mp4`` and
    ``real_worlds.png`` into ``out``; prints and returns what it wrote."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tiles, captions = [], []
    for scenario in SCENARIOS:
        env = gym.make("worldsim/Balls-v0", scenario=scenario, frame_size=frame_size, max_steps=steps - 1)
        episode = record_episode(env, make_policy("auto", env), seed)
        env.close()
        frames = episode.frames.repeat(scale, axis=1).repeat(scale, axis=2)
        tiles.append(np.stack([label(f, scenario) for f in frames]))
        captions.append(f"{scenario}: {episode.caption}")
    length = max(len(t) for t in tiles)
    tiles = [np.concatenate([t, t[-1:].repeat(length - len(t), 0)]) for t in tiles]  # push may end early
    video = np.concatenate(tiles, axis=2)  # [T, H, 4 W, 3]: scenarios side by side
    written = {"video": write_video(out / "real_worlds.mp4", video, FPS)}
    sheet = np.concatenate([np.concatenate(list(t[:: max(1, length // 6)][:6]), axis=1) for t in tiles], axis=0)
    written["sheet"] = out / "real_worlds.png"
    cv2.imwrite(str(written["sheet"]), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print("No trained world model ships yet; this demo shows the real physics worlds a model learns.")
    for caption in captions:
        print(f"  {caption}")
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    print("next: worldsim collect world=balls scenario=all episodes=2000 frame_size=[32,32] out=data/balls32")
    print("      worldsim train data=data/balls32 model=small out=runs/balls   (a GPU helps)")
    return written


def label(frame: np.ndarray, text: str) -> np.ndarray:
    frame = frame.copy()
    cv2.putText(frame, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return frame
