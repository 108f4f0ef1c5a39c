"""A table of invalid inputs: each must fail as a user's mistake, with a message that names it.

CLI cases run ``worldsim.cli.main`` in-process and must fail while checking settings, before any
real work: exit status != 0 and one line ``worldsim: error: ...`` on stderr, no traceback. Python
cases must raise :class:`~worldsim.errors.UserError`. Collections and damaged model files are
covered by the tests of their own modules.
"""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from tiny_world_model import save_tiny_world_model

import worldsim
from worldsim.cli import main
from worldsim.data.policies import make_policy
from worldsim.errors import UserError
from worldsim.simulator import WorldSimulator

FILE = "notes.txt"  # a file in the CLI cases' working folder, where a folder is wanted

CLI = [
    # collect
    (["collect", "episodes=abc"], "episodes must be an integer >= 0, got 'abc'"),
    (["collect", "episodes=2.5"], "episodes must be an integer >= 0, got 2.5"),
    (["collect", "episodes=-1"], "episodes must be an integer >= 0, got -1"),
    (["collect", "episodes=true"], "episodes must be an integer >= 0, got True"),
    (["collect", "stills=-1"], "stills must be an integer >= 0"),
    (["collect", "stills=many"], "stills must be an integer >= 0, got 'many'"),
    (["collect", "seed=abc"], "seed must be an integer >= 0, got 'abc'"),
    (["collect", "seed=-5"], "seed must be an integer >= 0, got -5"),
    (["collect", "seed=1.5"], "seed must be an integer >= 0, got 1.5"),
    (["collect", "epsilon=2.0"], "epsilon must be a finite number in [0, 1], got 2.0"),
    (["collect", "epsilon=-0.1"], "epsilon must be a finite number in [0, 1], got -0.1"),
    (["collect", "epsilon=abc"], "epsilon must be a finite number in [0, 1], got 'abc'"),
    (["collect", "epsilon=nan"], "epsilon must be a finite number in [0, 1]"),
    (["collect", "algo=sac"], "algo must be ppo, a2c or dqn, got 'sac'"),
    (["collect", f"out={FILE}"], f"out must be a folder path ({FILE} is a file)"),
    (["collect", f"out={FILE}/episodes"], f"out must be a folder path ({FILE} is a file)"),
    (["collect", "progress=maybe"], "progress must be true or false, got 'maybe'"),
    (["collect", "world=mars"], "unknown world 'mars'; choose one of balls, cartpole"),
    (["collect", "colour=red"], "unknown config key 'colour' for `collect`"),
    (["collect", "world=cartpole", "scenario=push"], "unknown config key 'scenario'"),
    (["collect", "scenario=bounce"], "unknown Balls scenario 'bounce'"),
    (["collect", "frame_size=[0,64]"], "frame_size must be two integers (H, W), each at least 4"),
    (["collect", "frame_size=abc"], "frame_size must be two integers (H, W)"),
    (["collect", "split=test"], "unknown split 'test'"),
    (["collect", "policy=clever"], "unknown policy 'clever'"),
    (["collect", "policy=missing.zip"], "SB3 policy file missing.zip does not exist"),
    (["collect", "policy=scripted", "scenario=uniform"], "no scripted policy for this world"),
    (["collect", "--episodes", "3"], "expected key=value overrides, got '--episodes'"),
    (["collect", "episodes"], "expected key=value overrides, got 'episodes'"),
    (["collect", "frame_size=[64,"], "worldsim: error:"),
    # train
    (["train"], "`worldsim train` needs data=..."),
    (["train", "data=d", "steps=abc"], "steps must be an integer >= 1, got 'abc'"),
    (["train", "data=d", "steps=0"], "steps must be an integer >= 1, got 0"),
    (["train", "data=d", "steps=2.5"], "steps must be an integer >= 1, got 2.5"),
    (["train", "data=d", "train.lr=abc"], "train.lr must be a finite number > 0, got 'abc'"),
    (["train", "data=d", "train.lr=-1"], "train.lr must be a finite number > 0, got -1"),
    (["train", "data=d", "train.lr=nan"], "train.lr must be a finite number > 0, got nan"),
    (["train", "data=d", "train.lr=inf"], "train.lr must be a finite number > 0, got inf"),
    (["train", "data=d", "train.checkpoint_every=0"], "train.checkpoint_every must be an integer >= 1, got 0"),
    (["train", "data=d", "train.grad_accum=0"], "train.grad_accum must be an integer >= 1, got 0"),
    (["train", "data=d", "train.batch_size=0"], "train.batch_size must be an integer >= 1, got 0"),
    (["train", "data=d", "train.batch_size=8.5"], "train.batch_size must be an integer >= 1, got 8.5"),
    (["train", "data=d", "train.window_lengths=[0]"], "train.window_lengths must be a non-empty list of integers >= 1"),
    (["train", "data=d", "train.window_lengths=[]"], "train.window_lengths must be a non-empty list of integers >= 1"),
    (["train", "data=d", "train.window_lengths=eight"], "train.window_lengths must be a non-empty list of integers >= 1"),
    (["train", "data=d", "train.text_dropout=1.5"], "train.text_dropout must be a finite number in [0, 1], got 1.5"),
    (["train", "data=d", "train.ema_decay=-0.5"], "train.ema_decay must be a finite number in [0, 1], got -0.5"),
    (["train", "data=d", "train.images=maybe"], "train.images must be true or false, got 'maybe'"),
    (["train", "data=d", "train.terminal_flow_reweight=2"], "train.terminal_flow_reweight must be true or false, got 2"),
    (["train", "data=d", "train.seed=-1"], "train.seed must be an integer >= 0, got -1"),
    (["train", "data=d", "train.warmup_steps=-1"], "train.warmup_steps must be an integer >= 0, got -1"),
    (["train", "data=d", "train.grad_clip=0"], "train.grad_clip must be a finite number > 0, got 0"),
    (["train", "data=d", "train.colour=red"], "train.colour"),
    (["train", "data=d", "model.hidden_size=abc"], "model.hidden_size must be an integer >= 1, got 'abc'"),
    (["train", "data=d", "model.depth=0"], "model.depth must be an integer >= 1, got 0"),
    (["train", "data=d", "model.num_heads=3"], "model.hidden_size=256 must be divisible by model.num_heads=3"),
    (["train", "data=d", "model.hidden_size=8", "model.num_heads=2"], "model.hidden_size / model.num_heads = 4 must be even and >= 6"),
    (["train", "data=d", "model.mlp_ratio=0"], "model.mlp_ratio must be a finite number > 0, got 0"),
    (["train", "data=d", "model.codec=jpeg"], "model.codec must be pixels or vae, got 'jpeg'"),
    (["train", "data=d", "model.head_pooling=max"], "model.head_pooling must be mean or attention, got 'max'"),
    (["train", "data=d", "model=huge"], "unknown model 'huge'; choose one of"),
    (["train", "data=d", "device=cuda"], "device must be auto or cpu (torch sees no CUDA device here), got 'cuda'"),
    (["train", "data=d", "device=gpu"], "device must be auto, cpu or cuda, got 'gpu'"),
    (["train", "data=d", "stage=gan"], "stage must be dit or vae, got 'gan'"),
    (["train", "data=d", f"out={FILE}"], f"out must be a folder path ({FILE} is a file)"),
    (["train", "data=d", "resume=maybe"], "resume must be true or false, got 'maybe'"),
    (["train", "data=d", "stage=vae", "vae.downsample=3"], "vae.downsample must be 2, 4 or 8, got 3"),
    (["train", "data=d", "stage=vae", "vae.kl_weight=-1"], "vae.kl_weight must be a finite number >= 0, got -1"),
    (["train", "data=d", "stage=vae", "vae.width=0"], "vae.width must be an integer >= 1, got 0"),
    # play
    (["play"], "`worldsim play` needs model=NAME_OR_PATH"),
    (["play", "model=balls", "device=cuda"], "device must be cpu (torch sees no CUDA device here), got 'cuda'"),
    (["play", "model=balls", "sampler_steps=0"], "sampler_steps must be an integer >= 1 or null, got 0"),
    (["play", "model=balls", "seed=-1"], "seed must be an integer >= 0, got -1"),
    (["play", "model=balls", "fps=-1"], "fps must be a finite number >= 0 or null, got -1"),
    (["play", "model=balls", "max_steps=0"], "max_steps must be an integer >= 1 or null, got 0"),
    (["play", "model=balls", "rewind_steps=0"], "rewind_steps must be an integer >= 1, got 0"),
    (["play", "model=balls", "side_by_side=maybe"], "side_by_side must be true or false, got 'maybe'"),
    (["play", "model=balls", "compile=maybe"], "compile must be true or false, got 'maybe'"),
    (["play", "model=balls", "precision=half"], "precision must be float32 or bfloat16, got 'half'"),
    (["play", "model=balls", f"record_dir={FILE}"], f"record_dir must be a folder path ({FILE} is a file)"),
    (["play", "model=nothing"], "nothing"),
    # bench
    (["bench"], "`worldsim bench` needs one of fidelity, physics, speed, rl first; got nothing"),
    (["bench", "accuracy"], "`worldsim bench` needs one of fidelity, physics, speed, rl first; got 'accuracy'"),
    (["bench", "speed", "threads=0"], "threads must be an integer >= 1 or null, got 0"),
    (["bench", "speed", "preset=huge"], "preset must be tiny, small or base, got 'huge'"),
    (["bench", "speed", "device=tpu"], "device must be auto, cpu or cuda, got 'tpu'"),
    (["bench", "speed", "quick=maybe"], "quick must be true or false, got 'maybe'"),
    (["bench", "speed", "frame_size=[0,8]"], "frame_size must be two positive integers [H, W], got [0, 8]"),
    (["bench", "speed", f"out={FILE}"], f"out must be a folder path ({FILE} is a file)"),
    (["bench", "fidelity"], "`worldsim bench fidelity` needs model=NAME_OR_PATH"),
    (["bench", "fidelity", "model=balls", "sampler_steps=[1,2]"], "sampler_steps must be one integer for fidelity"),
    (["bench", "fidelity", "model=balls", "episodes=0"], "episodes must be an integer >= 1, got 0"),
    (["bench", "fidelity", "model=balls", "horizon=2"], "horizon must be at least 3 frames"),
    (["bench", "fidelity", "model=balls", "perturbation=-1"], "perturbation must be a finite number >= 0, got -1"),
    (["bench", "fidelity", "model=balls", "precision=half"], "precision must be one of float32, bfloat16, got 'half'"),
    (["bench", "rl", "model=balls", "precision=half"], "precision must be one of float32, bfloat16, got 'half'"),
    (["bench", "rl", "model=balls", "compile=maybe"], "compile must be true or false, got 'maybe'"),
    (["bench", "fidelity", "model=balls", "long_steps=-1"], "long_steps must be an integer >= 0, got -1"),
    (["bench", "physics", "model=balls", "seed=-1"], "seed must be an integer >= 0 or null, got -1"),
    (["bench", "rl", "seeds=0"], "seeds must be an integer >= 1, got 0"),
    (["bench", "rl", "model_lr=0"], "model_lr must be a finite number > 0, got 0"),
    (["bench", "rl", "model_terminal_repeats=0"], "model_terminal_repeats must be an integer >= 1, got 0"),
    (["bench", "rl", "real_steps=abc"], "real_steps must be an integer >= 1, got 'abc'"),
    (["bench", "rl", "imagination_horizon=0"], "imagination_horizon must be an integer >= 1 or null"),
    (["bench", "rl", "model_free_budget=0"], "model_free_budget must be an integer >= 1, got 0"),
    (["bench", "rl", "+model_train.lr=0.1"], "model_train cannot set lr: Dyna sets those itself"),
    (["bench", "rl", "+model_train.head_rollout_prob=2"], "train.head_rollout_prob must be a finite number in [0, 1], got 2"),
    (["bench", "rl", "model_train={lr:0.1}"], "Could not override 'model_train'. To append to your config use +model_train={lr:0.1}"),
    (["bench", "rl", f"work={FILE}"], f"work must be a folder path ({FILE} is a file)"),
    # agent
    (["agent"], "`worldsim agent` needs one of train, dyna first; got nothing"),
    (["agent", "train"], "`worldsim agent` needs model=NAME_OR_PATH"),
    (["agent", "train", "model=balls", "algo=sac"], "algo must be ppo or dqn, got 'sac'"),
    (["agent", "train", "model=balls", "steps=0"], "steps must be an integer >= 1, got 0"),
    (["agent", "train", "model=balls", "num_envs=0"], "num_envs must be an integer >= 1, got 0"),
    (["agent", "train", "model=balls", "device=cuda"], "device must be cpu (torch sees no CUDA device here), got 'cuda'"),
    (["agent", "train", "model=balls", "seed=-1"], "seed must be an integer >= 0, got -1"),
    (["agent", "dyna", "model=balls", "real_steps=0"], "real_steps must be an integer >= 1, got 0"),
    (["agent", "dyna", "model=balls", "model_lr=abc"], "model_lr must be a finite number > 0, got 'abc'"),
    (["agent", "dyna", "model=balls", "model_steps=-1"], "model_steps must be an integer >= 0 (0: the given world model is not"),
    (["agent", "dyna", "model=balls", "model_steps=0", "fresh=true"], "fresh=true trains a new world model in the first round"),
    (["agent", "dyna", "model=balls", "+model_train.heads=1"], "model_train has no train key 'heads'; it takes action_dropout,"),
    (["agent", "train", "model=balls", "frame_stack=0"], "frame_stack must be an integer >= 1 (frames the policy sees at once), got 0"),
    (["agent", "train", "model=balls", "eval_seed=-1"], "eval_seed must be an integer >= 0, got -1"),
    # demo
    (["demo", "episodes=0"], "episodes must be an integer >= 1, got 0"),
    (["demo", "horizon=abc"], "horizon must be an integer >= 3, got 'abc'"),
    (["demo", "scale=0"], "scale must be an integer >= 1, got 0"),
    (["demo", "device=cuda"], "device must be cpu (torch sees no CUDA device here), got 'cuda'"),
    (["demo", f"out={FILE}"], f"out must be a folder path ({FILE} is a file)"),
    (["demo", "seed=-3"], "seed must be an integer >= 0, got -3"),
    # the command itself
    (["fly"], "unknown sub-command 'fly'"),
]


@pytest.mark.parametrize("argv, message", CLI, ids=[" ".join(argv) for argv, _ in CLI])
def test_cli_rejects(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # whatever a case would write lands here
    (tmp_path / FILE).write_text("not a folder")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("worldsim: error: ") and "Traceback" not in err, err
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE]  # failed before any work


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Envs, a simulator and files for the Python cases (built once: every case only fails a check)."""
    from stable_baselines3 import PPO

    from worldsim.agents.imagination import policy_kwargs

    root = tmp_path_factory.mktemp("bad_inputs")
    model = str(save_tiny_world_model(root / "model"))
    balls = gym.make("worldsim/Balls-v0", frame_size=(16, 16))
    balls.reset(seed=0)
    cartpole = gym.make("worldsim/CartPole-v0", frame_size=(16, 16))
    cartpole.reset(seed=0)
    dream = gym.make("worldsim/DreamBalls-v0", model=model)
    dream.reset(seed=0)
    push = gym.make("worldsim/Balls-v0", scenario="push", frame_size=(16, 16))
    PPO("CnnPolicy", push, policy_kwargs=policy_kwargs(), n_steps=8, batch_size=8, device="cpu").save(root / "ppo16.zip")
    (root / "garbage.zip").write_bytes(b"garbage")
    simulator = WorldSimulator(worldsim.load(model), 2)
    return SimpleNamespace(model=model, balls=balls, cartpole=cartpole, dream=dream, push=push, simulator=simulator, root=root)


def dream_of(ctx, **kwargs):
    return gym.make("worldsim/DreamBalls-v0", model=ctx.model, **kwargs)


def balls(**kwargs):
    return gym.make("worldsim/Balls-v0", **{"frame_size": (16, 16), **kwargs})


PYTHON = [
    # worldsim/Balls-v0
    ("balls scenario", lambda c: balls(scenario="bounce"), "unknown Balls scenario 'bounce'"),
    ("balls frame_size 0", lambda c: balls(frame_size=(0, 64)), "frame_size must be two integers (H, W), each at least 4"),
    ("balls frame_size str", lambda c: balls(frame_size="64"), "frame_size must be two integers (H, W)"),
    ("balls frame_size float", lambda c: balls(frame_size=(16.5, 16)), "frame_size must be two integers (H, W)"),
    ("balls split", lambda c: balls(split="test"), "unknown split 'test'"),
    ("balls render_mode", lambda c: balls(render_mode="video"), "render_mode must be None, 'rgb_array' or 'human'"),
    ("balls max_steps", lambda c: balls(max_steps=0), "max_steps must be a positive integer or None, got 0"),
    ("balls radius_range", lambda c: balls(radius_range=(1.5, 0.7)), "radius_range must be (low, high)"),
    ("balls speed_range", lambda c: balls(speed_range=(-1, 2)), "speed_range must be (low, high)"),
    ("balls seed -5", lambda c: c.balls.reset(seed=-5), "seed must be None or a non-negative Python int"),
    ("balls seed float", lambda c: c.balls.reset(seed=1.5), "non-negative Python int (as Gymnasium's reset takes), got 1.5"),
    ("balls seed str", lambda c: c.balls.reset(seed="0"), "non-negative Python int (as Gymnasium's reset takes), got '0'"),
    ("balls options str", lambda c: c.balls.reset(options="push"), "reset options must be a dict or None, got str 'push'"),
    ("balls action 7", lambda c: c.balls.step(7), "action must be one integer in [0, 5)"),
    ("balls action float", lambda c: c.balls.step(1.5), "action must be one integer in [0, 5)"),
    ("balls action list", lambda c: c.balls.step([1, 2]), "action must be one integer in [0, 5)"),
    # worldsim/CartPole-v0
    ("cartpole frame_size", lambda c: gym.make("worldsim/CartPole-v0", frame_size=(2, 2)), "frame_size must be two integers (H, W)"),
    ("cartpole render_mode", lambda c: gym.make("worldsim/CartPole-v0", render_mode="human"), "render_mode None or 'rgb_array'"),
    ("cartpole seed", lambda c: c.cartpole.reset(seed=-1), "seed must be None or a non-negative Python int"),
    ("cartpole options", lambda c: c.cartpole.reset(options=[1]), "reset options must be a dict or None, got list"),
    ("cartpole action 2", lambda c: c.cartpole.step(2), "action must be one integer in [0, 2) (0 left, 1 right)"),
    ("cartpole action -1", lambda c: c.cartpole.step(-1), "action must be one integer in [0, 2)"),
    # worldsim/DreamBalls-v0
    ("dream no model", lambda c: gym.make("worldsim/DreamBalls-v0"), "a dream env needs a world model: pass model=NAME_OR_PATH"),
    ("dream model type", lambda c: gym.make("worldsim/DreamBalls-v0", model=3), "model must be a name, a path or a WorldModel"),
    ("dream guidance nan", lambda c: dream_of(c, guidance=float("nan")), "guidance must be a finite number >= 1"),
    ("dream guidance inf", lambda c: dream_of(c, guidance=float("inf")), "guidance must be a finite number >= 1"),
    ("dream guidance 0.5", lambda c: dream_of(c, guidance=0.5), "guidance must be a finite number >= 1"),
    ("dream guidance str", lambda c: dream_of(c, guidance="2"), "guidance must be a finite number >= 1"),
    ("dream sampler_steps 0", lambda c: dream_of(c, sampler_steps=0), "sampler_steps must be >= 1 (an integer)"),
    ("dream sampler_steps float", lambda c: dream_of(c, sampler_steps=1.5), "model's default; got 1.5"),
    ("dream context_frames 50", lambda c: dream_of(c, context_frames=50), "context_frames must be at most 2"),
    ("dream context_frames 0", lambda c: dream_of(c, context_frames=0), "context_frames must be an integer >= 1, got 0"),
    ("dream horizon", lambda c: dream_of(c, horizon=0), "horizon must be an integer >= 1, got 0"),
    ("dream frame_size", lambda c: dream_of(c, frame_size=(18, 16)), "must be divisible by 4"),
    ("dream render_mode", lambda c: dream_of(c, render_mode="video"), "render_mode must be None, 'rgb_array' or 'human'"),
    ("dream scenario", lambda c: dream_of(c, scenario="bounce"), "unknown Balls scenario 'bounce'"),
    ("dream twin", lambda c: gym.make("worldsim/DreamCartPole-v0", model=c.model), "this model learned worldsim/Balls-v0"),
    ("dream prompt None", lambda c: c.dream.reset(options={"prompt": None}), 'options["prompt"] must be a string'),
    ("dream prompt int", lambda c: c.dream.reset(options={"prompt": 5}), "the prompt must be a string"),
    ("dream options str", lambda c: c.dream.reset(options="a red ball"), "reset options must be a dict or None, got str"),
    ("dream unknown option", lambda c: c.dream.reset(options={"promt": "a ball"}), "unknown reset options ['promt']"),
    ("dream reset_mask", lambda c: c.dream.reset(options={"reset_mask": [True]}), "reset_mask is an option of the vector env"),
    ("dream context size", lambda c: c.dream.reset(options={"context": np.zeros((2, 8, 8, 3), np.uint8)}), "context frames must be uint8"),
    ("dream context dtype", lambda c: c.dream.reset(options={"context": np.zeros((2, 16, 16, 3))}), "context frames must be uint8"),
    ("dream seed -1", lambda c: c.dream.reset(seed=-1), "seed must be None or a non-negative Python int"),
    ("dream seed numpy", lambda c: c.dream.reset(seed=np.float64(2)), "seed must be None or a non-negative Python int"),
    ("dream action 7", lambda c: c.dream.step(7), "action must be one integer in [0, 5)"),
    ("dream action float", lambda c: c.dream.step(0.5), "action must be one integer in [0, 5)"),
    # WorldSimulator
    ("simulator batch_size", lambda c: WorldSimulator(c.simulator.model, 0), "batch_size must be an integer >= 1, got 0"),
    ("simulator guidance", lambda c: WorldSimulator(c.simulator.model, 1, guidance=float("nan")), "guidance must be a finite number"),
    ("simulator sampler_steps", lambda c: WorldSimulator(c.simulator.model, 1, sampler_steps=0), "sampler_steps must be >= 1"),
    ("simulator window", lambda c: WorldSimulator(c.simulator.model, 1, window=0), "window must be an integer >= 1 (context frames)"),
    ("simulator frame_size", lambda c: WorldSimulator(c.simulator.model, 1, frame_size=(9, 12)), "must be divisible by 4"),
    ("simulator seed", lambda c: WorldSimulator(c.simulator.model, 1, seed=-1), "seed must be an integer in [0, 2**64)"),
    ("simulator actions", lambda c: c.simulator.step(torch.tensor([1, 2, 3])), "actions must have shape (2,)"),
    ("simulator prompts", lambda c: c.simulator.reset([True, False], prompts=[42]), "prompts must be strings, got 42"),
    ("simulator prompt count", lambda c: c.simulator.reset([True, False], prompts=["a", "b"]), "got 2 prompts for 1 envs"),
    # worldsim.load and the WorldModel's own sampling
    ("load unknown name", lambda c: worldsim.load("nope"), "nope"),
    (
        "predict_next guidance nan",
        lambda c: c.simulator.model.predict_next(
            torch.zeros(1, 2, 16, 16, 3, dtype=torch.uint8), torch.zeros(1, 2, dtype=torch.long), [""], guidance=float("nan")
        ),
        "guidance must be a finite number >= 1",
    ),  # fmt: skip
    (
        "predict_next steps 0",
        lambda c: c.simulator.model.predict_next(
            torch.zeros(1, 2, 16, 16, 3, dtype=torch.uint8), torch.zeros(1, 2, dtype=torch.long), [""], steps=0
        ),
        "sampler_steps must be >= 1",
    ),  # fmt: skip
    ("generate_image steps 0", lambda c: c.simulator.model.generate_image([""], steps=0), "sampler_steps must be >= 1"),
    ("generate_image guidance 0", lambda c: c.simulator.model.generate_image([""], guidance=0.0), "guidance must be a finite number"),
    # make_policy
    ("policy name", lambda c: make_policy("clever", c.push), "unknown policy 'clever'"),
    ("policy epsilon 2", lambda c: make_policy("scripted", c.push, epsilon=2.0), "epsilon must be a probability in [0, 1], got 2.0"),
    ("policy epsilon nan", lambda c: make_policy("scripted", c.push, epsilon=float("nan")), "epsilon must be a probability in [0, 1]"),
    ("policy scripted passive", lambda c: make_policy("scripted", c.balls), "no scripted policy for this world"),
    ("policy missing", lambda c: make_policy(str(c.root / "missing.zip"), c.push), "missing.zip does not exist"),
    ("policy algo", lambda c: make_policy(str(c.root / "ppo16.zip"), c.push, algo="sac"), "algo must be one of ppo, a2c, dqn"),
    ("policy garbage", lambda c: make_policy(str(c.root / "garbage.zip"), c.push), "garbage.zip is not an SB3 policy .zip"),
    (
        "policy frame size",
        lambda c: make_policy(str(c.root / "ppo16.zip"), balls(scenario="push", frame_size=(32, 32))),
        "is a policy for 16x16 frames, but this env makes 32x32 frames",
    ),  # fmt: skip
    (
        "policy actions",
        lambda c: make_policy(str(c.root / "ppo16.zip"), gym.make("worldsim/CartPole-v0", frame_size=(16, 16))),
        "is a policy for 5 actions, but this env has 2",
    ),  # fmt: skip
]


@pytest.mark.parametrize("make, message", [case[1:] for case in PYTHON], ids=[case[0] for case in PYTHON])
def test_python_api_rejects(ctx, make, message):
    with pytest.raises(UserError) as raised:
        make(ctx)
    assert message in str(raised.value)


def test_the_table_is_big_enough():
    assert len(CLI) + len(PYTHON) >= 100
