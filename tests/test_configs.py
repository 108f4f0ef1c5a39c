"""The Hydra YAML groups mirror their dataclasses (structured configs), and older files still load."""

import json
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import worldsim
from worldsim.agents.dyna import DynaSettings
from worldsim.bench import fidelity, speed
from worldsim.bench.config import MODES, FidelityConfig, RLConfig, SpeedConfig
from worldsim.cli import as_dataclass, compose, with_current_keys
from worldsim.model.flow import NoiseSchedule
from worldsim.model.world_model import WorldModelConfig
from worldsim.training.config import ModelConfig, TrainConfig, VAEConfig, from_dict


def yaml(*path: str) -> dict:
    text = resources.files("worldsim.configs").joinpath(*path).read_text()
    values = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    values.pop("defaults", None)
    return values


@pytest.mark.parametrize("path, cls", [(("train", "default.yaml"), TrainConfig), (("bench", "speed.yaml"), SpeedConfig),
                                       (("bench", "fidelity.yaml"), FidelityConfig), (("bench", "rl.yaml"), RLConfig)])  # fmt: skip
def test_a_groups_defaults_are_its_dataclass_defaults(path, cls):
    values = yaml(*path)
    if cls is not TrainConfig:  # a mode's file holds its own keys; configs/bench.yaml the shared ones
        values = {**yaml("bench.yaml"), **values}
        values.pop("defaults", None)
    assert values == json.loads(json.dumps(asdict(cls())))


def test_the_vae_block_is_vae_config():
    assert yaml("train.yaml")["vae"] == asdict(VAEConfig())


@pytest.mark.parametrize("name", ["tiny", "small", "base", "cpu"])
def test_every_model_preset_sets_every_model_key(name):
    values = yaml("model", f"{name}.yaml")
    assert set(values) == {f.name for f in fields(ModelConfig)}


def test_cpu_training_is_the_defaults_but_five_keys():
    cpu = as_dataclass(TrainConfig, compose("train", ["data=d", "train=cpu"]).train, "train")
    assert cpu == TrainConfig(batch_size=16, window_lengths=[4], lr=1e-3, log_every=50, checkpoint_every=500)


def test_one_noise_default():
    assert TrainConfig().noise == NoiseSchedule() and NoiseSchedule().clean_prob == 0.1


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["data=d"], TrainConfig()),
        (["data=d", "train.clean_prob=0.25", "train.lr=1e-3"], TrainConfig(lr=1e-3, noise=NoiseSchedule(clean_prob=0.25))),
        (["data=d", "train.noise.context_noise_max=0.05"], TrainConfig(noise=NoiseSchedule(context_noise_max=0.05))),
        (["data=d", "train=smoke"], TrainConfig(batch_size=4, window_lengths=[4], warmup_steps=5, log_every=1, checkpoint_every=5)),
    ],
)
def test_train_command_lines_build_the_same_train_config(overrides, expected):
    cfg = compose("train", with_current_keys(overrides))
    assert as_dataclass(TrainConfig, cfg.train, "train") == expected
    assert as_dataclass(ModelConfig, cfg.model, "model") == from_dict(ModelConfig, yaml("model", "small.yaml"), "model")


def test_bench_command_lines_build_what_the_benchmarks_ran_on_before():
    quick = as_dataclass(SpeedConfig, compose("bench", ["quick=true", "repeats=7"], ["bench=speed"]), "bench")
    assert quick.grid() == speed.SpeedGrid(batch_sizes=[1, 8], windows=[4, 16, 64], sampler_steps=[4], repeats=7, min_seconds=0.25,
                                           max_seconds=40.0)  # fmt: skip
    assert as_dataclass(SpeedConfig, compose("bench", [], ["bench=speed"]), "bench").grid() == speed.FULL
    physics = as_dataclass(MODES["physics"], compose("bench", ["model=balls", "scenario=push", "episodes=4"], ["bench=physics"]), "bench")
    assert physics.settings("cpu") == fidelity.Settings(episodes=4, scenarios=("push",), device="cpu")
    assert physics.model == "balls"
    rl = as_dataclass(RLConfig, compose("bench", ["model=cartpole", "imagination_horizon=null", "seed=3"], ["bench=rl"]), "bench")
    assert rl.dyna_settings() == DynaSettings(imagination_horizon=None, seed=3)


def test_a_run_folders_flat_train_config_still_loads():
    old = {**{k: v for k, v in asdict(TrainConfig()).items() if k != "noise"}, "context_prob": 0.5, "context_noise_max": 0.05,
           "logit_mean": 0.5, "logit_std": 1.2, "uniform_prob": 0.25, "clean_prob": 0.0}  # fmt: skip
    assert from_dict(TrainConfig, old, "train").noise == NoiseSchedule(context_noise_max=0.05, clean_prob=0.0)
    new = json.loads(json.dumps(asdict(TrainConfig(noise=NoiseSchedule(clean_prob=0.3)))))
    assert from_dict(TrainConfig, new, "train") == TrainConfig(noise=NoiseSchedule(clean_prob=0.3))


def test_shipped_worldsim_json_still_loads():
    for name in ("balls", "cartpole"):
        raw = json.loads((Path(worldsim.__file__).parent / "shipped" / name / "worldsim.json").read_text())
        config = WorldModelConfig.from_dict(raw)
        assert json.loads(json.dumps(config.to_dict())) == raw
