"""The Dyna loop, and its model-free baseline, on a budget of real steps.

:func:`dyna` repeats, ``iterations`` times: collect real episodes with the current policy (uniformly
random at first) until its share of the ``real_steps`` budget is used -> fine-tune the world model
on all real data so far (``worldsim train`` with ``init=``: the last round's model, or with
``model_init="given"`` the given one every round; ``model_data`` adds collections to every round's
data, e.g. some of the given model's own training data as rehearsal; with ``model_steps=0`` the given
model dreams every round as it is) -> train the agent in the new model's dream
(:func:`~worldsim.agents.imagination.train_in_dream`'s pieces; the same SB3 agent learns on) ->
evaluate it in the real world. In the dream, episodes start from real frames drawn from all the
rounds' collections (``replay_starts``) and are truncated after ``imagination_horizon`` steps (15;
SB3 bootstraps the value there), as DIAMOND, IRIS and Dreamer train in imagination: the agent
learns from the dream where it is accurate, from states its real experience reached.
:func:`model_free` trains the same SB3 algorithm on the real env
itself and evaluates it at the same real-step marks: the same architecture, wrappers (frame stack,
reward normalisation) and number of envs as the dream agent. Both log real return against real steps used
to a CSV (``dyna.csv`` / ``model_free.csv``) that :func:`plot_returns` draws.

With ``fresh=True`` the first round trains a new world model of the given model's sizes from random
weights instead of fine-tuning it, so that every real step any world model learned from is counted
in the budget (the given model then only names the world and the sizes).

A killed ``dyna`` run resumes (``resume=True``) after its last finished iteration: the world model
from that iteration's checkpoint, the agent's weights from its ``policies/iter_NNN.zip`` (read
weights-only; the optimizer, the reward statistics and a DQN's replay buffer start afresh).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from worldsim.agents.imagination import FRAME_STACK, NORMALIZE_REWARD, check_wrappers, evaluate_real, load_weights, make_agent, move_agent
from worldsim.atomic import atomic_write
from worldsim.errors import UserError, accepted_number, check_bool, check_integer, is_integer, is_number
from worldsim.training.checkpoint import MetricsWriter, newest

if TYPE_CHECKING:
    from worldsim.training.config import TrainConfig

MODEL_INITS = ("last", "given")  # DynaSettings.model_init

COLUMNS = ("step", "real_steps", "mean_return", "std_return", "dream_steps", "model", "seconds")
# Dyna's also: the mean length and (unscaled) return of the round's last 100 dream episodes, as the agent
# plays them at the round's end (truncated at imagination_horizon).
DYNA_COLUMNS = (*COLUMNS, "dream_length", "dream_return")


# train.* keys that Dyna sets from its own settings (and the model's window) in every round.
DYNA_TRAIN_KEYS = frozenset(
    {"batch_size", "window_lengths", "lr", "terminal_repeats", "warmup_steps", "checkpoint_every", "keep_checkpoints", "seed"}
)


@dataclass(frozen=True)
class DynaSettings:
    """The loop's budget and sizes (the ``worldsim agent`` and ``worldsim bench rl`` keys of the same
    names), checked here where they enter; ``agent train`` takes its envs, evaluation, seeds and
    wrappers from here too."""

    real_steps: int = 20_000  # real env steps in all
    iterations: int = 5  # collect / fine-tune / dream rounds; each uses real_steps / iterations
    model_steps: int = 500  # world-model fine-tuning steps per round; 0: the given model dreams every round as it is
    model_batch_size: int = 16
    model_lr: float = 3e-4
    # Windows ending an episode (a fall, a reach) drawn this many times as often in the rounds' fine-tuning (train.terminal_repeats).
    # 1 keeps more of the shipped CartPole model's fidelity through the rounds, but its agents learned less
    # in the RL benchmark than with train's 8 (benchmarks/results/stability/recipes.md).
    model_terminal_repeats: int = 8
    # Any other train.* key for the rounds' fine-tuning, e.g. the head settings that taught push's heads
    # to end a dream at a reach on scripted push data (with model_terminal_repeats 32): {termination_weight: 10,
    # reward_weight: 10, head_rollout_prob: 0.5, rollout_steps: 3, noise: {clean_prob: 0.5}}.
    model_train: dict[str, Any] = field(default_factory=dict)
    # Which model a round fine-tunes: "last" (the last round's, so the rounds' training adds up) or "given"
    # (the given model, every round afresh on all real data so far: the rounds' drift does not add up).
    model_init: str = "last"
    # Collections mixed into every round's fine-tuning beside the real ones (rehearsal: e.g. a share of the
    # given model's own training data, so that the rounds keep what it learned of episodes unlike the
    # agent's). Like the given model's training data they are not counted as real steps, so fresh=true refuses them.
    model_data: list[str] = field(default_factory=list)
    dream_steps: int = 20_000  # agent steps in the dream per round (all envs together)
    num_envs: int = 16  # dream envs, and the model-free agent's real envs
    eval_episodes: int = 10
    eval_seed: int = 1_000_000
    seed: int = 0
    fresh: bool = False  # round 1 trains a new world model (random weights) instead of fine-tuning the given one
    frame_stack: int = FRAME_STACK  # both agents: frames the policy sees at once
    normalize_reward: bool = NORMALIZE_REWARD  # both agents
    # Imagination as DIAMOND runs it: dream episodes start from real frames of the rounds' collections
    # and are truncated (the value bootstraps) after this many steps, where the dream is still accurate.
    replay_starts: bool = True
    imagination_horizon: int | None = 15  # None: the real episode length
    # The dream envs' world model with its cached passes compiled (SpacetimeDiT.compile_passes):
    # 1.5x the dream's frames/s at 16 envs on CPU, after 10-30 s of compiling a round.
    compile: bool = False
    precision: str = "float32"  # the dream envs' (WorldSimulator): float32 | bfloat16

    def __post_init__(self):
        for name in ("real_steps", "iterations", "model_batch_size", "model_terminal_repeats", "dream_steps", "num_envs", "eval_episodes"):
            check_integer(name, getattr(self, name))
        for name in ("seed", "eval_seed"):
            check_integer(name, getattr(self, name), low=0)
        check_integer("model_steps", self.model_steps, low=0, note="0: the given world model is not fine-tuned")
        if not is_number(self.model_lr, 0, open_low=True):
            raise UserError(f"model_lr must be {accepted_number(0, open_low=True)}, got {self.model_lr!r}")
        for name in ("fresh", "replay_starts", "compile"):
            check_bool(name, getattr(self, name))
        from worldsim.simulator import check_precision

        check_precision(self.precision)
        if self.fresh and self.model_steps == 0:
            raise UserError("fresh=true trains a new world model in the first round, so model_steps must be >= 1, got 0")
        if self.model_init not in MODEL_INITS:
            raise UserError(f"model_init must be one of {', '.join(MODEL_INITS)}, got {self.model_init!r}")
        if self.fresh and self.model_init == "given":
            raise UserError("fresh=true starts round 1 from random weights; with model_init=given every round would: use model_init=last")
        if not (isinstance(self.model_data, list) and all(isinstance(path, str) and path for path in self.model_data)):
            raise UserError(f"model_data must be a list of collection folders, got {self.model_data!r}")
        if self.fresh and self.model_data:
            raise UserError(
                "fresh=true counts every frame a world model learns from in the real-step budget, so model_data must be empty, "
                f"got {self.model_data}"
            )
        if self.imagination_horizon is not None and not is_integer(self.imagination_horizon, 1):
            raise UserError(
                f"imagination_horizon must be an integer >= 1 or null (the real episode length), got {self.imagination_horizon!r}"
            )
        check_wrappers(self.frame_stack, self.normalize_reward)
        self.check_model_train()

    def check_model_train(self) -> None:
        """``model_train`` holds train keys that Dyna does not set itself, with values train accepts."""
        from worldsim.training.config import TrainConfig

        if not isinstance(self.model_train, dict):
            raise UserError(f"model_train must be a mapping of train.* keys to values, got {self.model_train!r}")
        own = DYNA_TRAIN_KEYS.intersection(self.model_train)
        if own:
            raise UserError(
                f"model_train cannot set {', '.join(sorted(own))}: Dyna sets those itself (use model_batch_size, model_lr, "
                "model_terminal_repeats, model_steps)"
            )
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(self.model_train) - known)
        if unknown:
            takes = ", ".join(sorted(known - DYNA_TRAIN_KEYS))
            raise UserError(f"model_train has no train key {', '.join(map(repr, unknown))}; it takes {takes}")
        self.train_config(0, 1)  # its values, checked as train checks them

    def train_config(self, k: int, window: int) -> TrainConfig:
        """The world model's fine-tuning config in round ``k`` on windows of ``window`` frames:
        Dyna's own settings, then ``model_train``'s keys."""
        from worldsim.training.config import TrainConfig

        return TrainConfig(
            **{
                "batch_size": self.model_batch_size,
                "window_lengths": [window],
                "lr": self.model_lr,
                "terminal_repeats": self.model_terminal_repeats,
                "warmup_steps": min(50, self.model_steps),
                "checkpoint_every": max(1, self.model_steps),  # model_steps 0 trains nothing; the config stays valid
                "keep_checkpoints": 1,
                "seed": self.seed + k,
                **self.model_train,
            }
        )

    def quota(self, k: int) -> int:
        """The real steps that may be used by the end of round (mark) ``k``, counting from 0."""
        return self.real_steps * (k + 1) // self.iterations


def real_world(model, world_kwargs: dict) -> gym.Env:
    return gym.make(model.config.env_id, **model.config.world_kwargs(**world_kwargs))


def stream_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for the random stream ``stream`` of the run seeded ``seed``. Collections seed
    their episodes ``s, s + 1, ...``, so plain ``seed + k`` would give runs seeded 0 and 1 nearly the
    same episodes; hashing (seed, stream) through ``SeedSequence`` keeps them apart."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def check_model_data(paths: list[str], env_id: str) -> None:
    """Each of ``model_data`` is a collection of the world model's world."""
    from worldsim.data.collection import Collection

    for path in paths:
        world = Collection(path).settings.get("env_id")
        if world != env_id:
            raise UserError(f"model_data collection {path} holds episodes of {world}, not of the world model's {env_id}")


def collect_steps(env_id: str, out: Path, steps: int, env_kwargs: dict, policy: str, algo: str, seed: int) -> int:
    """Collects whole episodes of ``policy`` into the collection ``out`` until it holds at least
    ``steps`` steps (only the last episode goes over); returns the steps it holds."""
    from worldsim.data.collect import collect
    from worldsim.data.collection import Collection

    scenario = env_kwargs.get("scenario")
    kwargs = {k: v for k, v in env_kwargs.items() if k != "scenario"}
    # Every episode has at least one step, so ``steps`` episodes always reach the budget.
    collect(env_id, out, steps, kwargs, [scenario] if scenario else None, policy=policy, algo=algo, seed=seed, progress=False, steps=steps)
    return sum(ref.steps for ref in Collection(out).refs())


def dyna(
    model_path: str,
    algo: str,
    out: str | Path,
    settings: DynaSettings,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    **world_kwargs,
) -> list[dict]:
    """Runs the Dyna loop (see the module docstring) from the world model ``model_path`` into
    ``out`` (``real/iter_NNN/`` collections, ``world/iter_NNN/`` runs, ``policies/iter_NNN.zip``,
    ``policy.zip``, ``dyna.csv``); returns the log rows."""
    from worldsim.agents.vec_env import DreamVecEnv
    from worldsim.envs.dream import DreamVectorEnv
    from worldsim.model.world_model import load
    from worldsim.training.loop import sizes_of, train

    out = Path(out)
    rows = read_rows(out / "dyna.csv") if resume else []
    current, agent = model_path, None
    if rows:
        current = rows[-1]["model"]
    model = load(current, device)
    check_model_data(settings.model_data, model.config.env_id)
    real = real_world(model, world_kwargs)
    env_id, context = model.config.env_id, model.config.context_frames
    log = MetricsWriter(out / "dyna.csv", DYNA_COLUMNS, keep_until=len(rows))
    real_used = int(rows[-1]["real_steps"]) if rows else 0
    start = time.perf_counter() - (float(rows[-1]["seconds"]) if rows else 0.0)  # seconds go on counting after a resume
    for k in range(len(rows), settings.iterations):
        policy = "random" if k == 0 else str(out / "policies" / f"iter_{k - 1:03d}.zip")
        quota = settings.quota(k)
        if quota > real_used:
            world = model.config.world_kwargs(**world_kwargs)
            real_used += collect_steps(
                env_id, out / "real" / f"iter_{k:03d}", quota - real_used, world, policy, algo, stream_seed(settings.seed, 0, k)
            )
        collections = sorted(str(p) for p in (out / "real").glob("iter_*"))
        if settings.model_steps > 0:  # else the given model dreams every round as it is
            sizes, _ = sizes_of(current)
            train_cfg = settings.train_config(k, context)
            run = out / "world" / f"iter_{k:03d}"
            trained = newest(run)  # the round's only checkpoint is its last step's
            if trained is not None:  # killed after this round's training: its model stands
                current = str(trained)
            else:
                start_from = model_path if settings.model_init == "given" else current
                if settings.fresh and k == 0:
                    start_from = None
                data = collections + list(settings.model_data)
                result = train(data, run, settings.model_steps, sizes, train_cfg, device=device, progress=progress, init=start_from)
                current = str(result.checkpoint)
            model = load(current, device)
        replay = collections if settings.replay_starts else None
        dream = DreamVectorEnv(
            settings.num_envs,
            model,
            device,
            horizon=settings.imagination_horizon,
            replay=replay,
            compile=settings.compile,
            precision=settings.precision,
            **world_kwargs,
        )
        venv = DreamVecEnv(dream)
        venv.seed(stream_seed(settings.seed, 1, k))
        if agent is None:
            agent = make_agent(algo, venv, settings.seed, device, settings.frame_stack, settings.normalize_reward)
            if k > 0:  # resumed: the weights of the last finished round
                load_weights(agent, out / "policies" / f"iter_{k - 1:03d}.zip", device)
        else:
            move_agent(agent, venv, settings.frame_stack, settings.normalize_reward)
        agent.learn(total_timesteps=settings.dream_steps, reset_num_timesteps=False, progress_bar=progress)
        agent.get_env().close()
        save_policy(agent, out / "policies" / f"iter_{k:03d}.zip")
        save_policy(agent, out / "policy.zip")
        returns = evaluate_real(agent, real, settings.eval_episodes, settings.eval_seed)
        row = {
            "step": k + 1,
            "real_steps": real_used,
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "dream_steps": settings.dream_steps * (k + 1),
            "model": current,
            "seconds": time.perf_counter() - start,
            "dream_length": float(np.mean([e["l"] for e in agent.ep_info_buffer])) if agent.ep_info_buffer else "",
            "dream_return": float(np.mean([e["r"] for e in agent.ep_info_buffer])) if agent.ep_info_buffer else "",
        }
        log.write(row)
        rows.append(row)
    log.close()
    real.close()
    return rows


def model_free(
    model_path: str,
    algo: str,
    out: str | Path,
    settings: DynaSettings,
    device: str = "cpu",
    progress: bool = True,
    budget: int = 1,
    **world_kwargs,
) -> list[dict]:
    """The same SB3 algorithm trained on the real env for ``budget`` times Dyna's ``real_steps``,
    evaluated at the same marks as :func:`dyna` (every ``real_steps / iterations``) and on past
    them; writes ``model_free.csv`` and ``model_free.zip`` (after every mark: a killed run
    continues from its last mark, a finished one is read back, a longer budget goes on from it).
    ``model_path`` only names the world (its env id and frame size)."""
    check_integer("budget", budget)
    marks = settings.iterations * budget
    from stable_baselines3.common.vec_env import DummyVecEnv

    from worldsim.model.world_model import load

    out = Path(out)
    rows = read_rows(out / "model_free.csv") if (out / "model_free.zip").is_file() else []
    if len(rows) >= marks:
        return rows[:marks]
    model = load(model_path)
    envs = DummyVecEnv([lambda: real_world(model, world_kwargs) for _ in range(settings.num_envs)])
    envs.seed(stream_seed(settings.seed, 2, len(rows)))
    agent = make_agent(algo, envs, settings.seed, device, settings.frame_stack, settings.normalize_reward)
    if rows:  # resumed: the weights and step count of the last mark
        load_weights(agent, out / "model_free.zip", device)
        agent.num_timesteps = int(rows[-1]["real_steps"])
    real = real_world(model, world_kwargs)
    log = MetricsWriter(out / "model_free.csv", COLUMNS, keep_until=len(rows))
    start = time.perf_counter() - (float(rows[-1]["seconds"]) if rows else 0.0)
    for k in range(len(rows), marks):
        quota = settings.quota(k)
        agent.learn(total_timesteps=quota - agent.num_timesteps, reset_num_timesteps=False, progress_bar=progress)
        returns = evaluate_real(agent, real, settings.eval_episodes, settings.eval_seed)
        row = {
            "step": k + 1,
            "real_steps": int(agent.num_timesteps),
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "dream_steps": 0,
            "model": "",
            "seconds": time.perf_counter() - start,
        }
        log.write(row)
        rows.append(row)
        save_policy(agent, out / "model_free.zip")
    log.close()
    real.close()
    agent.get_env().close()
    return rows


def save_policy(agent, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        agent.save(f)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [{key: number(value) for key, value in row.items()} for row in csv.DictReader(f)]


def number(text: str) -> int | float | str:
    """A CSV cell as written: an int, a float, or the text (a model path)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def plot_returns(curves: dict[str, list[dict]], path: Path, title: str) -> Path:
    """Real return (mean and spread) against real steps, one line per curve name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in curves.items():
        steps = np.array([float(r["real_steps"]) for r in rows])
        mean = np.array([float(r["mean_return"]) for r in rows])
        spread = np.array([float(r["std_return"]) for r in rows])
        ax.plot(steps, mean, marker="o", label=name)
        ax.fill_between(steps, mean - spread, mean + spread, alpha=0.2)
    ax.set(xlabel="real env steps", ylabel="real return", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path
