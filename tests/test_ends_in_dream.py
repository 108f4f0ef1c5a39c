"""benchmarks/ends_in_dream.py: dream branches from real frames before each episode's end."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_collection
from tiny_world_model import save_tiny_world_model

from worldsim.data.collection import Collection, episode_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ends_in_dream  # noqa: E402


def ending_collection(root: Path) -> Path:
    """Six synthetic episodes of 8 steps; the first four end by termination, the others are truncated."""
    make_collection(root, episodes=6, steps=8, size=16)
    for i, episode in enumerate(Collection(root).load()):
        if i < 4:
            episode.terminated[-1], episode.truncated[-1] = True, False
        episode.save(episode_path(root, "episodes", i))
    return root


def test_a_dream_that_always_ends_ends_early_and_one_that_never_does_never(tmp_path, capsys):
    data = ending_collection(tmp_path / "data")
    always = save_tiny_world_model(tmp_path / "always", terminates=True)
    never = save_tiny_world_model(tmp_path / "never")
    out = tmp_path / "out"
    argv = ["--model", f"always={always}", "--model", f"never={never}", "--data", str(data), "--before", "1", "4", "--late", "2"]
    report = ends_in_dream.main([*argv, "--out", str(out)])
    rows = {label: {r["row"]: r for r in table} for label, table in report["models"].items()}
    # Every dream step of `always` terminates: on time one step before an end, early four before.
    assert rows["always"]["1 before"]["on_time"] == 1.0 and rows["always"]["4 before"]["early"] == 1.0
    assert rows["never"]["1 before"]["never"] == rows["never"]["4 before"]["never"] == 1.0
    # Control branches start >= 4 + 2 steps before an end (or in the two episodes that do not end).
    assert rows["always"]["control"]["false_ends"] == 1.0 and rows["never"]["control"]["false_ends"] == 0.0
    assert rows["never"]["4 before"]["branches"] == 4 and rows["never"]["control"]["branches"] == 6
    # The real return is what the data paid over the replayed steps.
    episodes = Collection(data).load()
    assert rows["never"]["4 before"]["real_return"] == pytest.approx(np.mean([e.rewards[-4:].sum() for e in episodes[:4]]))
    assert json.loads((out / "ends_in_dream.json").read_text())["models"] == report["models"]
    assert "| always | 1 before | 4 | 1.00 |" in (out / "ends_in_dream.md").read_text()
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", str(never), "--data", str(data)])
    assert "--model takes LABEL=PATH" in capsys.readouterr().err
    truncated = make_collection(tmp_path / "truncated", episodes=2, steps=4, size=16)
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", f"never={never}", "--data", str(truncated)])
    assert "ends by termination" in capsys.readouterr().err


def test_the_physics_floor_replays_cartpole_from_its_recorded_state(tmp_path, capsys):
    from worldsim.data.collect import collect

    data = tmp_path / "cartpole"
    collect("worldsim/CartPole-v0", data, episodes=12, env_kwargs={"frame_size": (16, 16)}, policy="random", seed=3, progress=False)
    found = ends_in_dream.branches(Collection(data).load(), [1, 4], late=2)
    assert found and all(b.state is not None for b in found)
    # Without noise the replay is the recorded episode: every end on time, no false end, the same return.
    repeated, ends, angles = ends_in_dream.physics_ends(found, 2, (0.0, 0.0), 2, seed=0)
    for row in ends_in_dream.summarise(repeated, ends):
        assert row.get("on_time", 1.0) == 1.0 and row.get("false_ends", 0.0) == 0.0
        assert row["dream_return"] == pytest.approx(row["real_return"])
    # ... and its pole is the recorded one at every step compared.
    assert all(r["abs_error"] < 1e-9 for r in ends_in_dream.physics_angles(repeated, angles))
    # A state known only to 0.05 rad / 0.5 rad/s misses some of the ends four steps ahead.
    noisy = {r["row"]: r for r in ends_in_dream.summarise(*ends_in_dream.physics_ends(found, 2, (0.05, 0.5), 8, seed=0)[:2])}
    assert noisy["4 before"]["on_time"] < 1.0
    # Noise added after every step (a model's error on each frame it makes) moves the pole further
    # from the recorded one the longer the replay runs.
    repeated, ends, angles = ends_in_dream.physics_ends(found, 2, (0.0, 0.0), 8, seed=0, drift=(0.002, 0.1))
    drifting = {(r["row"], r["t"]): r["abs_error"] for r in ends_in_dream.physics_angles(repeated, angles)}
    assert 0.0 < drifting[("4 before", 1)] < drifting[("4 before", 4)]
    # The whole report: a dream that ends every step, read where it ended, beside a drifting replay.
    always = save_tiny_world_model(tmp_path / "always", env_id="worldsim/CartPole-v0", num_actions=2, terminates=True)
    argv = ["--model", f"always={always}", "--data", str(data), "--before", "1", "4", "--late", "2", "--floor-samples", "2"]
    report = ends_in_dream.main([*argv, "--physics-drift", "0.002,0.2", "--pole-angles", "--out", str(tmp_path / "out")])
    assert report["end_angles_real"][0]["upright"] == 0.0  # the world ends past 0.2094 rad; its last frames say so
    assert {r["row"] for r in report["end_angles"]["always"]} == {"1 before", "4 before", "control"}
    assert "physics, noise 0.002 / 0.2 every step" in report["models"] and "physics, noise 0.002 / 0.2 every step" in report["pole_angles"]
    text = (tmp_path / "out" / "ends_in_dream.md").read_text()
    assert "The pole on the dream's frame where it ended the episode" in text and "| always | control |" in text
    never = save_tiny_world_model(tmp_path / "never")
    synthetic = ending_collection(tmp_path / "synthetic")
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", f"never={never}", "--data", str(synthetic), "--physics-floor", "0.01,0.1"])
    assert "need CartPole episodes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", f"never={never}", "--data", str(synthetic), "--physics-floor", "0.01"])
    assert "takes POS,VEL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ends_in_dream.main(["--model", f"never={never}", "--data", str(data), "--physics-drift", "0.01,-1"])
    assert "--physics-drift's stds must be finite and >= 0" in capsys.readouterr().err


def test_pole_angles_read_how_far_the_dreams_pole_leans_beyond_the_real_one():
    from worldsim.envs.cartpole import draw

    def frames(start: float, offset: float) -> np.ndarray:
        return np.stack([draw((32, 32), 0.0, start + np.sign(start) * (0.01 * t + offset)) for t in range(1, 9)])

    found = [
        ends_in_dream.Branch("control", None, np.zeros(8, int), None, 8.0, {"pole_angle": lean}, frames(lean, 0.0))
        for lean in (0.03, -0.03)
    ]
    same = ends_in_dream.pole_angles(found, np.stack([b.future for b in found]))
    assert [r["t"] for r in same] == list(ends_in_dream.ANGLE_STEPS) and all(r["abs_error"] == 0.0 for r in same)
    # The dream's pole 0.05 rad further over, each on its own side: +0.05 toward the lean (parse: within 0.002 each).
    further = ends_in_dream.pole_angles(found, np.stack([frames(lean, 0.05) for lean in (0.03, -0.03)]))
    for r in further:
        assert r["branches"] == 2
        assert r["abs_error"] == pytest.approx(0.05, abs=0.005) and r["toward_lean"] == pytest.approx(0.05, abs=0.005)


def test_end_angles_tell_an_end_on_an_upright_pole_from_a_fallen_one():
    from worldsim.envs.cartpole import draw

    # Three replays of one row: two end (on a pole at 0.05 rad and on one fallen past 0.2094), one does not.
    frames = [np.stack([draw((32, 32), 0.0, a) for a in angles]) for angles in ([0.01, 0.05], [0.15, -0.22], [0.0, 0.0])]
    (row,) = ends_in_dream.end_angles(["8 before"] * 3, [2, 2, None], frames)
    assert row["row"] == "8 before" and row["ends"] == 2 and row["upright"] == 0.5
    assert row["median"] == pytest.approx((0.05 + 0.22) / 2, abs=0.004)  # parse: within 0.002 each
    assert ends_in_dream.end_angles(["control"], [None], frames[:1]) == []


def test_branches_keep_a_world_state_that_is_not_scalars(tmp_path):
    from worldsim.data.collect import collect

    # Balls records each ball's position and velocity as arrays (CartPole: four floats).
    data = tmp_path / "push"
    collect(
        "worldsim/Balls-v0",
        data,
        episodes=4,
        env_kwargs={"frame_size": (16, 16), "scenario": "push"},
        policy="auto",
        seed=3,
        progress=False,
    )
    found = ends_in_dream.branches(Collection(data).load(), [1, 4], late=2)
    assert found and all(b.state is not None for b in found)
    assert any(np.ndim(value) > 0 for b in found for value in b.state.values())
