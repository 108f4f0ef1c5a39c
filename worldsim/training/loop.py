"""Training the world model (``worldsim train``): flow matching on windows of real episodes.

:func:`train` builds the data, the model and its loss (:class:`FlowMatchingLoss`), then runs the
optimizer loop that the VAE codec's training shares (:func:`~worldsim.training.steps.run_steps`:
gradient accumulation, AdamW under warmup + cosine, an EMA of the weights, a metrics CSV,
checkpoints with exact resume, DDP under ``torchrun``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldsim.data.collection import Collection
from worldsim.data.dataset import WindowDataset
from worldsim.errors import UserError, check_integer
from worldsim.model.action_space import ActionSpace
from worldsim.model.codec import load_codec
from worldsim.model.denoiser import Denoiser
from worldsim.model.dit import SpacetimeDiT, TextContext
from worldsim.model.flow import add_noise, velocity_target
from worldsim.model.sampler import Sampler
from worldsim.model.text import ByteTextEncoder
from worldsim.model.world_model import WorldModel, WorldModelConfig
from worldsim.training import checkpoint
from worldsim.training.config import ModelConfig, TrainConfig
from worldsim.training.steps import Stage, bucket_loader, run_steps, setup_distributed

METRICS = ("step", "epoch", "loss", "diffusion", "reward", "termination", "lr", "grad_norm", "steps_per_s", "tokens_per_s")


@dataclass
class TrainResult:
    """What ``train`` leaves: the newest checkpoint folder and the model in memory (raw weights)."""

    checkpoint: Path | None
    model: WorldModel


# ------------------------------------------------------------------------------------ building


def describe_world(roots: list[str | Path]) -> WorldModelConfig:
    """World facts for the model (env, frame size, action space) from the collections' settings."""
    collections = [Collection(root) for root in roots]
    env_ids = {c.settings.get("env_id") for c in collections}
    if len(env_ids) > 1:
        raise UserError(f"the collections come from different worlds {sorted(map(str, env_ids))}; train one world per model")
    settings = collections[0].settings
    env_id, env_kwargs = settings.get("env_id"), dict(settings.get("env_kwargs") or {})
    frame_size = tuple(collections[0].refs()[0].frame_size)
    if env_id is None:
        raise UserError(f"collection {collections[0].root} names no env_id; worldsim needs the real world's action space")
    env = gym.make(env_id, **env_kwargs)
    space, fps = env.action_space, env.metadata.get("render_fps", 10)
    env.close()
    try:
        action_space = ActionSpace.from_gym(space)
    except UserError as error:
        raise UserError(f"{env_id}: {error}") from error
    return WorldModelConfig(env_id=env_id, env_kwargs=env_kwargs, frame_size=frame_size, fps=int(fps), action_space=action_space)


def build_world_model(model: ModelConfig, world: WorldModelConfig, text_encoder: nn.Module | None = None) -> WorldModel:
    """A freshly initialised WorldModel of the given sizes for the given world.

    ``text_encoder``: any module with the :class:`~worldsim.model.text.TextEncoder` interface (for
    example a local pretrained encoder; freeze it with ``requires_grad_(False)`` if it should stay
    as it is); by default a :class:`~worldsim.model.text.ByteTextEncoder` of ``model``'s sizes.
    The DiT's ``residual_std`` starts at a fifth of the latents' std; training replaces it with
    the data's (:func:`frame_change_std`).
    """
    codec = load_codec(model.codec, model.vae)
    if text_encoder is None:
        text_encoder = ByteTextEncoder(dim=model.text_dim, depth=model.text_depth, num_heads=model.text_heads)
    dit = SpacetimeDiT(
        in_channels=codec.latent_channels,
        patch_size=model.patch_size,
        temporal_patch_size=model.temporal_patch_size,
        hidden_size=model.hidden_size,
        depth=model.depth,
        num_heads=model.num_heads,
        mlp_ratio=model.mlp_ratio,
        num_actions=world.action_space.n,
        action_dim=world.action_space.dim,
        text_dim=text_encoder.dim,
        data_std=1.0 if model.codec == "vae" else 0.5,  # VAE latents are normalised; frames in [-1, 1] are not
        residual_std=0.2 if model.codec == "vae" else 0.1,
        step_conditioning=model.step_conditioning,
        head_pooling=model.head_pooling,
    )
    return WorldModel(replace(world, codec=model.codec), codec, dit, text_encoder)


def sizes_of(model: str) -> tuple[ModelConfig, tuple[int, int]]:
    """The sizes (``model=`` of ``worldsim train``) and frame size of a trained world model (a
    shipped name, model or run folder): to build fresh weights of the same sizes (the speed
    benchmark) or to fine-tune it (``train(init=...)``)."""
    from worldsim.model.world_model import load, model_folder

    world = load(model)
    dit, text = world.dit.config, world.text_encoder
    folder = model_folder(model)
    sizes = ModelConfig(
        codec=world.config.codec,
        vae=str(folder) if world.config.codec == "vae" else None,
        patch_size=dit.patch_size,
        temporal_patch_size=dit.temporal_patch_size,
        hidden_size=dit.hidden_size,
        depth=dit.depth,
        num_heads=dit.num_heads,
        mlp_ratio=dit.mlp_ratio,
        text_dim=text.dim,
        text_depth=getattr(text.config, "depth", 2),
        text_heads=getattr(text.config, "num_heads", 4),
        step_conditioning=dit.step_conditioning,
        head_pooling=dit.head_pooling,
    )
    return sizes, tuple(world.config.frame_size)


class FlowMatchingLoss(nn.Module):
    """The training objective of a WorldModel on a batch of windows (the module DDP wraps).

    Returns a dict of scalar losses: ``loss`` (the weighted sum), ``diffusion`` (velocity MSE over
    all frames), ``reward`` (MSE) and ``termination`` (BCE) on a window's last frame, where it is at
    a context noise level. With ``rollout_prob`` > 0 some windows' context ends in the model's own
    frames (:meth:`rollout`); with ``shortcut_prob`` > 0 some windows' last frame learns a sampler
    step of a given size from two half steps of the model itself (:meth:`shortcut`).
    """

    def __init__(self, model: WorldModel, cfg: TrainConfig):
        super().__init__()
        self.dit, self.text_encoder, self.codec = model.dit, model.text_encoder, model.codec
        self.cfg = cfg
        self.schedule = cfg.noise
        self.teachers: list[nn.Module] = []  # the EMA's DiT, for shortcut_teacher=ema (a list: not a submodule, not trained)

    def use_teacher(self, ema: nn.Module) -> None:
        """Takes the EMA's copy of the trainable modules (``{"dit", "text_encoder"}``): with
        ``shortcut_teacher=ema`` its DiT takes the two half steps of shortcut targets."""
        self.teachers[:] = [ema["dit"]]

    def forward(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        device = next(self.dit.parameters()).device
        with torch.no_grad():
            x0 = self.codec.encode(batch["frames"].to(device))
        b, t = x0.shape[:2]
        sigmas = self.schedule.sample(b, t, generator, device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        keep_text = torch.rand(b, generator=generator) >= self.cfg.text_dropout
        keep_actions = (torch.rand(b, generator=generator) >= self.cfg.action_dropout).to(device)
        captions = [c if keep else "" for c, keep in zip(batch["caption"], keep_text.tolist())]
        text, text_mask = self.text_encoder(captions)
        action_mask = batch["action_mask"].to(device) & keep_actions[:, None]
        text = self.dit.text_context(text, text_mask)
        actions = batch["actions"].to(device)
        if self.cfg.rollout_prob > 0 and t > 2:  # drawn only when used, so that runs without it keep their noise
            x0, sigmas = self.rollout(x0, sigmas, noise, actions, action_mask, text, generator)
        target, step = velocity_target(x0, noise), torch.zeros(b, device=device)
        if self.cfg.shortcut_prob > 0:  # drawn only when used, as above
            sigmas, step, target = self.shortcut(x0, noise, sigmas, target, actions, action_mask, text, generator)
        # The heads are read on the simulator's newest frame, the last of its window, so they learn
        # there only: at earlier positions they would learn the position (an episode's end is
        # always a window's last frame) instead of what the frame shows.
        heads = (sigmas <= self.cfg.noise.context_noise_max) & ~batch["is_image"].to(device)[:, None]
        heads[:, :-1] = False
        generated = torch.zeros(b, dtype=torch.bool, device=device)
        if self.cfg.head_rollout_prob > 0 and t > 1:  # drawn only when used, as above
            x0, generated = self.head_rollout(x0, sigmas, noise, actions, action_mask, text, heads[:, -1], generator)
        out = Denoiser(self.dit)(add_noise(x0, noise, sigmas), sigmas, actions, action_mask, text, step=step)
        # A shortcut frame (step > 0) counts as shortcut_weight frames (0: its whole window, T), so
        # that one frame in T is heard; a generated last frame (head_rollout) teaches the heads only.
        counts = torch.ones_like(out.loss_weight)
        counts[:, -1] = torch.where(step > 0, float(self.cfg.shortcut_weight or t), 1.0)
        counts[:, -1] = torch.where(generated, 0.0, counts[:, -1])
        weight = (out.loss_weight * counts)[:, :, None, None, None]
        if self.cfg.motion_weight > 0:
            weight = weight * motion_weights(x0, self.cfg.motion_weight)
        if self.cfg.terminal_flow_reweight:  # a window drawn terminal_repeats times counts once in all
            ends = batch["terminated"][:, -1].to(device)
            weight = weight * torch.where(ends, 1.0 / self.cfg.terminal_repeats, 1.0)[:, None, None, None, None]
        diffusion = (weight * (out.velocity.float() - target) ** 2).mean()
        reward = masked_mean((out.reward.float() - batch["rewards"].to(device)) ** 2, heads)
        termination = masked_mean(
            F.binary_cross_entropy_with_logits(out.termination.float(), batch["terminated"].to(device).float(), reduction="none"), heads
        )
        loss = diffusion + self.cfg.reward_weight * reward + self.cfg.termination_weight * termination
        return {"loss": loss, "diffusion": diffusion, "reward": reward, "termination": termination}

    @torch.no_grad()
    def generate_next(
        self,
        context: torch.Tensor,
        levels: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: TextContext,
        start: torch.Tensor,
    ) -> torch.Tensor:
        """The frame ``[n, 1, C, h, w]`` the model makes after the noisy ``context`` ``[n, i, ...]``
        at noise levels ``levels`` ``[n, i]``, as the simulator makes one: the sampler's
        ``rollout_steps`` steps from the noise ``start``; ``actions`` and ``action_mask`` cover the
        context and the new frame. No gradient."""
        n, i = context.shape[:2]
        denoiser = Denoiser(self.dit)

        def velocity(x: torch.Tensor, sigma: float, step: float, conditioned: bool) -> torch.Tensor:
            frame_sigmas = torch.cat([levels, torch.full((n, 1), sigma, device=x.device)], dim=1)
            return denoiser(torch.cat([context, x], dim=1), frame_sigmas, actions, action_mask, text, step=step).velocity[:, -1:]

        return Sampler(self.cfg.rollout_steps).sample(velocity, start)

    @torch.no_grad()
    def head_rollout(
        self,
        x0: torch.Tensor,
        sigmas: torch.Tensor,
        noise: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: TextContext,
        learns: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heads that read generated frames: a share ``head_rollout_prob`` of the windows whose heads
        learn (``learns`` ``[B]``: the last frame at a context level) gets as its last frame the one
        the model makes itself from the window's real context (:meth:`generate_next`), with the real
        frame's reward and termination as the heads' targets. The heads otherwise only see real
        frames, and a generated frame (a few grey levels off across the background) can read as
        another world to them: a push model whose heads found 94% of the reaches on real frames
        found none of the same reaches in its dream. That frame's flow error is not counted (its
        target would be the model's own frame). Returns the latents with those frames replaced and
        which windows got one ``[B]``."""
        b = x0.shape[0]
        chosen = ((torch.rand(b, generator=generator).to(x0.device) < self.cfg.head_rollout_prob) & learns).nonzero().flatten()
        starts = torch.randn((b, 1, *x0.shape[2:]), generator=generator).to(x0.device)
        generated = torch.zeros(b, dtype=torch.bool, device=x0.device)
        if len(chosen) == 0:
            return x0, generated
        context = add_noise(x0[chosen, :-1], noise[chosen, :-1], sigmas[chosen, :-1])
        frames = self.generate_next(context, sigmas[chosen, :-1], actions[chosen], action_mask[chosen], text[chosen], starts[chosen])
        x0 = x0.clone()
        x0[chosen, -1:] = frames
        generated[chosen] = True
        return x0, generated

    @torch.no_grad()
    def rollout(
        self,
        x0: torch.Tensor,
        sigmas: torch.Tensor,
        noise: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: TextContext,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-forcing: a share ``rollout_prob`` of the windows gets, just before its last frame,
        ``rollout_frames`` frames that the model generates itself, one after the other from the
        real frames before them (the sampler's ``rollout_steps`` steps against a context at one
        level from ``[0, context_noise_max]``, as the simulator makes a frame). The last frame stays
        real and noisy: the model learns to predict the real future from its own imperfect past,
        the context it meets at inference. No gradient flows through the generation.
        Returns the windows' clean latents and noise levels with those windows replaced."""
        b, t = x0.shape[:2]
        chosen = (torch.rand(b, generator=generator) < self.cfg.rollout_prob).nonzero().flatten().to(x0.device)
        levels = torch.rand(b, generator=generator).to(x0.device) * self.schedule.context_noise_max
        first = t - 1 - min(self.cfg.rollout_frames, t - 2)  # the first generated frame; frame 0 stays real
        starts = torch.randn((b, t - 1 - first, *x0.shape[2:]), generator=generator).to(x0.device)
        if len(chosen) == 0:
            return x0, sigmas
        n = len(chosen)
        latents, level = x0[chosen].clone(), levels[chosen, None]
        rows_actions, rows_mask, rows_text = actions[chosen], action_mask[chosen], text[chosen]
        for i in range(first, t - 1):
            context = add_noise(latents[:, :i], noise[chosen, :i], level.expand(n, i))
            start, seen = starts[chosen, i - first : i - first + 1], slice(0, i + 1)
            made = self.generate_next(context, level.expand(n, i), rows_actions[:, seen], rows_mask[:, seen], rows_text, start)
            latents[:, i : i + 1] = made
        x0, sigmas = x0.clone(), sigmas.clone()
        x0[chosen] = latents
        sigmas[chosen, :-1] = level
        return x0, sigmas

    @torch.no_grad()
    def shortcut(
        self,
        x0: torch.Tensor,
        noise: torch.Tensor,
        sigmas: torch.Tensor,
        target: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor,
        text: TextContext,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shortcut targets (Frans et al., 2024): a share ``shortcut_prob`` of the windows becomes
        "clean context, noisy last frame" (the context at one level from ``[0, context_noise_max]``,
        as the simulator sees it), the last frame at a level ``m * d`` on the grid of a step size
        ``d`` drawn from ``1, 1/2, ... 1 / shortcut_steps``. Its target velocity is the mean of two
        steps of ``d / 2`` that the model itself takes from there (no gradient; steps finer than
        ``1 / shortcut_steps`` are the flow's own velocity, ``d = 0``), so that one pass told ``d``
        learns to land where two would; its error counts ``T`` times (as much as the whole window's
        flow error, in :meth:`forward`), so that the small difference between one step and two is
        heard (``shortcut_weight`` sets another count). With ``shortcut_teacher=ema`` the half steps
        are the EMA weights' (:meth:`use_teacher`), a slower teacher than the weights being trained.
        Returns the levels, the last frames' step sizes ``[B]`` (0 for the other windows) and the
        velocity targets with those windows' last frames replaced."""
        b, t = x0.shape[:2]
        device = x0.device
        chosen = (torch.rand(b, generator=generator) < self.cfg.shortcut_prob).nonzero().flatten().to(device)
        finest = self.cfg.shortcut_steps.bit_length() - 1  # d = 2^-j for j in 0..finest
        halvings = torch.randint(0, finest + 1, (b,), generator=generator)
        cells = (torch.rand(b, generator=generator) * 2.0**halvings).floor() + 1  # m in 1..2^j
        levels = torch.rand(b, generator=generator) * self.schedule.context_noise_max
        step = torch.zeros(b, device=device)
        if len(chosen) == 0:
            return sigmas, step, target
        d = (0.5 ** halvings.float()).to(device)[chosen]  # powers of two: exact
        sigmas, target = sigmas.clone(), target.clone()
        sigmas[chosen, :-1] = levels.to(device)[chosen, None]
        sigmas[chosen, -1] = cells.to(device)[chosen] * d  # m * d <= 1
        step[chosen] = d
        half = d / 2
        told = torch.where(half >= 1 / self.cfg.shortcut_steps, half, torch.zeros_like(half))  # finer: the flow's velocity
        if self.cfg.shortcut_teacher == "ema" and not self.teachers:
            raise RuntimeError("shortcut_teacher=ema, but no EMA was handed over (use_teacher)")
        teacher = self.teachers[0] if self.cfg.shortcut_teacher == "ema" else self.dit
        denoiser, rows_sigmas = Denoiser(teacher), sigmas[chosen]
        x = add_noise(x0[chosen], noise[chosen], rows_sigmas)
        rows = (actions[chosen], action_mask[chosen], text[chosen])
        first = denoiser(x, rows_sigmas, *rows, step=told).velocity[:, -1]
        x[:, -1] = x[:, -1] - half[:, None, None, None] * first
        rows_sigmas = rows_sigmas.clone()
        rows_sigmas[:, -1] = rows_sigmas[:, -1] - half
        second = denoiser(x, rows_sigmas, *rows, step=told).velocity[:, -1]
        target[chosen, -1] = (first + second).float() / 2
        return sigmas, step, target


MOTION_THRESHOLD = 0.01  # latent change that counts as motion (pixels in [-1, 1]: 1.3 levels of 255)


def motion_weights(x0: torch.Tensor, extra: float) -> torch.Tensor:
    """Per-cell weights ``[B, T, C, H, W]`` of the flow error of latents ``x0`` ``[B, T, C, H, W]``:
    ``1 + extra`` where a frame differs from the one before it (any channel above
    :data:`MOTION_THRESHOLD`, grown by one cell), 1 elsewhere and on a window's first frame, then
    rescaled to mean 1 per frame."""
    b, t, c, h, w = x0.shape
    moved = torch.zeros(b, t, 1, h, w, device=x0.device)
    if t > 1:
        change = (x0[:, 1:] - x0[:, :-1]).abs().amax(dim=2, keepdim=True) > MOTION_THRESHOLD
        grown = F.max_pool2d(change.float().flatten(0, 1), 3, stride=1, padding=1)
        moved[:, 1:] = grown.view(b, t - 1, 1, h, w)
    weights = 1 + extra * moved
    return (weights / weights.mean(dim=(2, 3, 4), keepdim=True)).expand(b, t, c, h, w)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


# ------------------------------------------------------------------------------------ training


def frame_change_std(dataset: WindowDataset, codec: nn.Module, seed: int, samples: int = 64) -> float | None:
    """The std of the change between consecutive latent frames, over up to ``samples`` windows of
    ``dataset`` drawn with ``seed``: the DiT's ``residual_std`` (Balls 32x32 pixels: about 0.1).
    None for a dataset of stills alone."""
    videos = [i for i, bucket in enumerate(dataset.buckets) if bucket[0] > 1]
    if not videos:
        return None
    picks = np.random.default_rng(seed).choice(videos, size=min(samples, len(videos)), replace=False)
    with torch.no_grad():
        changes = [codec.encode(dataset[int(i)]["frames"][None]).diff(dim=1).flatten() for i in picks]
    return float(torch.cat(changes).std())


def train(
    data: list[str | Path],
    out: str | Path,
    steps: int,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    text_encoder: nn.Module | None = None,
    init: str | Path | None = None,
) -> TrainResult:
    """Trains a world model on the collections ``data`` for ``steps`` optimizer steps into the run
    folder ``out`` (``config.json``, ``metrics.csv``, ``checkpoints/step_NNNNNNN/``). ``resume``
    continues from the newest checkpoint exactly: weights, optimizer, schedule, EMA and data
    position (the noise of a step is seeded by the step). ``text_encoder``: see
    :func:`build_world_model`. ``init``: a trained world model (shipped name, model or run folder)
    of ``model_cfg``'s sizes to start from (fine-tuning; its ``residual_std`` is kept, and the
    fine-tune samples as it does: :func:`sample_as`)."""
    check_integer("steps", steps)
    out = Path(out)
    place = setup_distributed(device)
    dataset = WindowDataset(data, cfg.window_lengths, images=cfg.images, terminal_repeats=cfg.terminal_repeats)
    loader = bucket_loader(dataset, dataset.buckets, cfg, place)
    if len(loader) == 0:
        raise UserError(f"no full batch of {cfg.batch_size} windows per rank: collect more episodes or lower batch_size")

    torch.manual_seed(cfg.seed)
    trained = None
    if init is not None:
        from worldsim.model.world_model import load

        trained = load(init)
        text_encoder = text_encoder or trained.text_encoder  # its own encoder, whatever its sizes
    model = build_world_model(model_cfg, describe_world(data), text_encoder)
    if cfg.shortcut_prob > 0 and not model_cfg.step_conditioning:
        raise UserError(f"train.shortcut_prob={cfg.shortcut_prob} needs a step-conditioned model: add model.step_conditioning=true")
    if trained is not None:
        start_from(model, trained, init)
        sample_as(model, trained, cfg.noise.context_noise_max)
    else:
        measured = frame_change_std(dataset, model.codec, cfg.seed)
        if measured is not None:
            model.dit.register_to_config(residual_std=measured)  # the DiT reads it from its config
    model.config.context_frames = max(cfg.window_lengths)
    model.to(place.device)

    def save(parts: dict[str, Any], state: checkpoint.State) -> tuple[Path, dict[str, Any]]:
        return checkpoint.save(out, model, parts["ema"], parts, state, cfg.keep_checkpoints), {}

    objective = FlowMatchingLoss(model, cfg).to(place.device)
    stage = Stage(
        description=f"train {out.name}",
        loader=loader,
        objective=objective,
        trainable=nn.ModuleDict({"dit": model.dit, "text_encoder": model.text_encoder}),
        trainable_key="trainable",
        columns=METRICS,
        advice=f"try a lower lr (now {cfg.lr})",
        save=save,
        ema_decay=cfg.ema_decay,
        on_ema=objective.use_teacher,
        tokens=lambda batch: tokens_in(batch, model),
    )
    settings = dict(
        data=[str(d) for d in data],
        steps=steps,
        init=None if init is None else str(init),
        model=model_cfg,
        train=cfg,
        world=model.config.to_dict(),
    )
    last = run_steps(stage, out, steps, cfg, place, resume, progress, settings)
    return TrainResult(checkpoint=last, model=model)


def start_from(model: WorldModel, trained: WorldModel, init: str | Path) -> None:
    """Loads the weights (and ``residual_std``) of the ``trained`` model (from ``init``) into ``model``.
    A flow model fine-tuned as a step-conditioned one keeps its fresh step embedding, whose zero
    output layer leaves the model as it was; one fine-tuned with attention-pooled heads keeps its
    fresh pool, which starts as the mean pooling it had."""
    try:
        missing, unexpected = model.load_state_dict(trained.state_dict(), strict=False)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise UserError(f"init={init} has other sizes than model= ({first}); fine-tune with its own sizes") from None
    missing = [name for name in missing if not name.startswith(("dit.step_embed.", "dit.head_pool."))]
    if missing or unexpected:
        names = ", ".join((missing + unexpected)[:3])
        raise UserError(f"init={init} has other parts than model= (missing or unexpected: {names}); fine-tune with its own sizes")
    model.dit.register_to_config(residual_std=trained.dit.config.residual_std)


def sample_as(model: WorldModel, trained: WorldModel, context_noise_max: float) -> None:
    """A fine-tune samples as the ``trained`` model it started from: its ``sampler_steps``,
    ``commit_pass``, ``termination_threshold`` and ``context_noise`` (chosen for that model, e.g. in
    its RECIPE), not :class:`WorldModelConfig`'s defaults. The context-noise level is capped at the
    fine-tune's ``context_noise_max``, the range the model now trains on; a folded commit pass
    (``commit_pass`` false) needs a level above 0 and a network without step conditioning, so the
    commit pass comes back where the fine-tune leaves either out."""
    ours, theirs = model.config, trained.config
    ours.sampler_steps, ours.termination_threshold = theirs.sampler_steps, theirs.termination_threshold
    ours.context_noise = min(theirs.context_noise, context_noise_max)
    ours.commit_pass = theirs.commit_pass or ours.context_noise <= 0 or bool(model.dit.config.step_conditioning)


def tokens_in(batch: dict, model: WorldModel) -> int:
    """Spacetime tokens the DiT saw in a batch (for throughput)."""
    b, t, h, w, _ = batch["frames"].shape
    p, d = model.dit.config.patch_size, model.codec.downsample
    return b * t * (h // d // p) * (w // d // p)
