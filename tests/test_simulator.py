"""WorldSimulator: cached generation equals full recomputation; resets, forks, seeds, errors."""

import copy
import dataclasses

import pytest
import torch
from tiny_world_model import tiny_dit

from worldsim.errors import UserError
from worldsim.model.codec import PixelCodec
from worldsim.model.denoiser import Denoiser
from worldsim.model.sampler import Sampler, guided
from worldsim.model.text import ByteTextEncoder
from worldsim.model.world_model import WorldModel, WorldModelConfig
from worldsim.simulator import WorldSimulator

SIZE = (8, 12)
LEVEL = 0.05  # context noise: exercises the commit noise


@pytest.fixture(scope="module", params=[False, True], ids=["flow", "shortcut"])
def model(request):
    dit = tiny_dit(text_dim=16, step_conditioning=request.param)  # shortcut: the step size is an input too
    config = WorldModelConfig(frame_size=SIZE, context_frames=4, context_noise=LEVEL, sampler_steps=3)
    return WorldModel(config, PixelCodec(), dit, ByteTextEncoder(dim=16, depth=1, num_heads=2)).eval()


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 8])
def test_sampler_levels_are_uniform_and_every_pass_moves_the_frame(steps):
    # diffusers' Euler flow-matching levels end ..., 0.001, 0: with k >= 2 their last pass moved the
    # frame by 0.001 and was wasted. Every step here is 1 / k of the way from noise to the frame.
    levels = Sampler(steps).sigmas
    assert len(levels) == steps + 1 and levels[0] == 1.0 and levels[-1] == 0.0
    assert all(abs((a - b) - 1 / steps) < 1e-12 for a, b in zip(levels[:-1], levels[1:]))


def frames(n, t, seed):
    return torch.randint(0, 256, (n, t, *SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


class Reference:
    """Full recomputation: every env's whole sequence since its reset through the DiT with
    attention limited to W frames back, drawing noise in the simulator's documented order. Its
    Euler loop is written out here, so that the test does not trust the sampler it checks."""

    def __init__(self, model, batch, window, seed, commit_pass=True):
        self.model, self.window, self.commit_pass = model, window, commit_pass
        self.generator = torch.Generator().manual_seed(seed)
        self.denoiser = Denoiser(model.dit)
        # 3 steps; without a commit pass, 2 uniform ones to the context level, then one to 0.
        self.sigmas = [1.0, 2 / 3, 1 / 3, 0.0] if commit_pass else [1.0, (1 + LEVEL) / 2, LEVEL, 0.0]
        self.time = 0
        self.envs = [None] * batch  # per env: (latents [1, T, ...], sigmas, actions, taken, first position, prompt)

    def noise(self, shape):
        return torch.randn(shape, generator=self.generator)

    def reset(self, rows, context, actions, prompts):
        latents = self.model.codec.encode(context)
        noisy = (1 - LEVEL) * latents + LEVEL * self.noise(latents.shape)
        t = context.shape[1]
        incoming = torch.cat([torch.zeros(len(rows), 1, dtype=torch.long), actions[:, :-1]], dim=1)
        taken = torch.ones(len(rows), t, dtype=torch.bool)
        taken[:, 0] = False
        for i, row in enumerate(rows):
            self.envs[row] = [noisy[i : i + 1], torch.full((1, t), LEVEL), incoming[i : i + 1], taken[i : i + 1],
                              self.time - t, prompts[i]]  # fmt: skip

    def forward(self, env, x, sigma, step, action):
        latents, sigmas, actions, taken, first, prompt = env
        return self.denoiser(
            torch.cat([latents, x], 1), torch.cat([sigmas, torch.full((1, 1), sigma)], 1),
            torch.cat([actions, action.view(1, 1)], 1), torch.cat([taken, torch.ones(1, 1, dtype=torch.bool)], 1),
            self.model.text_context([prompt]), block_offset=first, window=self.window, step=step,
        )  # fmt: skip

    def step(self, actions):
        batch = len(self.envs)
        x = self.noise((batch, 1, 3, *SIZE))
        for sigma, sigma_next in zip(self.sigmas[:-1], self.sigmas[1:]):
            step = sigma - sigma_next
            v = torch.cat([self.forward(env, x[b : b + 1], sigma, step, actions[b]).velocity[:, -1:] for b, env in enumerate(self.envs)])
            last_input, x = x, x + (sigma_next - sigma) * v
        # Committed at the context level: by fresh noise for the commit pass, or as the last pass saw it.
        noisy = (1 - LEVEL) * x + LEVEL * self.noise(x.shape) if self.commit_pass else last_input
        for b, env in enumerate(self.envs):
            env[0] = torch.cat([env[0], noisy[b : b + 1]], 1)
            env[1] = torch.cat([env[1], torch.full((1, 1), LEVEL)], 1)
            env[2] = torch.cat([env[2], actions[b].view(1, 1)], 1)
            env[3] = torch.cat([env[3], torch.ones(1, 1, dtype=torch.bool)], 1)
        self.time += 1
        return x


@pytest.mark.parametrize("commit_pass", [True, False], ids=["commit-pass", "last-pass-commits"])
@torch.no_grad()
def test_cached_generation_equals_full_recomputation(model, commit_pass):
    if not commit_pass and model.dit.config.step_conditioning:
        pytest.skip("a step-conditioned network needs its commit pass (refused: test_no_commit_pass_errors)")
    window, seed = 3, 7
    sim = WorldSimulator(model, 2, window=window, sampler_steps=3, seed=seed, commit_pass=commit_pass)
    ref = Reference(model, 2, window, seed, commit_pass)
    context, actions = frames(2, 2, seed=1), torch.tensor([[1, 2], [3, 4]])
    prompts = ["a red ball", "two balls"]
    sim.reset([True, True], context, actions, prompts)
    ref.reset([0, 1], context, actions, prompts)
    rng = torch.Generator().manual_seed(3)
    worst = 0.0
    for step in range(8):  # the window of 3 slides several times
        if step == 4:  # a partial reset of env 1 from one new frame
            new = frames(1, 1, seed=2)
            sim.reset([False, True], new, torch.tensor([[0]]), ["a blue ball"])
            ref.reset([1], new, torch.tensor([[0]]), ["a blue ball"])
        acts = torch.randint(0, 5, (2,), generator=rng)
        sim.step(acts)
        expected = ref.step(acts)
        worst = max(worst, (sim.latents - expected).abs().max().item())
    assert worst < 1e-4, worst
    assert sim.time == 8 and sim.filled.all()  # the window is full again after the reset


@torch.no_grad()
def test_same_seed_same_rollout_and_reset_spares_other_envs(model):
    def rollout(seed):
        sim = WorldSimulator(model, 3, seed=seed)
        sim.reset([True] * 3, frames(3, 2, seed=0))
        return torch.stack([sim.step(torch.tensor([1, 2, 3])).frames for _ in range(3)]), sim

    a, sim = rollout(5)
    b, _ = rollout(5)
    c, _ = rollout(6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    keys = [k.clone() for k in sim.cache.keys]
    sim.reset([False, True, False], frames(1, 1, seed=9))
    for before, after in zip(keys, sim.cache.keys):
        assert torch.equal(before[[0, 2]], after[[0, 2]]) and not torch.equal(before[1], after[1])
    assert sim.filled[1].sum() == 1 and sim.filled[0].all()


@torch.no_grad()
def test_fork_branches_identical_futures(model):
    sim = WorldSimulator(model, 2, seed=1)
    sim.reset([True, True], frames(2, 3, seed=4))
    sim.step(torch.tensor([0, 1]))
    left, right = sim.fork([1, 1]), sim.fork([1, 1])
    assert left.batch_size == 2 and torch.equal(left.cache.keys[0][0], sim.cache.keys[0][1])
    a, b = left.step(torch.tensor([2, 3])).frames, right.step(torch.tensor([2, 3])).frames
    assert torch.equal(a, b)  # same state, same noise stream, same actions
    assert not torch.equal(a[0], a[1])  # the two branches differ by their action
    sim.step(torch.tensor([4, 4]))
    assert torch.equal(left.cache.keys[0][0], right.cache.keys[0][0])  # the original moving on leaves forks alone


@torch.no_grad()
def test_prompt_reset_generates_a_first_frame_and_steps_on(model):
    sim = WorldSimulator(model, 2, seed=0)
    first = sim.reset([True, True], prompts=["a red ball falls", ""])
    assert first.shape == (2, *SIZE, 3) and first.dtype == torch.uint8
    assert sim.filled.sum(1).tolist() == [1, 1]
    result = sim.step(torch.tensor([0, 3]))
    assert result.frames.shape == (2, *SIZE, 3) and result.rewards.shape == (2,) and result.terminated.dtype == torch.bool


def test_text_is_as_wide_as_the_longest_prompt_and_padding_changes_nothing(model):
    """Cross-attention reads each env's prompt padded to the longest so far (one token for "" and a
    BOS + one per byte otherwise), not to the encoder's max_length; padding is masked out, so a
    simulator padded to max_length (as before) makes the same frames."""
    narrow, wide = WorldSimulator(model, 2, seed=3), WorldSimulator(model, 2, seed=3)
    wide.text = wide.text.padded(wide.text_length)
    assert narrow.text.width == 1 and wide.text.width == 128
    for sim in (narrow, wide):
        sim.reset([True, False], prompts=["a red ball"])
        sim.reset([False, True], prompts=[""])
    assert narrow.text.width == 1 + len("a red ball") and wide.text.width == 128
    for _ in range(3):
        a, b = narrow.step(torch.tensor([1, 2])), wide.step(torch.tensor([1, 2]))
        assert (a.frames.int() - b.frames.int()).abs().max() <= 1  # equal up to float summation order
        assert torch.allclose(a.rewards, b.rewards, atol=1e-5)


@torch.no_grad()
def test_guidance_runs_and_changes_frames(model):
    plain = WorldSimulator(model, 1, seed=0)
    guided = WorldSimulator(model, 1, seed=0, guidance=3.0)
    for sim in (plain, guided):
        sim.reset([True], frames(1, 2, seed=0), prompts=["a red ball"])
    assert not torch.equal(plain.step(torch.tensor([1])).frames, guided.step(torch.tensor([1])).frames)


def test_bad_inputs_give_clear_errors(model):
    sim = WorldSimulator(model, 2)
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
        sim.step(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"context must be uint8 \[1, T, 8, 12, 3\]"):
        sim.reset([True, False], torch.zeros(1, 2, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(UserError, match="prompts must be strings"):
        sim.reset([True, False], prompts=[42])
    with pytest.raises(ValueError, match="got 2 prompts for 1 envs"):
        sim.reset([True, False], prompts=["a", "b"])
    with pytest.raises(ValueError, match="frame_size .* must be divisible by 2"):
        WorldSimulator(model, 1, frame_size=(9, 12))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        WorldSimulator(model, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"guidance": float("nan")}, "guidance must be a finite number >= 1"),
        ({"guidance": float("inf")}, "guidance must be a finite number >= 1"),
        ({"guidance": 0.5}, "guidance must be a finite number >= 1"),
        ({"guidance": "2"}, "guidance must be a finite number >= 1"),
        ({"sampler_steps": 0}, r"sampler_steps must be >= 1 \(an integer\), .*got 0"),
        ({"sampler_steps": 2.5}, r"sampler_steps must be >= 1 \(an integer\), .*got 2.5"),
        ({"batch_size": True}, "batch_size must be an integer >= 1"),
        ({"frame_size": (0, 12)}, "frame_size .* must be divisible by 2 .*, two positive integers"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*64\)"),
    ],
)
def test_bad_settings_are_user_errors(model, kwargs, message):
    # sampler_steps=0 once fell back to the model's default and guidance=nan made black frames.
    with pytest.raises(UserError, match=message):
        WorldSimulator(model, **{"batch_size": 1, **kwargs})


@torch.no_grad()
def test_frames_handed_out_are_not_changed_by_later_resets(model):
    sim = WorldSimulator(model, 2, seed=0)
    sim.reset([True, True], frames(2, 2, seed=0))
    result = sim.step(torch.tensor([1, 1]))
    kept = result.frames.clone()
    sim.reset([True, False], frames(1, 1, seed=5))
    assert torch.equal(result.frames, kept)
    with pytest.raises(ValueError, match=r"window must be an integer >= 1 \(context frames\)"):
        WorldSimulator(model, 1, window=0)


@torch.no_grad()
def test_without_a_commit_pass_a_frame_costs_one_pass_fewer(model):
    if model.dit.config.step_conditioning:
        pytest.skip("refused for a step-conditioned network")
    calls = []
    handle = model.dit.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        for commit_pass, passes in ((True, 4), (False, 3)):
            sim = WorldSimulator(model, 2, sampler_steps=3, seed=0, commit_pass=commit_pass)
            sim.reset([True, True], frames(2, 2, seed=0))
            calls.clear()
            out = sim.step(torch.tensor([1, 2]))
            assert len(calls) == passes and out.rewards.shape == (2,) and out.terminated.shape == (2,)
            assert torch.all(sim.previous_sigmas == LEVEL)
    finally:
        handle.remove()


def test_guidance_runs_the_conditioned_pass_last():
    # Without a commit pass the cache keeps the keys and values of a pass's last run: the conditioned one.
    order = []
    guided(lambda conditioned: order.append(conditioned) or torch.ones(1), 2.0)
    assert order == [False, True]


def test_no_commit_pass_errors(model):
    cases = [
        ({"commit_pass": "no"}, "commit_pass must be True, False or None"),
        ({"commit_pass": False, "sampler_steps": 1}, r"without a commit pass \(commit_pass=false\) needs sampler_steps >= 2, got 1"),
    ]
    if model.dit.config.step_conditioning:
        cases.append(({"commit_pass": False}, "commit_pass=False needs a network without step conditioning"))
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            WorldSimulator(model, 1, **kwargs)
    clean = WorldModel(
        WorldModelConfig(frame_size=SIZE, context_frames=4, context_noise=0.0, commit_pass=False),
        model.codec,
        model.dit,
        model.text_encoder,
    )
    with pytest.raises(UserError, match=r"needs a context_noise in \(0, 1\), the level of its last sampler pass; got 0.0"):
        clean.predict_next(frames(1, 2, seed=0), torch.zeros(1, 2, dtype=torch.long), [""])
    with pytest.raises(UserError, match="commit_pass must be true or false, got 1"):
        WorldModelConfig(commit_pass=1)


@torch.no_grad()
@pytest.mark.parametrize("threshold, ended", [(1e-6, True), (1 - 1e-6, False)])
def test_an_episode_ends_where_the_termination_probability_passes_the_models_threshold(model, threshold, ended):
    # A head trained with terminal_repeats r sees r times the ends its data hold; the model's
    # termination_threshold (r / (r + 1) undoes that prior) is what the dream compares its probability with.
    config = dataclasses.replace(model.config, termination_threshold=threshold)
    strict = WorldModel(config, model.codec, model.dit, model.text_encoder).eval()
    sim = WorldSimulator(strict, 2, seed=0)
    sim.reset([True, True], frames(2, 2, seed=3))
    assert sim.step(torch.tensor([0, 1])).terminated.tolist() == [ended, ended]


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, True, "0.9"])
def test_a_termination_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(UserError, match=r"termination_threshold must be a probability in \(0, 1\)"):
        WorldModelConfig(termination_threshold=threshold)


@torch.no_grad()
def test_compiled_passes_give_the_eager_rollout_and_compile_once(model):
    """SpacetimeDiT.compile_passes: the cached passes run as one graph whatever the window's place,
    the frame's position or the sampler step (they enter as data); resets from real frames run
    graphs of their own, which leave that one alone. Traced by counting backends that run the
    graphs as traced (inductor is the slow test in test_dit.py), so the outputs differ from the
    eager ones only by the compiled GELU's form (sigmoid for tanh)."""
    from torch._dynamo.testing import CompileCounter

    compiled, counter, starts = copy.deepcopy(model), CompileCounter(), CompileCounter()
    compiled.dit.compile_passes(backend=counter)
    compiled.dit.compiled_start = torch.compile(compiled.dit.run_start, backend=starts)

    def rollout(m):
        sim = WorldSimulator(m, 2, window=3, seed=4)
        sim.reset([True, True], frames(2, 2, seed=1), torch.tensor([[1, 2], [3, 4]]))
        latents = []
        for step in range(7):  # the window's place moves round the ring twice
            if step == 3:
                sim.reset([False, True], frames(1, 1, seed=2))
            sim.step(torch.tensor([step % 5, (step + 2) % 5]))
            latents.append(sim.latents)
        return torch.stack(latents)

    torch._dynamo.reset()
    eager, fast = rollout(model), rollout(compiled)
    torch.testing.assert_close(fast, eager, rtol=1e-4, atol=1e-4)
    assert counter.frame_count == 1, counter.frame_count
    assert starts.frame_count >= 1  # the resets (2 and 1 frames) ran compiled


@torch.no_grad()
def test_bfloat16_precision_runs_the_passes_in_bf16_and_keeps_float32_state(model):
    """precision="bfloat16": the passes under autocast (rounding moves the frames a little, the
    same seed still gives the same rollout) and the cache in bf16; rewards and latents stay float32."""

    def rollout(precision):
        sim = WorldSimulator(model, 2, window=3, seed=4, precision=precision)
        sim.reset([True, True], frames(2, 2, seed=1), torch.tensor([[1, 2], [3, 4]]))
        steps = [sim.step(torch.tensor([1, 3])) for _ in range(3)]
        return sim, torch.stack([s.frames for s in steps]), steps[-1]

    full, frames32, _ = rollout("float32")
    half, frames16, last = rollout("bfloat16")
    _, again, _ = rollout("bfloat16")
    assert torch.equal(frames16, again) and not torch.equal(frames16, frames32)
    # bf16 keeps 8 bits of mantissa: after 3 steps of a random tiny model the frames differ by a few
    # levels of 255 at most (measured 0.3-1.2 mean, 5-13 max on Intel and AMD float paths).
    assert (frames16.float() - frames32.float()).abs().mean() < 4
    assert last.rewards.dtype == torch.float32 and half.latents.dtype == torch.float32
    assert all(k.dtype == torch.bfloat16 for k in half.cache.keys) and all(k.dtype == torch.float32 for k in full.cache.keys)
    with pytest.raises(UserError, match="precision must be one of float32, bfloat16, got 'float16'"):
        WorldSimulator(model, 1, precision="float16")
