"""The pygame viewer, driven by replay files under SDL's dummy video driver."""

import cv2
import numpy as np
import pytest
from tiny_world_model import save_tiny_world_model

from worldsim.cli import main
from worldsim.envs.worlds import WORLDS, world
from worldsim.viewer import Input, Viewer, read_replay


@pytest.fixture(scope="module")
def balls_model(tmp_path_factory):
    return save_tiny_world_model(tmp_path_factory.mktemp("models") / "balls", frame_size=(16, 16))


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def viewer(model, tmp_path, **kwargs):
    return Viewer(str(model), fps=0, record_dir=tmp_path / "play", scenario="push", **kwargs)


def test_scripted_play_moves_with_actions_and_saves_a_screenshot(balls_model, tmp_path):
    shot = tmp_path / "shot.png"
    replay = write_lines(tmp_path / "keys.txt", ["right"] * 4 + ["up left", "", "# a comment", "2"])
    play = viewer(balls_model, tmp_path)
    summary = play.run(replay, max_steps=6, screenshot=shot)
    assert summary.steps == 6 and play.actions == [4, 4, 4, 4, 1, 0]  # held keys: the first mapped one acts
    # The counter leaves out the first step and the drawing: at least the whole run's rate.
    assert summary.step_frames_per_second >= summary.frames_per_second > 0
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 100 and image.std() > 5  # a window, not a blank one

    def frames_after(keys):
        v = viewer(balls_model, tmp_path)
        v.run(write_lines(tmp_path / "k.txt", keys), max_steps=3)
        return v.frame

    assert np.array_equal(frames_after(["right"] * 3), frames_after(["right"] * 3))  # seeded: repeatable
    assert not np.array_equal(frames_after(["right"] * 3), frames_after(["left"] * 3))


def test_commands_rewind_reset_prompt_and_record(balls_model, tmp_path):
    lines = ["right", "right", "right", "backspace", "tab", "h", "p", "p", "v", "down", "down", "v",
             "prompt: a red ball", "up", "r", "down"]  # fmt: skip
    play = viewer(balls_model, tmp_path, rewind_steps=2)
    # Every frame steps the world unless paused or typing; a prompt line starts a dream instead.
    summary = play.run(write_lines(tmp_path / "keys.txt", lines), max_steps=14)
    assert summary.steps == 14 and play.step_count == 2 and play.seed == 3  # three starts: first, prompt, R
    assert play.side_by_side is False and play.show_help and not play.paused
    (video,) = summary.recordings
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    assert ok and frame.std() > 5
    # The frames recorded, as a replay: V's own frame stepped with no key held.
    assert video.with_suffix(".keys").read_text().split("\n") == ["", "down", "down", ""]


def test_rewind_restores_the_dream_and_its_twin(balls_model, tmp_path):
    play = viewer(balls_model, tmp_path, rewind_steps=2)
    play.run(write_lines(tmp_path / "a.txt", ["right", "up", "", "left"]), max_steps=4)
    twice = viewer(balls_model, tmp_path, rewind_steps=2)
    # Back to step 2, then the backspace frame itself steps with no key held, then left.
    twice.run(write_lines(tmp_path / "b.txt", ["right", "up", "left", "down", "backspace", "left"]), max_steps=6)
    assert twice.actions == play.actions == [4, 1, 0, 3] and twice.step_count == 4
    assert np.array_equal(twice.real_frame, play.real_frame)  # the twin re-ran to the same state
    assert np.array_equal(twice.frame, play.frame)  # the fork continued the same noise


def test_replay_files_are_checked(tmp_path):
    keymap = world("worldsim/Balls-v0").keys
    good = read_replay(write_lines(tmp_path / "ok.txt", ["w d", "3", "prompt: two balls # collide", "tab"]), keymap)
    assert good == [Input(("w", "d")), Input(action=3), Input(prompt="two balls # collide"), Input(pressed=("tab",))]
    with pytest.raises(ValueError, match=r"bad.txt:2: unknown key 'jump'; accepted: up, w, down"):
        read_replay(write_lines(tmp_path / "bad.txt", ["up", "jump"]), keymap)
    with pytest.raises(FileNotFoundError, match="replay file"):
        read_replay(tmp_path / "missing.txt", keymap)


def test_cli_play(balls_model, tmp_path, capsys):
    shot = tmp_path / "cli.png"
    replay = write_lines(tmp_path / "keys.txt", ["right", "9"])
    code = main(["play", f"model={balls_model}", "fps=0", f"replay={replay}", "max_steps=1", f"screenshot={shot}"])
    assert code == 0 and shot.is_file() and "played 1 steps" in capsys.readouterr().out
    code = main(["play", f"model={balls_model}", "fps=0", f"replay={replay}", "max_steps=2"])
    assert code == 1 and "action 9 is outside this world's actions 0..4" in capsys.readouterr().err
    assert main(["play", "max_steps=1"]) == 2 and "needs model=" in capsys.readouterr().err


def test_the_viewer_plays_each_world_with_its_registered_keys(balls_model, tmp_path):
    play = viewer(balls_model, tmp_path)
    assert play.keymap is world("worldsim/Balls-v0").keys and play.keymap.action(["d"], 0) == 4
    for record in WORLDS:  # every key acts within the world's actions; an idle frame too
        keys = record.keys
        assert keys.keys and keys.help and keys.idle in ("none", "alternate")
        assert {keys.action([name], 0) for name in keys.keys} <= set(range(len(record.actions)))
        assert {keys.action([], step) for step in range(4)} <= set(range(len(record.actions)))
