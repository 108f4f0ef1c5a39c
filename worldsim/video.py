"""Writing frames to an mp4 file with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldsim.errors import UserError


def write_video(path: str | Path, frames: np.ndarray, fps: float, scale: int = 1) -> Path:
    """Writes RGB ``frames`` uint8 [T, H, W, 3] to an mp4 at ``path``, upscaled ``scale`` times
    (nearest neighbour, so pixels stay crisp). The file appears only once it is complete."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = frames.shape[1:3]
    # Most mp4 players want even sizes; pad by one pixel where needed.
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames.shape[2:0:-1])
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4 files here (tried {tmp})")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    tmp.replace(path)
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Reads an mp4 back as RGB uint8 [T, H, W, 3] (lossy: values differ slightly from what was written)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise UserError(f"{path} holds no readable video frames")
    return np.stack(frames)
