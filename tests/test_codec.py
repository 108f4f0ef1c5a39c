import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from worldsim.errors import MissingFileError, UserError
from worldsim.model import manifest
from worldsim.model.codec import PixelCodec, VAECodec, frames_to_unit, load_codec, small_vae, unit_to_frames


def random_frames(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_pixel_codec_round_trip_is_exact_on_uint8():
    frames = random_frames(2, 3, 8, 12, 3)
    codec = PixelCodec()
    latents = codec.encode(frames)
    assert latents.shape == (2, 3, 3, 8, 12) and latents.dtype == torch.float32
    assert latents.min() >= -1 and latents.max() <= 1
    assert torch.equal(codec.decode(latents), frames)
    # Decoding clamps what a model overshoots instead of wrapping around in uint8.
    assert torch.equal(unit_to_frames(torch.full((3, 1, 1), 1.7)), torch.full((1, 1, 3), 255, dtype=torch.uint8))
    assert torch.equal(unit_to_frames(torch.full((3, 1, 1), -3.0)), torch.zeros((1, 1, 3), dtype=torch.uint8))


@pytest.mark.parametrize("downsample", [2, 4, 8])
@pytest.mark.parametrize("size", [(16, 16), (16, 32)])
def test_vae_codec_shapes_per_downsample_and_aspect(downsample, size):
    torch.manual_seed(0)
    codec = VAECodec(small_vae(latent_channels=3, downsample=downsample, width=8))
    assert codec.downsample == downsample and codec.latent_channels == 3
    frames = random_frames(2, 3, *size, 3)
    with torch.no_grad():
        latents = codec.encode(frames)
        assert latents.shape == (2, 3, 3, size[0] // downsample, size[1] // downsample)
        decoded = codec.decode(latents)
    assert decoded.shape == (2, 3, *size, 3) and decoded.dtype == torch.uint8


def test_vae_codec_is_per_frame_whatever_the_chunk():
    torch.manual_seed(0)
    vae = small_vae(latent_channels=4, downsample=4, width=8)
    frames = random_frames(2, 3, 16, 16, 3)
    with torch.no_grad():
        whole, one_by_one = VAECodec(vae).encode(frames), VAECodec(vae, chunk=1).encode(frames)
        alone = VAECodec(vae).encode(frames[1:, 2:])  # a frame encodes the same without its neighbours
    torch.testing.assert_close(one_by_one, whole)
    torch.testing.assert_close(alone, whole[1:, 2:])


def test_vae_codec_applies_shift_and_scale_from_the_config():
    torch.manual_seed(0)
    vae = small_vae(latent_channels=4, downsample=2, width=8)
    frames = random_frames(1, 2, 8, 8, 3)
    x = frames_to_unit(frames[0])
    with torch.no_grad():
        raw = vae.encode(x).latent_dist.mode()
        assert vae.config.shift_factor is None  # diffusers' default: treated as no shift
        torch.testing.assert_close(VAECodec(vae).encode(frames)[0], raw * vae.config.scaling_factor)
        vae.register_to_config(shift_factor=0.5, scaling_factor=2.0)
        codec = VAECodec(vae)
        latents = codec.encode(frames)
        torch.testing.assert_close(latents[0], (raw - 0.5) * 2.0)
        torch.testing.assert_close(codec.decode_unit(latents)[0], vae.decode(raw).sample)


def test_vae_codec_save_load_identity(tmp_path):
    torch.manual_seed(0)
    vae = small_vae(latent_channels=4, downsample=4, width=8)
    vae.register_to_config(shift_factor=-0.25, scaling_factor=0.75)
    VAECodec(vae).save_pretrained(tmp_path)
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_codec("vae", tmp_path)
    assert isinstance(loaded, VAECodec) and (loaded.shift, loaded.scale) == (-0.25, 0.75)
    frames = random_frames(1, 2, 16, 24, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(frames), VAECodec(vae).encode(frames))


def test_load_codec_errors_name_what_is_accepted(tmp_path):
    assert isinstance(load_codec("pixels"), PixelCodec)
    with pytest.raises(UserError, match="unknown codec 'vqgan'.*pixels, vae"):
        load_codec("vqgan")
    with pytest.raises(MissingFileError, match="no trained VAE.*stage=vae"):
        load_codec("vae", tmp_path)
    with pytest.raises(MissingFileError, match="no trained VAE"):
        load_codec("vae")


def test_small_vae_rejects_a_bad_downsample():
    with pytest.raises(UserError, match="2, 4 or 8, got 3"):
        small_vae(downsample=3)


def test_a_vae_folder_is_checked_against_its_manifest(tmp_path):
    torch.manual_seed(0)
    VAECodec(small_vae(latent_channels=4, downsample=2, width=8)).save_pretrained(tmp_path)
    weights = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    del tensors[name]
    save_file(tensors, weights)
    with pytest.raises(UserError, match=re.escape(str(weights)) + f" does not match .*missing tensor {re.escape(name)}"):
        load_codec("vae", tmp_path)
    manifest.write(tmp_path / "vae")  # even a manifest that trusts the damage cannot make diffusers fill it randomly
    with pytest.raises(UserError, match=f"do not fit its config.json of AutoencoderKL: missing \\['{re.escape(name)}'\\]"):
        load_codec("vae", tmp_path)
    (tmp_path / "vae" / "manifest.json").unlink()
    with pytest.raises(MissingFileError, match=f"`python -m worldsim.model.manifest {re.escape(str(tmp_path / 'vae'))}`"):
        load_codec("vae", tmp_path)
