import cv2

from worldsim.demo import run_demo
from worldsim.video import read_video


def test_demo_writes_a_video_and_a_contact_sheet(tmp_path, capsys):
    written = run_demo(frame_size=(16, 16), steps=6, seed=0, scale=2, out=tmp_path)
    video = read_video(written["video"])
    assert video.shape == (6, 32, 4 * 32, 3)  # four scenarios side by side, upscaled 2x
    assert video.std() > 5  # not blank
    sheet = cv2.imread(str(written["sheet"]))
    assert sheet is not None and sheet.shape[0] == 4 * 32
    out = capsys.readouterr().out
    assert "wrote video" in out and "push:" in out
