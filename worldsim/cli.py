"""The ``worldsim`` command: sub-commands that take Hydra overrides (``key=value``) from ``configs/``."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, OmegaConf

from worldsim.errors import UserError, accepted_number, is_integer, is_number

if TYPE_CHECKING:
    from worldsim.bench.config import FidelityConfig, RLConfig, SpeedConfig

CONFIG_MODULE = "worldsim.configs"


class UsageError(UserError):
    """A mistake in the shape of the command line (sub-command, key, override syntax): exit status 2."""


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[DictConfig, str | None], None]
    config: str  # the config in configs/ it composes
    modes: tuple[str, ...] = ()  # a first positional word it requires, e.g. `bench speed`
    example: str = ""
    mode_group: str | None = None  # the config group the mode chooses (bench: configs/bench/<mode>.yaml)


def run_collect(cfg: DictConfig, mode: str | None) -> None:
    from worldsim.data.collect import collect

    world = cli_world(cfg)
    scenarios = world.check_scenarios(to_python(cfg.scenario)) if world.scenarios else None
    env_kwargs = {key: to_python(cfg[key]) for key in world.env_args}
    summary = collect(
        world.env_id,
        out=cfg.out,
        episodes=cfg.episodes,
        env_kwargs=env_kwargs,
        scenarios=scenarios,
        stills=cfg.stills,
        policy=str(cfg.policy),
        epsilon=cfg.epsilon,
        algo=cfg.algo,
        seed=cfg.seed,
        progress=cfg.progress,
    )
    print(summary)


def cli_world(cfg: DictConfig):
    """The world record (:mod:`worldsim.envs.worlds`) that ``world=`` chose."""
    from worldsim.envs.worlds import world_named

    return world_named(cfg.world.name)


def run_train(cfg: DictConfig, mode: str | None) -> None:
    from worldsim.training.config import ModelConfig, TrainConfig, VAEConfig

    for key in ("data", "model.vae"):
        if OmegaConf.is_missing(cfg, key) and (key == "data" or cfg.stage == "dit"):
            raise UsageError(f"`worldsim train` needs {key}=...; see `worldsim train --help`")
    data = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    train_cfg = as_dataclass(TrainConfig, cfg.train, "train")
    common = dict(data=data, out=cfg.out, steps=cfg.steps, resume=cfg.resume, device=cfg.device, progress=cfg.progress)
    if cfg.stage == "vae":
        from worldsim.training.vae import train_vae

        path = train_vae(vae_cfg=as_dataclass(VAEConfig, cfg.vae, "vae"), cfg=train_cfg, **common)
    elif cfg.stage == "dit":
        from worldsim.training.loop import train

        model_cfg = as_dataclass(ModelConfig, cfg.model, "model")
        path = train(model_cfg=model_cfg, cfg=train_cfg, init=cfg.init, **common).checkpoint
    else:
        raise UsageError(f"unknown stage {cfg.stage!r}; choose dit or vae")
    print(f"trained {cfg.steps} steps; latest checkpoint: {path}")


def run_demo(cfg: DictConfig, mode: str | None) -> None:
    from worldsim.demo import run_demo as demo

    keys = ("model", "episodes", "horizon", "prompt", "seed", "scale", "device", "out", "progress")
    demo(**{key: to_python(cfg[key]) for key in keys})


def run_bench(cfg: DictConfig, mode: str | None) -> None:
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    from worldsim.bench.config import MODES

    command = bench_command(cfg, mode)
    settings = as_dataclass(MODES[mode], cfg, "bench")
    if mode == "speed":
        paths = bench_speed(settings, mode, command)
    elif mode == "rl":
        paths = bench_rl(settings, mode, command)
    else:
        paths = bench_fidelity(settings, mode, command)
    for path in paths:
        print(f"wrote {path}")


def bench_command(cfg: DictConfig, mode: str) -> str:
    """The command line that made a report: the real one, or from Python the settings that reproduce it."""
    if sys.argv[1:3] == ["bench", mode]:
        return shlex.join(["worldsim", *sys.argv[1:]])
    from worldsim.bench.config import BenchConfig

    shared = [f.name for f in fields(BenchConfig)]  # after the mode's own keys, as the mode's file comes first
    keys = [key for key in cfg if key not in shared] + [key for key in shared if key in cfg]
    settings = {key: to_python(cfg[key]) for key in keys if cfg[key] is not None}
    return f"worldsim bench {mode} " + " ".join(f"{key}={value}".replace(" ", "") for key, value in settings.items())


def bench_speed(cfg: SpeedConfig, mode: str, command: str) -> list:
    from worldsim.bench import speed
    from worldsim.training.loop import sizes_of

    sizes, size = speed.preset(cfg.preset), [32, 32]
    if cfg.model is not None:
        sizes, size = sizes_of(str(cfg.model))
    size = cfg.frame_size or list(size)
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and x > 0 for x in size)):
        raise UserError(f"frame_size must be two positive integers [H, W], got {size}")
    report = speed.run_speed(sizes, tuple(size), speed.resolve_devices(cfg.device), cfg.grid())
    return speed.write_report(report, cfg.out or f"benchmarks/results/{mode}", command)


def bench_fidelity(cfg: FidelityConfig, mode: str, command: str) -> list:
    if cfg.model is None:
        raise UsageError(f"`worldsim bench {mode}` needs model=NAME_OR_PATH (a shipped model's name, a model folder or a run folder)")
    from worldsim.bench import fidelity
    from worldsim.model.world_model import load

    steps = cfg.sampler_steps
    if steps is not None and not isinstance(steps, int):
        raise UserError(f"sampler_steps must be one integer for {mode} (a list is for speed's grid), got {steps}")
    device = one_device(cfg.device)
    settings = cfg.settings(device)
    model = load(str(cfg.model), device)
    report = (fidelity.run_fidelity if mode == "fidelity" else fidelity.run_physics)(model, settings)
    return fidelity.write_report(report, mode, cfg.out or f"benchmarks/results/{mode}", command, str(cfg.model))


def one_device(device: str) -> str:
    """``auto``: CUDA where available, else the CPU."""
    if device != "auto":
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def bench_rl(cfg: RLConfig, mode: str, command: str) -> list:
    from worldsim.envs.worlds import WORLDS, world

    if cfg.model is None:
        titles = " or ".join(w.title for w in WORLDS)
        raise UsageError(f"`worldsim bench rl` needs model=NAME_OR_PATH (a world model of {titles})")
    from worldsim.bench import rl
    from worldsim.model.world_model import load

    learned, kwargs = world(load(str(cfg.model)).config.env_id), {}
    if learned.scenarios:
        kwargs["scenario"] = learned.rl_scenario if cfg.scenario == "all" else str(cfg.scenario)
    settings = cfg.dyna_settings()
    report = rl.run_rl(
        str(cfg.model), cfg.algo, settings, cfg.seeds, cfg.work, one_device(cfg.device), cfg.progress, cfg.model_free_budget, **kwargs
    )
    return rl.write_report(report, cfg.out or "benchmarks/results/rl", command)


def run_play(cfg: DictConfig, mode: str | None) -> None:
    if OmegaConf.is_missing(cfg, "model"):
        raise UsageError("`worldsim play` needs model=NAME_OR_PATH (a shipped model's name, a model folder or a run folder)")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    from worldsim.viewer import Viewer

    world = {key: to_python(cfg[key]) for key in ("scenario", "frame_size") if cfg[key] is not None}
    viewer = Viewer(
        str(cfg.model),
        cfg.device,
        cfg.sampler_steps,
        cfg.seed,
        cfg.fps,
        cfg.side_by_side,
        cfg.record_dir,
        cfg.rewind_steps,
        compile=cfg.compile,
        precision=cfg.precision,
        **world,
    )
    summary = viewer.run(cfg.replay, cfg.max_steps, cfg.screenshot)
    print(
        f"played {summary.steps} steps in {summary.seconds:.1f} s ({summary.frames_per_second:.1f} frames/s; "
        f"a step after the first: {summary.step_frames_per_second:.1f} frames/s, median)"
    )


def run_agent(cfg: DictConfig, mode: str | None) -> None:
    if OmegaConf.is_missing(cfg, "model"):
        raise UsageError("`worldsim agent` needs model=NAME_OR_PATH (a shipped model's name, a model folder or a run folder)")
    from worldsim.agents.imagination import train_in_dream
    from worldsim.model.world_model import load

    settings = agent_settings(cfg)  # checked before the model loads
    chosen = cli_world(cfg)
    world = {key: to_python(cfg[key]) for key in chosen.env_args if cfg.get(key) is not None}
    if chosen.scenarios:
        world["scenario"] = cfg.scenario
    if chosen.max_steps_arg and cfg.max_steps is not None:
        world[chosen.max_steps_arg] = cfg.max_steps
    if "frame_size" in world:
        world["frame_size"] = tuple(world["frame_size"])
    model = load(str(cfg.model), cfg.device)
    if model.config.env_id != chosen.env_id:
        raise UserError(f"model {cfg.model} learned {model.config.env_id}, not world={chosen.name} ({chosen.env_id})")
    if mode == "dyna":
        return run_dyna(cfg, settings, world)
    report = train_in_dream(
        model,
        cfg.algo,
        cfg.steps,
        cfg.out,
        num_envs=settings.num_envs,
        eval_episodes=settings.eval_episodes,
        seed=settings.seed,
        eval_seed=settings.eval_seed,
        device=cfg.device,
        sampler_steps=cfg.sampler_steps,
        frame_stack=settings.frame_stack,
        normalize_reward=settings.normalize_reward,
        progress=cfg.progress,
        model_name=str(cfg.model),
        **world,
    )
    print(
        f"trained {cfg.algo} for {report.dream_steps} dream steps in {report.seconds:.0f} s; real return over "
        f"{len(report.returns)} episodes: {report.mean_return:.2f} +- {report.std_return:.2f}"
    )
    for name in ("policy.zip", "returns.json", "real_vs_dream.mp4"):
        print(f"wrote {Path(cfg.out) / name}")


def agent_settings(cfg: DictConfig):
    """The :class:`~worldsim.agents.dyna.DynaSettings` of ``configs/agent.yaml``, which check its keys
    (both modes': ``agent train`` takes its envs, evaluation, seeds and wrappers from them)."""
    from worldsim.agents.dyna import DynaSettings

    # configs/agent.yaml holds DynaSettings' keys by name, but for dream_steps, which is `steps` there
    values = {f.name: to_python(cfg[f.name]) for f in fields(DynaSettings) if f.name in cfg}
    return DynaSettings(**{**values, "dream_steps": cfg.steps})


def run_dyna(cfg: DictConfig, settings, world: dict) -> None:
    from worldsim.agents.dyna import dyna, model_free, plot_returns

    out = Path(cfg.out)
    curves = {"dyna": dyna(str(cfg.model), cfg.algo, out, settings, cfg.device, cfg.resume, cfg.progress, **world)}
    if cfg.baseline:
        curves["model-free"] = model_free(str(cfg.model), cfg.algo, out, settings, cfg.device, cfg.progress, **world)
    plot_returns(curves, out / "returns.png", f"{cfg.algo.upper()} on {cfg.world.name}: real return vs real steps")
    for name, rows in curves.items():
        last = rows[-1]
        mean, std = float(last["mean_return"]), float(last["std_return"])
        print(f"{name}: real return {mean:.2f} +- {std:.2f} after {last['real_steps']} real steps")
    for name in ("dyna.csv", *(["model_free.csv"] if cfg.baseline else []), "returns.png", "policy.zip"):
        print(f"wrote {out / name}")


# ------------------------------------------------------------------------- settings checked on entry
# Each check returns None for a value it accepts, else what it accepts. A key that a dataclass checks
# is not checked here too: train.*, model.* and vae.* are checked by their dataclasses
# (worldsim.training.config), bench's fidelity keys by fidelity.Settings, and the Dyna keys of bench rl
# and agent (real_steps, num_envs, frame_stack, ...) by DynaSettings (worldsim.agents.dyna).


def integer(low: int, optional: bool = False):
    def check(value):
        if (value is None and optional) or is_integer(value, low):
            return None
        return accepted_number(low, integer=True) + (" or null" if optional else "")

    return check


def number(low: float, high: float | None = None, optional: bool = False):
    def check(value):
        if (value is None and optional) or is_number(value, low, high):
            return None
        return accepted_number(low, high) + (" or null" if optional else "")

    return check


def boolean(value):
    return None if isinstance(value, bool) else "true or false"


def device(auto: bool):
    def check(value):
        choices = ("auto", "cpu", "cuda") if auto else ("cpu", "cuda")
        if value not in choices and not (isinstance(value, str) and value.startswith("cuda:")):
            return listing(choices)
        if value.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return f"{listing(choices[:-1]) if auto else 'cpu'} (torch sees no CUDA device here)"
        return None

    return check


def folder(optional: bool = False):
    def check(value):
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            return "a folder path"
        path = Path(value)
        # A file where the folder or one of its parents should be fails only once work is done.
        for part in (path, *path.parents):
            if part.exists():
                return None if part.is_dir() else f"a folder path ({part} is a file)"
        return None

    return check


def one_of(*choices):
    return lambda value: None if value in choices else listing(choices)


def listing(choices) -> str:
    """``a, b or c``."""
    words = [str(c) for c in choices]
    return ", ".join(words[:-1]) + " or " + words[-1]


COMMON = {"progress": boolean}
SETTINGS = {
    "collect": {
        "episodes": integer(0),
        "stills": integer(0),
        "epsilon": number(0, 1),
        "algo": one_of("ppo", "a2c", "dqn"),
        "seed": integer(0),
        "out": folder(),
        **COMMON,
    },
    "train": {
        "steps": integer(1),
        "out": folder(),
        "stage": one_of("dit", "vae"),
        "resume": boolean,
        "device": device(auto=True),
        **COMMON,
    },
    "play": {
        "device": device(auto=False),
        "sampler_steps": integer(1, optional=True),
        "seed": integer(0),
        "fps": number(0, optional=True),
        "side_by_side": boolean,
        "rewind_steps": integer(1),
        "record_dir": folder(),
        "max_steps": integer(1, optional=True),
        "compile": boolean,
        "precision": one_of("float32", "bfloat16"),
    },
    "bench": {
        "device": device(auto=True),
        "out": folder(optional=True),
        "threads": integer(1, optional=True),
        "quick": boolean,
        "seed": integer(0, optional=True),
        "preset": one_of("tiny", "small", "base"),
        "algo": one_of("ppo", "dqn"),
        "seeds": integer(1),
        "work": folder(),
        **COMMON,
    },
    "agent": {
        "algo": one_of("ppo", "dqn"),
        "steps": integer(1),
        "device": device(auto=False),
        "sampler_steps": integer(1, optional=True),
        "max_steps": integer(1, optional=True),
        "out": folder(),
        "baseline": boolean,
        "resume": boolean,
        **COMMON,
    },
    "demo": {
        "episodes": integer(1),
        "horizon": integer(3),
        "seed": integer(0),
        "scale": integer(1),
        "device": device(auto=False),
        "out": folder(),
        **COMMON,
    },
}
ABSENT = object()


def check_settings(cfg: DictConfig, checks: dict) -> None:
    """Raises a UserError naming the first setting whose value its check refuses (a missing ``???`` is left to its command)."""
    for key, check in checks.items():
        value = to_python(OmegaConf.select(cfg, key, default=ABSENT))
        if value is ABSENT:
            continue
        accepted = check(value)
        if accepted is not None:
            raise UserError(f"{key} must be {accepted}, got {value!r}")


def to_python(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def as_dataclass(cls, node: DictConfig, what: str):
    """The composed ``node`` as the dataclass ``cls``, whose own checks then run (ranges, sizes that must divide)."""
    from worldsim.training.config import from_dict

    return from_dict(cls, to_python(node), what)


# ------------------------------------------------------------------------- structured configs
# configs/model/, configs/train/, the vae: block of configs/train.yaml and configs/bench/ are bound to
# their dataclasses: each YAML names its schema first in its defaults list, and Hydra then refuses a
# key the dataclass lacks and a value of another type. OmegaConf converts some values that worldsim
# refuses (1 or "yes" for a bool), so overrides of those keys are checked before composing.

LEGACY_KEYS = {
    f"train.{name}": f"train.noise.{name}"
    for name in ("context_prob", "context_noise_max", "logit_mean", "logit_std", "uniform_prob", "clean_prob")
}


def register_schemas() -> None:
    """Stores the schemas that the YAML files name in Hydra's ConfigStore (idempotent)."""
    from worldsim.bench.config import FidelityConfig, RLConfig, SpeedConfig
    from worldsim.training.config import ModelConfig, TrainConfig, VAEConfig

    store("model", "base_model", ModelConfig)
    store("train", "base_train", TrainConfig)
    store("schema", "vae", VAEConfig)
    for name, cls in (("speed", SpeedConfig), ("fidelity", FidelityConfig), ("rl", RLConfig)):
        store("bench", f"{name}_schema", cls, package="_global_")


def store(group: str, name: str, cls: type, package: str | None = None) -> None:
    """Stores ``cls``'s schema as ``group/name``, writable throughout (OmegaConf makes the node of a
    frozen dataclass, such as NoiseSchedule, read-only: overrides would be refused)."""
    from hydra.core.config_store import ConfigStore

    node = OmegaConf.structured(cls)
    nodes = [node]
    while nodes:
        current = nodes.pop()
        OmegaConf.set_readonly(current, False)
        nodes += [value for value in current.values() if isinstance(value, DictConfig)]
    ConfigStore.instance().store(group=group, name=name, node=node, package=package)


def with_current_keys(overrides: list[str]) -> list[str]:
    """``overrides`` with the spellings from before a key moved (``train.clean_prob``: ``train.noise.clean_prob``)."""
    renamed = []
    for override in overrides:
        key, value = override.split("=", 1)
        renamed.append(f"{LEGACY_KEYS.get(key, key)}={value}")
    return renamed


def override_schemas(name: str, mode: str | None) -> dict[str, type]:
    """The dataclasses bound to a command's config, by the key they sit under ("": top level)."""
    if name == "train":
        from worldsim.training.config import ModelConfig, TrainConfig, VAEConfig

        return {"train": TrainConfig, "model": ModelConfig, "vae": VAEConfig}
    if name == "bench" and mode is not None:
        from worldsim.bench.config import MODES

        return {"": MODES[mode]}
    return {}


def check_override_types(name: str, mode: str | None, overrides: list[str]) -> None:
    """Raises a UserError for an override of a dataclass field whose value has another type than the
    field's (``train.lr=abc``, ``train.images=1``): the dataclass's own message where it has one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    schemas = override_schemas(name, mode)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides) if schemas else []
    except HydraException:
        return  # composing reports it
    for override in parsed:
        key, value = override.key_or_group, override.value()
        parts = key.split(".")
        if isinstance(value, str) and "${" in value:
            continue
        if "" in schemas:  # bench: the mode's keys are top-level
            section, path = "", parts
        elif parts[0] in schemas and len(parts) > 1:
            section, path = parts[0], parts[1:]
        else:
            continue
        refuse_wrong_type(schemas[section], section or "bench", path, value, key, SETTINGS[name])


def refuse_wrong_type(cls: type, what: str, path: list[str], value, key: str, checks: dict) -> None:
    """Raises a UserError if ``value`` does not fit the field ``path`` of ``cls`` (an unknown field is left to Hydra)."""
    from worldsim.training.config import from_dict

    hints = get_type_hints(cls)
    for step in path[:-1]:  # into a nested dataclass (train.noise)
        if not is_dataclass(hints.get(step)):
            return
        hints = get_type_hints(hints[step])
    hint = hints.get(path[-1])
    if hint is None or fits(hint, value):
        return
    if key in checks and checks[key](value) is not None:
        raise UserError(f"{key} must be {checks[key](value)}, got {value!r}")
    nested = value
    for step in reversed(path[1:]):
        nested = {step: nested}
    from_dict(cls, {path[0]: nested}, what or "bench")  # the dataclass's own check names the value and what it accepts
    raise UserError(f"{key} must be {type_words(hint)}, got {value!r}")


def fits(hint, value) -> bool:
    """Whether ``value`` (as parsed from the command line) has the type ``hint`` without conversion."""
    if hint is Any:
        return True
    if isinstance(hint, UnionType) or get_origin(hint) is Union:
        return any(fits(arg, value) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if get_origin(hint) is list:
        return isinstance(value, list) and all(fits(get_args(hint)[0], v) for v in value)
    if is_dataclass(hint):
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:  # an int is a fine float; nan and inf are left to the dataclass's range check
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return is_integer(value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def type_words(hint) -> str:
    """How an error names a type: ``an integer or null``."""
    if isinstance(hint, UnionType) or get_origin(hint) is Union:
        return " or ".join(type_words(arg) for arg in get_args(hint))
    if get_origin(hint) is list:
        return f"a list of {type_words(get_args(hint)[0]).removeprefix('an ').removeprefix('a ')}s"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


COMMANDS = {
    "collect": Command(
        "roll a policy in a real world and write episodes",
        run_collect,
        config="collect",
        example="worldsim collect world=balls scenario=collision episodes=100 frame_size=[64,64] out=data/balls",
    ),
    "train": Command(
        "train a world model (or its VAE codec) on collected episodes",
        run_train,
        config="train",
        example="worldsim train data=data/balls model=small steps=20000 out=runs/balls",
    ),
    "play": Command(
        "play a world model with the keyboard in a pygame window", run_play, config="play", example="worldsim play model=balls"
    ),
    "bench": Command(
        "fidelity, physics, speed and RL benchmarks",
        run_bench,
        config="bench",
        modes=("fidelity", "physics", "speed", "rl"),
        example="worldsim bench fidelity model=runs/balls out=benchmarks/results/fidelity",
        mode_group="bench",
    ),
    "agent": Command(
        "train agents in imagination, evaluate them in the real world",
        run_agent,
        config="agent",
        modes=("train", "dyna"),
        example="worldsim agent train world=balls scenario=push model=runs/balls algo=ppo steps=20000",
    ),
    "demo": Command("show what worldsim does, in a few minutes on a CPU", run_demo, config="demo", example="worldsim demo"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command line; a user's mistake (UserError) is one line on stderr, anything else an
    internal error with its traceback (so a bug never reads as a usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return dispatch(argv)
    except UserError as error:
        if os.environ.get("WORLDSIM_DEBUG"):
            raise
        print(f"worldsim: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


def dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise UsageError(f"unknown sub-command {name!r}; choose one of {', '.join(COMMANDS)}")
    command = COMMANDS[name]
    mode = None
    if command.modes and not (rest and rest[0] in ("-h", "--help")):
        if not rest or rest[0] not in command.modes:
            given = repr(rest[0]) if rest else "nothing"
            raise UsageError(f"`worldsim {name}` needs one of {', '.join(command.modes)} first; got {given}")
        mode, rest = rest[0], rest[1:]
    if rest and rest[0] in ("-h", "--help"):
        print(command_help(name, command))
        return 0
    bad = [arg for arg in rest if "=" not in arg or arg.startswith("-")]
    if bad:
        raise UsageError(f"expected key=value overrides, got {bad[0]!r}; see `worldsim {name} --help`")
    rest = with_current_keys(rest)
    check_override_types(name, mode, rest)
    cfg = compose(command.config, rest, [f"{command.mode_group}={mode}"] if command.mode_group else [])
    check_settings(cfg, SETTINGS[name])
    command.run(cfg, mode)
    return 0


def compose(config: str, overrides: list[str], choices: Sequence[str] = ()) -> DictConfig:
    """Composes ``configs/<config>.yaml`` with ``overrides`` (and the group ``choices`` a mode made,
    e.g. ``bench=speed``); a bad key or choice is a UsageError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException

    register_schemas()
    plain = plain_overrides(config, overrides)
    overrides = [o for o in overrides if o not in plain]
    try:
        with initialize_config_module(CONFIG_MODULE, version_base=None):
            cfg = hydra_compose(config, overrides=[*choices, *overrides])
            for override in plain:
                key, value = override.split("=", 1)
                cfg[key] = OmegaConf.create({"value": value})["value"] if value else None  # YAML typing, as Hydra's
            OmegaConf.resolve(cfg)
            return with_world_record(cfg)
    except MissingConfigException as error:
        group = next((g for g in config_groups() if any(o.startswith(f"{g}=") for o in overrides)), None)
        if group is None:
            raise UsageError(first_line(error)) from None
        choice = next(o.split("=", 1)[1] for o in overrides if o.startswith(f"{group}="))
        raise UsageError(f"unknown {group} {choice!r}; choose one of {', '.join(group_options(group))}") from None
    except ConfigCompositionException as error:
        key = str(error).split("'")[1] if str(error).startswith("Could not override '") else None
        if key is None:
            raise UsageError(first_line(error)) from None
        keys = config_keys(config, [*choices, *(o for o in overrides if o.split("=")[0] in config_groups())])
        if key in keys:  # a known mapping (e.g. model_train) given keys it does not hold yet: Hydra says how
            raise UsageError(" ".join(str(error).split("\n")[:2])) from None
        raise UsageError(f"unknown config key {key!r} for `{config}`; valid keys: {', '.join(keys)}") from None
    except HydraException as error:
        raise UsageError(first_line(error)) from None


def with_world_record(cfg: DictConfig) -> DictConfig:
    """``cfg`` with its world's real id and CLI world arguments (``world.env_id``, ``world.env_args``)
    from the world registry, where ``world=`` chose one: ``configs/world/`` holds only defaults."""
    if "world" not in cfg:
        return cfg
    from omegaconf import open_dict

    world = cli_world(cfg)
    with open_dict(cfg):
        cfg.world.env_id, cfg.world.env_args = world.env_id, list(world.env_args)
    return cfg


def plain_overrides(config: str, overrides: list[str]) -> list[str]:
    """The overrides of ``config``'s plain keys that share a name with a config group: ``model=``
    names a world model in play and bench, but a size preset (the group) in train. Hydra would
    read them as group choices, so they are set after composing."""
    primary = OmegaConf.create(resources.files(CONFIG_MODULE).joinpath(f"{config}.yaml").read_text())
    shadowed = (set(config_groups()) & set(primary.keys())) - set(chosen_groups(config))
    return [o for o in overrides if "=" in o and o.split("=", 1)[0] in shadowed]


def chosen_groups(config: str) -> list[str]:
    """The config groups that ``config``'s defaults list chooses from (``train``: model, train)."""
    primary = OmegaConf.create(resources.files(CONFIG_MODULE).joinpath(f"{config}.yaml").read_text())
    return [next(iter(entry)) for entry in primary.get("defaults", []) if isinstance(entry, DictConfig)]


def config_keys(config: str, group_overrides: list[str]) -> list[str]:
    """The top-level keys of a composed config, groups included as ``group=``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(CONFIG_MODULE, version_base=None):
        cfg = hydra_compose(config, overrides=group_overrides)
    groups = chosen_groups(config)
    return [f"{key}=" if key in groups else key for key in cfg] + [f"{g}=" for g in groups if g not in cfg]


def config_groups() -> list[str]:
    root = resources.files(CONFIG_MODULE)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("__"))


def group_options(group: str) -> list[str]:
    if group == "world":  # the world registry is the one list of worlds (configs/world/ holds their defaults)
        from worldsim.envs.worlds import WORLDS

        return [world.name for world in WORLDS]
    files = resources.files(CONFIG_MODULE).joinpath(group).iterdir()
    return sorted(p.name.removesuffix(".yaml") for p in files if p.name.endswith(".yaml"))


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: worldsim <command> [mode] [key=value ...]",
        "",
        "A generative video model as an interactive world simulator.",
        "",
        "commands:",
    ]
    for name, command in COMMANDS.items():
        modes = f" {'|'.join(command.modes)}" if command.modes else ""
        lines.append(f"  {name:<{width}}  {command.help}{modes and f' [{modes.strip()}]'}")
    lines += ["", "Each command takes Hydra overrides composed from configs/; `worldsim <command> --help` shows them."]
    return "\n".join(lines)


def command_help(name: str, command: Command) -> str:
    lines = [f"usage: worldsim {name}{' ' + '|'.join(command.modes) if command.modes else ''} [key=value ...]", "", command.help]
    if command.example:
        lines += ["", f"example: {command.example}"]
    text = resources.files(CONFIG_MODULE).joinpath(f"{command.config}.yaml").read_text()
    lines += ["", f"configs/{command.config}.yaml:", text.rstrip()]
    for group in config_groups():
        if group == command.mode_group:  # chosen by the mode: show each mode's keys
            for option in group_options(group):
                mode_text = resources.files(CONFIG_MODULE).joinpath(group, f"{option}.yaml").read_text()
                lines += ["", f"configs/{group}/{option}.yaml:", mode_text.rstrip()]
        elif f"- {group}:" in text:
            lines.append(f"\n{group}= choices: {', '.join(group_options(group))}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
