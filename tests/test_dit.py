import pytest
import torch

from worldsim.model.dit import SpacetimeDiT
from worldsim.model.flow import preconditioning
from worldsim.model.text import ByteTextEncoder


def tiny(**overrides):
    torch.manual_seed(0)
    kwargs = dict(in_channels=3, patch_size=2, hidden_size=32, depth=2, num_heads=2, num_actions=5, text_dim=32)
    model = SpacetimeDiT(**{**kwargs, **overrides}).eval()
    # adaLN-Zero starts every block as the identity; randomise so that every path carries signal.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def inputs(b=2, t=6, h=8, w=8, c=3, seed=0, continuous=0):
    g = torch.Generator().manual_seed(seed)
    text, mask = ByteTextEncoder(dim=32, depth=1, num_heads=2)(["a red ball", "two balls collide"][:b])
    actions = torch.randn(b, t, continuous, generator=g) if continuous else torch.randint(0, 5, (b, t), generator=g)
    return dict(
        latents=torch.randn(b, t, c, h, w, generator=g),
        sigmas=torch.rand(b, t, generator=g),
        actions=actions,
        action_mask=torch.rand(b, t, generator=g) > 0.2,
        text=text.detach(),
        text_mask=mask,
    )


def test_outputs_have_the_documented_shapes():
    out = tiny()(**inputs())
    assert out.velocity.shape == (2, 6, 3, 8, 8)
    assert out.reward.shape == out.termination.shape == (2, 6)


def test_changing_later_frames_leaves_earlier_outputs_bit_identical():
    model, x = tiny(), inputs()
    before = model(**x)
    changed = dict(x)
    changed["latents"] = x["latents"].clone()
    changed["latents"][:, 3:] = torch.randn_like(changed["latents"][:, 3:])
    changed["sigmas"] = torch.cat([x["sigmas"][:, :3], torch.rand(2, 3)], dim=1)
    changed["actions"] = torch.cat([x["actions"][:, :3], (x["actions"][:, 3:] + 1) % 5], dim=1)
    after = model(**changed)
    for key in ("velocity", "reward", "termination"):
        assert torch.equal(getattr(before, key)[:, :3], getattr(after, key)[:, :3]), key
        assert not torch.equal(getattr(before, key)[:, 3:], getattr(after, key)[:, 3:]), key


@pytest.mark.parametrize("t, h, w", [(1, 8, 8), (6, 8, 8), (6, 8, 12), (3, 12, 8)])
def test_one_model_runs_any_duration_and_aspect_ratio(t, h, w):
    out = tiny()(**inputs(t=t, h=h, w=w))
    assert out.velocity.shape == (2, t, 3, h, w) and torch.isfinite(out.velocity).all()


def test_cached_keys_give_the_same_outputs_as_recomputation():
    model, x = tiny(), inputs(t=6, h=8, w=12)
    full = model(**x)
    head = {k: v[:, :4] if k not in ("text", "text_mask") else v for k, v in x.items()}
    tail = {k: v[:, 4:] if k not in ("text", "text_mask") else v for k, v in x.items()}
    _, kvs = model(**head, return_kv=True)
    before = dict(previous=x["latents"][:, 3], previous_sigmas=x["sigmas"][:, 3])
    # Buffers with room for the tail's own 2 frames of 4 x 6 tokens, written in place.
    cache = [with_room(k, v, 2 * 4 * 6) for k, v in kvs]
    filled = torch.cat([torch.ones(2, 4 * 4 * 6, dtype=torch.bool), torch.zeros(2, 2 * 4 * 6, dtype=torch.bool)], 1)
    cached = model(**tail, **before, block_offset=4, cache=cache, cache_mask=filled, cache_write=slice(4 * 4 * 6, None))
    torch.testing.assert_close(cached.velocity, full.velocity[:, 4:], rtol=0, atol=1e-5)
    torch.testing.assert_close(cached.reward, full.reward[:, 4:], rtol=0, atol=1e-5)


def test_empty_cache_slots_are_ignored():
    model, x = tiny(), inputs(t=4)
    head = {k: v[:, :2] if k not in ("text", "text_mask") else v for k, v in x.items()}
    tail = {k: v[:, 2:] if k not in ("text", "text_mask") else v for k, v in x.items()}
    _, kvs = model(**head, return_kv=True)
    before = dict(previous=x["latents"][:, 1], previous_sigmas=x["sigmas"][:, 1])
    cache = [with_room(k, v, 32) for k, v in kvs]
    ones = torch.ones(2, 64, dtype=torch.bool)
    a = model(**tail, **before, block_offset=2, cache=cache, cache_mask=ones, cache_write=slice(32, None)).velocity
    # Garbage slots marked empty before the cache, and the written slots marked empty: no change.
    padded = [(torch.cat([torch.randn_like(k), k], 2), torch.cat([torch.randn_like(v), v], 2)) for k, v in cache]
    mask = torch.cat([torch.zeros(2, 64, dtype=torch.bool), torch.ones(2, 32, dtype=torch.bool), torch.zeros(2, 32, dtype=torch.bool)], 1)
    b = model(**tail, **before, block_offset=2, cache=padded, cache_mask=mask, cache_write=slice(96, None)).velocity
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cache_write"):
        model(**tail, block_offset=2, cache=cache, cache_mask=ones)


def with_room(k, v, room):
    """Cache buffers: ``k``, ``v`` followed by ``room`` free positions."""
    pad = torch.full((*k.shape[:2], room, k.shape[3]), float("nan"))
    return torch.cat([k, pad], 2), torch.cat([v, pad], 2)


def test_window_limits_how_far_back_a_frame_sees():
    model, x = tiny(), inputs(t=7)
    before = model(**x, window=2)
    changed = dict(x, latents=x["latents"].clone())
    changed["latents"][:, 0] += 1.0
    after = model(**changed, window=2)
    # Two layers of windows of 2 reach 4 frames back, and frame 1 reads frame 0 as its predecessor:
    # frame 5 still feels frame 0, frame 6 does not.
    assert not torch.equal(before.velocity[:, 5], after.velocity[:, 5])
    assert torch.equal(before.velocity[:, 6:], after.velocity[:, 6:])


def test_positions_are_relative_in_time():
    model, x = tiny(), inputs(t=3)
    a = model(**x).velocity
    b = model(**x, block_offset=17).velocity
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_temporal_patches_form_causal_blocks():
    model, x = tiny(temporal_patch_size=2), inputs(t=6)
    before = model(**x)
    changed = dict(x, latents=x["latents"].clone())
    changed["latents"][:, 5] += 1.0  # inside the third block
    after = model(**changed)
    assert torch.equal(before.velocity[:, :4], after.velocity[:, :4])
    assert not torch.equal(before.velocity[:, 4], after.velocity[:, 4])  # same block sees it
    with pytest.raises(ValueError, match="need T divisible by 2"):
        model(**inputs(t=5))


def test_continuous_actions_and_the_null_action():
    model = tiny(num_actions=0, action_dim=3)
    x = inputs(continuous=3)
    out = model(**x)
    assert out.velocity.shape == (2, 6, 3, 8, 8)
    masked = dict(x, action_mask=torch.zeros(2, 6, dtype=torch.bool))
    other = dict(masked, actions=torch.randn(2, 6, 3))
    torch.testing.assert_close(model(**masked).velocity, model(**other).velocity)  # null ignores values


def test_actions_and_text_reach_the_output():
    model, x = tiny(), inputs()
    base = model(**x).velocity
    assert not torch.allclose(base, model(**dict(x, actions=(x["actions"] + 1) % 5)).velocity)
    assert not torch.allclose(base, model(**dict(x, text=x["text"].flip(0), text_mask=x["text_mask"].flip(0))).velocity)


def test_fresh_model_repeats_the_frame_before():
    torch.manual_seed(0)
    model = SpacetimeDiT(in_channels=3, patch_size=2, hidden_size=32, depth=2, num_heads=2, num_actions=5, text_dim=32)
    x = inputs()
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
                action_mask=x["action_mask"][:, :1], previous=clean[:, 0], previous_sigmas=torch.zeros(2))  # fmt: skip
    torch.testing.assert_close(zero["latents"] - model(**zero).velocity, clean)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="exactly one of num_actions"):
        SpacetimeDiT(num_actions=5, action_dim=2)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        SpacetimeDiT(hidden_size=30, num_heads=4, num_actions=5)
    with pytest.raises(ValueError, match="need T divisible by 1 and h, w by 2"):
        tiny()(**inputs(h=7))


def test_save_pretrained_round_trip(tmp_path):
    model, x = tiny(), inputs()
    model.save_pretrained(tmp_path / "dit", safe_serialization=True)
    assert (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = SpacetimeDiT.from_pretrained(tmp_path / "dit").eval()
    assert torch.equal(model(**x).velocity, loaded(**x).velocity)


def test_the_frame_before_is_read_and_checked():
    model, x = tiny(), inputs(t=2)
    # Untrained, adaLN-Zero blocks are identities and the output layer is zero: randomise first.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    alone = model(**x)
    given = dict(previous=torch.randn(2, 3, 8, 8), previous_sigmas=torch.full((2,), 0.05))
    after = model(**x, **given)
    assert not torch.equal(alone.velocity[:, 0], after.velocity[:, 0])  # frame 0 reads it directly
    # Without one, the frame before the first is pure noise: level 1, zero signal.
    none = dict(previous=torch.zeros(2, 3, 8, 8), previous_sigmas=torch.ones(2))
    torch.testing.assert_close(model(**x, **none).velocity, alone.velocity, rtol=0, atol=0)
    with pytest.raises(ValueError, match="together"):
        model(**x, previous=given["previous"])
    with pytest.raises(ValueError, match=r"previous must be \[B, C, h, w\]"):
        model(**x, previous=torch.zeros(2, 3, 8, 4), previous_sigmas=torch.ones(2))


def test_noise_schedule_mixes_clean_windows_and_keeps_old_draws_without_them():
    from worldsim.model.flow import NoiseSchedule

    plain = NoiseSchedule().sample(256, 4, torch.Generator().manual_seed(0))
    assert torch.equal(NoiseSchedule(clean_prob=0.0).sample(256, 4, torch.Generator().manual_seed(0)), plain)
    mixed = NoiseSchedule(clean_prob=0.5).sample(256, 4, torch.Generator().manual_seed(0))
    clean = (mixed == mixed[:, :1]).all(dim=1)  # every frame at one context level, the last one included
    assert 0.35 < clean.float().mean() < 0.65 and (mixed[clean] <= 0.1).all()
    assert (NoiseSchedule(clean_prob=1.0).sample(8, 4, torch.Generator().manual_seed(0)) <= 0.1).all()
