"""Captions for Balls scenes: varied wording generated from a scene's parameters.

Every caption states what a viewer of the video could check (colours, sizes, directions, where the
target lies), so a text-conditioned world model has something true to learn from. The wording is
drawn from templates with the episode's random generator, so one seed gives one caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .balls import Scene

Pair = tuple[float, float]  # a box's (width, height) in world units, or a range's (low, high)
COLOR_NAMES = ("red", "blue", "yellow", "purple", "cyan", "orange")
COMPASS = ("right", "up and to the right", "up", "up and to the left", "left", "down and to the left", "down", "down and to the right")
COUNT_WORDS = ("no", "one", "two", "three", "four", "five", "six")

UNIFORM = (
    "a {size} red ball moves {direction} {speed}",
    "a {size} red ball glides {direction} at a steady pace",
    "one red ball, {size}, travelling {direction} {speed}",
    "a red ball drifting {direction} in a straight line",
    "a {size} red ball slides {direction} at constant speed",
)
COLLISION = (
    "a {size0} red ball moving right hits a {size1} blue ball moving left",
    "two balls collide head-on: a {size0} red one from the left and a {size1} blue one from the right",
    "a red ball and a blue ball roll toward each other and bounce apart",
    "head-on elastic collision of a {size0} red ball and a {size1} blue ball",
    "a {size1} blue ball moving left meets a {size0} red ball moving right",
)
PARABOLA = (
    "a {size} red ball is thrown to the {side} and falls under gravity",
    "a red ball flies to the {side} in an arc and bounces on the floor",
    "a {size} red ball launched to the {side} follows a parabola",
    "a red ball, {size}, falls in a curve toward the {side}",
)
PUSH = (
    "push the red ball into the green square at the {where}",
    "the red ball must reach the green target at the {where}",
    "steer the {size} red ball to the green zone at the {where}",
    "move the red ball onto the green square at the {where}; a {size1} blue ball rests in the box",
)
STILL = ("{scene}", "a still picture: {scene}", "{count} at rest: {scene}")


def describe_episode(scenario: str, scene: Scene, world_size: Pair, radius_range: Pair, speed_range: Pair, rng: np.random.Generator) -> str:
    """One sentence for a Balls episode starting from ``scene``."""
    sizes = [size_word(r, radius_range) for r in scene.radii]
    if scenario == "uniform":
        vx, vy = scene.velocities[0]
        speed = speed_word(math.hypot(vx, vy), speed_range)
        return pick(rng, UNIFORM).format(size=sizes[0], direction=compass(vx, vy), speed=speed)
    if scenario == "collision":
        return pick(rng, COLLISION).format(size0=sizes[0], size1=sizes[1])
    if scenario == "parabola":
        side = "right" if scene.velocities[0, 0] > 0 else "left"
        return pick(rng, PARABOLA).format(size=sizes[0], side=side)
    assert scene.target is not None, "a push scene has a target"
    x0, y0, x1, y1 = scene.target
    return pick(rng, PUSH).format(size=sizes[0], size1=sizes[1], where=region(((x0 + x1) / 2, (y0 + y1) / 2), world_size))


def describe_still(scene: Scene, world_size: Pair, radius_range: Pair, rng: np.random.Generator) -> str:
    """One sentence naming every ball of a still scene by size, colour and place."""
    parts = [
        f"a {size_word(r, radius_range)} {COLOR_NAMES[i % len(COLOR_NAMES)]} ball at the {region(p, world_size)}"
        for i, (p, r) in enumerate(zip(scene.positions, scene.radii))
    ]
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    count = f"{COUNT_WORDS[len(parts)]} ball" + ("s" if len(parts) != 1 else "")
    return pick(rng, STILL).format(scene=listing, count=count)


def pick(rng: np.random.Generator, templates: tuple[str, ...]) -> str:
    return templates[int(rng.integers(len(templates)))]


def size_word(radius: float, radius_range: Pair) -> str:
    lo, hi = radius_range
    if radius < lo:
        return "tiny"
    if radius > hi:
        return "huge"
    third = (hi - lo) / 3
    return "small" if radius < lo + third else "large" if radius > hi - third else "medium-sized"


def speed_word(speed: float, speed_range: Pair) -> str:
    lo, hi = speed_range
    if speed < lo:
        return "very slowly"
    if speed > hi:
        return "very fast"
    third = (hi - lo) / 3
    return "slowly" if speed < lo + third else "fast" if speed > hi - third else "at a moderate speed"


def compass(vx: float, vy: float) -> str:
    """The nearest of eight directions to a velocity, in screen terms (y up is "up")."""
    sector = round(math.atan2(vy, vx) / (math.pi / 4)) % 8
    return COMPASS[sector]


def region(point: Sequence[float] | np.ndarray, world_size: Pair) -> str:
    """Where ``point`` lies in the box, by thirds: "top left", "centre", "bottom", ..."""
    column = min(int(3 * point[0] / world_size[0]), 2)
    row = min(int(3 * point[1] / world_size[1]), 2)
    vertical = ("bottom", "", "top")[row]
    horizontal = ("left", "", "right")[column]
    return " ".join(w for w in (vertical, horizontal) if w) or "centre"
