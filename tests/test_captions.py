"""Captions of Balls scenes (worldsim.envs.captions): true to the scene, varied in wording."""

import math
import re

import numpy as np
import pytest

from worldsim.envs import captions
from worldsim.envs.balls import SCENARIOS, BallsEnv, Scene
from worldsim.envs.captions import COMPASS, compass, region, size_word, speed_word


@pytest.mark.parametrize(
    "velocity, expected",
    [
        ((1, 0), "right"), ((1, 1), "up and to the right"), ((0, 2), "up"), ((-1, 1), "up and to the left"),
        ((-3, 0), "left"), ((-1, -1), "down and to the left"), ((0, -1), "down"), ((1, -1), "down and to the right"),
        ((1, 0.3), "right"), ((1, -0.3), "right"), ((0.3, 1), "up"), ((-1, 0.01), "left"), ((-1, -0.01), "left"),
    ],
)  # fmt: skip
def test_compass_names_the_nearest_of_eight_directions_with_y_up(velocity, expected):
    assert compass(*velocity) == expected


def test_compass_is_symmetric_under_a_quarter_turn():
    for angle in np.linspace(0.1, 2 * math.pi, 40, endpoint=False):
        vx, vy = math.cos(angle), math.sin(angle)
        turned = COMPASS[(COMPASS.index(compass(vx, vy)) + 2) % 8]
        assert compass(-vy, vx) == turned


@pytest.mark.parametrize(
    "point, expected",
    [((0.5, 9.5), "top left"), ((20, 10), "top right"), ((10, 5), "centre"), ((10, 0.1), "bottom"),
     ((19, 5), "right"), ((0, 0), "bottom left"), ((6, 5), "left")],
)  # fmt: skip
def test_region_names_the_third_of_the_box(point, expected):
    assert region(point, (20.0, 10.0)) == expected


def test_size_and_speed_words_split_the_range_in_thirds_and_flag_what_lies_outside():
    assert [size_word(r, (0.7, 1.6)) for r in (0.5, 0.8, 1.1, 1.5, 1.8)] == [
        "tiny", "small", "medium-sized", "large", "huge",
    ]  # fmt: skip
    assert [speed_word(s, (1.0, 4.0)) for s in (0.5, 1.5, 2.5, 3.5, 5.0)] == [
        "very slowly", "slowly", "at a moderate speed", "fast", "very fast",
    ]  # fmt: skip


TEMPLATES = {
    "uniform": captions.UNIFORM, "collision": captions.COLLISION, "parabola": captions.PARABOLA, "push": captions.PUSH,
}  # fmt: skip


def parse(caption: str, templates: tuple[str, ...], choices: dict | None = None) -> tuple[str, dict]:
    """The template a caption was made from and what fills its slots; ``choices[name]`` lists the
    words a slot may hold (any text otherwise)."""
    choices = choices or {}

    def slot(match: re.Match) -> str:
        name = match.group(1)
        if name not in choices:
            return ".+?"
        alternatives = "|".join(re.escape(c) for c in sorted(choices[name], key=len, reverse=True))
        return f"(?P<{name}>{alternatives})"

    # The most specific template first: "{scene}" alone would match any caption.
    for template in sorted(templates, key=lambda t: len(re.sub(r"\{\w+\}", "", t)), reverse=True):
        pattern = re.sub(r"\\\{(\w+)\\\}", slot, re.escape(template))
        match = re.fullmatch(pattern, caption)
        if match:
            return template, match.groupdict()
    raise AssertionError(f"{caption!r} comes from none of the templates")


def episode_caption(env: BallsEnv, seed: int) -> tuple[str, dict]:
    _, info = env.reset(seed=seed)
    return info["caption"], info


def test_uniform_caption_says_where_the_ball_goes():
    env = BallsEnv("uniform")
    for seed in range(30):
        caption, info = episode_caption(env, seed)
        _, slots = parse(caption, captions.UNIFORM, {"direction": COMPASS})
        assert slots["direction"] == compass(*info["state"]["velocities"][0]), caption
        assert "red ball" in caption


@pytest.mark.parametrize("split", ["id", "ood"])
def test_parabola_caption_says_to_which_side_the_ball_is_thrown(split):
    env = BallsEnv("parabola", split=split)
    sides = set()
    for seed in range(20):
        caption, info = episode_caption(env, seed)
        side = "right" if info["state"]["velocities"][0, 0] > 0 else "left"
        other = {"right": "left", "left": "right"}[side]
        assert re.search(rf"\b{side}\b", caption) and not re.search(rf"\b{other}\b", caption), caption
        sides.add(side)
    assert sides == {"left", "right"}


def test_collision_caption_names_both_balls():
    env = BallsEnv("collision")
    for seed in range(10):
        caption, _ = episode_caption(env, seed)
        assert "red" in caption and "blue" in caption


def test_push_caption_says_where_the_target_is():
    env = BallsEnv("push", frame_size=(48, 96))
    for seed in range(20):
        caption, info = episode_caption(env, seed)
        assert "red ball" in caption and "green" in caption
        x0, y0, x1, y1 = info["target"]
        where = region(((x0 + x1) / 2, (y0 + y1) / 2), env.world_size)
        assert " at the " in caption, caption  # every push template names the place
        assert caption.split(" at the ")[1].split(";")[0] == where, caption


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_captions_vary_in_wording_across_seeds(scenario):
    env = BallsEnv(scenario)
    texts = [episode_caption(env, seed)[0] for seed in range(20)]
    assert all(isinstance(t, str) and t.strip() for t in texts)
    assert len({parse(t, TEMPLATES[scenario])[0] for t in texts}) >= 3


def test_still_captions_vary_in_wording_across_seeds():
    env = BallsEnv("uniform")
    texts = [env.still(seed)[1] for seed in range(20)]
    assert len({parse(t, captions.STILL)[0] for t in texts}) == len(captions.STILL)


def test_caption_sizes_follow_the_radii_and_flag_ood_sizes():
    for split, allowed in [("id", {"small", "medium-sized", "large"}), ("ood", {"tiny", "huge"})]:
        env = BallsEnv("collision", split=split)
        for seed in range(20):
            caption, _ = episode_caption(env, seed)
            words = set(re.findall(r"tiny|small|medium-sized|large|huge", caption))
            assert words <= allowed, (split, caption)


def test_still_caption_counts_and_names_the_balls():
    scene = Scene(np.array([[1.0, 9.0]]), np.zeros((1, 2)), np.array([1.0]))
    texts = {captions.describe_still(scene, (10.0, 10.0), (0.7, 1.5), np.random.default_rng(s)) for s in range(30)}
    assert all("a medium-sized red ball at the top left" in t for t in texts)
    assert not any("one balls" in t for t in texts)
    three = Scene(np.array([[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]), np.zeros((3, 2)), np.array([0.8, 1.0, 1.4]))
    text = captions.describe_still(three, (10.0, 10.0), (0.7, 1.5), np.random.default_rng(0))
    assert "small red ball at the bottom left, a medium-sized blue ball at the centre and a large yellow ball" in text
