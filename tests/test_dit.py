"""SpacetimeDiT (the network) through its Denoiser (the preconditioning): causality, cached ==
recomputed, windows, relative positions, conditioning, the frame before, save/load."""

import pytest
import torch
from tiny_world_model import tiny_dit

from worldsim.model.denoiser import Denoiser, preconditioning
from worldsim.model.dit import SpacetimeDiT
from worldsim.model.kv_cache import KVCache
from worldsim.model.text import ByteTextEncoder


def tiny(**overrides) -> Denoiser:
    return Denoiser(tiny_dit(**overrides))


def inputs(model: Denoiser, b=2, t=6, h=8, w=8, c=3, seed=0, continuous=0):
    g = torch.Generator().manual_seed(seed)
    text, mask = ByteTextEncoder(dim=32, depth=1, num_heads=2)(["a red ball", "two balls collide"][:b])
    actions = torch.randn(b, t, continuous, generator=g) if continuous else torch.randint(0, 5, (b, t), generator=g)
    return dict(
        latents=torch.randn(b, t, c, h, w, generator=g),
        sigmas=torch.rand(b, t, generator=g),
        actions=actions,
        action_mask=torch.rand(b, t, generator=g) > 0.2,
        text=model.network.text_context(text.detach(), mask),
    )


def split(x: dict, at: int) -> tuple[dict, dict]:
    """The inputs of frames ``[:at]`` and ``[at:]`` (the text is shared)."""
    head = {k: v if k == "text" else v[:, :at] for k, v in x.items()}
    tail = {k: v if k == "text" else v[:, at:] for k, v in x.items()}
    return head, tail


def test_outputs_have_the_documented_shapes():
    model = tiny()
    out = model(**inputs(model))
    assert out.velocity.shape == out.denoised.shape == (2, 6, 3, 8, 8)
    assert out.reward.shape == out.termination.shape == out.loss_weight.shape == (2, 6)
    x = inputs(model)
    torch.testing.assert_close(out.velocity, (x["latents"] - out.denoised) / x["sigmas"][:, :, None, None, None], rtol=1e-5, atol=1e-5)


def test_changing_later_frames_leaves_earlier_outputs_bit_identical():
    model = tiny()
    x = inputs(model)
    before = model(**x)
    changed = dict(x)
    changed["latents"] = x["latents"].clone()
    changed["latents"][:, 3:] = torch.randn_like(changed["latents"][:, 3:])
    changed["sigmas"] = torch.cat([x["sigmas"][:, :3], torch.rand(2, 3)], dim=1)
    changed["actions"] = torch.cat([x["actions"][:, :3], (x["actions"][:, 3:] + 1) % 5], dim=1)
    after = model(**changed)
    for key in ("velocity", "denoised", "reward", "termination"):
        assert torch.equal(getattr(before, key)[:, :3], getattr(after, key)[:, :3]), key
        assert not torch.equal(getattr(before, key)[:, 3:], getattr(after, key)[:, 3:]), key


@pytest.mark.parametrize("t, h, w", [(1, 8, 8), (6, 8, 8), (6, 8, 12), (3, 12, 8)])
def test_one_model_runs_any_duration_and_aspect_ratio(t, h, w):
    model = tiny()
    out = model(**inputs(model, t=t, h=h, w=w))
    assert out.velocity.shape == (2, t, 3, h, w) and torch.isfinite(out.velocity).all()


def test_cached_keys_give_the_same_outputs_as_recomputation():
    model = tiny()
    x = inputs(model, t=6, h=8, w=12)
    full = model(**x)
    head, tail = split(x, 4)
    kvs = model(**head).keys_values
    before = (x["latents"][:, 3], x["sigmas"][:, 3])
    # Slots of 4 x 6 tokens: the head's 4 frames, and room for the tail's own 2, written in place.
    cache = with_room(kvs, 2 * 4 * 6, filled=[True] * 4 + [False] * 2, tokens_per_frame=4 * 6, head=4)
    cached = model(**tail, before=before, block_offset=4, cache=cache)
    torch.testing.assert_close(cached.velocity, full.velocity[:, 4:], rtol=0, atol=1e-5)
    torch.testing.assert_close(cached.reward, full.reward[:, 4:], rtol=0, atol=1e-5)
    # The pass wrote its own keys at the cache's head: the next pass would read them there.
    torch.testing.assert_close(cache.keys[1][:, :, 4 * 4 * 6 :], full.keys_values[1][0][:, :, 4 * 4 * 6 :], rtol=0, atol=1e-5)


def test_empty_cache_slots_are_ignored():
    model = tiny()
    x = inputs(model, t=4)
    head, tail = split(x, 2)
    kvs = model(**head).keys_values
    before = (x["latents"][:, 1], x["sigmas"][:, 1])
    # Slots of 16 tokens; the two slots being written count as filled here, and are ignored.
    a = model(**tail, before=before, block_offset=2, cache=with_room(kvs, 32, [True] * 4, 16, head=2)).velocity
    # Garbage slots marked empty before the cache, and the written slots marked empty: no change.
    garbage = [(torch.randn(2, 2, 64, 16), torch.randn(2, 2, 64, 16)) for _ in kvs]
    padded = with_room([(torch.cat([g, k], 2), torch.cat([h, v], 2)) for (g, h), (k, v) in zip(garbage, kvs)], 32,
                       [False] * 4 + [True] * 2 + [False] * 2, 16, head=6)  # fmt: skip
    b = model(**tail, before=before, block_offset=2, cache=padded).velocity
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def with_room(kvs, room: int, filled: list[bool], tokens_per_frame: int, head: int) -> KVCache:
    """A cache of ``kvs`` (per layer ``(keys, values)``) followed by ``room`` free positions."""
    pad = torch.full((*kvs[0][0].shape[:2], room, kvs[0][0].shape[3]), float("nan"))
    keys, values = [torch.cat([k, pad], 2) for k, _ in kvs], [torch.cat([v, pad], 2) for _, v in kvs]
    return KVCache(keys, values, torch.tensor([filled, filled]), tokens_per_frame, head)


def test_window_limits_how_far_back_a_frame_sees():
    model = tiny()
    x = inputs(model, t=7)
    before = model(**x, window=2)
    changed = dict(x, latents=x["latents"].clone())
    changed["latents"][:, 0] += 1.0
    after = model(**changed, window=2)
    # Two layers of windows of 2 reach 4 frames back, and frame 1 reads frame 0 as its predecessor:
    # frame 5 still feels frame 0, frame 6 does not.
    assert not torch.equal(before.velocity[:, 5], after.velocity[:, 5])
    assert torch.equal(before.velocity[:, 6:], after.velocity[:, 6:])


def test_positions_are_relative_in_time():
    model = tiny()
    x = inputs(model, t=3)
    a = model(**x).velocity
    b = model(**x, block_offset=17).velocity
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_temporal_patches_form_causal_blocks():
    model = tiny(temporal_patch_size=2)
    x = inputs(model, t=6)
    before = model(**x)
    changed = dict(x, latents=x["latents"].clone())
    changed["latents"][:, 5] += 1.0  # inside the third block
    after = model(**changed)
    assert torch.equal(before.velocity[:, :4], after.velocity[:, :4])
    assert not torch.equal(before.velocity[:, 4], after.velocity[:, 4])  # same block sees it
    with pytest.raises(ValueError, match="need T divisible by 2"):
        model(**inputs(model, t=5))


def test_continuous_actions_and_the_null_action():
    model = tiny(num_actions=0, action_dim=3)
    x = inputs(model, continuous=3)
    out = model(**x)
    assert out.velocity.shape == (2, 6, 3, 8, 8)
    masked = dict(x, action_mask=torch.zeros(2, 6, dtype=torch.bool))
    other = dict(masked, actions=torch.randn(2, 6, 3))
    torch.testing.assert_close(model(**masked).velocity, model(**other).velocity)  # null ignores values


def test_actions_and_text_reach_the_output():
    model = tiny()
    x = inputs(model)
    base = model(**x).velocity
    assert not torch.allclose(base, model(**dict(x, actions=(x["actions"] + 1) % 5)).velocity)
    assert not torch.allclose(base, model(**dict(x, text=x["text"][torch.tensor([1, 0])])).velocity)


def test_a_one_token_text_skips_the_scores_and_gives_what_attention_gives():
    """An empty caption is one token: cross-attention to it is its projected value for every video
    token, computed without the query or the scores (what it saves: the action-only worlds' text)."""
    torch.manual_seed(0)
    block = next(iter(tiny_dit().typed_blocks))
    x = torch.randn(2, 12, block.cross.q.in_features)
    keys, values = block.cross.keys_values(torch.randn(2, 1, block.cross.q.in_features))
    mask = torch.zeros(2, 1, 1, 1)
    full = block.cross(block.norm2(x), keys, values, mask)
    short = block.cross.one_token(values)
    assert short.shape == (2, 1, x.shape[-1])
    torch.testing.assert_close(full, short.expand_as(full), rtol=1e-6, atol=1e-6)
    model = tiny()
    text, text_mask = ByteTextEncoder(dim=32, depth=1, num_heads=2)(["", ""])
    assert text.shape[1] == 1
    one = model.network.text_context(text.detach(), text_mask)
    x = inputs(model)
    padded = model(**dict(x, text=one.padded(2))).velocity  # two tokens, one of them padding: the scores' path
    torch.testing.assert_close(model(**dict(x, text=one)).velocity, padded, rtol=1e-5, atol=1e-5)


def test_the_step_size_reaches_the_newest_frame_only_and_starts_as_a_no_op():
    model = tiny(step_conditioning=True)
    x = inputs(model)
    base = model(**x)
    jump = model(**x, step=torch.tensor([0.5, 0.25]))
    assert not torch.allclose(base.velocity[:, -1], jump.velocity[:, -1])
    assert torch.equal(base.velocity[:, :-1], jump.velocity[:, :-1])  # frame-causal: earlier frames never see it
    assert torch.equal(model(**x, step=0.5).velocity, model(**x, step=torch.tensor([0.5, 0.5])).velocity)
    # Freshly built, the step embedding's output layer is zero: a flow model fine-tuned with it starts as itself.
    flow, shortcut = tiny_dit(), tiny_dit(random_weights=False, step_conditioning=True)
    missing, unexpected = shortcut.load_state_dict(flow.state_dict(), strict=False)
    assert {name.split(".")[0] for name in missing} == {"step_embed"} and not unexpected
    x = inputs(Denoiser(flow))
    assert torch.equal(Denoiser(flow)(**x).velocity, Denoiser(shortcut)(**x, step=0.5).velocity)
    # A flow model has no step input: it ignores it.
    plain = tiny()
    assert torch.equal(plain(**x).velocity, plain(**x, step=0.5).velocity)


def test_attention_pooled_heads_start_as_the_mean_and_can_single_out_one_token():
    mean = tiny_dit()
    attention = tiny_dit(random_weights=False, head_pooling="attention")
    missing, unexpected = attention.load_state_dict(mean.state_dict(), strict=False)
    assert {name.split(".")[0] for name in missing} == {"head_pool"} and not unexpected
    x = inputs(Denoiser(mean))
    before, after = Denoiser(mean)(**x), Denoiser(attention)(**x)
    for key in ("velocity", "reward", "termination"):  # a fresh pool (zero query) is the mean: fine-tuning starts as itself
        torch.testing.assert_close(getattr(before, key), getattr(after, key), rtol=1e-5, atol=1e-5)
    # A trained query weighs tokens by their keys: one frame's heads then read some tokens more than others.
    pool = attention.head_pool
    assert pool is not None
    with torch.no_grad():
        pool.query.normal_(std=3.0)
    tokens = torch.randn(1, 1, 16, 32)
    weights_differ = not torch.allclose(pool(tokens), tokens.mean(dim=2), atol=1e-3)
    assert weights_differ
    with pytest.raises(ValueError, match=r"head_pooling must be one of mean, attention, got 'max'"):
        tiny_dit(head_pooling="max")


def test_fresh_model_repeats_the_frame_before():
    model = Denoiser(tiny_dit(random_weights=False))
    x = inputs(model)
    # adaLN-Zero and a zero final layer: the network adds nothing to reference + c_skip * residual.
    before = torch.cat([torch.zeros_like(x["latents"][:, :1]), x["latents"][:, :-1]], 1)
    before_sigmas = torch.cat([torch.ones(2, 1), x["sigmas"][:, :-1]], 1)
    reference, spread = model.reference(before, before_sigmas)
    _, c_skip, _ = preconditioning(x["sigmas"], spread)
    s, c_skip = x["sigmas"][:, :, None, None, None], c_skip[:, :, None, None, None]
    residual = x["latents"] - (1 - s) * reference
    torch.testing.assert_close(model(**x).velocity, (x["latents"] - reference - c_skip * residual) / s)
    # From a clean frame before, a fresh model's sampler repeats that frame exactly.
    clean = x["latents"][:, :1]
    zero = dict(x, latents=torch.randn_like(clean), sigmas=torch.ones(2, 1), actions=x["actions"][:, :1],
                action_mask=x["action_mask"][:, :1], before=(clean[:, 0], torch.zeros(2)))  # fmt: skip
    torch.testing.assert_close(zero["latents"] - model(**zero).velocity, clean)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="exactly one of num_actions"):
        SpacetimeDiT(num_actions=5, action_dim=2)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        SpacetimeDiT(hidden_size=30, num_heads=4, num_actions=5)
    with pytest.raises(ValueError, match="need T divisible by 1 and h, w by 2"):
        model = tiny()
        model(**inputs(model, h=7))


def test_save_pretrained_round_trip(tmp_path):
    model = tiny()
    x = inputs(model)
    model.network.save_pretrained(tmp_path / "dit", safe_serialization=True)
    assert (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = Denoiser(SpacetimeDiT.from_pretrained(tmp_path / "dit").eval())
    assert torch.equal(model(**x).velocity, loaded(**x).velocity)


def test_the_frame_before_is_read_and_checked():
    model = tiny()
    x = inputs(model, t=2)
    alone = model(**x)
    after = model(**x, before=(torch.randn(2, 3, 8, 8), torch.full((2,), 0.05)))
    assert not torch.equal(alone.velocity[:, 0], after.velocity[:, 0])  # frame 0 reads it directly
    # Without one, the frame before the first is pure noise: level 1, zero signal.
    torch.testing.assert_close(model(**x, before=(torch.zeros(2, 3, 8, 8), torch.ones(2))).velocity, alone.velocity, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"the frame before must be \[B, C, h, w\]"):
        model(**x, before=(torch.zeros(2, 3, 8, 4), torch.ones(2)))


def test_noise_schedule_mixes_clean_windows_and_keeps_old_draws_without_them():
    from worldsim.model.flow import NoiseSchedule

    plain = NoiseSchedule(clean_prob=0.0).sample(256, 4, torch.Generator().manual_seed(0))
    mixed = NoiseSchedule(clean_prob=0.5).sample(256, 4, torch.Generator().manual_seed(0))
    clean = (mixed == mixed[:, :1]).all(dim=1)  # every frame at one context level, the last one included
    assert 0.35 < clean.float().mean() < 0.65 and (mixed[clean] <= 0.1).all()
    assert torch.equal(mixed[~clean], plain[~clean])  # the clean draw comes last: the other windows keep their levels
    assert (NoiseSchedule(clean_prob=1.0).sample(8, 4, torch.Generator().manual_seed(0)) <= 0.1).all()


def test_compile_passes_leaves_training_eager():
    """Passes without a cache run compiled (their own graphs) only while no gradient is wanted:
    an episode's start in the simulator, never a training step."""
    from torch._dynamo.testing import CompileCounter

    model, counter = tiny(), CompileCounter()
    model.network.compile_passes(backend=counter)
    x = inputs(model, t=2)
    model(**x).velocity.sum().backward()
    assert counter.frame_count == 0 and model.network.patch_embed.weight.grad is not None
    with torch.no_grad():
        model(**x)
    assert counter.frame_count == 1


@pytest.mark.slow  # compiles (inductor): about 90 s on a cold cache
def test_compiled_passes_give_the_eager_outputs_against_a_cache():
    """SpacetimeDiT.compile_passes compiles the passes against a cache with inductor; the outputs
    stay the eager ones (to float rounding: fused kernels add in another order, and the compiled
    GELU is the same function written with a sigmoid), with and without a cache."""
    eager, compiled = tiny(), tiny()
    compiled.network.load_state_dict(eager.network.state_dict())
    compiled.network.compile_passes()
    x = inputs(eager, t=4)
    full = eager(**x)
    assert torch.equal(compiled(**x).velocity, full.velocity)  # gradients on: eager
    with torch.no_grad():  # an episode start's pass, compiled
        torch.testing.assert_close(compiled(**x).velocity, full.velocity, rtol=1e-4, atol=1e-4)
    head, tail = split(x, 3)
    kvs = compiled(**head).keys_values
    cache = with_room(kvs, 16, filled=[True] * 3 + [False], tokens_per_frame=16, head=3)
    cached = compiled(**tail, before=(x["latents"][:, 2], x["sigmas"][:, 2]), block_offset=3, cache=cache)
    torch.testing.assert_close(cached.velocity, full.velocity[:, 3:], rtol=1e-4, atol=1e-4)
