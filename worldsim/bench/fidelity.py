"""Fidelity and physics benchmarks: how faithful is a world model's dream to its real world?

Held-out episodes are recorded fresh from the model's real world (``WorldModelConfig.env_id``) from
seeds ``seed = 1,000,000`` on, a range no collect command uses by default, with the collection
policy (``auto``: no-ops in the passive Balls scenarios, the epsilon-scripted policy in CartPole)
except in ``push``, where random pushes keep the red ball from reaching the target within the
horizon (the heads are scored on whole episodes of the scripted policy). Each episode gives the
model its first ``context`` real frames, actions and caption; the model then dreams ``horizon``
frames open loop (:class:`~worldsim.simulator.WorldSimulator`, KV cache) with the real actions,
and every dreamed frame is compared with the real one.

``worldsim bench fidelity`` (:func:`run_fidelity`):

1. per-horizon PSNR and SSIM at steps 1..horizon, against three baselines: ``copy_last`` (the last
   context frame forever), ``constant_velocity`` (Balls: the true state at the last context frame
   moved in straight lines, drawn by the world's renderer) and ``physical_variance`` (the real world
   re-run with the initial state nudged by ``perturbation`` world units and units/s: two real takes
   of one scene, a ceiling rather than a floor);
2. Physics-IQ motion-mask scores (:func:`worldsim.metrics.motion_scores`) and their combined score
   against the physical-variance ceiling;
3. controllability (Genie's delta-PSNR): PSNR with the true actions minus PSNR with uniformly random
   actions, in groups whose policy acts (not the no-op scenarios);
4. reward and termination heads, teacher-forced on whole held-out real episodes;
5. long rollouts: ``long_steps``-frame dreams from real context; the fraction still valid
   (:func:`worldsim.metrics.frame_valid`: balls kept, no blow-up) over time.

``worldsim bench physics`` (:func:`run_physics`), Balls only, the PhyWorld method: every ball is
parsed from the frames by colour (:func:`worldsim.metrics.parse_balls`) and the dream is scored next
to the **parser floor**, the same parser on the real frames, on in-distribution (``id``) and
out-of-distribution (``ood``: radii and speeds outside the training ranges) splits: velocity error,
momentum and energy drift across collisions, radius and colour drift, ball-count violations and
the gravity fitted in ``parabola``.

Both return a :class:`BenchResult`, whose ``report`` is plain JSON-ready data, and
:func:`write_report` writes it as JSON, a markdown report, matplotlib plots and side-by-side mp4s
(real | dream | error).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from worldsim import metrics
from worldsim.atomic import atomic_write, write_table
from worldsim.data.collect import record_episode
from worldsim.data.episode import Episode
from worldsim.data.policies import make_policy
from worldsim.envs.worlds import WORLDS, World, world
from worldsim.errors import UserError, is_integer, is_number
from worldsim.model.world_model import WorldModel
from worldsim.simulator import check_precision
from worldsim.video import write_video

HORIZON_MARKS = (1, 2, 4, 8, 16, 32, 64, 128)  # the horizons the markdown tables show
TARGET_HORIZON = 32  # "PSNR above every baseline at every horizon to 32"


@dataclass(frozen=True)
class Settings:
    """What a fidelity or physics run measures (the ``worldsim bench`` keys of the same names)."""

    episodes: int = 16  # held-out episodes per scenario and split
    horizon: int = 64  # dreamed frames per episode
    context: int | None = None  # real frames given (None: the model's training window)
    sampler_steps: int | None = None  # Euler steps per frame (None: the model's)
    precision: str = "float32"  # the simulator's: float32 or bfloat16 (autocast)
    long_steps: int = 1000  # frames of each long rollout (0: none)
    long_rollouts: int = 8  # long rollouts per scenario
    perturbation: float = 0.01  # physical variance: std of the nudge to positions and velocities
    videos: int = 2  # episodes per group in the side-by-side mp4s
    seed: int = 1_000_000
    scenarios: tuple[str, ...] | None = None  # Balls scenarios (None: all)
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self):
        for name, low in (("episodes", 1), ("horizon", 3), ("long_steps", 0), ("long_rollouts", 0), ("videos", 0), ("seed", 0)):
            if not is_integer(getattr(self, name), low):
                accepted = "at least 3 frames (an integer; velocities need neighbours)" if name == "horizon" else f"an integer >= {low}"
                raise UserError(f"{name} must be {accepted}, got {getattr(self, name)!r}")
        for name in ("context", "sampler_steps"):
            if getattr(self, name) is not None and not is_integer(getattr(self, name), 1):
                raise UserError(f"{name} must be an integer >= 1 or None, got {getattr(self, name)!r}")
        check_precision(self.precision)
        if not is_number(self.perturbation, 0):
            raise UserError(f"perturbation must be a finite number >= 0, got {self.perturbation!r}")


@dataclass
class Group:
    """Held-out episodes of one (scenario, split) and what the model and baselines made of them.

    Frame arrays are uint8 ``[N, context + horizon, H, W, 3]``; their first ``context`` frames are
    the real ones everywhere."""

    scenario: str | None
    split: str
    context: int
    episodes: list[Episode]
    backgrounds: np.ndarray | None  # [N, H, W, 3]: each scene without balls (Balls)
    targets: list | None  # each episode's push target (x0, y0, x1, y1), or None (Balls)
    world_size: tuple[float, float] | None  # (width, height) in world units (Balls)
    dream: np.ndarray = None
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    random_dream: np.ndarray | None = None  # dreamed with uniformly random actions

    @property
    def name(self) -> str:
        return f"{self.scenario}/{self.split}" if self.scenario else self.split

    @property
    def real(self) -> np.ndarray:
        return np.stack([e.frames for e in self.episodes])

    @property
    def actions(self) -> np.ndarray:
        return np.stack([e.actions for e in self.episodes])

    def state(self, key: str) -> np.ndarray:
        return np.stack([e.states[key] for e in self.episodes])


@dataclass
class BenchResult:
    """A fidelity or physics run: ``report``, the JSON-ready numbers (what ``<mode>.json`` holds
    besides the command and the model's name), and the frames that its videos show."""

    report: dict[str, Any]
    groups: list[Group]  # the held-out groups with their real and dreamed frames
    long_frames: np.ndarray | None = None  # uint8 [R, long_steps, H, W, 3]: the long rollouts (fidelity, Balls)


# ------------------------------------------------------------------------------------ real worlds


def record_of(model: WorldModel) -> World:
    """The registry's record of the model's world (its benchmark settings among them)."""
    return world(model.config.env_id)


def is_balls(model: WorldModel) -> bool:
    """Whether the model's frames show balls that :func:`worldsim.metrics.parse_balls` reads."""
    return record_of(model).balls


def make_world(model: WorldModel, scenario: str | None, split: str, steps: int | None) -> gym.Env:
    """The model's real world for ``scenario`` and ``split``, truncating after ``steps`` steps."""
    record = record_of(model)
    if (scenario is not None and not record.scenarios) or (split != "id" and not record.splits):
        having = ", ".join(w.env_id for w in WORLDS if w.scenarios)
        raise UserError(f"scenarios and splits exist only for {having}; the model's world is {model.config.env_id}")
    kwargs = {"scenario": scenario} if record.scenarios else {}
    kwargs.update({"split": split} if record.splits else {})
    if record.max_steps_arg:
        return gym.make(record.env_id, **model.config.world_kwargs(**kwargs, **{record.max_steps_arg: steps}))
    return gym.make(record.env_id, max_episode_steps=steps, **model.config.world_kwargs(**kwargs))


def scenarios_of(model: WorldModel, settings: Settings) -> list[str | None]:
    return record_of(model).check_scenarios(settings.scenarios)


def record_group(model: WorldModel, scenario: str | None, split: str, settings: Settings, context: int) -> Group:
    """``episodes`` real episodes that last the whole ``context + horizon`` frames (an episode that
    ends early, e.g. a push that reaches its target, is replaced by the next seed)."""
    steps = context - 1 + settings.horizon
    env = make_world(model, scenario, split, steps)
    policy = make_policy(record_of(model).policy_for_rollouts(scenario), env)
    episodes, backgrounds, targets, seed = [], [], [], settings.seed
    while len(episodes) < settings.episodes:
        if seed - settings.seed >= 20 * settings.episodes:
            raise RuntimeError(f"{scenario or 'the world'}: too few episodes last {steps} steps; try a shorter horizon")
        episode = record_episode(env, policy, seed, max_steps=steps)
        episode.meta["seed"] = seed
        seed += 1
        if len(episode) == steps:
            episodes.append(episode)
            backgrounds.append(background_of(env))
            targets.append(getattr(env.unwrapped, "target", None))
    world_size = getattr(env.unwrapped, "world_size", None)
    env.close()
    balls = is_balls(model)
    return Group(scenario, split, context, episodes, np.stack(backgrounds) if balls else None, targets if balls else None, world_size)


def background_of(env: gym.Env) -> np.ndarray | None:
    """The current Balls scene drawn without its balls (the push target stays)."""
    world = env.unwrapped
    if not hasattr(world, "world_size"):
        return None
    from worldsim.envs.balls import draw

    return draw(world.frame_size, world.world_size, [], [], [], world.target)


def physical_variance(model: WorldModel, group: Group, perturbation: float) -> np.ndarray | None:
    """The real world re-run from each episode's seed with its initial state nudged by Gaussian
    noise of std ``perturbation`` (world units and units/s) and the same actions; None for a
    world that cannot be nudged."""
    env = make_world(model, group.scenario, group.split, None)
    world = env.unwrapped
    if not hasattr(world, "perturb"):
        return None
    takes = []
    for episode in group.episodes:
        seed = episode.meta["seed"]
        env.reset(seed=seed)
        frames = [world.perturb(np.random.default_rng(seed), perturbation)]
        for action in episode.actions:
            frames.append(world.step(action)[0])  # the bare world: it keeps going after a push ends
        takes.append(np.stack(frames))
    env.close()
    return np.stack(takes)


def copy_last(group: Group) -> np.ndarray:
    """The real context, then its last frame repeated."""
    real, c = group.real, group.context
    frames = np.repeat(real[:, c - 1 : c], real.shape[1], axis=1)
    frames[:, :c] = real[:, :c]
    return frames


def constant_velocity(group: Group, frame_size: tuple[int, int]) -> np.ndarray:
    """Balls moved in straight lines at their true velocities from the last context frame on."""
    from worldsim.envs.balls import FPS, draw

    c = group.context
    out = group.real.copy()
    for n, episode in enumerate(group.episodes):
        s = {key: value[c - 1] for key, value in episode.states.items()}
        target = group.targets[n]
        for h in range(1, len(episode.frames) - c + 1):
            positions = s["positions"] + s["velocities"] * h / FPS
            out[n, c - 1 + h] = draw(frame_size, group.world_size, positions, s["radii"], s["colors"], target)
    return out


# ---------------------------------------------------------------------------------------- dreams


def dream(model: WorldModel, group: Group, actions: np.ndarray, settings: Settings) -> np.ndarray:
    """The model's open-loop rollouts from each episode's real context with ``actions [N, T]``:
    uint8 ``[N, context + horizon, H, W, 3]`` (the context frames are the real ones)."""
    c, real = group.context, group.real
    sim = model.simulator(
        len(real), settings.device, window=None, sampler_steps=settings.sampler_steps, seed=settings.seed, precision=settings.precision
    )
    sim.reset(
        torch.ones(len(real), dtype=torch.bool),
        context=torch.from_numpy(real[:, :c]),
        actions=torch.from_numpy(actions[:, :c]),
        prompts=[e.caption for e in group.episodes],
    )
    frames = [real[:, :c]]
    for h in range(settings.horizon):
        frames.append(sim.step(torch.from_numpy(actions[:, c - 1 + h])).frames.cpu().numpy()[:, None])
    return np.concatenate(frames, axis=1)


def random_actions(env: gym.Env, shape: tuple[int, ...], seed: int) -> np.ndarray:
    space = env.action_space
    space.seed(seed)
    return np.stack([space.sample() for _ in range(int(np.prod(shape)))]).reshape(*shape, *space.shape)


@torch.no_grad()
def teacher_forced_heads(model: WorldModel, episodes: list[Episode], window: int) -> tuple[np.ndarray, np.ndarray]:
    """The reward and termination heads read on real frames: for every step t of every episode,
    the head outputs at frame t + 1 of a window of the last ``window`` real frames (the frame before
    the window as their clean predecessor). Returns predicted rewards and termination probabilities,
    each concatenated over episodes ``[sum T]``."""
    denoiser, device = model.denoiser, model.device
    rewards, terminations = [], []
    for episode in episodes:
        latents = model.codec.encode(torch.from_numpy(episode.frames[None]).to(device))[0]  # [T + 1, C, h, w]
        actions = torch.as_tensor(episode.actions).to(device)
        text = model.text_context([episode.caption])
        for t in range(1, len(episode.frames)):
            start = max(0, t - window + 1)
            x = latents[None, start : t + 1]
            incoming = torch.zeros((1, x.shape[1], *actions.shape[1:]), dtype=actions.dtype, device=device)
            taken = torch.zeros(1, x.shape[1], dtype=torch.bool, device=device)
            first = 1 if start == 0 else 0
            incoming[0, first:] = actions[start - 1 + first : t]
            taken[0, first:] = True
            before = (latents[None, start - 1], torch.zeros(1, device=device)) if start > 0 else None
            sigmas = torch.full(x.shape[:2], model.config.context_noise, device=device)
            out = denoiser(x, sigmas, incoming, taken, text, before=before)
            rewards.append(float(out.reward[0, -1]))
            terminations.append(float(torch.sigmoid(out.termination[0, -1])))
    return np.array(rewards), np.array(terminations)


# ------------------------------------------------------------------------------------- the runs


def prepare(model: WorldModel, settings: Settings, splits: tuple[str, ...], scenarios=None) -> tuple[list[Group], int]:
    """Records the groups of ``splits`` (Balls: per scenario) and dreams each with the true actions."""
    context = settings.context or model.config.context_frames
    groups = []
    wanted = [(s, split) for s in (scenarios or scenarios_of(model, settings)) for split in splits]
    for scenario, split in tqdm(wanted, desc="dreaming held-out episodes", disable=not settings.progress):
        group = record_group(model, scenario, split, settings, context)
        group.dream = dream(model, group, group.actions, settings)
        groups.append(group)
    return groups, context


def run_fidelity(model: WorldModel, settings: Settings) -> BenchResult:
    """Per-horizon PSNR/SSIM with baselines, motion masks, controllability, heads and long
    rollouts (see the module docstring)."""
    start = time.perf_counter()
    groups, context = prepare(model, settings, ("id",))
    report = {"settings": asdict(settings), "context": context, "groups": {}, "world": model.config.env_id, "fps": model.config.fps}
    for group in tqdm(groups, desc="baselines and scores", disable=not settings.progress):
        group.baselines["copy_last"] = copy_last(group)
        if is_balls(model):
            group.baselines["constant_velocity"] = constant_velocity(group, tuple(model.config.frame_size))
        twin = physical_variance(model, group, settings.perturbation)
        if twin is not None:
            group.baselines["physical_variance"] = twin
        if len(np.unique(group.actions)) > 1:  # the policy acts: does the dream follow the actions?
            env = make_world(model, group.scenario, group.split, None)
            randomised = random_actions(env, group.actions.shape, settings.seed)
            env.close()
            randomised[:, : context - 1] = group.actions[:, : context - 1]  # the context keeps its real actions
            group.random_dream = dream(model, group, randomised, settings)
        report["groups"][group.name] = score_fidelity(group, settings)
    report["heads"] = heads_report(model, settings)
    long_frames = None
    if is_balls(model) and settings.long_steps and settings.long_rollouts:
        report["long_rollouts"], long_frames = long_rollouts(model, settings, context)
    report["groups"]["all"] = pooled(report["groups"])
    report["targets"] = fidelity_targets(report)
    report["seconds"] = time.perf_counter() - start
    return BenchResult(report, groups, long_frames)


def score_fidelity(group: Group, settings: Settings) -> dict:
    c, real = group.context, group.real
    future = slice(c, None)
    entry = {"episodes": len(group.episodes), "curves": {}, "motion": {}}
    candidates = {"model": group.dream, **group.baselines}
    for name, frames in candidates.items():
        entry["curves"][name] = {
            "psnr": metrics.psnr(frames[:, future], real[:, future]).mean(0).tolist(),
            "ssim": metrics.ssim(frames[:, future], real[:, future]).mean(0).tolist(),
        }
        series = slice(c - 1, None)  # the last real frame and everything after: motion from the first dreamed step on
        scores = [metrics.motion_scores(r[series], f[series]) for r, f in zip(real, frames)]
        entry["motion"][name] = {k: float(np.mean([s[k] for s in scores])) for k in metrics.MOTION_METRICS}
    ceiling = entry["motion"].get("physical_variance")
    if ceiling is not None:
        for scores in entry["motion"].values():
            scores["physics_iq"] = metrics.physics_iq_score(scores, ceiling)
    if group.random_dream is not None:
        randomised = metrics.psnr(group.random_dream[:, future], real[:, future]).mean(0)
        entry["controllability"] = (np.array(entry["curves"]["model"]["psnr"]) - randomised).tolist()
    return entry


def pooled(groups: dict) -> dict:
    """The mean of every group's curves and motion scores (each group weighs the same)."""
    first = next(iter(groups.values()))
    names = [n for n in first["curves"] if all(n in g["curves"] for g in groups.values())]
    curves = {n: {m: np.mean([g["curves"][n][m] for g in groups.values()], axis=0).tolist() for m in ("psnr", "ssim")} for n in names}
    motion = {n: {k: float(np.mean([g["motion"][n][k] for g in groups.values()])) for k in first["motion"][n]} for n in names}
    return {"episodes": sum(g["episodes"] for g in groups.values()), "curves": curves, "motion": motion}


def heads_report(model: WorldModel, settings: Settings) -> dict:
    """Teacher-forced reward and termination heads on whole held-out episodes, per scenario: of the
    collection policy in Balls (a scripted push ends on its target), of random pushes in CartPole
    (whose balancing policy rarely lets the pole fall: the ends are what the head must see)."""
    out = {}
    for scenario in scenarios_of(model, settings):
        env = make_world(model, scenario, "id", None)
        policy = make_policy(record_of(model).heads_policy, env)
        episodes = [record_episode(env, policy, settings.seed + 50_000 + k) for k in range(settings.episodes)]
        env.close()
        window = settings.context or model.config.context_frames
        rewards, terminations = teacher_forced_heads(model, episodes, window)
        true_rewards = np.concatenate([e.rewards for e in episodes])
        ended = np.concatenate([e.terminated for e in episodes])
        said = terminations > model.config.termination_threshold  # as the dream decides
        out[scenario or "all"] = {
            "steps": int(len(rewards)),
            "reward_mae": float(np.abs(rewards - true_rewards).mean()),
            "reward_mae_constant": float(np.abs(true_rewards - true_rewards.mean()).mean()),
            "terminations": int(ended.sum()),
            "termination_accuracy": float((said == ended).mean()),
            "termination_precision": float((said & ended).sum() / said.sum()) if said.any() else None,
            "termination_recall": float((said & ended).sum() / ended.sum()) if ended.any() else None,
        }
    return out


def long_rollouts(model: WorldModel, settings: Settings, context: int) -> tuple[dict, np.ndarray]:
    """``long_rollouts`` dreams of ``long_steps`` frames per scenario from real context, with
    no-ops in the passive scenarios and random pushes in ``push``. Returns per scenario the
    fraction whose every frame so far is valid (:func:`worldsim.metrics.frame_valid`), at each
    step, and the dreams, uint8 ``[R, long_steps, H, W, 3]`` (scenario after scenario)."""
    from worldsim.envs.balls import WORLD_HEIGHT

    short = Settings(**{**asdict(settings), "episodes": settings.long_rollouts, "horizon": 3, "seed": settings.seed + 100_000})
    groups = [record_group(model, s, "id", short, context) for s in scenarios_of(model, settings)]
    real = np.concatenate([g.real[:, :context] for g in groups])
    record = record_of(model)
    env = make_world(model, groups[0].scenario, "id", None)  # for its action space, the same in every scenario
    actions = np.concatenate(
        [
            random_actions(env, (len(g.episodes), context + settings.long_steps), settings.seed)
            if record.is_task(g.scenario)
            else np.zeros((len(g.episodes), context + settings.long_steps), np.int64)
            for g in groups
        ]
    )
    env.close()
    actions[:, : context - 1] = np.concatenate([g.actions[:, : context - 1] for g in groups])
    sim = model.simulator(
        len(real), settings.device, sampler_steps=settings.sampler_steps, seed=settings.seed, precision=settings.precision
    )
    sim.reset(
        torch.ones(len(real), dtype=torch.bool),
        context=torch.from_numpy(real),
        actions=torch.from_numpy(actions[:, :context]),
        prompts=[e.caption for g in groups for e in g.episodes],
    )
    frames = np.empty((len(real), settings.long_steps, *real.shape[2:]), np.uint8)
    for t in tqdm(range(settings.long_steps), desc="long rollouts", disable=not settings.progress):
        frames[:, t] = sim.step(torch.from_numpy(actions[:, context - 1 + t])).frames.cpu().numpy()
    out, row = {}, 0
    for g in groups:
        survival = []
        for n, episode in enumerate(g.episodes):
            state = {key: value[context - 1] for key, value in episode.states.items()}
            parsed = metrics.parse_balls(frames[row], state["colors"], WORLD_HEIGHT, g.backgrounds[n])
            expected = np.ones(len(state["radii"]), bool)
            valid = metrics.frame_valid(parsed, expected, frames[row], g.backgrounds[n], state["radii"], WORLD_HEIGHT)
            survival.append(np.cumprod(valid))
            row += 1
        survival = np.mean(survival, axis=0)
        out[g.scenario] = {"rollouts": len(g.episodes), "valid": survival.tolist()}
    return out, frames


def fidelity_targets(report: dict) -> list[dict]:
    """The issue's PSNR target per group: above every baseline at every horizon to 32."""
    rows = []
    for name, entry in report["groups"].items():
        curves = entry["curves"]
        upto = min(TARGET_HORIZON, len(curves["model"]["psnr"]))
        model = np.array(curves["model"]["psnr"][:upto])
        for baseline, curve in curves.items():
            if baseline == "model":
                continue
            losing = np.flatnonzero(model <= np.array(curve["psnr"][:upto])) + 1
            rows.append(
                {
                    "group": name,
                    "baseline": baseline,
                    "passed": not len(losing),
                    "first_losing_horizon": int(losing[0]) if len(losing) else None,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------- physics


def run_physics(model: WorldModel, settings: Settings) -> BenchResult:
    """PhyWorld-style physics of the dream against the parser floor, in- and out-of-distribution."""
    if not is_balls(model):
        raise UserError(f"the physics benchmark parses Balls frames; this model's world is {model.config.env_id}")
    start = time.perf_counter()
    scenarios = scenarios_of(model, settings)
    groups, context = prepare(model, settings, ("id",), scenarios)
    ood = [s for s in scenarios if not record_of(model).is_task(s)]  # a task's OOD split is not PhyWorld's
    more, _ = prepare(model, settings, ("ood",), ood) if ood else ([], context)
    groups += more
    report = {"settings": asdict(settings), "context": context, "groups": {}, "world": model.config.env_id, "fps": model.config.fps}
    for group in tqdm(groups, desc="parsing balls", disable=not settings.progress):
        report["groups"][group.name] = {
            "episodes": len(group.episodes),
            "model": physics_scores(group, group.dream),
            "parser_floor": physics_scores(group, group.real),
        }
    report["targets"] = physics_targets(report["groups"])
    report["seconds"] = time.perf_counter() - start
    return BenchResult(report, groups)


def physics_scores(group: Group, frames: np.ndarray) -> dict:
    """Parser-based physics of ``frames`` (the dream, or the real frames for the floor) over the
    last context frame and the dreamed ones."""
    from worldsim.envs.balls import FPS, WORLD_HEIGHT

    c = group.context
    series = slice(c - 1, None)
    positions, velocities = group.state("positions")[:, series], group.state("velocities")[:, series]
    radii, colors = group.state("radii")[:, 0], group.state("colors")[:, 0]
    velocity, count, radius, color, violations, momentum, energy, gravity = [], [], [], [], [], [], [], []
    for n in range(len(frames)):
        parsed = metrics.parse_balls(frames[n, series], colors[n], WORLD_HEIGHT, group.backgrounds[n])
        error, pairs = metrics.velocity_error(parsed, velocities[n], FPS)
        if pairs:
            velocity.append(error * pairs)
            count.append(pairs)
        dreamed = slice(1, None)
        radius.append(np.nanmean(np.abs(parsed.radii[dreamed] - radii[n])) if parsed.present[dreamed].any() else np.nan)
        gaps = np.linalg.norm(parsed.colors[dreamed] - colors[n], axis=-1)
        color.append(np.nanmean(gaps) if np.isfinite(gaps).any() else np.nan)
        violations.append(float((~parsed.present[dreamed]).any(axis=1).mean()))
        for drift in metrics.collision_drift(parsed, positions[n], radii[n], group.world_size, FPS):
            momentum.append(drift["momentum"])
            energy.append(drift["energy"])
        if group.scenario == "parabola":
            gravity.append(metrics.fit_gravity(parsed.centers[:, 0, 1], velocities[n, :, 0, 1], FPS))
    finite = [g for g in gravity if np.isfinite(g)]
    return {
        "velocity_error": float(np.sum(velocity) / np.sum(count)) if count else None,
        "velocity_pairs": int(np.sum(count)),
        "radius_drift": nanmean(radius),
        "color_drift": nanmean(color),
        "count_violations": float(np.mean(violations)),
        "momentum_drift": nanmean(momentum),
        "energy_drift": nanmean(energy),
        "collisions": len(momentum),
        "gravity": nanmean(finite),
        "gravity_std": float(np.std(finite)) if finite else None,
        "gravity_fits": len(finite),
    }


def nanmean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def physics_targets(groups: dict) -> list[dict]:
    """Velocity error within 2x of the parser floor (id), and OOD within 5x of id."""
    rows = []
    for name, entry in groups.items():
        scenario, split = name.split("/")
        model, floor = entry["model"]["velocity_error"], entry["parser_floor"]["velocity_error"]
        if split == "id" and model is not None and floor:
            rows.append({"target": f"{scenario}: id error <= 2x parser floor", "ratio": model / floor, "passed": model <= 2 * floor})
        if split == "ood" and f"{scenario}/id" in groups:
            inside = groups[f"{scenario}/id"]["model"]["velocity_error"]
            if model is not None and inside:
                rows.append({"target": f"{scenario}: ood error <= 5x id error", "ratio": model / inside, "passed": model <= 5 * inside})
    return rows


# --------------------------------------------------------------------------------------- reports


def write_report(result: BenchResult, mode: str, out: str | Path, command: str, model_name: str) -> list[Path]:
    """Writes ``<mode>.json``, ``<mode>.md``, ``<mode>.png`` (and ``long_rollouts.png``) and
    ``videos/<group>.mp4`` to ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**result.report, "command": command, "model": model_name}
    paths = [out / f"{mode}.json", out / f"{mode}.md"]
    write_table(out, mode, fidelity_markdown(report) if mode == "fidelity" else physics_markdown(report), report)
    paths += plot_fidelity(report, out) if mode == "fidelity" else plot_physics(report, out)
    fps, shown = report["fps"], slice(0, report["settings"]["videos"])
    for group in result.groups:
        if not report["settings"]["videos"]:
            break
        paths.append(
            write_video(
                out / "videos" / f"{mode}-{group.name.replace('/', '-')}.mp4",
                side_by_side(group.real[shown], group.dream[shown]),
                fps,
                scale=4,
            )
        )
    if result.long_frames is not None:
        rows = report["long_rollouts"]
        per = [rows[s]["rollouts"] for s in rows]
        firsts = result.long_frames[np.cumsum([0, *per[:-1]])]  # each scenario's first rollout
        paths.append(write_video(out / "videos" / "long_rollouts.mp4", np.concatenate(list(firsts), axis=2), fps, scale=4))
    return paths


def side_by_side(real: np.ndarray, dreamed: np.ndarray) -> np.ndarray:
    """``[T, n H, 3 W, 3]``: per episode (stacked down) the real frame, the dream and 4x their
    absolute difference."""
    error = np.clip(4 * np.abs(real.astype(np.int16) - dreamed.astype(np.int16)), 0, 255).astype(np.uint8)
    rows = np.concatenate([real, dreamed, error], axis=3)  # [n, T, H, 3 W, 3]
    return np.concatenate(list(rows), axis=1)


def fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def heading(title: str, report: dict) -> list[str]:
    return [f"# {title}", "", f"`{report['command']}` ({report['seconds']:.0f} s)", ""]


def baselines_of(report: dict) -> str:
    """The baselines of the report's groups, described."""
    described = {
        "copy_last": "`copy_last` repeats the last context frame",
        "constant_velocity": "`constant_velocity` moves the true balls in straight lines",
        "physical_variance": f"`physical_variance` is the real world re-run with its initial state nudged by "
        f"{report['settings']['perturbation']} units (a ceiling: two real takes of one scene)",
    }
    present = {method for entry in report["groups"].values() for method in entry["curves"]}
    return "; ".join(text for method, text in described.items() if method in present)


def fidelity_markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        *heading("Simulator fidelity", report),
        f"Model `{report['model']}` ({report['world']}). {s['episodes']} held-out episodes per scenario (seeds from "
        f"{s['seed']}), {report['context']} real context frames, then {s['horizon']} dreamed frames open loop with the "
        f"real actions. Baselines: {baselines_of(report)}.",
        "",
        "## Targets",
        "",
    ]
    for row in report["targets"]:
        verdict = "PASS" if row["passed"] else f"FAIL (first at horizon {row['first_losing_horizon']})"
        if row["baseline"] == "physical_variance":
            verdict += " (a ceiling, not expected)"
        lines.append(f"- {row['group']}: PSNR above `{row['baseline']}` at every horizon to {TARGET_HORIZON}: {verdict}")
    for metric, title in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
        marks = [h for h in HORIZON_MARKS if h <= s["horizon"]]
        lines += [
            "",
            f"## {title} by horizon",
            "",
            "| group | method | " + " | ".join(f"h={h}" for h in marks) + " |",
            "| --- | --- | " + " | ".join("---" for _ in marks) + " |",
        ]
        for name, entry in report["groups"].items():
            for method, curve in entry["curves"].items():
                values = " | ".join(fmt(curve[metric][h - 1], 2 if metric == "psnr" else 3) for h in marks)
                lines.append(f"| {name} | {method} | {values} |")
    lines += [
        "",
        "## Motion masks (Physics-IQ)",
        "",
        "Scores over the dreamed frames (pixels that changed by more than 20 from the frame before). "
        "`physics_iq` scales each score by the physical variance's and averages: 100 = as close as two real takes.",
        "",
        "| group | method | spatial IoU | spatiotemporal IoU | weighted spatial IoU | MSE | Physics-IQ |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in report["groups"].items():
        for method, m in entry["motion"].items():
            lines.append(
                f"| {name} | {method} | {m['spatial_iou']:.3f} | {m['spatiotemporal_iou']:.3f} | "
                f"{m['weighted_spatial_iou']:.3f} | {m['mse']:.4f} | {fmt(m.get('physics_iq'), 1)} |"
            )
    control = {n: e["controllability"] for n, e in report["groups"].items() if "controllability" in e}
    if control:
        lines += [
            "",
            "## Controllability (delta-PSNR)",
            "",
            "PSNR of the dream with the true actions minus with uniformly random actions (Genie); > 0: the dream follows the actions.",
            "",
            "| group | h=1 | h=4 | h=16 | mean over horizon |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, curve in control.items():
            at = [fmt(curve[h - 1]) if h <= len(curve) else "-" for h in (1, 4, 16)]
            lines.append(f"| {name} | {' | '.join(at)} | {np.mean(curve):.2f} |")
    lines += [
        "",
        "## Reward and termination heads (teacher-forced on whole held-out episodes)",
        "",
        "| scenario | steps | reward MAE | MAE of the mean | terminations | termination accuracy | precision | recall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, h in report["heads"].items():
        lines.append(
            f"| {name} | {h['steps']} | {h['reward_mae']:.4f} | {h['reward_mae_constant']:.4f} | {h['terminations']} | "
            f"{h['termination_accuracy']:.3f} | {fmt(h['termination_precision'], 3)} | "
            f"{fmt(h['termination_recall'], 3)} |"
        )
    if "long_rollouts" in report:
        lines += [
            "",
            f"## Long rollouts ({s['long_steps']} frames)",
            "",
            "Fraction of rollouts whose every frame so far keeps its balls (each found, area within 1/3..3x) "
            "and has not blown up (half the pixels still background).",
            "",
            "| scenario | rollouts | step 10 | step 100 | step 1000 | last |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in report["long_rollouts"].items():
            valid = r["valid"]
            at = [fmt(valid[t - 1]) if t <= len(valid) else "-" for t in (10, 100, 1000)]
            lines.append(f"| {name} | {r['rollouts']} | {' | '.join(at)} | {valid[-1]:.2f} |")
    plots = "`fidelity.png`, `long_rollouts.png`" if "long_rollouts" in report else "`fidelity.png`"
    lines += ["", f"Plots: {plots}; videos (real | dream | 4x error): `videos/`.", ""]
    return "\n".join(lines)


def physics_markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        *heading("Physics from pixels (PhyWorld method)", report),
        f"Model `{report['model']}`. {s['episodes']} held-out episodes per scenario and split, {report['context']} real "
        f"context frames, {s['horizon']} dreamed frames. Each ball is parsed by its colour (centre = coverage centroid, "
        "radius = sqrt(area / pi)); velocities by central differences, in world units/s (the box is 10 units high, "
        "10 frames/s). The **parser floor** is the same parser on the real frames: what a perfect dream would score.",
        "",
        "## Targets",
        "",
        *[f"- {r['target']}: ratio {r['ratio']:.2f}, {'PASS' if r['passed'] else 'FAIL'}" for r in report["targets"]],
        "",
        "## Results",
        "",
        "| group | frames | velocity error | radius drift | colour drift | count violations | momentum drift | energy drift | gravity |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in report["groups"].items():
        for who in ("model", "parser_floor"):
            m = entry[who]
            gravity = "-" if m["gravity"] is None else f"{m['gravity']:.2f} ± {m['gravity_std']:.2f} ({m['gravity_fits']})"
            lines.append(
                f"| {name} | {'dream' if who == 'model' else 'real (floor)'} | {fmt(m['velocity_error'], 3)} | "
                f"{fmt(m['radius_drift'], 3)} | {fmt(m['color_drift'], 1)} | {m['count_violations']:.3f} | "
                f"{fmt(m['momentum_drift'], 3)} | {fmt(m['energy_drift'], 3)} | {gravity} |"
            )
    lines += [
        "",
        "Velocity error: mean |v - v_hat| (units/s) over balls and frames. Radius drift: mean |r_hat - r| (units). Colour drift: "
        "mean RGB distance of a ball's core pixels to its true colour. Count violations: fraction of dreamed frames missing "
        "a ball. Momentum / energy drift: change across ball-ball collisions, relative to the balls' summed momentum "
        "magnitudes / to the kinetic energy before (0 for the true elastic physics; the floor shows what finite differences "
        "two frames from the contact leave). "
        "Gravity: fitted to the red ball's height in free flight (true: 9.8), mean ± std (fits).",
        "",
        "Plot: `physics.png`; videos (real | dream | 4x error): `videos/`.",
        "",
    ]
    return "\n".join(lines)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fidelity(report: dict, out: Path) -> list[Path]:
    """PSNR and SSIM against horizon, one column per group; long-rollout validity over time."""
    plt = pyplot()
    groups = report["groups"]
    fig, axes = plt.subplots(2, len(groups), figsize=(3.6 * len(groups), 6.4), squeeze=False)
    for column, (name, entry) in enumerate(groups.items()):
        for row, metric in enumerate(("psnr", "ssim")):
            ax = axes[row, column]
            for method, curve in entry["curves"].items():
                values = curve[metric]
                style = "-" if method == "model" else "--"
                ax.plot(range(1, len(values) + 1), values, style, label=method, linewidth=2 if method == "model" else 1)
            ax.set(xscale="log", xlabel="horizon (frames)", ylabel=metric.upper(), title=name)
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Open-loop fidelity of {report['model']}")
    fig.tight_layout()
    paths = [out / "fidelity.png"]
    with atomic_write(paths[0], "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    if "long_rollouts" in report:
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for name, r in report["long_rollouts"].items():
            ax.plot(range(1, len(r["valid"]) + 1), r["valid"], label=f"{name} ({r['rollouts']})")
        ax.set(xscale="log", xlabel="dreamed frames", ylabel="fraction still valid", ylim=(-0.02, 1.02), title="Long rollouts")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / "long_rollouts.png")
        with atomic_write(paths[-1], "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        plt.close(fig)
    return paths


def plot_physics(report: dict, out: Path) -> list[Path]:
    """Velocity error of the dream beside the parser floor, per group."""
    plt = pyplot()
    names = list(report["groups"])
    dream = [report["groups"][n]["model"]["velocity_error"] or 0.0 for n in names]
    floor = [report["groups"][n]["parser_floor"]["velocity_error"] or 0.0 for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 3.8))
    ax.bar(x - 0.2, dream, 0.4, label="dream")
    ax.bar(x + 0.2, floor, 0.4, label="parser floor (real frames)")
    ax.set_xticks(x, names, rotation=20)
    ax.set(ylabel="velocity error (units/s)", title=f"Physics from pixels: {report['model']}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "physics.png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return [path]
