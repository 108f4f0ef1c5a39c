"""Balls: a 2-D rigid-body world of balls in a box, simulated by pymunk and drawn by OpenCV."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import gymnasium as gym
import numpy as np
import pymunk
from gymnasium import spaces

from worldsim.errors import UserError

from . import captions
from .validation import check_action, check_frame_size, check_options, check_seed

if TYPE_CHECKING:
    import pygame

SCENARIOS = ("uniform", "collision", "parabola", "push")
SPLITS = ("id", "ood")
ACTIONS = ("none", "up", "down", "left", "right")
ACTION_DIRECTIONS = np.array([(0, 0), (0, 1), (0, -1), (-1, 0), (1, 0)], dtype=np.float64)

WORLD_HEIGHT = 10.0  # world units; the width follows the frame's aspect ratio
FPS = 10
SUBSTEPS = 10  # physics steps per env step: 0.01 s, so no ball moves over 0.06 units per substep
GRAVITY = 9.8  # world units / s^2, parabola only
DENSITY = 1.0  # mass = DENSITY * pi * r^2
PUSH_DELTA_V = 0.5  # world units / s added to the red ball by one push action
PUSH_DAMPING = 0.1  # fraction of velocity kept after one second, push only (a table with friction)
TARGET_SIZE = 2.5  # side of the push target square, world units
DEFAULT_MAX_STEPS = {"uniform": 64, "collision": 64, "parabola": 64, "push": 200}
MIN_BOX_IN_RADII = {"uniform": 2.5, "collision": 4.5, "parabola": 2.5, "push": 5.0}  # box side / largest radius
SUPERSAMPLE = 4  # drawn at 4x and area-averaged: the same anti-aliased look at every frame size

BACKGROUND = (24, 24, 32)
TARGET_COLOR = (40, 110, 60)
# RGB; the first ball of every scenario is red and the one the actions push.
PALETTE = np.array([(230, 60, 60), (60, 110, 230), (235, 200, 50), (200, 80, 200), (60, 200, 200), (240, 140, 40)], dtype=np.uint8)

Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1) in world units
Draw = Callable[[np.random.Generator], float]  # draws one radius or speed


@dataclass(frozen=True)
class Scene:
    """A scenario's starting state: per-ball arrays in world units, plus the push target."""

    positions: np.ndarray  # float64 [n, 2]
    velocities: np.ndarray  # float64 [n, 2]
    radii: np.ndarray  # float64 [n]
    target: Rect | None = None  # push only


class BallsEnv(gym.Env):
    """Balls in a box: uniform motion, head-on elastic collision, parabola, and a push task.

    A 2-D rigid-body world on pymunk, following the PhyWorld setups. Collisions between balls and
    with the walls are perfectly elastic and frictionless; every ball has density 1, so its mass is
    ``pi * r**2``. Physics runs at ``SUBSTEPS`` steps per frame and is deterministic for a seed.

    ## World units
    The box is ``WORLD_HEIGHT = 10`` units high and ``10 * W / H`` units wide, so a non-square frame
    shows a wider (or taller) box at the same scale rather than squashed balls. Positions have their
    origin at the box's bottom-left corner with ``y`` pointing up; velocities are in units per
    second; one env step is ``1 / FPS = 0.1`` s.

    ## Scenarios (``scenario=``)
    - ``uniform``: one red ball moving in a straight line at constant speed (bouncing off walls).
    - ``collision``: a red ball moving right and a blue ball moving left meet head-on.
    - ``parabola``: a red ball thrown horizontally falls under gravity (``GRAVITY = 9.8`` units/s^2)
      and bounces on the floor.
    - ``push``: a control task. The red ball rests on a table with friction (velocity decays to
      ``PUSH_DAMPING`` of itself per second), a blue ball lies in the way, and a green square marks
      the target.

    Radii and speeds are drawn from ``radius_range`` and ``speed_range`` on the ``id`` split
    (in-distribution) and from ``radius_bounds`` / ``speed_bounds`` minus those ranges on the
    ``ood`` split (out-of-distribution), uniformly over what is left.

    ## Action space
    ``Discrete(5)``, the same in every scenario: 0 none, 1 up, 2 down, 3 left, 4 right. Each push
    adds ``PUSH_DELTA_V = 0.5`` units/s to the red ball's velocity in that direction. Passive
    scenarios are meant to be collected with action 0; pushing them is allowed.

    ## Observation space
    ``Box(0, 255, (H, W, 3), uint8)``: an RGB frame drawn with OpenCV, anti-aliased by 4x
    supersampling, at any ``frame_size=(H, W)``.

    ## Rewards
    ``push``: +1 when the red ball's centre enters the target, else ``0.1 *`` the decrease of its
    distance to the target's centre (world units) during the step. Other scenarios: 0.

    ## Episode end
    ``push`` terminates when the red ball reaches the target. Every scenario truncates after
    ``max_steps`` steps (default 64; 200 for ``push``).

    ## Info
    ``info["state"]``: ``positions [n, 2]``, ``velocities [n, 2]``, ``radii [n]``, ``masses [n]``
    (float64, world units) and ``colors [n, 3]`` (uint8 RGB), ball 0 being red.
    ``info["caption"]``: a sentence describing the episode, its wording varied by the seed.
    ``info["scenario"]``: the scenario name; ``info["target"]``: ``(x0, y0, x1, y1)`` in ``push``.

    ## Arguments
    ``scenario``, ``frame_size=(64, 64)``, ``split="id"``, ``radius_range=(0.7, 1.5)``,
    ``speed_range=(1.0, 4.0)``, ``radius_bounds=(0.3, 2.0)``, ``speed_bounds=(0.2, 6.0)``,
    ``max_steps=None`` (scenario default), ``render_mode`` in ``{None, "rgb_array", "human"}``.

    ## Version history
    - v0: first release.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": FPS}

    def __init__(
        self,
        scenario: str = "uniform",
        frame_size: tuple[int, int] = (64, 64),
        split: str = "id",
        radius_range: tuple[float, float] = (0.7, 1.5),
        speed_range: tuple[float, float] = (1.0, 4.0),
        radius_bounds: tuple[float, float] = (0.3, 2.0),
        speed_bounds: tuple[float, float] = (0.2, 6.0),
        max_steps: int | None = None,
        render_mode: str | None = None,
    ):
        if scenario not in SCENARIOS:
            raise UserError(f"unknown Balls scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; choose 'id' (in-distribution) or 'ood'")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise UserError(f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}")
        self.frame_size = check_frame_size(frame_size)
        self.radius_range = check_range("radius_range", radius_range, radius_bounds, minimum=0.05)
        self.speed_range = check_range("speed_range", speed_range, speed_bounds, minimum=0.0)
        self.radius_bounds = (float(radius_bounds[0]), float(radius_bounds[1]))
        self.speed_bounds = (float(speed_bounds[0]), float(speed_bounds[1]))
        if split == "ood" and (self.radius_range == self.radius_bounds or self.speed_range == self.speed_bounds):
            raise UserError(
                "the ood split draws radii and speeds outside radius_range / speed_range but within "
                "radius_bounds / speed_bounds; make the bounds wider than the ranges"
            )
        if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
            raise UserError(f"max_steps must be a positive integer or None, got {max_steps!r}")
        self.scenario = scenario
        self.split = split
        self.max_steps = int(max_steps or DEFAULT_MAX_STEPS[scenario])
        self.render_mode = render_mode
        height, width = self.frame_size
        self.world_size = (WORLD_HEIGHT * width / height, WORLD_HEIGHT)  # (width, height) in units
        largest = self.radius_range[1] if split == "id" else self.radius_bounds[1]
        needed = MIN_BOX_IN_RADII[scenario] * largest
        if min(self.world_size) < needed:
            raise UserError(
                f"scenario {scenario!r} with radii up to {largest} needs a box at least {needed:.1f} units on each "
                f"side, but frame_size {self.frame_size} gives {self.world_size[0]:.1f}x{WORLD_HEIGHT:.0f}; "
                "use a wider frame or smaller radii"
            )
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self._space: pymunk.Space | None = None
        self._bodies: list[pymunk.Body] = []
        self._scene: Scene | None = None
        self._caption = ""
        self._steps = 0
        self._window: pygame.Surface | None = None

    # ----------------------------------------------------------------------------- gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        check_seed(seed)
        check_options(options)
        super().reset(seed=seed)
        self._scene = sample_scene(self.scenario, self.np_random, self.world_size, self._draw_radius, self._draw_speed)
        self._build_space(self._scene)
        self._caption = captions.describe_episode(
            self.scenario, self._scene, self.world_size, self.radius_range, self.speed_range, self.np_random
        )
        self._steps = 0
        if self.render_mode == "human":
            self.render()
        return self._frame(), self._info()

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._space is None:
            raise RuntimeError("call reset() before step()")
        action = check_action(action, ACTIONS)
        red = self._bodies[0]
        red.velocity += tuple(PUSH_DELTA_V * ACTION_DIRECTIONS[action])
        distance_before = self._target_distance()
        for _ in range(SUBSTEPS):
            self._space.step(1.0 / (FPS * SUBSTEPS))
        self._steps += 1
        reward, terminated = 0.0, False
        if self.scenario == "push":
            terminated = self._in_target()
            reward = 1.0 if terminated else 0.1 * (distance_before - self._target_distance())
        truncated = self._steps >= self.max_steps and not terminated
        if self.render_mode == "human":
            self.render()
        return self._frame(), float(reward), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        frame = self._frame()
        if self.render_mode == "rgb_array":
            return frame
        self._show(frame)
        return None

    def close(self) -> None:
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None

    @property
    def target(self) -> Rect | None:
        """The push target ``(x0, y0, x1, y1)`` in world units of the current episode (else None)."""
        return None if self._scene is None else self._scene.target

    def perturb(self, rng: np.random.Generator, std: float) -> np.ndarray:
        """Nudges every ball's position (world units) and velocity (units/s) by Gaussian noise of
        ``std``: a second take of the same scene, as a real experiment never repeats exactly (the
        physical-variance ceiling of the fidelity benchmark). Returns the new frame."""
        if self._space is None:
            raise RuntimeError("call reset() before perturb()")
        for body in self._bodies:
            body.position += tuple(rng.normal(0.0, std, 2))
            body.velocity += tuple(rng.normal(0.0, std, 2))
        return self._frame()

    # ------------------------------------------------------------------------------ still images

    def still(self, seed: int | Sequence[int] | None = None) -> tuple[np.ndarray, str, dict[str, np.ndarray]]:
        """A captioned still image of 1-3 resting balls, for joint image/video training.

        ``seed`` is anything ``np.random.default_rng`` takes (an int, a list of ints, None).
        Returns ``(frame uint8 [H, W, 3], caption, state)`` with ``state`` as in ``info["state"]``.
        """
        rng = np.random.default_rng(seed)
        count = int(rng.integers(1, 4))
        radii = np.array([self._draw_radius(rng) for _ in range(count)])
        # A narrow box may have no room for three large balls; one ball always fits.
        while (positions := place_apart(rng, radii, self.world_size)) is None:
            radii = radii[:-1]
        scene = Scene(positions, np.zeros_like(positions), radii)
        frame = draw(self.frame_size, self.world_size, positions, radii, PALETTE[: len(radii)])
        caption = captions.describe_still(scene, self.world_size, self.radius_range, rng)
        return frame, caption, scene_state(scene)

    # --------------------------------------------------------------------------------- internals

    def _draw_radius(self, rng: np.random.Generator) -> float:
        return draw_split(rng, self.split, self.radius_range, self.radius_bounds)

    def _draw_speed(self, rng: np.random.Generator) -> float:
        return draw_split(rng, self.split, self.speed_range, self.speed_bounds)

    def _build_space(self, scene: Scene) -> None:
        space = pymunk.Space()
        space.collision_slop = 1e-4  # pymunk's default (0.1) would let balls overlap visibly
        width, height = self.world_size
        if self.scenario == "parabola":
            space.gravity = (0.0, -GRAVITY)
        if self.scenario == "push":
            space.damping = PUSH_DAMPING
        # Thick walls just outside the box, so their inner faces lie exactly on its edges.
        corners = [(-1, -1), (width + 1, -1), (width + 1, height + 1), (-1, height + 1)]
        for a, b in zip(corners, corners[1:] + corners[:1]):
            wall = pymunk.Segment(space.static_body, a, b, 1.0)
            wall.elasticity, wall.friction = 1.0, 0.0
            space.add(wall)
        self._bodies = []
        for position, velocity, radius in zip(scene.positions, scene.velocities, scene.radii):
            body = pymunk.Body(DENSITY * math.pi * radius**2, math.inf)
            body.position, body.velocity = tuple(position), tuple(velocity)
            shape = pymunk.Circle(body, float(radius))
            shape.elasticity, shape.friction = 1.0, 0.0
            space.add(body, shape)
            self._bodies.append(body)
        self._space = space

    def _current_scene(self) -> Scene:
        """The scene of the current episode, which reset draws."""
        assert self._scene is not None, "call reset() first"
        return self._scene

    def _state(self) -> dict[str, np.ndarray]:
        positions = np.array([tuple(b.position) for b in self._bodies], dtype=np.float64)
        velocities = np.array([tuple(b.velocity) for b in self._bodies], dtype=np.float64)
        return scene_state(Scene(positions, velocities, self._current_scene().radii))

    def _frame(self) -> np.ndarray:
        state = self._state()
        return draw(self.frame_size, self.world_size, state["positions"], state["radii"], state["colors"], self._current_scene().target)

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"state": self._state(), "caption": self._caption, "scenario": self.scenario}
        target = self._current_scene().target
        if target is not None:
            info["target"] = target
        return info

    def _target_distance(self) -> float:
        target = self._current_scene().target
        if target is None:
            return 0.0
        x0, y0, x1, y1 = target
        x, y = self._bodies[0].position
        return math.hypot(x - (x0 + x1) / 2, y - (y0 + y1) / 2)

    def _in_target(self) -> bool:
        target = self._current_scene().target
        assert target is not None, "only push episodes have a target"
        x0, y0, x1, y1 = target
        x, y = self._bodies[0].position
        return x0 <= x <= x1 and y0 <= y <= y1

    def _show(self, frame: np.ndarray) -> None:
        import pygame

        scale = max(1, 512 // max(self.frame_size))
        size = (self.frame_size[1] * scale, self.frame_size[0] * scale)
        if self._window is None:
            pygame.display.init()
            self._window = pygame.display.set_mode(size)
            pygame.display.set_caption(f"worldsim Balls ({self.scenario})")
        pygame.event.pump()
        surface = pygame.surfarray.make_surface(frame.transpose(1, 0, 2))
        self._window.blit(pygame.transform.scale(surface, size), (0, 0))
        pygame.display.flip()


# ----------------------------------------------------------------------------------- scenarios


def sample_scene(scenario: str, rng: np.random.Generator, world_size: tuple[float, float], draw_radius: Draw, draw_speed: Draw) -> Scene:
    """Draws a scenario's starting state; ``draw_radius(rng)`` / ``draw_speed(rng)`` give one value."""
    width, height = world_size
    if scenario == "uniform":
        radius = draw_radius(rng)
        position = rng.uniform([radius, radius], [width - radius, height - radius])
        angle = rng.uniform(0, 2 * math.pi)
        velocity = draw_speed(rng) * np.array([math.cos(angle), math.sin(angle)])
        return Scene(position[None], velocity[None], np.array([radius]))
    if scenario == "collision":
        radii = np.array([draw_radius(rng), draw_radius(rng)])
        speeds = np.array([draw_speed(rng), draw_speed(rng)])
        # Gap between the facing surfaces: the balls meet after 0.5-1.5 s, unless the box is too small.
        gap = min(speeds.sum() * rng.uniform(0.5, 1.5), width - 2 * radii.sum() - 0.2)
        gap = max(gap, 0.05)
        span = 2 * radii.sum() + gap
        left = rng.uniform(0.1, width - span - 0.1) if width - span > 0.2 else (width - span) / 2
        y = rng.uniform(radii.max() + 0.5, height - radii.max() - 0.5)
        positions = np.array([[left + radii[0], y], [left + 2 * radii[0] + gap + radii[1], y]])
        velocities = np.array([[speeds[0], 0.0], [-speeds[1], 0.0]])
        return Scene(positions, velocities, radii)
    if scenario == "parabola":
        radius = draw_radius(rng)
        direction = 1.0 if rng.random() < 0.5 else -1.0
        x = radius + 0.1 if direction > 0 else width - radius - 0.1
        y = rng.uniform(height * 0.55, height - radius - 0.1)
        return Scene(np.array([[x, y]]), np.array([[direction * draw_speed(rng), 0.0]]), np.array([radius]))
    # push: the red ball and a blue ball at rest, a target square away from the red ball
    radii = np.array([draw_radius(rng), draw_radius(rng)])
    for _ in range(1000):  # a target that leaves no room for the balls is drawn again
        target_corner = rng.uniform([0.0, 0.0], [width - TARGET_SIZE, height - TARGET_SIZE])
        x0, y0 = (float(v) for v in target_corner)
        target = (x0, y0, x0 + TARGET_SIZE, y0 + TARGET_SIZE)
        placed = place_apart(rng, radii, world_size, avoid=target)
        if placed is not None:
            return Scene(placed, np.zeros_like(placed), radii, target)
    raise RuntimeError(f"cannot place balls of radii {radii.tolist()} and a target in a {width:.1f}x{height:.1f} box")


def place_apart(
    rng: np.random.Generator, radii: np.ndarray, world_size: tuple[float, float], avoid: Rect | None = None, tries: int = 1000
) -> np.ndarray | None:
    """Positions ``[n, 2]`` for balls of ``radii`` inside the box, not overlapping each other or
    the rectangle ``avoid``, by rejection sampling; None when a ball finds no room in ``tries``
    (the balls placed first may leave none in a small box)."""
    width, height = world_size
    positions: list[np.ndarray] = []
    for radius in radii:
        for _ in range(tries):
            p = rng.uniform([radius, radius], [width - radius, height - radius])
            apart = all(np.hypot(*(p - q)) > radius + r + 0.2 for q, r in zip(positions, radii))
            if apart and (avoid is None or not near_rect(p, radius + 0.5, avoid)):
                positions.append(p)
                break
        else:
            return None
    return np.array(positions)


def near_rect(point: np.ndarray, margin: float, rect: Rect) -> bool:
    x0, y0, x1, y1 = rect
    return x0 - margin <= point[0] <= x1 + margin and y0 - margin <= point[1] <= y1 + margin


def draw_split(rng: np.random.Generator, split: str, inner: tuple[float, float], bounds: tuple[float, float]) -> float:
    """A value uniform over ``inner`` (split "id") or over ``bounds`` minus ``inner`` ("ood")."""
    if split == "id":
        return float(rng.uniform(*inner))
    below, above = inner[0] - bounds[0], bounds[1] - inner[1]
    u = rng.uniform(0, below + above)
    return float(bounds[0] + u if u < below else inner[1] + (u - below))


def scene_state(scene: Scene) -> dict[str, np.ndarray]:
    """The ``info["state"]`` dict of a scene (see BallsEnv's docstring for keys and units)."""
    count = len(scene.radii)
    return {
        "positions": scene.positions.astype(np.float64),
        "velocities": scene.velocities.astype(np.float64),
        "radii": scene.radii.astype(np.float64),
        "masses": DENSITY * math.pi * scene.radii.astype(np.float64) ** 2,
        "colors": PALETTE[np.arange(count) % len(PALETTE)].copy(),
    }


# ----------------------------------------------------------------------------------- rendering


def draw(
    frame_size: tuple[int, int],
    world_size: tuple[float, float],
    positions: np.ndarray | Sequence[Sequence[float]],
    radii: np.ndarray | Sequence[float],
    colors: np.ndarray | Sequence[Sequence[int]],
    target: Rect | None = None,
) -> np.ndarray:
    """Draws balls (and the push target) as an RGB frame uint8 [H, W, 3].

    ``positions [n, 2]`` and ``radii [n]`` are in world units (y up); ``colors [n, 3]`` uint8 RGB.
    """
    height, width = frame_size
    big = np.empty((height * SUPERSAMPLE, width * SUPERSAMPLE, 3), np.uint8)
    big[:] = BACKGROUND
    scale = height * SUPERSAMPLE / world_size[1]  # supersampled pixels per world unit
    shift = 4  # OpenCV fixed-point bits: sub-pixel centres and radii
    one = 1 << shift

    def to_pixels(x: float, y: float) -> tuple[int, int]:
        # Pixel i covers [i, i + 1); OpenCV addresses pixel centres, hence the half pixel.
        return round((x * scale - 0.5) * one), round(((world_size[1] - y) * scale - 0.5) * one)

    if target is not None:
        x0, y0, x1, y1 = target
        cv2.rectangle(big, to_pixels(x0, y1), to_pixels(x1, y0), TARGET_COLOR, -1, cv2.LINE_AA, shift)
    for (x, y), radius, color in zip(positions, radii, colors):
        center = to_pixels(x, y)
        cv2.circle(big, center, round(radius * scale * one), tuple(int(c) for c in color), -1, cv2.LINE_AA, shift)
    return cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)


def check_range(name: str, value: tuple[float, float], bounds: tuple[float, float], minimum: float) -> tuple[float, float]:
    """``value`` as ``(low, high)`` with ``minimum <= bounds[0] <= low < high <= bounds[1]``."""
    try:
        lo, hi = (float(v) for v in value)
        b_lo, b_hi = (float(v) for v in bounds)
        valid = minimum <= b_lo <= lo < hi <= b_hi
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise UserError(
            f"{name} must be (low, high) with {minimum} <= bounds low <= low < high <= bounds high; got {value!r} within bounds {bounds!r}"
        )
    return lo, hi


# ------------------------------------------------------------------------------ scripted control


def push_toward_target(info: dict[str, Any]) -> int:
    """The push task's scripted controller (``info`` of a step): the push (1 up, 2 down, 3 left,
    4 right) that best closes the red ball's gap to the target, braking when it already moves fast
    enough in that direction."""
    x0, y0, x1, y1 = info["target"]
    position, velocity = info["state"]["positions"][0], info["state"]["velocities"][0]
    # Aim at where the ball would stop if left alone, so it does not overshoot.
    gap = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - (position + 0.4 * velocity)
    axis = int(np.argmax(np.abs(gap)))
    if abs(gap[axis]) < 0.3:
        return 0
    if axis == 0:
        return 4 if gap[0] > 0 else 3
    return 1 if gap[1] > 0 else 2
