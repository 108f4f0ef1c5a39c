"""Properties of the Balls world (worldsim.envs.balls): API, determinism, physics, rendering, info."""

import math

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim  # noqa: F401  (registers the ids)
from worldsim.envs.balls import (
    ACTION_DIRECTIONS,
    BACKGROUND,
    DEFAULT_MAX_STEPS,
    FPS,
    GRAVITY,
    PALETTE,
    PUSH_DAMPING,
    PUSH_DELTA_V,
    SCENARIOS,
    WORLD_HEIGHT,
    BallsEnv,
    draw_split,
)
from worldsim.envs.captions import COLOR_NAMES

# Frame sizes each scenario accepts at the default radii; collision and push need a box at least
# 6.75 and 7.5 units wide, which a (96, 64) frame (6.7 units) is not.
SIZES = {
    "uniform": [(8, 8), (32, 32), (64, 64), (48, 96), (96, 64)],
    "collision": [(8, 8), (32, 32), (64, 64), (48, 96)],
    "parabola": [(8, 8), (32, 32), (64, 64), (48, 96), (96, 64)],
    "push": [(8, 8), (32, 32), (64, 64), (48, 96)],
}
ACTIONS = [0, 1, 4, 4, 2, 3, 0, 1, 1, 2, 3, 4, 0, 0, 2, 3]  # every action, some repeated


def rollout(env: BallsEnv, seed: int, actions) -> dict:
    """Frames [T + 1, H, W, 3], states, rewards, terminated/truncated flags and captions of one episode."""
    frame, info = env.reset(seed=seed)
    out = {"frames": [frame], "states": [info["state"]], "captions": [info["caption"]], "rewards": [], "ends": []}
    for action in actions:
        frame, reward, terminated, truncated, info = env.step(action)
        out["frames"].append(frame)
        out["states"].append(info["state"])
        out["captions"].append(info["caption"])
        out["rewards"].append(reward)
        out["ends"].append((terminated, truncated))
    out["frames"] = np.stack(out["frames"])
    return out


def clear_of_walls(s0: dict, s1: dict, world_size) -> bool:
    """Whether no ball can have touched a wall between two consecutive frames.

    A ball moving at most ``v / FPS`` in the step stays off a wall when its clearances to that wall
    at the two ends add up to more than that. Walls keep speeds and one ball-ball collision swaps
    one speed for another, so ``v`` is the larger of the ball's speeds at the two frames.
    """
    speed = np.maximum(np.linalg.norm(s0["velocities"], axis=1), np.linalg.norm(s1["velocities"], axis=1))

    def clearance(s):  # [n, 4]: to the left, bottom, right and top walls
        edge = s["radii"][:, None]
        return np.concatenate([s["positions"] - edge, np.asarray(world_size) - s["positions"] - edge], axis=1)

    return bool((clearance(s0) + clearance(s1) > (speed / FPS)[:, None]).all())


def momentum(state: dict) -> np.ndarray:
    return (state["masses"][:, None] * state["velocities"]).sum(axis=0)


def kinetic_energy(state: dict) -> float:
    return 0.5 * float((state["masses"] * (state["velocities"] ** 2).sum(axis=1)).sum())


def red_centroid(frame: np.ndarray) -> tuple[float, float]:
    """(column, row) of the red ball in pixel units (pixel i spans [i, i + 1)), weighted by coverage."""
    background, red = np.array(BACKGROUND, float), PALETTE[0].astype(float)
    direction = red - background
    coverage = np.clip((frame.astype(float) - background) @ direction / (direction @ direction), 0, 1)
    rows, cols = np.indices(coverage.shape)
    return (coverage * (cols + 0.5)).sum() / coverage.sum(), (coverage * (rows + 0.5)).sum() / coverage.sum()


def to_pixels(position, frame_size) -> tuple[float, float]:
    """World (x, y), y up, to pixel (column, row), rows down; scale = H / WORLD_HEIGHT."""
    scale = frame_size[0] / WORLD_HEIGHT
    return position[0] * scale, (WORLD_HEIGHT - position[1]) * scale


# ------------------------------------------------------------------------------------ Gymnasium API


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("frame_size", [(64, 64), (48, 96)])
def test_check_env_passes(scenario, frame_size):
    env = gym.make("worldsim/Balls-v0", scenario=scenario, frame_size=frame_size, render_mode="rgb_array")
    check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("scenario", ["uniform", "parabola"])
def test_check_env_passes_on_a_tall_frame_and_ood(scenario):
    env = gym.make("worldsim/Balls-v0", scenario=scenario, frame_size=(96, 64), split="ood")
    check_env(env.unwrapped)
    check_env(env)


def test_render_follows_render_mode():
    env = BallsEnv("uniform", frame_size=(32, 32), render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs)
    silent = BallsEnv("uniform", frame_size=(32, 32))
    silent.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert silent.render() is None


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        BallsEnv("uniform").step(0)


# ------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_same_rollout_and_different_seeds_differ(scenario):
    a = rollout(BallsEnv(scenario, frame_size=(32, 32)), 7, ACTIONS)
    b = rollout(BallsEnv(scenario, frame_size=(32, 32)), 7, ACTIONS)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    for sa, sb in zip(a["states"], b["states"]):
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key])
    assert a["rewards"] == b["rewards"] and a["ends"] == b["ends"] and a["captions"] == b["captions"]

    c = rollout(BallsEnv(scenario, frame_size=(32, 32)), 8, ACTIONS)
    assert not np.array_equal(a["frames"], c["frames"])
    assert not np.allclose(a["states"][0]["positions"], c["states"][0]["positions"])


def test_reseeding_one_env_replays_its_episode():
    env = BallsEnv("collision", frame_size=(32, 32))
    first = rollout(env, 3, ACTIONS)
    rollout(env, 4, ACTIONS)
    again = rollout(env, 3, ACTIONS)
    np.testing.assert_array_equal(first["frames"], again["frames"])
    assert first["captions"] == again["captions"]


# ---------------------------------------------------------------------------------------- physics


@pytest.mark.parametrize("split, frame_size", [("id", (64, 64)), ("id", (48, 96)), ("ood", (64, 64))])
def test_collision_conserves_momentum_and_energy(split, frame_size):
    env = BallsEnv("collision", frame_size=frame_size, split=split)
    measured = 0
    for seed in range(12):
        states = rollout(env, seed, [0] * 20)["states"]
        start = states[0]
        # Before the collision nothing touches the balls: their velocities stay as they started.
        hit = next(i for i, s in enumerate(states) if not np.array_equal(s["velocities"], start["velocities"]))
        before = hit - 1
        gap = [np.linalg.norm(s["positions"][0] - s["positions"][1]) - s["radii"].sum() for s in states]
        after = next(i for i in range(hit, len(states)) if gap[i] > 0)
        if not all(clear_of_walls(s0, s1, env.world_size) for s0, s1 in zip(states[:after], states[1 : after + 1])):
            continue
        measured += 1
        p0, p1 = momentum(states[before]), momentum(states[after])
        scale = float((start["masses"] * np.linalg.norm(start["velocities"], axis=1)).sum())
        assert np.linalg.norm(p1 - p0) <= 1e-6 * scale, f"seed {seed}: momentum {p0} -> {p1}"
        e0, e1 = kinetic_energy(states[before]), kinetic_energy(states[after])
        assert abs(e1 - e0) <= 1e-6 * e0, f"seed {seed}: kinetic energy {e0} -> {e1}"
        # Head-on and elastic: the balls actually exchanged momentum and now move apart.
        assert not np.allclose(states[after]["velocities"], start["velocities"])
        assert states[after]["velocities"][0, 0] < states[after]["velocities"][1, 0]
    assert measured >= 6, f"only {measured} of 12 seeds had a collision clear of the walls"


@pytest.mark.parametrize("split", ["id", "ood"])
def test_parabola_falls_with_gravity_at_constant_horizontal_velocity(split):
    env = BallsEnv("parabola", frame_size=(64, 64), split=split)
    for seed in range(6):
        states = rollout(env, seed, [0] * 25)["states"]
        free = []  # frames before the ball can first reach the floor
        for state in states:
            free.append(state)
            (_x, y), (_vx, vy), r = state["positions"][0], state["velocities"][0], state["radii"][0]
            if y - r <= abs(vy) / FPS + GRAVITY / FPS**2:
                break
        assert 5 <= len(free) < len(states), f"seed {seed}: {len(free)} frames of free fall"
        times = np.arange(len(free)) / FPS
        ys = [s["positions"][0, 1] for s in free]
        acceleration = 2 * np.polyfit(times, ys, 2)[0]
        assert acceleration == pytest.approx(-GRAVITY, rel=1e-3)
        vxs = np.array([s["velocities"][0, 0] for s in free])
        np.testing.assert_allclose(vxs, vxs[0], rtol=1e-9)
        xs = np.array([s["positions"][0, 0] for s in free])
        np.testing.assert_allclose(np.diff(xs), vxs[0] / FPS, rtol=1e-6)
        # It then bounces: the vertical velocity turns upward at some point.
        assert max(s["velocities"][0, 1] for s in states[len(free) :]) > 0


@pytest.mark.parametrize("split", ["id", "ood"])
def test_uniform_speed_is_constant_and_motion_straight_between_walls(split):
    env = BallsEnv("uniform", frame_size=(48, 96), split=split)
    bounces = 0
    for seed in range(6):
        states = rollout(env, seed, [0] * DEFAULT_MAX_STEPS["uniform"])["states"]
        speeds = np.array([np.linalg.norm(s["velocities"][0]) for s in states])
        np.testing.assert_allclose(speeds, speeds[0], rtol=1e-9)
        for s0, s1 in zip(states, states[1:]):
            if clear_of_walls(s0, s1, env.world_size):
                np.testing.assert_allclose(s1["positions"] - s0["positions"], s0["velocities"] / FPS, atol=1e-9)
            else:
                bounces += 1
            assert (s1["positions"] - s1["radii"][:, None] > -0.1).all()
            assert (s1["positions"] + s1["radii"][:, None] < np.array(env.world_size) + 0.1).all()
    assert bounces > 0  # the walls were tested, not only free flight


@pytest.mark.parametrize("scenario, factor", [("uniform", 1.0), ("push", PUSH_DAMPING ** (1 / FPS))])
def test_action_adds_push_delta_v_in_its_direction(scenario, factor):
    # Against action 0 from the same state; push also loses a step's worth of table friction.
    for action, direction in enumerate(ACTION_DIRECTIONS):
        base, pushed = BallsEnv(scenario), BallsEnv(scenario)
        base.reset(seed=3)
        pushed.reset(seed=3)
        v0 = base.step(0)[4]["state"]["velocities"]
        v1 = pushed.step(action)[4]["state"]["velocities"]
        np.testing.assert_allclose(v1[0] - v0[0], PUSH_DELTA_V * factor * direction, atol=1e-9)
        np.testing.assert_array_equal(v1[1:], v0[1:])  # only the red ball is pushed


def test_up_is_plus_y_in_the_world_and_up_on_the_screen():
    base, pushed = BallsEnv("push"), BallsEnv("push")
    base.reset(seed=1)
    pushed.reset(seed=1)
    for _ in range(3):
        frame0, *_, info0 = base.step(0)
        frame1, *_, info1 = pushed.step(1)
    assert info1["state"]["positions"][0, 1] > info0["state"]["positions"][0, 1] + 0.05
    np.testing.assert_allclose(info1["state"]["positions"][0, 0], info0["state"]["positions"][0, 0])
    assert red_centroid(frame1)[1] < red_centroid(frame0)[1] - 0.3  # smaller row index: higher up


def greedy_push(info: dict) -> int:
    """The action whose direction best turns the red ball's velocity toward the target's centre."""
    x0, y0, x1, y1 = info["target"]
    position, velocity = info["state"]["positions"][0], info["state"]["velocities"][0]
    heading = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - position
    wanted = 1.5 * heading / np.linalg.norm(heading) - velocity
    scores = ACTION_DIRECTIONS @ wanted
    return int(np.argmax(scores)) if scores.max() > 0.25 else 0


def target_distance(info: dict) -> float:
    x0, y0, x1, y1 = info["target"]
    return math.dist(info["state"]["positions"][0], ((x0 + x1) / 2, (y0 + y1) / 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_push_reaching_the_target_rewards_one_and_terminates(seed):
    env = BallsEnv("push")
    _, info = env.reset(seed=seed)
    distances, rewards = [target_distance(info)], []
    for _ in range(env.max_steps):
        _, reward, terminated, truncated, info = env.step(greedy_push(info))
        rewards.append(reward)
        if terminated or truncated:
            break
        distances.append(target_distance(info))
    assert terminated and not truncated
    assert rewards[-1] == 1.0
    x0, y0, x1, y1 = info["target"]
    x, y = info["state"]["positions"][0]
    assert x0 <= x <= x1 and y0 <= y <= y1
    # Until then the reward is 0.1 x the distance gained, step by step.
    np.testing.assert_allclose(rewards[:-1], -0.1 * np.diff(distances), atol=1e-12)


@pytest.mark.parametrize("scenario, max_steps", [("uniform", None), ("push", 5), ("collision", 3)])
def test_episode_truncates_at_max_steps(scenario, max_steps):
    env = BallsEnv(scenario, frame_size=(32, 32), max_steps=max_steps)
    limit = max_steps or DEFAULT_MAX_STEPS[scenario]
    ends = rollout(env, 0, [0] * limit)["ends"]
    assert ends == [(False, False)] * (limit - 1) + [(False, True)]


# -------------------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("scenario, frame_size", [(s, size) for s in SCENARIOS for size in SIZES[s]])
def test_frames_are_uint8_rgb_of_the_asked_size(scenario, frame_size):
    env = BallsEnv(scenario, frame_size=frame_size)
    frames = rollout(env, 0, [0, 4, 1])["frames"]
    assert frames.dtype == np.uint8 and frames.shape == (4, *frame_size, 3)
    assert all(env.observation_space.contains(f) for f in frames)
    # Something is drawn on the background: the red ball, at least.
    assert (np.abs(frames[0].astype(int) - BACKGROUND).sum(axis=-1) > 30).any()


@pytest.mark.parametrize("scenario", ["uniform", "parabola"])
@pytest.mark.parametrize("frame_size", [(8, 8), (32, 32), (64, 64), (48, 96), (96, 64)])
def test_ball_is_drawn_where_its_state_says(scenario, frame_size):
    env = BallsEnv(scenario, frame_size=frame_size)
    for seed in range(3):
        run = rollout(env, seed, [0] * 6)
        for frame, state in zip(run["frames"][::3], run["states"][::3]):
            expected = to_pixels(state["positions"][0], frame_size)
            np.testing.assert_allclose(red_centroid(frame), expected, atol=0.5 if frame_size[0] < 16 else 0.25)


def assert_balls_drawn(frame: np.ndarray, state: dict) -> None:
    """Each ball's centre pixel has the ball's colour (the balls are over 1.5 px wide here)."""
    for position, color in zip(state["positions"], state["colors"]):
        col, row = to_pixels(position, frame.shape[:2])
        np.testing.assert_allclose(frame[int(row), int(col)], color, atol=3)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_ball_is_drawn_in_its_colour_where_its_state_says(scenario):
    env = BallsEnv(scenario, frame_size=(48, 96))
    for seed in range(3):
        run = rollout(env, seed, [0] * 4)
        for frame, state in zip(run["frames"], run["states"]):
            assert_balls_drawn(frame, state)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_look_at_every_size(scenario):
    big = rollout(BallsEnv(scenario, frame_size=(128, 128)), 5, [4, 4, 1])["frames"]
    for size in [(64, 64), (32, 32)]:
        small = rollout(BallsEnv(scenario, frame_size=size), 5, [4, 4, 1])["frames"]
        for b, s in zip(big, small):
            shrunk = cv2.resize(b, size[::-1], interpolation=cv2.INTER_AREA)
            assert np.abs(shrunk.astype(int) - s).mean() < 2.0


# ------------------------------------------------------------------------------------------- info


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_info_state_has_documented_keys_shapes_and_units(scenario):
    env = BallsEnv(scenario, frame_size=(48, 96))
    run = rollout(env, 0, [1, 4])
    count = {"uniform": 1, "parabola": 1, "collision": 2, "push": 2}[scenario]
    for state, caption in zip(run["states"], run["captions"]):
        assert set(state) == {"positions", "velocities", "radii", "masses", "colors"}
        assert state["positions"].shape == state["velocities"].shape == (count, 2)
        assert state["radii"].shape == state["masses"].shape == (count,)
        assert state["colors"].shape == (count, 3) and state["colors"].dtype == np.uint8
        for key in ("positions", "velocities", "radii", "masses"):
            assert state[key].dtype == np.float64
        np.testing.assert_allclose(state["masses"], math.pi * state["radii"] ** 2)
        np.testing.assert_array_equal(state["colors"], PALETTE[:count])
        red = state["colors"][0].astype(int)
        assert red[0] > 200 and red[1] < 100 and red[2] < 100  # ball 0 is red
        assert isinstance(caption, str) and caption.strip() and caption == run["captions"][0]
        inside = (state["positions"] >= state["radii"][:, None] - 0.1) & (
            state["positions"] <= np.array(env.world_size) - state["radii"][:, None] + 0.1
        )
        assert inside.all()
    _, info = env.reset(seed=0)
    assert info["scenario"] == scenario
    assert ("target" in info) == (scenario == "push")


def test_world_is_ten_units_high_and_as_wide_as_the_frame_allows():
    assert BallsEnv("uniform", frame_size=(48, 96)).world_size == (20.0, 10.0)
    assert BallsEnv("uniform", frame_size=(96, 64)).world_size == pytest.approx((10 * 64 / 96, 10.0))


def test_push_target_is_a_square_inside_the_box_clear_of_the_balls():
    env = BallsEnv("push", frame_size=(48, 96))
    for seed in range(10):
        _, info = env.reset(seed=seed)
        x0, y0, x1, y1 = info["target"]
        assert x1 - x0 == pytest.approx(2.5) and y1 - y0 == pytest.approx(2.5)
        assert 0 <= x0 and x1 <= env.world_size[0] and 0 <= y0 and y1 <= env.world_size[1]
        for (x, y), r in zip(info["state"]["positions"], info["state"]["radii"]):
            assert not (x0 - r <= x <= x1 + r and y0 - r <= y <= y1 + r)
        np.testing.assert_array_equal(info["state"]["velocities"], 0.0)


@pytest.mark.parametrize("split, frame_size, seeds", [("id", (64, 48), [158]), ("ood", (64, 64), [93, 105])])
def test_push_resets_at_the_smallest_box_it_accepts(split, frame_size, seeds):
    # These seeds draw a first target that leaves the balls no room; the target is drawn again.
    env = BallsEnv("push", frame_size=frame_size, split=split)
    for seed in seeds:
        _, info = env.reset(seed=seed)
        assert info["state"]["positions"].shape == (2, 2)


# -------------------------------------------------------------------------------------- OOD split


def ball_speeds(scenario: str, state: dict) -> np.ndarray:
    """The drawn speeds of a starting state: uniform's speed, or each ball's horizontal speed."""
    if scenario == "uniform":
        return np.linalg.norm(state["velocities"], axis=1)
    return np.abs(state["velocities"][:, 0])


@pytest.mark.parametrize("scenario", ["uniform", "collision", "parabola", "push"])
def test_ood_split_draws_outside_the_training_ranges_and_id_inside(scenario):
    radius_range, speed_range, radius_bounds, speed_bounds = (0.7, 1.5), (1.0, 4.0), (0.3, 2.0), (0.2, 6.0)
    radii = {"id": [], "ood": []}
    speeds = {"id": [], "ood": []}
    for split in radii:
        env = BallsEnv(scenario, frame_size=(48, 96), split=split)
        for seed in range(20):
            _, info = env.reset(seed=seed)
            radii[split].extend(info["state"]["radii"])
            if scenario != "push":
                speeds[split].extend(ball_speeds(scenario, info["state"]))
    for drawn, inner, bounds in [(radii, radius_range, radius_bounds), (speeds, speed_range, speed_bounds)]:
        ood, inside = np.array(drawn["ood"]), np.array(drawn["id"])
        assert ((inner[0] - 1e-9 <= inside) & (inside <= inner[1] + 1e-9)).all()
        assert ((bounds[0] <= ood) & (ood <= bounds[1])).all()
        assert not ((inner[0] <= ood) & (ood <= inner[1])).any()
        if scenario != "push" or drawn is radii:  # push balls start at rest
            assert (ood < inner[0]).any() and (ood > inner[1]).any() and inside.std() > 0


def test_draw_split_covers_both_sides_of_the_training_range():
    rng = np.random.default_rng(0)
    ood = np.array([draw_split(rng, "ood", (1.0, 4.0), (0.2, 6.0)) for _ in range(2000)])
    assert ((0.2 <= ood) & (ood <= 6.0)).all() and not ((1.0 <= ood) & (ood <= 4.0)).any()
    below = (ood < 1.0).mean()
    assert below == pytest.approx(0.8 / 2.8, abs=0.05)  # uniform over what is left: 0.8 below, 2.0 above
    inside = np.array([draw_split(rng, "id", (1.0, 4.0), (0.2, 6.0)) for _ in range(500)])
    assert ((1.0 <= inside) & (inside <= 4.0)).all() and inside.std() > 0.5


def test_custom_ranges_are_honoured():
    env = BallsEnv("uniform", radius_range=(0.5, 0.6), speed_range=(2.0, 2.5))
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert 0.5 <= info["state"]["radii"][0] <= 0.6
        assert 2.0 - 1e-9 <= np.linalg.norm(info["state"]["velocities"][0]) <= 2.5 + 1e-9


# ------------------------------------------------------------------------------------ still images


@pytest.mark.parametrize("frame_size", [(64, 64), (48, 96)])
def test_still_is_a_captioned_frame_of_resting_balls(frame_size):
    env = BallsEnv("uniform", frame_size=frame_size)
    counts = set()
    for seed in range(12):
        frame, caption, state = env.still(seed)
        count = len(state["radii"])
        counts.add(count)
        assert frame.dtype == np.uint8 and frame.shape == (*frame_size, 3)
        assert state["positions"].shape == (count, 2)
        np.testing.assert_array_equal(state["velocities"], 0.0)
        np.testing.assert_allclose(state["masses"], math.pi * state["radii"] ** 2)
        for i in range(count):
            assert f"{COLOR_NAMES[i]} ball" in caption
        for name in COLOR_NAMES[count:]:
            assert name not in caption
        for i in range(count):
            for j in range(i):
                distance = np.linalg.norm(state["positions"][i] - state["positions"][j])
                assert distance > state["radii"][i] + state["radii"][j]
        assert_balls_drawn(frame, {**state, "colors": PALETTE[:count]})
    assert counts == {1, 2, 3}


def test_still_is_deterministic_by_seed():
    env = BallsEnv("push", frame_size=(32, 32))
    a, b, c = env.still(5), env.still(5), env.still(6)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[2]["positions"], b[2]["positions"])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("split, frame_size, seeds", [("id", (64, 24), [44, 50]), ("ood", (64, 32), [8, 45])])
def test_still_shows_fewer_balls_in_a_box_too_narrow_for_three(split, frame_size, seeds):
    # Boxes 3.75 and 5 units wide; these seeds draw three balls that cannot all fit.
    env = BallsEnv("uniform", frame_size=frame_size, split=split)
    for seed in seeds:
        frame, caption, state = env.still(seed)
        assert 1 <= len(state["radii"]) < 3
        assert all(f"{name} ball" in caption for name in COLOR_NAMES[: len(state["radii"])])


def test_perturb_nudges_the_state_by_about_std_and_zero_changes_nothing():
    env = BallsEnv("collision", frame_size=(32, 32))
    frame, info = env.reset(seed=3)
    assert (env.perturb(np.random.default_rng(0), 0.0) == frame).all()
    env.perturb(np.random.default_rng(0), 0.01)
    nudged = env._state()
    moved = nudged["positions"] - info["state"]["positions"]
    assert 0 < np.abs(moved).max() < 0.05 and np.abs(nudged["velocities"] - info["state"]["velocities"]).max() < 0.05
    assert env.target is None
    with pytest.raises(RuntimeError, match="reset"):
        BallsEnv().perturb(np.random.default_rng(0), 0.01)
