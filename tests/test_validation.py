"""What users hand to the real worlds (worldsim.envs.validation, registration): clear errors, and
every registered id passing Gymnasium's own checker."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim  # noqa: F401  (registers the ids)
from worldsim.envs import REAL_WORLDS, register_envs
from worldsim.envs.balls import ACTIONS, BallsEnv
from worldsim.envs.validation import check_action, check_frame_size

FRAME_SIZE_ERROR = r"frame_size must be two integers \(H, W\), each at least 4, e.g. \(64, 64\)"
BALLS_ACTION_ERROR = r"action must be one integer in \[0, 5\) \(0 none, 1 up, 2 down, 3 left, 4 right\)"


# ----------------------------------------------------------------------------------- registration


def test_import_worldsim_registers_every_real_world_once():
    assert set(REAL_WORLDS) <= set(gym.registry)
    register_envs()  # again: nothing changes, nothing is re-registered
    assert all(gym.registry[env_id].entry_point == entry for env_id, entry in REAL_WORLDS.items())


@pytest.mark.parametrize("env_id", sorted(REAL_WORLDS))
@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_every_registered_id_passes_check_env(env_id, render_mode):
    env = gym.make(env_id, render_mode=render_mode, frame_size=(48, 80))
    check_env(env.unwrapped)
    check_env(env)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (48, 80, 3) and obs.dtype == np.uint8
    env.close()


# ------------------------------------------------------------------------------------- frame size


@pytest.mark.parametrize("frame_size", [(64, 64), (8, 8), (4, 4), (48, 96), [96, 64], (np.int64(32), 32.0)])
def test_frame_size_accepts_two_integers_of_at_least_4(frame_size):
    size = check_frame_size(frame_size)
    assert size == tuple(int(v) for v in frame_size) and all(type(v) is int for v in size)


@pytest.mark.parametrize(
    "frame_size",
    [(0, 64), (-8, 8), (3, 64), (64, 1.5), (64.5, 64), (64,), (64, 64, 3), 64, "64", ("64", "64"), None,
     (float("inf"), 64), (float("nan"), 64)],
)  # fmt: skip
def test_frame_size_rejects_anything_else_and_says_what_is_accepted(frame_size):
    with pytest.raises(ValueError, match=FRAME_SIZE_ERROR):
        check_frame_size(frame_size)
    with pytest.raises(ValueError, match=FRAME_SIZE_ERROR):
        BallsEnv("uniform", frame_size=frame_size)


# ----------------------------------------------------------------------------------------- action


@pytest.mark.parametrize("action", [0, 4, np.int64(2), np.array(3), np.uint8(1)])
def test_action_accepts_integers_in_range(action):
    assert check_action(action, ACTIONS) == int(action)


@pytest.mark.parametrize("action", [7, 5, -1, 1.5, 1.0, np.array([1, 2]), np.array([1]), "1", None, True])
def test_balls_rejects_actions_outside_the_space_and_names_the_accepted_ones(action):
    env = BallsEnv("push", frame_size=(16, 16))
    _, info = env.reset(seed=0)
    with pytest.raises(ValueError, match=BALLS_ACTION_ERROR):
        env.step(action)
    _, _, _, _, after = env.step(0)  # the rejected action did not advance the episode
    reference = BallsEnv("push", frame_size=(16, 16))
    reference.reset(seed=0)
    np.testing.assert_array_equal(after["state"]["positions"], reference.step(0)[4]["state"]["positions"])


# ------------------------------------------------------------------------------ Balls construction


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scenario": "bounce"}, "unknown Balls scenario 'bounce'; choose one of uniform, collision, parabola, push"),
        ({"split": "test"}, r"unknown split 'test'; choose 'id' \(in-distribution\) or 'ood'"),
        ({"render_mode": "ansi"}, r"render_mode must be None, 'rgb_array' or 'human', got 'ansi'"),
        ({"max_steps": 0}, "max_steps must be a positive integer or None, got 0"),
        ({"max_steps": 2.5}, "max_steps must be a positive integer or None"),
        ({"radius_range": (1.0, 0.5)}, r"radius_range must be \(low, high\) with"),
        ({"radius_range": (0.1, 1.0)}, r"radius_range must be \(low, high\) with .* within bounds \(0.3, 2.0\)"),
        ({"speed_range": (1.0, 9.0)}, r"speed_range must be \(low, high\)"),
        ({"speed_range": 3.0}, r"speed_range must be \(low, high\)"),
    ],
)
def test_balls_rejects_bad_arguments_and_says_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BallsEnv(**kwargs)


@pytest.mark.parametrize(
    "scenario, frame_size, split",
    [
        ("collision", (96, 64), "id"), ("push", (96, 64), "id"), ("uniform", (64, 20), "id"),
        ("collision", (64, 56), "ood"),
    ],
)  # fmt: skip
def test_balls_rejects_a_frame_too_narrow_for_the_scenario(scenario, frame_size, split):
    message = rf"scenario '{scenario}' with radii up to .* needs a box at least .* use a wider frame"
    with pytest.raises(ValueError, match=message):
        BallsEnv(scenario, frame_size=frame_size, split=split)


def test_bad_arguments_through_gym_make_raise_the_same_errors():
    with pytest.raises(ValueError, match="choose one of uniform"):
        gym.make("worldsim/Balls-v0", scenario="bounce")
    with pytest.raises(ValueError, match=FRAME_SIZE_ERROR):
        gym.make("worldsim/Balls-v0", frame_size=(0, 0))
    env = gym.make("worldsim/Balls-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=BALLS_ACTION_ERROR):
        env.step(7)
