"""The world registry is the one source of per-world facts: every world has what its consumers
read (registration, dream envs, policies, viewer, CLI, benchmarks), and they read it there."""

from dataclasses import replace
from importlib import resources

import gymnasium as gym
import pytest
from omegaconf import OmegaConf

import worldsim  # noqa: F401  (registers the ids)
from worldsim.cli import compose, group_options, main
from worldsim.data.policies import POLICIES, EpsilonPolicy, NoopPolicy, make_policy
from worldsim.envs import balls, worlds
from worldsim.envs.dream import action_names
from worldsim.envs.worlds import BY_ID, WORLDS, world, world_named

SIZE = (16, 16)


@pytest.mark.parametrize("record", WORLDS, ids=lambda w: w.name)
def test_every_world_has_what_its_consumers_read(record):
    assert world(record.env_id) is record and world_named(record.name) is record
    assert gym.registry[record.env_id].entry_point == record.entry_point
    assert gym.registry[record.dream_id].kwargs == {"env_id": record.env_id}
    env = gym.make(record.env_id, frame_size=SIZE)
    assert env.action_space == gym.spaces.Discrete(len(record.actions))
    assert action_names(record.env_id, env.action_space) == record.actions
    assert {record.keys.action([key], 0) for key in record.keys.keys} <= set(range(len(record.actions)))
    assert record.keys.idle in worlds.IDLE and record.keys.help
    assert set(record.env_args) >= {"frame_size"} and record.title
    assert set(record.rollout_policy) <= set(record.scenarios) and set(record.rollout_policy.values()) <= set(POLICIES)
    assert record.heads_policy in POLICIES
    # A world with tasks has a scripted controller, and auto uses it exactly on them.
    assert record.scripted is not None
    for scenario in record.scenarios or [None]:
        real = gym.make(record.env_id, frame_size=SIZE, **({"scenario": scenario} if scenario else {}))
        policy = make_policy("auto", real)
        if record.is_task(scenario):
            assert isinstance(policy, EpsilonPolicy) and policy.act is record.scripted
        else:
            assert isinstance(policy, NoopPolicy)
    assert record.rl_scenario is None or record.is_task(record.rl_scenario)
    assert record.rl_scenario is not None or not record.scenarios  # bench rl needs a task where there are scenarios


def test_balls_scenarios_and_splits_are_the_envs():
    record = world("worldsim/Balls-v0")
    assert record.scenarios == balls.SCENARIOS and record.splits == balls.SPLITS and record.actions == balls.ACTIONS
    assert record.check_scenarios("all") == list(balls.SCENARIOS) and record.check_scenarios("push") == ["push"]
    with pytest.raises(ValueError, match="unknown Balls scenario 'bounce'; choose one of uniform, collision, parabola, push or all"):
        record.check_scenarios(["push", "bounce"])
    assert world("worldsim/CartPole-v0").check_scenarios("all") == [None]


def test_the_cli_worlds_come_from_the_registry(capsys):
    assert group_options("world") == [record.name for record in WORLDS]
    files = resources.files("worldsim.configs").joinpath("world")
    yaml_names = sorted(p.name.removesuffix(".yaml") for p in files.iterdir() if p.name.endswith(".yaml"))
    assert yaml_names == sorted(r.name for r in WORLDS)  # one file of CLI defaults per world
    for record in WORLDS:
        defaults = OmegaConf.create(files.joinpath(f"{record.name}.yaml").read_text())
        assert set(defaults.world) == {"name"} and defaults.world.name == record.name  # ids live in the registry only
        assert set(record.env_args) <= set(defaults) and (("scenario" in defaults) == bool(record.scenarios))
        cfg = compose("collect", [f"world={record.name}"])
        assert cfg.world.env_id == record.env_id and list(cfg.world.env_args) == list(record.env_args)
    assert main(["collect", "world=mars"]) == 2
    assert f"unknown world 'mars'; choose one of {', '.join(r.name for r in WORLDS)}" in capsys.readouterr().err


def test_a_new_world_is_one_record(monkeypatch):
    """A third world (Balls' push task under another id, with no scenarios) needs only its record:
    policies and dream envs find its facts through the registry."""
    record = replace(world("worldsim/Balls-v0"), name="table", title="Table", env_id="worldsim/TestTable-v0",
                     dream_id="worldsim/DreamTestTable-v0", scenarios=(), splits=(), tasks=None,
                     actions=("rest", "north", "south", "west", "east"))  # fmt: skip
    monkeypatch.setitem(BY_ID, record.env_id, record)
    monkeypatch.setitem(gym.registry, record.env_id, gym.envs.registration.EnvSpec(
        record.env_id, entry_point=record.entry_point, kwargs={"scenario": "push"}))  # fmt: skip
    env = gym.make(record.env_id, frame_size=SIZE)
    policy = make_policy("auto", env)
    assert isinstance(policy, EpsilonPolicy) and policy.act is balls.push_toward_target
    assert action_names(record.env_id, env.action_space) == record.actions
