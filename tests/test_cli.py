import subprocess
import sys

import pytest

from worldsim.cli import COMMANDS, Command, main
from worldsim.data.collection import Collection


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_sub_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("collect", "train", "play", "bench", "agent", "demo"):
        assert f"\n  {name} " in out
    assert set(COMMANDS) == {"collect", "train", "play", "bench", "agent", "demo"}


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "worldsim.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: worldsim" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fly"], "unknown sub-command 'fly'; choose one of collect, train, play, bench, agent, demo"),
        (["collect", "colour=red"], "unknown config key 'colour' for `collect`; valid keys: world=, scenario, frame_size"),
        (["collect", "world=mars"], "unknown world 'mars'; choose one of balls, cartpole"),
        (["collect", "world=cartpole", "scenario=push"], "unknown config key 'scenario'"),
        (["collect", "--episodes", "3"], "expected key=value overrides, got '--episodes'"),
        (["bench", "accuracy"], "`worldsim bench` needs one of fidelity, physics, speed, rl first; got 'accuracy'"),
        (["collect", "frame_size=[64,"], "worldsim: error:"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_values_are_one_line_errors(capsys, tmp_path):
    code, _, err = run(capsys, "collect", "scenario=bounce", f"out={tmp_path / 'd'}")
    assert code == 1 and "unknown Balls scenario 'bounce'; choose one of uniform, collision, parabola, push" in err
    code, _, err = run(capsys, "collect", "frame_size=[0,64]", f"out={tmp_path / 'd'}")
    assert code == 1 and "frame_size must be two integers" in err
    assert len(err.strip().splitlines()) == 1


def test_an_internal_error_keeps_its_traceback(capsys, monkeypatch):
    # main() once turned every ValueError into a one-line "worldsim: error:", so bugs read as usage errors.
    def broken(cfg, mode):
        raise ValueError("an internal bug")

    monkeypatch.setitem(COMMANDS, "demo", Command("broken", broken, config="demo"))
    with pytest.raises(ValueError, match="an internal bug"):
        main(["demo"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["collect", "episodes=abc"], "episodes must be an integer >= 0, got 'abc'"),
        (["train", "data=d", "train.grad_accum=0"], "train.grad_accum must be an integer >= 1, got 0"),
        (["collect", "out=/etc/passwd"], "out must be a folder path (/etc/passwd is a file)"),
    ],
)
def test_bad_settings_fail_before_any_work(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_command_help_shows_its_config(capsys):
    code, out, _ = run(capsys, "collect", "--help")
    assert code == 0 and "episodes:" in out and "world= choices: balls, cartpole" in out


def test_collect_writes_a_collection(capsys, tmp_path):
    out_dir = tmp_path / "balls"
    argv = ["collect", "world=balls", "scenario=[collision,push]", "episodes=2", "frame_size=[16,24]",
            "stills=1", "progress=false", f"out={out_dir}"]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "wrote 2 episodes and 1 stills" in out
    collection = Collection(out_dir)
    assert len(collection) == 2 and collection.settings["scenarios"] == ["collision", "push"]
    assert collection.load()[0].frames.shape[1:] == (16, 24, 3)
    code, out, _ = run(capsys, "collect", "world=cartpole", "episodes=1", "frame_size=[16,16]",
                       "progress=false", f"out={tmp_path / 'cp'}")  # fmt: skip
    assert code == 0 and Collection(tmp_path / "cp").settings["env_id"] == "worldsim/CartPole-v0"


def test_scenario_all_cycles_through_every_scenario(capsys, tmp_path):
    code, _, _ = run(capsys, "collect", "scenario=all", "episodes=4", "frame_size=[16,16]", "progress=false",
                     f"out={tmp_path / 'd'}")  # fmt: skip
    assert code == 0
    assert Collection(tmp_path / "d").settings["scenarios"] == ["uniform", "collision", "parabola", "push"]


def test_train_runs_from_the_command_line(capsys, tmp_path):
    from synthetic import make_collection

    data = make_collection(tmp_path / "data", episodes=4)
    argv = ["train", f"data={data}", "model=tiny", "train=smoke", "steps=3", "progress=false", f"out={tmp_path / 'run'}"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "trained 3 steps; latest checkpoint:" in out
    assert (tmp_path / "run" / "checkpoints" / "step_0000003" / "worldsim.json").is_file()
    code, _, err = run(capsys, "train", "model=tiny")
    assert code == 2 and "`worldsim train` needs data=..." in err
    code, _, err = run(capsys, "train", f"data={data}", "model=huge")
    assert code == 2 and "unknown model 'huge'; choose one of base, cpu, small, tiny" in err
    code, _, err = run(capsys, "train", f"data={data}", "train.colour=red")
    assert code == 2 and "unknown config key" in err


def test_model_names_a_world_model_outside_train(capsys, tmp_path):
    # In train, model= chooses sizes (a config group); in bench and play it names a world model.
    code, _, err = run(capsys, "bench", "speed", f"model={tmp_path / 'none'}", "quick=true")
    assert code == 1 and f"no world model '{tmp_path / 'none'}'" in err
    code, _, err = run(capsys, "train", "data=x", "model=huge")
    assert code == 2 and "unknown model 'huge'; choose one of base, cpu, small, tiny" in err
