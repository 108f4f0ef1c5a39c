import numpy as np
import pytest

from worldsim.video import read_video, write_video


def test_write_then_read_an_mp4(tmp_path):
    frames = np.zeros((6, 9, 11, 3), np.uint8)
    for t in range(6):
        frames[t, :, : t + 2] = (200, 40, 40)  # a red bar that grows
    path = write_video(tmp_path / "v.mp4", frames, fps=10, scale=4)
    back = read_video(path)
    assert back.shape == (6, 36, 44, 3)
    assert back[-1, 18, 25, 0] > 150 and back[0, 18, 25, 0] < 60  # grown in the last frame only
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T, H, W, 3\]"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 8, 8), np.uint8), fps=10)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="no readable video frames"):
        read_video(tmp_path / "empty.mp4")
