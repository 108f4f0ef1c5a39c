"""DreamVecEnv: SB3's VecEnv contract over a DreamVectorEnv (terminal observations, time-limit
flags, seeding, rendering), and PPO with a CnnPolicy training in imagination."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from tiny_world_model import save_tiny_world_model

import worldsim  # noqa: F401  (registers the ids)
from worldsim.agents.vec_env import DreamVecEnv
from worldsim.envs.dream import DreamVectorEnv


@pytest.fixture(scope="module")
def balls(tmp_path_factory):
    return save_tiny_world_model(tmp_path_factory.mktemp("models") / "balls")


def test_step_infos_follow_sb3(balls):
    venv = DreamVecEnv(DreamVectorEnv(2, balls, horizon=3, render_mode="rgb_array"))
    assert isinstance(venv, VecEnv) and venv.num_envs == 2
    assert venv.observation_space.shape == (16, 16, 3) and venv.action_space == gym.spaces.Discrete(5)
    venv.seed(5)
    observations = venv.reset()
    assert observations.shape == (2, 16, 16, 3) and venv.reset_infos[1]["step"] == 0
    for step in range(3):
        observations, rewards, dones, infos = venv.step(np.array([1, 4]))
        assert rewards.dtype == np.float32 and dones.dtype == bool
        assert [info["TimeLimit.truncated"] for info in infos] == [step == 2] * 2
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["step"] == 3 and info["terminal_observation"].shape == (16, 16, 3)
        assert not np.array_equal(info["terminal_observation"], observations[i])  # the new episode's first frame
        assert venv.reset_infos[i]["step"] == 0
    assert venv.render(mode="rgb_array").shape == (32, 16, 3)  # SB3 tiles both envs' frames
    assert venv.get_attr("horizon") == [3, 3] and venv.env_is_wrapped(gym.Wrapper) == [False, False]


def test_seed_repeats_a_rollout(balls):
    def rollout(seed):
        venv = DreamVecEnv(DreamVectorEnv(3, balls))
        venv.seed(seed)
        return [venv.reset()] + [venv.step(np.array([0, 1, 2]))[0] for _ in range(3)]

    a, b, c = rollout(1), rollout(1), rollout(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[-1], c[-1])


def test_needs_same_step_autoreset():
    sync = gym.make_vec("worldsim/Balls-v0", num_envs=2, vectorization_mode="sync", frame_size=(16, 16))
    with pytest.raises(ValueError, match="autoreset_mode SAME_STEP"):
        DreamVecEnv(sync)


def test_ppo_cnn_policy_trains_in_a_dream(balls):
    # 36 x 36 is the smallest frame SB3's NatureCNN takes; the tiny model runs at any multiple of 4.
    dream = gym.make_vec("worldsim/DreamBalls-v0", num_envs=8, vectorization_mode="vector_entry_point",
                         model=str(balls), frame_size=(36, 36), horizon=32)  # fmt: skip
    venv = VecMonitor(DreamVecEnv(dream))
    agent = PPO("CnnPolicy", venv, n_steps=32, batch_size=128, n_epochs=1, seed=0, device="cpu")
    agent.learn(total_timesteps=2000)  # about 10 s on one CPU thread
    assert agent.num_timesteps >= 2000
    assert len(agent.ep_info_buffer) >= 8  # whole episodes of 32 steps came back through terminal infos
    action, _ = agent.predict(venv.reset(), deterministic=True)
    assert action.shape == (8,)
