"""Pixel CartPole: Gymnasium's CartPole-v1 dynamics, observed only through frames of a chosen size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsFloat, cast

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from worldsim.errors import UserError

from .validation import check_action, check_frame_size, check_options, check_seed

ACTIONS = ("left", "right")
STATE_KEYS = ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
CAPTIONS = (
    "a cart balances a pole that starts leaning {side}",
    "keep the pole upright; it tilts {side} at first",
    "a pole on a cart, leaning slightly {side}",
)


def make_pixel_cartpole(frame_size: tuple[int, int] = (64, 64), render_mode: str | None = None) -> gym.Env:
    """CartPole-v1 whose observation is a frame of its state drawn at ``frame_size=(H, W)``.

    ## Action space
    ``Discrete(2)``: 0 pushes the cart left, 1 right (as in CartPole-v1).

    ## Observation space
    ``Box(0, 255, (H, W, 3), uint8)``: the track, the cart and the pole drawn at 4x and
    area-averaged (:func:`draw`), at the same scale on both axes. The 4.8 m track spans the width
    (the frame height allowing); the pole is dark and at least 1.5 pixels thick, so that its tilt
    stays legible at 32x32, where CartPole's own 600x400 picture resized leaves a faint half-pixel
    line.

    ## Rewards, start state, episode end
    As CartPole-v1: +1 per step; terminated when the pole tilts past 12 degrees or the cart leaves
    the track; truncated after 500 steps.

    ## Info
    ``info["state"]``: ``cart_position`` (m), ``cart_velocity`` (m/s), ``pole_angle`` (rad, positive
    leans right), ``pole_angular_velocity`` (rad/s), as float64 scalars. ``info["caption"]``: a
    sentence describing the start.

    ## Arguments
    ``frame_size=(64, 64)``, ``render_mode`` in ``{None, "rgb_array"}`` (``render()`` returns the
    observation).

    ## Version history
    - v0: first release.
    """
    frame_size = check_frame_size(frame_size)
    if render_mode not in (None, "rgb_array"):
        raise UserError(f"worldsim/CartPole-v0 supports render_mode None or 'rgb_array', got {render_mode!r}")
    return PixelCartPole(gym.make("CartPole-v1", render_mode=render_mode), frame_size)  # its own drawing is never used


# ----------------------------------------------------------------------------------- rendering

SUPERSAMPLE = 4
TRACK_WIDTH = 4.8  # metres: the cart ends the episode when its centre leaves [-2.4, 2.4]
FALL_ANGLE = 12 * 2 * math.pi / 360  # radians: CartPole-v1 ends the episode past this tilt
POLE_LENGTH = 1.0  # CartPole-v1's pole (half-length 0.5)
CART_SIZE = (0.5, 0.3)  # width, height in metres
BACKGROUND, TRACK, CART, POLE = (255, 255, 255), (150, 150, 150), (30, 30, 30), (150, 80, 20)


def draw(frame_size: tuple[int, int], cart_position: float, pole_angle: float) -> np.ndarray:
    """CartPole's state as an RGB frame uint8 ``[H, W, 3]`` (pole angle in radians, positive right)."""
    height, width = frame_size
    big = np.empty((height * SUPERSAMPLE, width * SUPERSAMPLE, 3), np.uint8)
    big[:] = BACKGROUND
    scale = min(width / TRACK_WIDTH, height / 2.0) * SUPERSAMPLE  # supersampled pixels per metre
    track_y = height * SUPERSAMPLE - max(0.25 * height * SUPERSAMPLE, 0.3 * scale)  # from the top
    shift = 4  # OpenCV fixed-point bits: sub-pixel corners
    one = 1 << shift

    def polygon(corners: Sequence[tuple[float, float]] | Sequence[np.ndarray], color: tuple[int, int, int]) -> None:
        points = np.array([[round((x - 0.5) * one), round((y - 0.5) * one)] for x, y in corners], np.int32)
        cv2.fillConvexPoly(big, points, color, cv2.LINE_AA, shift)

    centre_x = width * SUPERSAMPLE / 2 + cart_position * scale
    thin = max(0.02 * scale, 1.0 * SUPERSAMPLE) / 2
    polygon([(0, track_y - thin), (width * SUPERSAMPLE, track_y - thin), (width * SUPERSAMPLE, track_y + thin), (0, track_y + thin)], TRACK)
    half_w, half_h = CART_SIZE[0] * scale / 2, CART_SIZE[1] * scale / 2
    polygon(
        [
            (centre_x - half_w, track_y - half_h),
            (centre_x + half_w, track_y - half_h),
            (centre_x + half_w, track_y + half_h),
            (centre_x - half_w, track_y + half_h),
        ],
        CART,
    )
    pivot_y = track_y - half_h
    along = np.array([math.sin(pole_angle), -math.cos(pole_angle)])  # image y points down
    across = np.array([-along[1], along[0]]) * max(0.05 * scale, 0.75 * SUPERSAMPLE)
    base, tip = np.array([centre_x, pivot_y]), np.array([centre_x, pivot_y]) + along * POLE_LENGTH * scale
    polygon([base - across, tip - across, tip + across, base + across], POLE)
    return cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)


def parse(frame: np.ndarray) -> tuple[float, float]:
    """The cart position (m) and pole angle (rad) that :func:`draw` would draw as ``frame`` (uint8
    ``[H, W, 3]``): analysis by synthesis, the pair whose drawing is nearest in squared error, by a
    coarse search over the track and a few angles, then alternating line searches and two joint
    refinements. On 32x32 frames that :func:`draw` made it recovers the position to 0.001 m and the
    angle to 0.002 rad (``tests/test_cartpole.py``); on a dreamed frame it reads the pole as drawn."""
    fit = DrawingFit(frame)
    half = TRACK_WIDTH / 2
    x, angle = fit.best([(float(x), a) for a in (-0.15, 0.0, 0.15) for x in np.arange(-half, half + 1e-9, 0.04)])
    for _ in range(4):  # position and angle trade off (both move the pole's tip): alternate
        angle = fit.best([(x, float(a)) for a in np.arange(angle - 0.06, angle + 0.0601, 0.003)])[1]
        x = fit.best([(float(v), angle) for v in np.arange(x - 0.06, x + 0.0601, 0.003)])[0]
    return fit.refine(x, angle, (0.002, 0.0005))


def shows_end(frame: np.ndarray) -> bool:
    """Whether ``frame`` (uint8 ``[H, W, 3]``), read by :func:`parse`, shows a state CartPole-v1
    ends at: the pole past 12 degrees or the cart's centre off the track. For a dreamed frame, the
    end the pixels show, whatever the model's termination head says."""
    x, angle = parse(frame)
    return abs(angle) > FALL_ANGLE or abs(x) > TRACK_WIDTH / 2


def drawing_error(frame: np.ndarray) -> float:
    """How far ``frame`` (uint8 ``[H, W, 3]``) is from every frame :func:`draw` can make: the RMS
    difference (uint8 levels, over pixels and channels) between it and the nearest drawing found,
    :func:`parse`'s refined by three more joint searches (parse's own can be a local best: over
    150 random states its drawing was off by more than 0.05 on 10, by 0.19 at most, and by 0.41 on
    one real frame). The world's own 32x32 frames score under 0.15 (at most 0.122 over those 150
    states; ``tests/test_cartpole.py``); a frame whose pole smears, darkens or breaks scores more (a
    pole at half its brightness: 4.2), however far it leans."""
    fit = DrawingFit(frame)
    x, angle = fit.refine(*parse(frame), (0.004, 0.001, 0.00025))
    return math.sqrt(fit.error(x, angle) / frame.size)


class DrawingFit:
    """Squared error between ``frame`` and :func:`draw`'s drawing of a state (analysis by synthesis)."""

    def __init__(self, frame: np.ndarray):
        self.size = (int(frame.shape[0]), int(frame.shape[1]))
        self.target = frame.astype(np.float32)

    def error(self, x: float, angle: float) -> float:
        return float(((draw(self.size, x, angle).astype(np.float32) - self.target) ** 2).sum())

    def best(self, candidates: list[tuple[float, float]]) -> tuple[float, float]:
        return min(candidates, key=lambda c: self.error(*c))

    def refine(self, x: float, angle: float, steps: Sequence[float]) -> tuple[float, float]:
        """Joint searches on 17x17 grids of each step around the best so far (the grid holds it)."""
        for step in steps:
            x, angle = self.best([(x + i * step, angle + j * step) for i in range(-8, 9) for j in range(-8, 9)])
        return x, angle


class PixelCartPole(gym.Wrapper):
    """CartPole-v1 observed through :func:`draw`; adds its true state and a caption to ``info``, and
    checks actions with a clear error."""

    def __init__(self, env: gym.Env, frame_size: tuple[int, int]):
        super().__init__(env)
        # Frames are the observation, so "human" is not offered; check_env makes every declared mode.
        env.unwrapped.metadata = {**env.unwrapped.metadata, "render_modes": ["rgb_array"]}
        self.frame_size = frame_size
        self.observation_space = spaces.Box(0, 255, (*frame_size, 3), np.uint8)
        self._caption = ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        check_seed(seed)
        check_options(options)
        _, info = self.env.reset(seed=seed, options=options)
        angle = float(self._state()[2])
        rng = np.random.default_rng(seed if seed is not None else self.env.unwrapped.np_random.integers(2**31))
        self._caption = CAPTIONS[int(rng.integers(len(CAPTIONS)))].format(side="right" if angle > 0 else "left")
        return self._frame(), self._info(info)

    def step(self, action: object) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = self.env.step(check_action(action, ACTIONS))
        return self._frame(), reward, terminated, truncated, self._info(info)

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        return self._frame()

    def _state(self) -> np.ndarray:
        """CartPole-v1's true state ``(x, x_dot, theta, theta_dot)``, which its reset sets."""
        state = cast(CartPoleEnv, self.env.unwrapped).state
        assert state is not None, "call reset() first"
        return state

    def _frame(self) -> np.ndarray:
        x, _, angle, _ = self._state()
        return draw(self.frame_size, float(x), float(angle))

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        state = {key: float(v) for key, v in zip(STATE_KEYS, self._state())}
        return {**info, "state": state, "caption": self._caption}


# ------------------------------------------------------------------------------ scripted control


def balance_pole(info: dict[str, Any]) -> int:
    """CartPole's scripted controller (``info`` of a step): push the cart under the pole (a PD rule
    on angle, angular velocity and drift)."""
    s = info["state"]
    effort = s["pole_angle"] + 0.5 * s["pole_angular_velocity"] + 0.05 * s["cart_position"] + 0.1 * s["cart_velocity"]
    return int(effort > 0)
