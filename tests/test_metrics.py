"""Fidelity and physics metrics on synthetic cases with known answers."""

import math

import numpy as np
import pytest

from worldsim import metrics
from worldsim.envs.balls import FPS, PALETTE, WORLD_HEIGHT, draw

SIZE = (32, 32)
WORLD = (10.0, 10.0)
RED, BLUE = PALETTE[0], PALETTE[1]


def video(positions, radii=(1.0,), colors=(RED,)) -> np.ndarray:
    """Frames of balls at ``positions [T, n, 2]`` (world units)."""
    return np.stack([draw(SIZE, WORLD, p, radii, np.array(colors)) for p in np.asarray(positions, dtype=float)])


def moving(velocity, start=(3.0, 5.0), frames=8) -> np.ndarray:
    t = np.arange(frames)[:, None, None] / FPS
    return np.asarray(start)[None, None] + t * np.asarray(velocity)[None, None]


def test_psnr_and_ssim_of_known_pairs():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a + 10
    assert metrics.psnr(a, a).tolist() == [60.0, 60.0]
    assert metrics.psnr(a[0], b[0]) == pytest.approx(10 * math.log10(255**2 / 100))
    frames = video(moving((10.0, 0.0), start=(1.5, 5.0)))
    assert metrics.ssim(frames, frames) == pytest.approx(np.ones(len(frames)))
    assert (metrics.ssim(frames[1:], frames[:-1]) < 0.99).all()
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(a, b[:1])
    with pytest.raises(ValueError, match=r"uint8 \[..., H, W, 3\]"):
        metrics.psnr(a.astype(float), b)


def test_parser_finds_centres_radii_and_colours_of_drawn_balls():
    positions = np.array([[[2.7, 6.2], [7.1, 3.4]]])
    frames = video(positions, radii=(1.2, 0.8), colors=(RED, BLUE))
    parsed = metrics.parse_balls(frames, np.array([RED, BLUE, PALETTE[2]]), WORLD_HEIGHT)
    assert parsed.present.tolist() == [[True, True, False]]
    assert np.abs(parsed.centers[0, :2] - positions[0]).max() < 0.02
    assert np.abs(parsed.radii[0, :2] - [1.2, 0.8]).max() < 0.08
    assert np.abs(parsed.colors[0, :2] - np.array([RED, BLUE])).max() < 3
    assert np.isnan(parsed.centers[0, 2]).all()


def test_a_copied_video_scores_the_parser_floor_and_a_shifted_ball_its_speed_gap():
    path = moving((3.0, 0.0))
    frames = video(path)
    truth = np.full((len(frames), 1, 2), [3.0, 0.0])
    floor = metrics.velocity_error(metrics.parse_balls(frames, [RED], WORLD_HEIGHT), truth, FPS)
    copied = metrics.velocity_error(metrics.parse_balls(frames.copy(), [RED], WORLD_HEIGHT), truth, FPS)
    assert copied == floor and floor[0] < 0.05 and floor[1] == len(frames) - 2
    # The same ball moving at 1 unit/s instead of 3: the error is the 2 units/s gap.
    slower = video(moving((1.0, 0.0)))
    error, _ = metrics.velocity_error(metrics.parse_balls(slower, [RED], WORLD_HEIGHT), truth, FPS)
    assert error == pytest.approx(2.0, abs=0.05)


def test_a_missing_ball_is_left_out_of_the_velocity_error_and_counts_as_a_violation():
    frames = video(moving((3.0, 0.0)))
    frames[4] = draw(SIZE, WORLD, [], [], [])
    parsed = metrics.parse_balls(frames, [RED], WORLD_HEIGHT)
    assert parsed.present[:, 0].tolist() == [True] * 4 + [False] + [True] * 3
    _, pairs = metrics.velocity_error(parsed, np.zeros((8, 1, 2)), FPS)
    assert pairs == 6 - 2  # frames 3 and 5 lose a neighbour
    background = draw(SIZE, WORLD, [], [], [])
    valid = metrics.frame_valid(parsed, [True], frames, background, [1.0], WORLD_HEIGHT)
    assert valid.tolist() == [True] * 4 + [False] + [True] * 3
    white = frames.copy()
    white[2] = 255
    blown = metrics.parse_balls(white, [RED], WORLD_HEIGHT)
    assert not metrics.frame_valid(blown, [True], white, background, [1.0], WORLD_HEIGHT)[2]


def test_gravity_is_fitted_across_a_bounce():
    g, t = 9.8, np.arange(16) / FPS
    # Falls from y = 8 with vx = 0; bounces elastically on y = 1 (the floor plus the radius).
    fall = math.sqrt(2 * 7 / g)
    heights = np.where(t < fall, 8 - g * t**2 / 2, 1 + g * fall * (t - fall) - g * (t - fall) ** 2 / 2)
    vy = np.where(t < fall, -g * t, g * fall - g * (t - fall))
    frames = video(np.stack([np.full_like(t, 5.0), heights], -1)[:, None])
    parsed = metrics.parse_balls(frames, [RED], WORLD_HEIGHT)
    assert metrics.fit_gravity(parsed.centers[:, 0, 1], vy, FPS) == pytest.approx(g, rel=0.03)
    assert math.isnan(metrics.fit_gravity(np.full(2, np.nan), vy[:2], FPS))


def test_collision_drift_is_zero_for_an_elastic_swap_and_one_when_balls_stop():
    # Equal balls at 3 and -1 units/s meet at frame 5 and swap velocities (elastic).
    t = np.arange(11) / FPS
    meet = 0.5
    before = t < meet
    x1 = np.where(before, 2 + 3 * t, 2 + 3 * meet - (t - meet))
    x2 = np.where(before, 4.0 + 1.5 - t, 4.0 + 1.5 - meet + 3 * (t - meet))
    x2 = x2 + (x1[5] + 2.0 - x2[5])  # touching (gap 0) at frame 5 exactly
    positions = np.stack([np.stack([x1, np.full_like(t, 5.0)], -1), np.stack([x2, np.full_like(t, 5.0)], -1)], 1)
    frames = video(positions, radii=(1.0, 1.0), colors=(RED, BLUE))
    parsed = metrics.parse_balls(frames, [RED, BLUE], WORLD_HEIGHT)
    assert metrics.collisions(positions, np.ones(2)) == [5]
    (drift,) = metrics.collision_drift(parsed, positions, np.ones(2), WORLD, FPS)
    assert drift["momentum"] < 0.05 and drift["energy"] < 0.05
    stuck = positions.copy()
    stuck[6:] = stuck[5]  # both stop dead at the collision
    parsed = metrics.parse_balls(video(stuck, radii=(1.0, 1.0), colors=(RED, BLUE)), [RED, BLUE], WORLD_HEIGHT)
    (drift,) = metrics.collision_drift(parsed, positions, np.ones(2), WORLD, FPS)
    # P0 = 3m - m = 2m against summed magnitudes 4m: stopping loses half; all the energy goes.
    assert drift["momentum"] == pytest.approx(0.5, abs=0.03) and drift["energy"] == pytest.approx(1.0, abs=0.05)


def test_motion_masks_scores_and_the_physics_iq_normalisation():
    frames = video(moving((10.0, 0.0), start=(1.5, 5.0)))
    identical = metrics.motion_scores(frames, frames)
    assert identical == {"spatial_iou": 1.0, "spatiotemporal_iou": 1.0, "weighted_spatial_iou": 1.0, "mse": 0.0}
    still = np.repeat(frames[:1], len(frames), 0)
    static = metrics.motion_scores(frames, still)
    assert static["spatial_iou"] == static["spatiotemporal_iou"] == static["weighted_spatial_iou"] == 0.0
    assert static["mse"] > 0
    elsewhere = video(moving((10.0, 0.0), start=(1.5, 1.5)))  # the same motion in another band
    assert metrics.motion_scores(frames, elsewhere)["spatial_iou"] == 0.0
    assert metrics.physics_iq_score(identical, identical) == 100.0
    half = {"spatial_iou": 0.5, "spatiotemporal_iou": 0.5, "weighted_spatial_iou": 0.5, "mse": 0.02}
    ceiling = {"spatial_iou": 1.0, "spatiotemporal_iou": 1.0, "weighted_spatial_iou": 1.0, "mse": 0.01}
    assert metrics.physics_iq_score(half, ceiling) == pytest.approx(50.0)
