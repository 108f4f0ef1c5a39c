"""A model folder's manifest: damaged weights are refused, naming the file, and never load as random ones."""

import json
import os
import re
import shutil
import stat
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_world_model import save_tiny_world_model, tiny_world_model

from worldsim.errors import MissingFileError, UserError
from worldsim.model import manifest
from worldsim.model.codec import VAECodec, small_vae
from worldsim.model.world_model import WorldModel, shipped_models

DIT = "dit/diffusion_pytorch_model.safetensors"
TEXT = "text_encoder/diffusion_pytorch_model.safetensors"
TENSOR = "patch_embed.weight"  # the DiT's patch embedding: [hidden, C * p * p * pt]


@pytest.fixture
def folder(tmp_path):
    return save_tiny_world_model(tmp_path / "model")


def rewrite(file, change) -> None:
    """Rewrites a safetensors file after ``change(tensors)`` edits its dict of tensors in place."""
    tensors = load_file(file)
    change(tensors)
    save_file(tensors, file, metadata={"format": "pt"})


def flip_last_byte(file) -> None:
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF  # inside the last tensor's data: the header still parses
    file.write_bytes(bytes(data))


def test_save_pretrained_writes_a_manifest_that_loading_accepts(folder):
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert set(files) == {DIT, TEXT}
    assert files[DIT]["tensors"][TENSOR] == "F32 [32, 96]" and len(files[DIT]["sha256"]) == 64
    loaded = WorldModel.from_pretrained(folder)
    for a, b in zip(loaded.parameters(), tiny_world_model().parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t.pop(TENSOR), f"missing tensor {TENSOR}"),
        (lambda t: t.update(renamed=t.pop(TENSOR)), f"missing tensor {TENSOR}; unexpected tensor renamed"),
        (lambda t: t.update({TENSOR: t[TENSOR].reshape(96, 32)}), rf"tensor {TENSOR} is F32 \[96, 32\], expected F32 \[32, 96\]"),
        (lambda t: t.update({TENSOR: t[TENSOR].half()}), f"tensor {TENSOR} is F16"),
    ],
    ids=["removed", "renamed", "reshaped", "retyped"],
)
def test_a_changed_tensor_is_refused_naming_the_file(folder, damage, message):
    rewrite(folder / DIT, damage)
    with pytest.raises(UserError, match=re.escape(f"{folder / DIT} does not match {folder / 'manifest.json'}: ") + message):
        WorldModel.from_pretrained(folder)


def test_flipped_bytes_are_refused_naming_the_file(folder):
    flip_last_byte(folder / TEXT)
    with pytest.raises(UserError, match=re.escape(str(folder / TEXT)) + r" does not match .*bytes differ.*restore the folder"):
        WorldModel.from_pretrained(folder)


def test_a_missing_or_extra_weight_file_is_refused(folder):
    shutil.copy(folder / DIT, folder / "dit" / "extra.safetensors")
    with pytest.raises(UserError, match=re.escape(str(folder / "dit" / "extra.safetensors")) + " is not in .*manifest.json"):
        WorldModel.from_pretrained(folder)
    (folder / TEXT).unlink()
    with pytest.raises(MissingFileError, match=re.escape(str(folder / TEXT)) + " is missing"):
        WorldModel.from_pretrained(folder)


def test_a_truncated_file_or_manifest_is_refused(folder):
    (folder / DIT).write_bytes((folder / DIT).read_bytes()[:100])
    with pytest.raises(UserError, match=re.escape(str(folder / DIT)) + " is not a readable safetensors file"):
        WorldModel.from_pretrained(folder)
    (folder / "manifest.json").write_text("{")
    with pytest.raises(UserError, match="manifest.json is not a worldsim manifest"):
        WorldModel.from_pretrained(folder)


def test_a_folder_without_a_manifest_is_refused_until_the_command_trusts_it(folder, capsys):
    (folder / "manifest.json").unlink()
    command = f"python -m worldsim.model.manifest {folder}"
    with pytest.raises(MissingFileError, match=f"{re.escape(str(folder))} has no manifest.json.*`{re.escape(command)}`"):
        WorldModel.from_pretrained(folder)
    manifest.main([str(folder)])
    assert capsys.readouterr().out.strip() == f"wrote {folder / 'manifest.json'} (2 weight files)"
    WorldModel.from_pretrained(folder)
    (folder.parent / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"error: .*empty holds no \*.safetensors weights; pass a model folder"):
        manifest.main([str(folder.parent / "empty")])


def test_diffusers_missing_or_unexpected_keys_are_refused_even_under_a_fresh_manifest(folder):
    # A manifest written for a damaged folder describes it faithfully; diffusers would then fill
    # the missing tensor with random values and only warn.
    rewrite(folder / DIT, lambda t: t.pop(TENSOR))
    rewrite(folder / TEXT, lambda t: t.update(bogus=torch.zeros(1)))
    manifest.write(folder)
    with pytest.raises(UserError, match=rf"do not fit its config.json of SpacetimeDiT: missing \['{re.escape(TENSOR)}'\]"):
        WorldModel.from_pretrained(folder)
    rewrite(folder / DIT, lambda t: t.update({TENSOR: tiny_world_model().dit.patch_embed.weight.detach()}))
    manifest.write(folder)
    with pytest.raises(UserError, match=r"do not fit its config.json of ByteTextEncoder: unexpected \['bogus'\]"):
        WorldModel.from_pretrained(folder)


def test_the_manifest_covers_a_vae_codec(tmp_path):
    tiny = tiny_world_model()
    torch.manual_seed(0)
    codec = VAECodec(small_vae(latent_channels=3, downsample=2, width=8))
    folder = WorldModel(replace(tiny.config, codec="vae"), codec, tiny.dit, tiny.text_encoder).save_pretrained(tmp_path / "m")
    assert set(manifest.read(folder)) == {DIT, TEXT, "vae/diffusion_pytorch_model.safetensors"}
    assert isinstance(WorldModel.from_pretrained(folder).codec, VAECodec)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    flip_last_byte(weights)
    with pytest.raises(UserError, match=re.escape(str(weights)) + " does not match"):
        WorldModel.from_pretrained(folder)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_file_of_a_model_folder_is_readable_as_the_umask_allows(tmp_path, mask, expected):
    # safetensors creates its files 0600 whatever the umask: a shared model would be unreadable.
    tiny = tiny_world_model()
    torch.manual_seed(0)
    codec = VAECodec(small_vae(latent_channels=3, downsample=2, width=8))
    old = os.umask(mask)
    try:
        folder = WorldModel(replace(tiny.config, codec="vae"), codec, tiny.dit, tiny.text_encoder).save_pretrained(tmp_path / "m")
        VAECodec(small_vae(latent_channels=3, downsample=2, width=8)).save_pretrained(tmp_path / "codec")
    finally:
        os.umask(old)
    files = [p for root in (folder, tmp_path / "codec") for p in root.rglob("*") if p.is_file()]
    assert len(files) >= 8 and {p.name for p in files} >= {"diffusion_pytorch_model.safetensors", "manifest.json"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {expected}


@pytest.mark.parametrize("name", ["balls", "cartpole"])
def test_shipped_models_carry_a_manifest_of_their_weights(name):
    folder = shipped_models()[name]
    manifest.verify(folder)
    assert set(manifest.read(folder)) == {DIT, TEXT}
