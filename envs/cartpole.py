"""Pixel CartPole: Gymnasium's CartPole-v1, observed only through rendered frames of a chosen size."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AddRenderObservation, ResizeObservation

from worldsim.envs.validation import check_action, check_frame_size

ACTIONS = ("left", "right")
STATE_KEYS = ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
CAPTIONS = (
    "a cart balances a pole that starts leaning {side}",
    "keep the pole upright; it tilts {side} at first",
    "a pole on a cart, leaning slightly {side}",
)


def make_pixel_cartpole(frame_size: tuple[int, int] = (64, 64), render_mode: str | None = None) -> gym.Env:
    """CartPole-v1 whose observation is its rendered frame resized to ``frame_size=(H, W)``.

    ## Action space
    ``Discrete(2)``: 0 pushes the cart left, 1 right (as in CartPole-v1).

    ## Observation space
    ``Box(0, 255, (H, W, 3), uint8)``: CartPole's own 600x400 rendering, area-resized to
    ``(H, W)`` by Gymnasium's ``AddRenderObservation`` and ``ResizeObservation`` wrappers.

    ## Rewards, start state, episode end
    As CartPole-v1: +1 per step; terminated when the pole tilts past 12 degrees or the cart leaves
    the track; truncated after 500 steps.

    ## Info
    ``info["state"]``: ``cart_position`` (m), ``cart_velocity`` (m/s), ``pole_angle`` (rad, positive
    leans right), ``pole_angular_velocity`` (rad/s), as float64 scalars. ``info["caption"]``: a
    sentence describing the start.

    ## Arguments
    ``frame_size=(64, 64)``, ``render_mode`` in ``{None, "rgb_array"}`` (``render()`` returns
    CartPole's full-size frame).

    ## Version history
    - v0: first release.
    """
    frame_size = check_frame_size(frame_size)
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"worldsim/CartPole-v0 supports render_mode None or 'rgb_array', got {render_mode!r}")
    cartpole = gym.make("CartPole-v1", render_mode="rgb_array")
    # Frames are the observation, so "human" is not offered; check_env makes every declared mode.
    cartpole.unwrapped.metadata = {**cartpole.unwrapped.metadata, "render_modes": ["rgb_array"]}
    env = CartPoleInfo(cartpole)
    env = AddRenderObservation(env, render_only=True)
    return ResizeObservation(env, frame_size)


class CartPoleInfo(gym.Wrapper):
    """Adds CartPole's true state and a caption to ``info``, and checks actions with a clear error."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._caption = ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        angle = float(self.env.unwrapped.state[2])
        rng = np.random.default_rng(seed if seed is not None else self.env.unwrapped.np_random.integers(2**31))
        self._caption = CAPTIONS[int(rng.integers(len(CAPTIONS)))].format(side="right" if angle > 0 else "left")
        return _, self._info(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(check_action(action, ACTIONS))
        return obs, reward, terminated, truncated, self._info(info)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        state = {key: float(v) for key, v in zip(STATE_KEYS, self.env.unwrapped.state)}
        return {**info, "state": state, "caption": self._caption}
