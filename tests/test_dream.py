"""Dream envs: Gymnasium's checks, the real twin's spaces and starting frames, seeding, reset
options, registration, same-step autoreset, snapshots, and clear errors for bad inputs."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from tiny_world_model import save_tiny_world_model, tiny_world_model

import worldsim  # noqa: F401  (registers the ids)
from worldsim.data.collect import record_episode
from worldsim.data.policies import make_policy
from worldsim.envs.dream import DreamEnv, DreamVectorEnv
from worldsim.errors import UserError

SIZE = (16, 16)


@pytest.fixture(scope="module")
def balls(tmp_path_factory):
    return save_tiny_world_model(tmp_path_factory.mktemp("models") / "balls")


@pytest.fixture(scope="module")
def ending(tmp_path_factory):
    """A model whose termination head ends every episode after one step."""
    return save_tiny_world_model(tmp_path_factory.mktemp("models") / "ending", terminates=True)


def rollout(env, seed, actions):
    observation, info = env.reset(seed=seed)
    steps = [env.step(action) for action in actions]
    return [observation] + [s[0] for s in steps], [s[1] for s in steps], info


def test_gymnasium_check_env_passes(balls):
    env = gym.make("worldsim/DreamBalls-v0", model=str(balls), render_mode="rgb_array")
    check_env(env.unwrapped)  # also makes it with every declared render mode, "human" included
    assert isinstance(env.unwrapped, DreamEnv)
    observation, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), observation)
    env.close()


@pytest.mark.parametrize(
    ("dream_id", "real_id", "kwargs"),
    [
        ("worldsim/DreamBalls-v0", "worldsim/Balls-v0", {"scenario": "push", "frame_size": (16, 24)}),
        ("worldsim/DreamCartPole-v0", "worldsim/CartPole-v0", {"frame_size": (12, 20)}),
    ],
)
def test_spaces_equal_the_real_twins(dream_id, real_id, kwargs):
    model = tiny_world_model(real_id)
    dream, real = gym.make(dream_id, model=model, **kwargs), gym.make(real_id, **kwargs)
    assert dream.observation_space == real.observation_space and dream.action_space == real.action_space
    observation, _ = dream.reset(seed=0)
    assert observation in real.observation_space
    assert dream.metadata["render_fps"] == model.config.fps
    assert dream.step(real.action_space.sample())[0].shape == (*kwargs["frame_size"], 3)


def test_default_start_is_the_real_twins_first_frames(balls):
    env = DreamEnv(balls, scenario="collision")
    observation, info = env.reset(seed=7)
    real = gym.make("worldsim/Balls-v0", scenario="collision", frame_size=SIZE)
    context = env.context_frames
    assert context == 2  # the model's window: its 3 training frames - 1
    episode = record_episode(real, make_policy("auto", real), seed=7)
    assert np.array_equal(observation, episode.frames[context - 1])
    assert info == {"caption": episode.caption, "step": 0}


def test_same_seed_same_rollout(balls):
    env = DreamEnv(balls)
    actions = [1, 4, 4, 2, 0]
    a, rewards_a, _ = rollout(env, 3, actions)
    b, rewards_b, _ = rollout(DreamEnv(balls), 3, actions)
    c, _, _ = rollout(env, 4, actions)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and rewards_a == rewards_b
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    d, _, _ = rollout(env, 3, [1, 4, 4, 2, 3])
    assert all(np.array_equal(x, y) for x, y in zip(a[:5], d[:5])) and not np.array_equal(a[5], d[5])


def test_prompt_reset_generates_the_first_frame(balls):
    env = DreamEnv(balls)
    observation, info = env.reset(seed=0, options={"prompt": "a red ball falls and bounces"})
    assert observation.shape == (*SIZE, 3) and observation.dtype == np.uint8
    assert info == {"caption": "a red ball falls and bounces", "step": 0}
    assert env.dream.simulator.filled[0].sum() == 1  # one generated frame, no real ones
    observation, reward, terminated, truncated, info = env.step(3)
    assert info["step"] == 1 and isinstance(reward, float) and not terminated and not truncated
    with pytest.raises(UserError, match="the prompt must be a string"):
        env.reset(options={"prompt": 42})


def test_context_option_takes_frames_or_an_episode(balls):
    env = DreamEnv(balls)
    frames = np.random.default_rng(0).integers(0, 256, (3, *SIZE, 3), dtype=np.uint8)
    observation, info = env.reset(seed=0, options={"context": frames, "prompt": "two balls"})
    assert np.array_equal(observation, frames[-1]) and info["caption"] == "two balls"
    real = gym.make("worldsim/Balls-v0", scenario="push", frame_size=SIZE)
    episode = record_episode(real, make_policy("auto", real), seed=1)
    observation, info = env.reset(seed=0, options={"context": episode})
    assert np.array_equal(observation, episode.frames[-1]) and info["caption"] == episode.caption
    env.step(0)
    with pytest.raises(ValueError, match=r"context frames must be uint8 \[T, 16, 16, 3\] .*got uint8 \(3, 8, 8, 3\)"):
        env.reset(options={"context": frames[:, :8, :8]})
    with pytest.raises(ValueError, match=r"context frames must be uint8"):
        env.reset(options={"context": frames.astype(np.float32)})


def test_vector_reset_options_per_env(balls):
    venv = DreamVectorEnv(3, balls)
    rng = np.random.default_rng(0)
    contexts = [rng.integers(0, 256, (t, *SIZE, 3), dtype=np.uint8) for t in (2, 1, 2)]
    observations, info = venv.reset(seed=0, options={"context": contexts, "prompt": ["a", "b", "c"]})
    assert all(np.array_equal(o, c[-1]) for o, c in zip(observations, contexts))
    assert list(info["caption"]) == ["a", "b", "c"] and venv.simulator.filled.sum(1).tolist() == [2, 1, 2]
    observations, info = venv.reset(options={"prompt": "a ball", "reset_mask": np.array([True, False, False])})
    assert list(info["caption"]) == ["a ball", "b", "c"] and venv.simulator.filled.sum(1).tolist() == [1, 1, 2]
    assert np.array_equal(observations[1:], np.stack([contexts[1][-1], contexts[2][-1]]))  # untouched
    with pytest.raises(UserError, match="a list of 3 strings"):
        venv.reset(options={"prompt": ["a", "b"]})


def test_registered_ids_make_single_and_vector_envs(balls):
    env = gym.make("worldsim/DreamBalls-v0", model=str(balls), horizon=5)
    assert isinstance(env.unwrapped, DreamEnv) and env.unwrapped.horizon == 5
    venv = gym.make_vec("worldsim/DreamBalls-v0", num_envs=3, vectorization_mode="vector_entry_point", model=str(balls))
    assert isinstance(venv, DreamVectorEnv) and venv.num_envs == 3
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert venv.single_observation_space == env.observation_space and venv.action_space == gym.spaces.MultiDiscrete([5] * 3)
    assert venv.horizon == 64  # the twin's episode length (passive Balls)
    observations, info = venv.reset(seed=0)
    assert observations.shape == (3, *SIZE, 3) and list(info["step"]) == [0, 0, 0]
    # Batched seeding: env i starts from the twin's reset(seed + i).
    assert np.array_equal(observations[2], DreamEnv(balls).reset(seed=2)[0])
    assert len(set(info["caption"])) > 1


def test_same_step_autoreset_follows_gymnasium(balls):
    """Env 0 truncates at the horizon on step 3 and restarts in the same step; env 1, reset a
    step later, goes on. A DISABLED twin run with the same calls shows what env 0 ended on."""
    actions = np.array([1, 2])
    same = DreamVectorEnv(2, balls, horizon=3)
    manual = DreamVectorEnv(2, balls, horizon=3, autoreset_mode=AutoresetMode.DISABLED)
    results = []
    for env in (same, manual):
        env.reset(seed=0)
        env.step(actions)
        env.reset(options={"reset_mask": np.array([False, True])})
        env.step(actions)
        results.append(env.step(actions))
    (obs, rewards, terminated, truncated, info), (manual_obs, manual_rewards, *_) = results
    assert list(truncated) == [True, False] and not terminated.any()
    assert np.array_equal(rewards, manual_rewards)  # the finished step's reward, not the reset's
    assert list(info["_final_obs"]) == [True, False] and info["final_obs"][1] is None
    assert np.array_equal(info["final_obs"][0], manual_obs[0])  # the episode's last frame
    assert np.array_equal(obs[1], manual_obs[1])  # env 1 untouched
    assert not np.array_equal(obs[0], manual_obs[0])  # env 0 shows its new episode's first frame
    assert info["final_info"]["step"][0] == 3 and list(info["final_info"]["_step"]) == [True, False]
    assert list(info["step"]) == [0, 2] and info["_caption"].all()
    _, _, terminated, truncated, info = same.step(actions)
    assert list(truncated) == [False, True] and list(info["step"]) == [1, 0]  # env 1 reached its horizon


def test_termination_head_ends_episodes(ending):
    env = DreamEnv(ending)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(0)
    assert terminated and not truncated
    venv = DreamVectorEnv(2, ending)
    venv.reset(seed=0)
    _, _, terminated, truncated, info = venv.step(np.array([0, 0]))
    assert terminated.all() and not truncated.any() and info["_final_obs"].all() and list(info["step"]) == [0, 0]


def test_bad_inputs_give_clear_errors(balls):
    env = DreamEnv(balls)
    env.reset(seed=0)
    for action in (7, 1.5, [1, 2]):
        with pytest.raises(ValueError, match=r"action must be one integer in \[0, 5\) \(0 none, 1 up, 2 down, 3 left, 4 right\)"):
            env.step(action)
    venv = DreamVectorEnv(2, balls)
    venv.reset(seed=0)
    for actions in (np.array([1, 2, 3]), np.array([0, 5]), np.array([0.0, 1.0]), np.array([-1, 0])):
        with pytest.raises(ValueError, match=r"actions must be 2 integers in \[0, 5\) \(0 none, .*\), one per env"):
            venv.step(actions)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"promt": "a ball"})
    with pytest.raises(ValueError, match="pass model=NAME_OR_PATH"):
        gym.make("worldsim/DreamBalls-v0")
    with pytest.raises(FileNotFoundError, match=r"no world model 'nope': not a shipped model \(shipped: "):
        gym.make("worldsim/DreamBalls-v0", model="nope")
    with pytest.raises(ValueError, match="this model learned worldsim/Balls-v0, not worldsim/CartPole-v0; use worldsim/DreamBalls-v0"):
        gym.make("worldsim/DreamCartPole-v0", model=str(balls))
    with pytest.raises(ValueError, match=r"the model's action space .* does not match worldsim/CartPole-v0's Discrete\(2\)"):
        DreamEnv(tiny_world_model("worldsim/CartPole-v0", num_actions=5))
    with pytest.raises(ValueError, match="frame_size .* must be divisible by 4"):
        DreamEnv(balls, frame_size=(18, 16))
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        DreamEnv(balls, horizon=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"guidance": float("nan")}, "guidance must be a finite number >= 1"),
        ({"sampler_steps": 0}, r"sampler_steps must be >= 1 \(an integer\), .*got 0"),
        ({"context_frames": 50}, "context_frames must be at most 2, the frames the model keeps as context; got 50"),
        ({"autoreset_mode": "sometimes"}, "autoreset_mode must be an AutoresetMode or one of"),
        ({"compile": "yes"}, "compile must be true or false, got 'yes'"),
    ],
)
def test_bad_settings_are_user_errors(balls, kwargs, message):
    # guidance=nan once made black frames and NaN rewards; sampler_steps=0 and context_frames=50 were ignored.
    with pytest.raises(UserError, match=message):
        DreamVectorEnv(1, balls, **kwargs)


@pytest.mark.parametrize(
    "reset, message",
    [
        ({"options": {"prompt": None}}, r'options\["prompt"\] must be a string .*got None'),
        ({"options": "a red ball"}, "reset options must be a dict or None, got str 'a red ball'"),
        ({"seed": -5}, "seed must be None or a non-negative Python int"),
        ({"seed": 1.5}, "seed must be None or a non-negative Python int"),
    ],
)
def test_bad_resets_are_user_errors(balls, reset, message):
    with pytest.raises(UserError, match=message):
        DreamEnv(balls).reset(**reset)


def test_any_seed_gymnasium_takes_works(balls):
    env = DreamEnv(balls)
    first, _ = env.reset(seed=2**64)
    again, _ = env.reset(seed=2**64)
    assert np.array_equal(first, again)


def test_replay_starts_dream_episodes_from_real_frames_of_the_collections(balls, tmp_path):
    from worldsim.data.collect import collect
    from worldsim.data.collection import Collection

    data = tmp_path / "real"
    collect("worldsim/Balls-v0", out=data, episodes=3, env_kwargs={"frame_size": (16, 16), "max_steps": 6}, scenarios=["push"],
            progress=False)  # fmt: skip
    episodes = Collection(data).load()
    frames = {episode.frames[t].tobytes(): (i, t) for i, episode in enumerate(episodes) for t in range(len(episode.frames))}
    env = DreamVectorEnv(4, balls, replay=data, horizon=2, scenario="push")
    observations, _ = env.reset(seed=0)
    places = [frames.get(o.tobytes()) for o in observations]
    assert all(p is not None and p[1] < len(episodes[p[0]].frames) - 1 for p in places)  # real frames, never an episode's last
    assert len(set(places)) > 1  # drawn, not one fixed place
    again, _ = DreamVectorEnv(4, balls, replay=data, horizon=2, scenario="push").reset(seed=0)
    assert np.array_equal(again, observations)  # the same seed draws the same places
    env.step(np.zeros(4, np.int64))
    observations, _, _, truncated, info = env.step(np.zeros(4, np.int64))  # horizon 2: every env restarts in this step
    assert truncated.all() and all(o.tobytes() in frames for o in observations)
    with pytest.raises(UserError, match=r"replay episodes must have this env's frame size \(32, 32\)"):
        DreamVectorEnv(1, balls, replay=data, scenario="push", frame_size=(32, 32))


def test_restoring_a_snapshot_gives_the_same_continuation(balls):
    env = DreamEnv(balls, scenario="push", horizon=6)
    env.reset(seed=3)
    env.step(4)
    state = env.snapshot()
    actions = [1, 0, 3, 2, 4]  # runs past the horizon: the end comes at the same step again
    first = [env.step(a) for a in actions]
    for _ in range(2):  # a snapshot survives being restored
        env.restore(state)
        again = [env.step(a) for a in actions]
        for (frame, reward, terminated, truncated, info), (frame2, reward2, terminated2, truncated2, info2) in zip(first, again):
            assert np.array_equal(frame, frame2) and reward == reward2 and info == info2
            assert (terminated, truncated) == (terminated2, truncated2)
    assert any(step[3] for step in first)  # the horizon truncated within the continuation
    assert env.context_frames == 2 and env.horizon == 6 and env.sampler_steps >= 1


def test_a_vector_snapshot_restores_every_env_and_refuses_another_envs(balls):
    venv = DreamVectorEnv(2, balls, scenario="push", horizon=3)
    venv.reset(seed=0)
    state = venv.snapshot()
    actions = np.array([[1, 2], [3, 4], [0, 0], [2, 1]])  # autoresets at step 3 draw from the restored generator
    first = [venv.step(a) for a in actions]
    venv.restore(state)
    for (frames, rewards, *_), (frames2, rewards2, *_) in zip(first, (venv.step(a) for a in actions)):
        assert np.array_equal(frames, frames2) and np.array_equal(rewards, rewards2)
    with pytest.raises(UserError, match=r"restore\(\) takes a snapshot\(\) of this dream env \(1 envs"):
        DreamEnv(balls, scenario="push").restore(state)
    with pytest.raises(RuntimeError, match="call reset"):
        DreamEnv(balls).snapshot()


def test_compile_compiles_the_models_cached_passes(balls):
    # What it compiles is tested in test_simulator.py; here that the env asks for it (the first step would compile).
    env = DreamVectorEnv(1, balls, compile=True)
    assert env.model.dit.compiled_pass is not None
    assert DreamVectorEnv(1, balls).model.dit.compiled_pass is None  # a name loads a fresh model
