import gymnasium as gym
import numpy as np
import pytest

import worldsim  # noqa: F401
from worldsim.data.collect import record_episode
from worldsim.data.policies import make_policy


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


def test_policies_are_seeded():
    env = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16), max_steps=30)
    for name in ("random", "scripted"):
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
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_policy(str(tmp_path / "missing.zip"), env)
    with pytest.raises(ValueError, match="algo must be one of"):
        make_policy(str(tmp_path / "missing.zip"), env, algo="sac") if (tmp_path / "missing.zip").touch() is None else None
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="does not hold an SB3 PPO policy"):
        make_policy(str(tmp_path / "bad.zip"), env)
