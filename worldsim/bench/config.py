"""What ``worldsim bench MODE`` takes: one dataclass per benchmark, bound (Hydra structured configs)
to ``configs/bench/MODE.yaml``, with the keys every benchmark shares in ``configs/bench.yaml``. The
keys stay top-level (``worldsim bench speed batch_sizes=[1,8]``); a key of another benchmark is refused.
Each turns into what its benchmark runs on (a speed grid, fidelity settings, Dyna settings) by its
fields' names, so that a key added to both sides needs no copying."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, get_args, get_type_hints

from worldsim.errors import check_integer


@dataclass
class BenchConfig:
    """The keys of every benchmark (``configs/bench.yaml``)."""

    model: str | None = None  # a shipped name, model folder or run folder (speed: null uses preset)
    out: str | None = None  # null: benchmarks/results/<mode>
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (null: torch's default)
    progress: bool = True


@dataclass
class SpeedConfig(BenchConfig):
    """``worldsim bench speed`` (``configs/bench/speed.yaml``); a null grid key takes the full or quick
    grid's value. ``model`` (a trained model) goes to the grid too: the run times its weights."""

    preset: str = "small"
    frame_size: Any = None  # [H, W]; null: the model's own, or [32, 32] for a preset
    quick: bool = False
    batch_sizes: list[int] | None = None
    sampler_steps: list[int] | None = None
    guidance: float | None = None
    windows: list[int] | None = None
    window_batch_sizes: list[int] | None = None
    repeats: int | None = None
    max_seconds: float | None = None
    seed: int | None = 0
    compile: bool = False
    bf16: bool = False

    def grid(self):
        """The :class:`~worldsim.bench.speed.SpeedGrid` to time: the full or quick one, with the keys given here."""
        from worldsim.bench import speed

        return replace(speed.QUICK if self.quick else speed.FULL, **given(self, speed.SpeedGrid))


@dataclass
class FidelityConfig(BenchConfig):
    """``worldsim bench fidelity`` and ``physics`` (``configs/bench/fidelity.yaml``, ``physics.yaml``); null: Settings' default."""

    scenario: Any = "all"  # Balls scenarios: all, one name, or a list
    episodes: int | None = 16
    horizon: int | None = 64
    context: int | None = None  # null: the model's training window
    sampler_steps: Any = None  # one k (null: the model's); a list is refused with a hint at speed
    precision: str = "float32"  # the simulator's: float32 | bfloat16
    long_steps: int | None = 1000
    long_rollouts: int | None = 8
    perturbation: float | None = 0.01
    videos: int | None = 2
    seed: int | None = 1_000_000

    def settings(self, device: str):
        """The :class:`~worldsim.bench.fidelity.Settings` of a run on ``device``."""
        from worldsim.bench.fidelity import Settings

        scenarios = self.scenario
        if scenarios not in (None, "all"):
            scenarios = tuple([scenarios] if isinstance(scenarios, str) else scenarios)
        return Settings(**{**given(self, Settings), "scenarios": None if scenarios in (None, "all") else scenarios, "device": device})


@dataclass
class RLConfig(BenchConfig):
    """``worldsim bench rl`` (``configs/bench/rl.yaml``): the Dyna settings plus the seeds and where runs go."""

    scenario: str = "all"  # Balls: the task (all: the world's RL scenario)
    algo: str = "ppo"
    seeds: int = 3
    real_steps: int = 20_000
    iterations: int = 5
    model_steps: int = 500
    model_lr: float = 3e-4
    model_terminal_repeats: int = 8
    model_train: dict[str, Any] = field(default_factory=dict)
    model_init: str = "last"
    model_data: list[str] = field(default_factory=list)
    fresh: bool = False
    dream_steps: int = 20_000
    num_envs: int = 16
    frame_stack: int = 4
    normalize_reward: bool = True
    replay_starts: bool = True
    imagination_horizon: int | None = 15
    compile: bool = False
    precision: str = "float32"
    eval_episodes: int = 10
    work: str = "runs/bench-rl"
    seed: int | None = None  # null: DynaSettings' (0)
    model_free_budget: int = 5  # the model-free agent's real steps, in multiples of real_steps

    def __post_init__(self):
        self.dyna_settings()  # DynaSettings checks its keys as they enter, with messages that name them
        check_integer("model_free_budget", self.model_free_budget)

    def dyna_settings(self):
        """The :class:`~worldsim.agents.dyna.DynaSettings` of every seed's run (its keys not given here keep their defaults)."""
        from worldsim.agents.dyna import DynaSettings

        return DynaSettings(**given(self, DynaSettings))


MODES = {"fidelity": FidelityConfig, "physics": FidelityConfig, "speed": SpeedConfig, "rl": RLConfig}


def given(config, target) -> dict[str, Any]:
    """The fields of ``config`` that the dataclass ``target`` also has; a null for a field of
    ``target`` that takes no null is left out (``target``'s default then holds)."""
    hints = get_type_hints(target)
    values = {f.name: getattr(config, f.name) for f in fields(config) if f.name in hints}
    return {name: value for name, value in values.items() if value is not None or type(None) in get_args(hints[name])}
