"""Pixel CartPole (worldsim.envs.cartpole): CartPole-v1 dynamics, observed through frames."""

import re

import gymnasium as gym
import numpy as np
import pytest

import worldsim  # noqa: F401  (registers the ids)
from worldsim.envs.cartpole import FALL_ANGLE, POLE, STATE_KEYS, draw, drawing_error, parse, shows_end


def make(**kwargs) -> gym.Env:
    return gym.make("worldsim/CartPole-v0", **kwargs)


def balance(state: dict) -> int:
    """A policy that keeps the pole up for the whole episode: push toward where the pole falls."""
    return int(state["pole_angle"] + 0.5 * state["pole_angular_velocity"] > 0)


@pytest.mark.parametrize("frame_size", [(64, 64), (32, 48), (40, 24)])
def test_observation_is_a_frame_of_the_asked_size(frame_size):
    env = make(frame_size=frame_size)
    assert env.observation_space.shape == (*frame_size, 3) and env.observation_space.dtype == np.uint8
    obs, _ = env.reset(seed=0)
    assert obs.shape == (*frame_size, 3) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(1)
    assert obs.shape == (*frame_size, 3) and obs.dtype == np.uint8
    assert obs.std() > 5  # a picture, not a blank


def test_info_carries_the_true_state_and_a_caption():
    env, reference = make(frame_size=(32, 32)), gym.make("CartPole-v1")
    _, info = env.reset(seed=3)
    expected, _ = reference.reset(seed=3)
    for action in [1, 0, 0, 1]:
        assert set(info["state"]) == set(STATE_KEYS)
        assert all(isinstance(v, float) for v in info["state"].values())
        np.testing.assert_allclose([info["state"][k] for k in STATE_KEYS], expected, rtol=1e-6)
        assert isinstance(info["caption"], str) and info["caption"]
        _, _, _, _, info = env.step(action)
        expected, *_ = reference.step(action)


def test_caption_says_which_way_the_pole_leans():
    env = make(frame_size=(16, 16))
    sides = set()
    for seed in range(10):
        _, info = env.reset(seed=seed)
        side = "right" if info["state"]["pole_angle"] > 0 else "left"
        other = {"right": "left", "left": "right"}[side]
        words = re.findall(r"\w+", info["caption"])  # "upright" is no side
        assert side in words and other not in words, info["caption"]
        sides.add(side)
    assert sides == {"left", "right"}


def test_episode_ends_like_cartpole_v1():
    env, reference = make(frame_size=(16, 16)), gym.make("CartPole-v1")
    env.reset(seed=1)
    reference.reset(seed=1)
    for step in range(1, 100):  # noqa: B007  (read after the loop)
        _, reward, terminated, truncated, _ = env.step(1)  # always right: the pole falls within ~10 steps
        _, ref_reward, ref_terminated, ref_truncated, _ = reference.step(1)
        assert (reward, terminated, truncated) == (ref_reward, ref_terminated, ref_truncated)
        if terminated:
            break
    assert terminated and 5 <= step < 30


def test_episode_truncates_after_500_steps():
    env = make(frame_size=(8, 8))
    _, info = env.reset(seed=0)
    for step in range(1, 501):
        _, reward, terminated, truncated, info = env.step(balance(info["state"]))
        assert reward == 1.0 and not terminated
        assert truncated == (step == 500)


def test_same_seed_same_frames_and_different_seeds_differ():
    def frames(seed):
        env = make(frame_size=(32, 32))
        obs, info = env.reset(seed=seed)
        out = [obs]
        for action in [0, 1, 1, 0, 1, 1, 1, 0]:
            obs, *_, info = env.step(action)
            out.append(obs)
        return np.stack(out), info["caption"]

    a, b, c = frames(4), frames(4), frames(5)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0][0], a[0][-1])  # the frames follow the motion


def test_cart_moves_on_screen_in_the_pushed_direction():
    env = make(frame_size=(40, 60))
    first, _ = env.reset(seed=0)
    for _ in range(8):
        last, *_ = env.step(1)

    # The cart is the dark block across the middle rows; its columns shift right.
    def cart_column(frame):
        dark = frame.astype(int).sum(axis=-1) < 300
        return np.nonzero(dark)[1].mean()

    assert cart_column(last) > cart_column(first) + 0.5


@pytest.mark.parametrize("action", [2, -1, 0.5, np.array([0, 1]), "1"])
def test_bad_action_names_the_accepted_ones(action):
    env = make(frame_size=(16, 16))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be one integer in \[0, 2\) \(0 left, 1 right\)"):
        env.step(action)


def test_bad_render_mode_names_the_accepted_ones():
    with pytest.raises(ValueError, match="render_mode None or 'rgb_array'"):
        make(render_mode="human")


@pytest.mark.parametrize("frame_size", [(0, 64), (64, 2.5), (64,), "64", (-8, 8)])
def test_bad_frame_size_names_what_is_accepted(frame_size):
    with pytest.raises(ValueError, match=r"frame_size must be two integers \(H, W\), each at least 4"):
        make(frame_size=frame_size)


@pytest.mark.parametrize("frame_size", [(32, 32), (32, 48), (48, 24)])
def test_the_pole_leans_the_way_its_angle_says_and_stays_legible(frame_size):
    def pole_columns(angle):
        frame = draw(frame_size, 0.0, angle).astype(int)
        brown = (frame[..., 0] - frame[..., 2]) * (frame[..., 0] < 250)  # the pole: red well above blue, not white
        rows, cols = np.nonzero(brown > 40)
        return cols.mean(), rows.min(), brown.max()

    upright, top, contrast = pole_columns(0.0)
    assert contrast > 80  # dark enough to read at small sizes
    left, right = pole_columns(-0.21), pole_columns(0.21)  # just past CartPole's 12-degree limit
    assert left[0] < upright - 0.3 < upright + 0.3 < right[0]
    assert top > 0  # the whole pole is in the frame
    tilted = draw(frame_size, 0.0, 0.19).astype(int) - draw(frame_size, 0.0, 0.21).astype(int)
    assert np.abs(tilted).max() > 10  # one degree of tilt changes some pixels by more than 10 levels


@pytest.mark.parametrize("state", [(0.0, 0.0), (0.31, 0.047), (-1.2, -0.16), (1.9, 0.2)])
def test_parse_reads_back_the_drawn_cart_and_pole(state):
    # Over 60 random states the errors were at most 0.0010 m and 0.0021 rad: twice that as the margin.
    x, angle = parse(draw((32, 32), *state))
    assert x == pytest.approx(state[0], abs=0.002) and angle == pytest.approx(state[1], abs=0.0042)


def test_drawing_error_is_near_zero_on_drawn_frames_and_large_on_a_broken_pole():
    # Over 150 random states (x within 2.3 m, angle within 0.22 rad) the error was at most 0.122 (80
    # more within 0.25 rad: 0.114); a pole at half brightness scored 4.2 and one missing its top
    # half 8.3: margins of 2x.
    for state in [(0.0, 0.0), (0.31, 0.047), (-1.2, -0.16), (1.9, 0.2)]:
        assert drawing_error(draw((32, 32), *state)) < 0.3
    frame = draw((32, 32), 0.3, 0.05)
    pole = np.abs(frame.astype(int) - np.array(POLE)).sum(-1) < 60
    darker = frame.copy()
    darker[pole] = darker[pole] // 2
    assert drawing_error(darker) > 2.0
    rows, cols = np.nonzero(pole)
    top = rows < np.median(rows)
    broken = frame.copy()
    broken[rows[top], cols[top]] = frame[0, 0]
    assert drawing_error(broken) > 4.0


def test_shows_end_reads_the_episode_end_off_the_frame():
    # parse reads the angle to 0.0021 rad (test above): 30 random episodes at 32x32 disagreed on one
    # frame of 735, a pole 0.00035 rad short of 12 degrees. Frames within 0.005 rad (or 0.01 m of
    # the track's end) of an end are not judged; the last three frames of each episode are (parse
    # takes ~0.2 s a frame).
    env, rng, judged_ends = make(frame_size=(32, 32)), np.random.default_rng(0), 0
    assert FALL_ANGLE == pytest.approx(gym.make("CartPole-v1").unwrapped.theta_threshold_radians)
    for seed in range(12):
        env.reset(seed=seed)
        steps, terminated, truncated = [], False, False
        while not (terminated or truncated):
            frame, _, terminated, truncated, info = env.step(int(rng.integers(2)))
            steps = [*steps[-2:], (frame, terminated, info["state"])]
        for frame, ended, state in steps:
            if abs(abs(state["pole_angle"]) - FALL_ANGLE) > 0.005 and abs(abs(state["cart_position"]) - 2.4) > 0.01:
                assert shows_end(frame) == ended, state
                judged_ends += ended
    assert judged_ends >= 8
