"""WorldModel: codec + SpacetimeDiT + text encoder + the facts about the world they model.

## A model folder (diffusers ``save_pretrained`` style, safetensors only)
```
MODEL/
  worldsim.json                 WorldModelConfig: codec, world, frame size, action space, ...
  dit/                          SpacetimeDiT (config.json + diffusion_pytorch_model.safetensors)
  text_encoder/                 ByteTextEncoder, same layout
  vae/                          AutoencoderKL, only for the "vae" codec
  manifest.json                 names, shapes, dtypes and sha256 of every weight file (worldsim.model.manifest)
```
Loading verifies the manifest and refuses a folder whose weights are missing, extra or altered.

A training run folder holds checkpoints ``checkpoints/step_NNNNNNN/``; one is complete once its
``training_state.pt``, written last, exists. :func:`complete_checkpoints` is that one definition,
shared by :func:`load` and by resuming (:mod:`worldsim.training.checkpoint`), world model and VAE runs alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from torch import nn

from worldsim.atomic import atomic_folder, atomic_write, open_permissions
from worldsim.errors import MissingFileError, UserError, check_bool, is_number
from worldsim.model import manifest
from worldsim.model.action_space import ActionSpace
from worldsim.model.codec import PixelCodec, VAECodec, load_codec
from worldsim.model.denoiser import Denoiser
from worldsim.model.dit import SpacetimeDiT, TextContext
from worldsim.model.flow import add_noise
from worldsim.model.sampler import Sampler, check_sampling, end_level
from worldsim.model.text import ByteTextEncoder, TextEncoder
from worldsim.simulator import WorldSimulator

if TYPE_CHECKING:
    pass

CONFIG_FILE = "worldsim.json"
STATE_FILE = "training_state.pt"  # the last file of a checkpoint: its presence makes the checkpoint complete


@dataclass
class WorldModelConfig:
    """What a world model needs besides its weights; stored as ``worldsim.json`` (:meth:`to_dict`)."""

    codec: str = "pixels"
    env_id: str | None = None  # the real world it learned, e.g. "worldsim/Balls-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    frame_size: tuple[int, int] = (64, 64)  # (H, W) it generates by default
    fps: int = 10
    action_space: ActionSpace = ActionSpace("discrete", n=5)  # a dict, as worldsim.json stores it, is read too
    context_frames: int = 8  # the window length it was trained on
    context_noise: float = 0.0  # noise level of context frames at inference (within training's range)
    sampler_steps: int = 4
    # False: no commit pass; the sampler's last pass, run at context_noise, writes the frame's keys
    # and values (one DiT pass fewer per frame; needs context_noise > 0 and sampler_steps >= 2).
    commit_pass: bool = True
    # The termination head's probability above which a dream episode ends. A head trained with
    # train.terminal_repeats r saw r times the ends its data hold; r / (r + 1) undoes that prior.
    termination_threshold: float = 0.5

    def __post_init__(self) -> None:
        check_bool("commit_pass", self.commit_pass)
        threshold = self.termination_threshold
        if not (is_number(threshold, 0, 1, open_low=True) and threshold != 1):  # in (0, 1)
            raise UserError(f"termination_threshold must be a probability in (0, 1), got {threshold!r}")
        space: object = self.action_space
        if not isinstance(space, ActionSpace):  # the dict of a worldsim.json
            self.action_space = ActionSpace.from_dict(space)

    def to_dict(self) -> dict[str, Any]:
        """What ``worldsim.json`` holds: the fields, the action space as its dict."""
        return {**asdict(self), "action_space": self.action_space.to_dict()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> WorldModelConfig:
        """The config of a ``worldsim.json``'s dict (what :meth:`to_dict` wrote)."""
        return cls(**{**raw, "frame_size": tuple(raw["frame_size"])})

    def world_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The arguments of ``gym.make(env_id, ...)`` for the real world this model learned: its
        collection's ``env_kwargs`` at the model's frame size, then ``overrides``."""
        return {**self.env_kwargs, "frame_size": tuple(self.frame_size), **overrides}


class WorldModel(nn.Module):
    """A trained world model: encode frames, predict the next ones, decode them."""

    def __init__(self, config: WorldModelConfig, codec: PixelCodec | VAECodec, dit: SpacetimeDiT, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.config = config
        self.codec = codec
        self.dit = dit
        self.text_encoder = text_encoder

    # ---------------------------------------------------------------------------------- storage

    def save_pretrained(self, path: str | Path) -> Path:
        """Writes the model folder; it appears under ``path`` only once complete."""
        path = Path(path)
        with atomic_folder(path) as tmp:
            self.dit.save_pretrained(tmp / "dit", safe_serialization=True)
            if hasattr(self.text_encoder, "save_pretrained"):
                self.text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
            self.codec.save_pretrained(tmp)
            with atomic_write(tmp / CONFIG_FILE, "w") as f:
                json.dump(self.config.to_dict(), f, indent=2)
            manifest.write(tmp)
            open_permissions(tmp)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu", text_encoder: TextEncoder | None = None) -> WorldModel:
        """Loads a model folder after verifying its manifest; a missing, corrupt or altered file, or
        one without a manifest, raises a UserError that names it.

        ``text_encoder``: the user's own encoder, for a model trained with one (its folder then
        holds whatever that encoder's ``save_pretrained`` wrote, or nothing)."""
        path = Path(path)
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise MissingFileError(f"{path} is not a worldsim model folder: it has no {CONFIG_FILE}")
        manifest.verify(path)
        try:
            config = read_config(config_path)
            dit = manifest.load_exact(SpacetimeDiT, path / "dit")
            if text_encoder is None:
                text_encoder = manifest.load_exact(ByteTextEncoder, path / "text_encoder")
        except UserError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as error:
            raise UserError(f"cannot load the world model at {path}: missing or corrupt files ({error})") from error
        codec = load_codec(config.codec, path, verify=False)  # the folder's manifest, verified above, covers vae/
        return cls(config, codec, dit, text_encoder).to(device).eval()

    # ---------------------------------------------------------------------------------- inference

    def simulator(self, batch_size: int = 1, device: str | torch.device = "cpu", **kwargs: Any) -> WorldSimulator:
        """A :class:`~worldsim.simulator.WorldSimulator` of ``batch_size`` envs on ``device``
        (keyword arguments: ``window``, ``sampler_steps``, ``frame_size``, ``guidance``, ``seed``)."""
        return WorldSimulator(self, batch_size, device, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    @property
    def denoiser(self) -> Denoiser:
        """The DiT with its preconditioning: clean estimates and velocities of noisy frames."""
        return Denoiser(self.dit)

    def text_context(self, captions: Sequence[str]) -> TextContext:
        """The DiT's cross-attention keys and values of ``captions`` (B strings, "" for none)."""
        return self.dit.text_context(*self.text_encoder(list(captions)))

    def _texts(self, captions: Sequence[str], guidance: float) -> tuple[TextContext, TextContext]:
        """The text of ``captions`` and guidance's unconditional text, as many empty captions
        (without guidance the captions' own: the sampler then never asks for it)."""
        text = self.text_context(captions)
        return text, self.text_context([""] * len(captions)) if guidance != 1.0 else text

    @torch.no_grad()
    def predict_next(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        captions: Sequence[str],
        steps: int | None = None,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The next frame after ``frames``, by full recomputation of the context (no cache).

        Args:
            frames: uint8 ``[B, T, H, W, 3]`` context; its first frame is treated as an episode
                start (no incoming action).
            actions: ``[B, T]`` (or ``[B, T, A]``): the action taken at each context frame; the
                last one leads into the predicted frame.
            captions: B strings ("" for none).
            guidance: classifier-free guidance scale on text and actions (1 = none).
        Returns:
            uint8 ``[B, H, W, 3]``.
        """
        check_sampling(steps, guidance)
        steps = steps or self.config.sampler_steps
        device = self.device
        context = self.codec.encode(frames.to(device))
        b, t = context.shape[:2]
        noise = torch.randn(context.shape, generator=generator).to(device)
        context_sigmas = torch.full((b, t), self.config.context_noise, device=device)
        context = add_noise(context, noise, context_sigmas)
        # Frame i's incoming action is the one taken at frame i - 1.
        incoming = torch.cat([torch.zeros_like(actions[:, :1]), actions], dim=1).to(device)
        mask = torch.ones(incoming.shape[:2], dtype=torch.bool, device=device)
        mask[:, 0] = False
        text, null_text = self._texts(captions, guidance)

        def velocity(x: torch.Tensor, sigma: float, step: float, conditioned: bool) -> torch.Tensor:
            latents = torch.cat([context, x], dim=1)
            sigmas = torch.cat([context_sigmas, torch.full((b, 1), sigma, device=device)], dim=1)
            out = self.denoiser(latents, sigmas, incoming, mask & conditioned, text if conditioned else null_text, step=step)
            return out.velocity[:, -1:]

        end = end_level(self.config.commit_pass, self.config.context_noise, steps)  # the simulator's levels
        new = Sampler(steps, guidance, end).sample(velocity, torch.randn((b, 1, *context.shape[2:]), generator=generator).to(device))
        return self.codec.decode(new)[:, 0]

    @torch.no_grad()
    def generate_image(
        self,
        captions: Sequence[str],
        frame_size: tuple[int, int] | None = None,
        steps: int | None = None,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """First frames from text alone (an image is a one-frame video): uint8 ``[B, H, W, 3]``."""
        check_sampling(steps, guidance)
        height, width = frame_size or self.config.frame_size
        d, b, device = self.codec.downsample, len(captions), self.device
        if height % d or width % d:
            raise UserError(f"frame_size {(height, width)} must be divisible by the codec's downsampling {d}")
        text, null_text = self._texts(captions, guidance)
        actions = torch.zeros((b, 1, *self.config.action_space.shape), device=device)
        no_action = torch.zeros(b, 1, dtype=torch.bool, device=device)

        def velocity(x: torch.Tensor, sigma: float, step: float, conditioned: bool) -> torch.Tensor:
            sigmas = torch.full((b, 1), sigma, device=device)
            return self.denoiser(x, sigmas, actions, no_action, text if conditioned else null_text, step=step).velocity

        noise = torch.randn((b, 1, self.codec.latent_channels, height // d, width // d), generator=generator).to(device)
        return self.codec.decode(Sampler(steps or self.config.sampler_steps, guidance).sample(velocity, noise))[:, 0]


def read_config(path: Path) -> WorldModelConfig:
    """The config in a model folder's ``worldsim.json`` at ``path``; a bad value raises a one-line
    UserError that names the file and the field."""
    raw = json.loads(path.read_text())
    try:
        return WorldModelConfig.from_dict(raw)
    except UserError as error:
        raise UserError(f"{path}: {error}") from error


def complete_checkpoints(run: Path) -> list[Path]:
    """The complete checkpoint folders of a training run folder (world model or VAE), oldest first."""
    return sorted(p for p in (run / "checkpoints").glob("step_*") if (p / STATE_FILE).is_file())


def vae_run_error(run: Path) -> UserError:
    return UserError(f"{run} is a VAE codec run, not a world model; pass it as model.vae={run} to `worldsim train`")


def latest_checkpoint(run: Path) -> Path:
    """The newest complete checkpoint folder of a world model's training run folder."""
    checkpoints = complete_checkpoints(run)
    if not checkpoints:
        raise MissingFileError(f"run folder {run} has no complete checkpoint yet")
    if not (checkpoints[-1] / CONFIG_FILE).is_file() and (checkpoints[-1] / "vae").is_dir():
        raise vae_run_error(run)  # one killed before its first refresh of RUN/vae
    return checkpoints[-1]


def shipped_models() -> dict[str, Path]:
    """Models shipped with the package, by name."""
    root = Path(__file__).resolve().parents[1] / "shipped"
    return {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG_FILE).is_file()} if root.is_dir() else {}


def model_folder(name_or_path: str | Path) -> Path:
    """The model folder of a shipped model's name, a model folder, or a training run folder (its
    latest checkpoint)."""
    path = Path(name_or_path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "vae" / "config.json").is_file():
        raise vae_run_error(path)
    if (path / "checkpoints").is_dir():
        return latest_checkpoint(path)
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    names = ", ".join(shipped) or "none yet"
    raise MissingFileError(
        f"no world model {str(name_or_path)!r}: not a shipped model (shipped: {names}), "
        "a model folder (with worldsim.json) or a run folder (with checkpoints/)"
    )


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """A WorldModel from a shipped model's name, a model folder, or a training run folder (its
    latest checkpoint)."""
    return WorldModel.from_pretrained(model_folder(name_or_path), device)
