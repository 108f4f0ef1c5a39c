"""`worldsim demo` in its reduced mode (the same code path, fewer episodes and frames) on a tiny model."""

import cv2
import pytest
from tiny_world_model import save_tiny_world_model

from worldsim.cli import main
from worldsim.demo import run_demo
from worldsim.video import read_video


def test_demo_writes_its_report_plot_and_video(tmp_path, capsys):
    folder = save_tiny_world_model(tmp_path / "model")
    written = run_demo(model=str(folder), episodes=1, horizon=4, scale=2, out=tmp_path / "demo", progress=False)
    video = read_video(written["video"])
    # Five rows (four scenarios, then the prompt's dream) of real | dream, 16x16 frames upscaled 2x;
    # a row lasts its 3 context frames and 4 dreamed ones.
    assert video.shape == (7, 5 * 32, 2 * 32, 3) and video.std() > 5
    report = written["report"].read_text()
    for scenario in ("uniform", "collision", "parabola", "push"):
        assert f"| {scenario} |" in report
    assert "PSNR h=1 dream / copy-last" in report and written["plot"].stat().st_size > 0
    sheet = cv2.imread(str(written["sheet"]))
    assert sheet.shape == (8 * 32, 4 * 32, 3)  # real and dream rows per scenario; steps 0, 1, 2, 4
    out = capsys.readouterr().out
    assert "wrote video" in out and "next: worldsim play model=" in out and "velocity error" in out


def test_demo_cli_and_its_errors(tmp_path, capsys):
    folder = save_tiny_world_model(tmp_path / "model")
    assert main(["demo", f"model={folder}", "episodes=1", "horizon=3", "progress=false", f"out={tmp_path / 'd'}"]) == 0
    assert (tmp_path / "d" / "demo.md").is_file()
    cartpole = save_tiny_world_model(tmp_path / "cartpole", env_id="worldsim/CartPole-v0")
    assert main(["demo", f"model={cartpole}", f"out={tmp_path / 'c'}"]) == 1
    assert "shows a Balls world model" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no world model 'nothing'"):
        run_demo(model="nothing", out=tmp_path / "n")
