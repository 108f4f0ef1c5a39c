import csv
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from worldsim.data.collect import collect
from worldsim.data.collection import Collection
from worldsim.errors import UserError
from worldsim.model import manifest
from worldsim.model.codec import VAECodec, load_codec
from worldsim.training import vae as vae_training
from worldsim.training.config import TrainConfig, VAEConfig
from worldsim.training.steps import TrainingDiverged
from worldsim.training.vae import train_vae

STEPS = 120
CFG = TrainConfig(batch_size=8, lr=3e-3, warmup_steps=5, log_every=5, checkpoint_every=30, keep_checkpoints=2)
SIZES = VAEConfig(latent_channels=4, downsample=2, width=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae") / "balls"
    collect("worldsim/Balls-v0", out=root, episodes=8, env_kwargs={"frame_size": (16, 16), "max_steps": 12},
            scenarios=["uniform", "collision"], stills=3, progress=False)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """An uninterrupted tiny run, shared by the tests that read its results."""
    out = tmp_path_factory.mktemp("vae") / "run"
    last = train_vae([data], out, STEPS, SIZES, CFG, progress=False)
    return out, last


def read_metrics(out) -> list[dict[str, float]]:
    with (out / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def training_and_held_out_frames(data) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, H, W, 3]`` frames the run trains on and the ones it holds out (episode 0)."""
    collection = Collection(data)
    episodes = collection.load()
    train = np.concatenate([e.frames for e in episodes[1:]] + [s.frames for s in collection.load("stills")])
    return train, episodes[0].frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0**2 / mse)))


@pytest.mark.learned
def test_reconstruction_improves_and_beats_the_mean_frame(run, data):
    out, last = run
    assert last == out / "checkpoints" / f"step_{STEPS:07d}"
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(5, STEPS + 1, 5))
    assert all(np.isfinite(list(r.values())).all() for r in rows)
    assert rows[-1]["recon"] < 0.25 * rows[0]["recon"]  # measured 0.105 on every float path of `make test-float-paths`
    assert all(r["kl"] > 0 and r["lr"] > 0 for r in rows)

    evaluation = json.loads((out / "vae_eval.json").read_text())
    train, held_out = training_and_held_out_frames(data)
    assert evaluation["step"] == STEPS and evaluation["heldout_frames"] == len(held_out)
    assert evaluation["stats_frames"] == len(train)
    baseline = psnr(held_out, np.broadcast_to(train.mean(axis=0).round(), held_out.shape))
    assert evaluation["heldout_psnr_db"] > baseline + 3, (evaluation["heldout_psnr_db"], baseline)  # measured +6.56
    # The JSON's PSNR is what the saved codec really achieves on the held-out episode.
    codec = load_codec("vae", out)
    with torch.no_grad():
        restored = codec.decode(codec.encode(torch.from_numpy(held_out)[None]))[0].numpy()
    assert psnr(held_out, restored) == pytest.approx(evaluation["heldout_psnr_db"], abs=1e-3)


def test_run_folder_codec_normalises_training_latents(run, data):
    out, last = run
    codec = load_codec("vae", out)
    assert isinstance(codec, VAECodec) and codec.downsample == SIZES.downsample
    train, _ = training_and_held_out_frames(data)
    with torch.no_grad():
        latents = codec.encode(torch.from_numpy(train)[None])
    assert latents.shape == (1, len(train), 4, 8, 8)
    assert abs(latents.mean().item()) < 0.05 and latents.std().item() == pytest.approx(1.0, abs=0.05)
    evaluation = json.loads((out / "vae_eval.json").read_text())
    assert (codec.shift, codec.scale) == pytest.approx((evaluation["shift_factor"], evaluation["scaling_factor"]))
    # out/vae is the last checkpoint's VAE; only keep_checkpoints complete checkpoints remain.
    published, final = (load_file(folder / "vae" / "diffusion_pytorch_model.safetensors") for folder in (out, last))
    assert published.keys() == final.keys() and all(torch.equal(published[k], final[k]) for k in final)
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step_0000090", f"step_{STEPS:07d}"]
    assert json.loads((out / "config.json").read_text())["stage"] == "vae"


def test_resume_after_a_kill_matches_the_uninterrupted_run(run, data, tmp_path, monkeypatch):
    whole, _ = run
    out = tmp_path / "cut"
    real_save = vae_training.save_checkpoint

    def killed_after_saving(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(vae_training, "save_checkpoint", killed_after_saving)
    with pytest.raises(KeyboardInterrupt):
        train_vae([data], out, STEPS, SIZES, CFG, progress=False)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_0000030"]
    monkeypatch.setattr(vae_training, "save_checkpoint", real_save)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train_vae([data], out, STEPS, SIZES, CFG, progress=False)
    train_vae([data], out, STEPS, SIZES, CFG, resume=True, progress=False)

    weights = load_file(out / "vae" / "diffusion_pytorch_model.safetensors")
    expected = load_file(whole / "vae" / "diffusion_pytorch_model.safetensors")
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    resumed, uninterrupted = read_metrics(out), read_metrics(whole)
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted]
    for a, b in zip(resumed, uninterrupted):
        for key in ("loss", "recon", "kl", "lr", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-6), (a["step"], key)
    a, b = (json.loads((folder / "vae_eval.json").read_text()) for folder in (out, whole))
    assert a["heldout_psnr_db"] == pytest.approx(b["heldout_psnr_db"], abs=1e-2)


def test_nan_loss_stops_the_run_without_a_checkpoint(data, tmp_path, monkeypatch):
    real_forward = vae_training.VAELoss.forward

    def nan_forward(self, frames, generator):
        return {key: value * float("nan") for key, value in real_forward(self, frames, generator).items()}

    monkeypatch.setattr(vae_training.VAELoss, "forward", nan_forward)
    with pytest.raises(TrainingDiverged, match="loss became nan .*recon .* at step 1;.*none.*kl_weight"):
        train_vae([data], tmp_path / "run", 5, SIZES, CFG, progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (dict(downsample=3), "downsample must be 2, 4 or 8, got 3"),
        (dict(width=15), "width must be an even number up to 64 or a multiple of 32, got 15"),
        (dict(latent_channels=0), "vae.latent_channels must be an integer >= 1, got 0"),
        (dict(kl_weight=-1.0), "vae.kl_weight must be a finite number >= 0, got -1.0"),
        (dict(downsample=8, width=8), r"frame sizes \[\(12, 12\)\] are not divisible by the VAE's downsample=8"),
    ],
)
def test_bad_settings_name_what_is_accepted(sizes, message, tmp_path):
    data = tmp_path / "balls12"
    collect("worldsim/Balls-v0", out=data, episodes=1, env_kwargs={"frame_size": (12, 12), "max_steps": 3}, progress=False)
    with pytest.raises(ValueError, match=message):
        train_vae([data], tmp_path / "run", 5, replace(SIZES, **sizes), CFG, progress=False)


def test_too_few_frames_for_a_batch_is_an_error(data, tmp_path):
    with pytest.raises(ValueError, match=r"no full batch of 1000 frames per rank among \d+ training frames \(13 held out\)"):
        train_vae([data], tmp_path / "run", 5, SIZES, TrainConfig(batch_size=1000), progress=False)


def test_a_world_model_trains_on_the_vae_latents(run, data, tmp_path):
    from worldsim.model.world_model import load
    from worldsim.training.config import ModelConfig
    from worldsim.training.loop import train

    out, _ = run
    model = ModelConfig(codec="vae", vae=str(out), patch_size=1, hidden_size=32, depth=2, num_heads=2,
                        text_dim=32, text_depth=1, text_heads=2)  # fmt: skip
    cfg = TrainConfig(batch_size=4, window_lengths=[3], warmup_steps=2, log_every=1, checkpoint_every=3)
    result = train([data], tmp_path / "world", 3, model, cfg, progress=False)
    world = load(tmp_path / "world")
    assert world.config.codec == "vae" and world.dit.config.data_std == 1.0
    assert (result.checkpoint / "vae" / "config.json").is_file()  # the codec travels with the model
    frames = torch.from_numpy(np.stack([e.frames[:3] for e in Collection(data).load()[:2]]))
    assert world.predict_next(frames, torch.zeros(2, 3, dtype=torch.long), ["", ""], steps=2).shape == (2, 16, 16, 3)


def test_a_vae_run_carries_manifests_and_load_names_it_a_vae_run(run, tmp_path):
    from worldsim.model.world_model import load

    out, last = run
    manifest.verify(out / "vae")
    manifest.verify(last / "vae")
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "vae")  # as if killed after its first checkpoint, before RUN/vae was refreshed
    with pytest.raises(UserError, match="is a VAE codec run, not a world model; pass it as model.vae="):
        load(copy)
