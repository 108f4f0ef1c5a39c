import io
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch

import worldsim  # noqa: F401
from worldsim.data.collect import record_episode
from worldsim.data.policies import make_policy
from worldsim.errors import MissingFileError, UserError


def test_scripted_push_reaches_the_target_and_random_rarely_does():
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16))
    scripted = [record_episode(env, make_policy("scripted", env), seed) for seed in range(5)]
    assert all(e.terminated[-1] and e.rewards[-1] == 1.0 for e in scripted)
    assert np.mean([len(e) for e in scripted]) < 80


def test_scripted_cartpole_balances_longer_than_random():
    env = gym.make("worldsim/CartPole-v0", frame_size=(16, 16))
    scripted = record_episode(env, make_policy("scripted", env, epsilon=0.0), seed=0)
    random = record_episode(env, make_policy("random", env), seed=0)
    assert len(scripted) > 3 * len(random)


def test_sticky_random_actions_come_in_runs():
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16), max_steps=2000)
    actions = record_episode(env, make_policy("sticky", env, epsilon=0.2), seed=0).actions
    runs = np.diff(np.flatnonzero(np.diff(actions) != 0))
    # A switch draws any of the 5 actions, so a run ends with probability 0.2 * 4/5 = 0.16 per step:
    # runs of 6.25 steps on average (uniform random: 1.25); measured 6.1 over this episode's 1,943 steps.
    assert 4.5 < runs.mean() < 8.5 and set(actions.tolist()) == set(range(5))


def test_policies_are_seeded():
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16), max_steps=30)
    for name in ("random", "sticky", "scripted"):
        a = record_episode(env, make_policy(name, env), seed=4).actions
        b = record_episode(env, make_policy(name, env), seed=4).actions
        np.testing.assert_array_equal(a, b)


def test_auto_is_noop_for_passive_scenarios():
    env = gym.make("worldsim/Balls-v0", scenario="parabola", frame_size=(16, 16), max_steps=10)
    assert not record_episode(env, make_policy("auto", env), seed=0).actions.any()
    with pytest.raises(ValueError, match="no scripted policy"):
        make_policy("scripted", env)


def test_sb3_policy_loads_weights_only_and_acts_like_the_original(tmp_path):
    from stable_baselines3 import PPO

    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(36, 36), max_steps=5)
    model = PPO("CnnPolicy", env, n_steps=16, batch_size=16, seed=0, device="cpu")
    model.save(tmp_path / "ppo.zip")
    policy = make_policy(str(tmp_path / "ppo.zip"), env, algo="ppo")
    observation, info = env.reset(seed=0)
    for _ in range(5):
        expected, _ = model.predict(observation, deterministic=True)
        action = policy(observation, info)
        assert action == int(expected)
        observation, _, _, _, info = env.step(action)


def test_sb3_policy_errors(tmp_path):
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(36, 36))
    with pytest.raises(MissingFileError, match="does not exist"):
        make_policy(str(tmp_path / "missing.zip"), env)
    with pytest.raises(UserError, match="algo must be one of"):
        make_policy(str(tmp_path / "missing.zip"), env, algo="sac") if (tmp_path / "missing.zip").touch() is None else None
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    with pytest.raises(UserError, match="bad.zip is not an SB3 policy .zip"):
        make_policy(str(tmp_path / "bad.zip"), env)
    with pytest.raises(UserError, match=r"epsilon must be a probability in \[0, 1\], got 2.0"):
        make_policy("scripted", env, epsilon=2.0)


@pytest.fixture(scope="module")
def small_policy(tmp_path_factory) -> str:
    """A PPO policy (worldsim's FrameCNN) saved for 16x16 Balls frames."""
    from stable_baselines3 import PPO

    from worldsim.agents.imagination import policy_kwargs

    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16))
    path = tmp_path_factory.mktemp("policy") / "ppo16.zip"
    PPO("CnnPolicy", env, policy_kwargs=policy_kwargs(), n_steps=8, batch_size=8, device="cpu").save(path)
    return str(path)


@pytest.mark.parametrize("frame_size", [(32, 32), (64, 64)])
def test_a_policy_of_another_frame_size_is_named(small_policy, frame_size):
    # At <= 32 px this was torch's "Kernel size can't be greater than actual input size".
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=frame_size)
    with pytest.raises(UserError, match=rf"is a policy for 16x16 frames, but this env makes {frame_size[0]}x{frame_size[1]} frames"):
        make_policy(small_policy, env)


def test_a_policy_that_needs_unpickling_is_refused(small_policy, tmp_path):
    # torch's weights-only loader once surfaced as an UnpicklingError traceback.
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(small_policy) as original, zipfile.ZipFile(evil, "w") as copy:
        for name in original.namelist():
            if name == "policy.pth":
                buffer = io.BytesIO()
                torch.save({"weights": zipfile.ZipFile}, buffer)  # a class: only unpickling could make it
                copy.writestr(name, buffer.getvalue())
            else:
                copy.writestr(name, original.read(name))
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16))
    with pytest.raises(UserError, match="holds more than weights"):
        make_policy(str(evil), env)
    assert make_policy(small_policy, env)(*env.reset(seed=0)) in range(5)
