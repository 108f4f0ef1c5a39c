"""Tiny random models for the tests: a SpacetimeDiT, and a world model (saved as a model folder
for tests of what consumes a WorldModel).

Random weights (untrained adaLN-Zero blocks would be identities, so every parameter is drawn
afresh) make frames that change with the noise and the actions; the world model's termination head
is pinned so that episodes end when a test wants them to.
"""

from pathlib import Path

import torch

from worldsim.model.action_space import ActionSpace
from worldsim.model.codec import PixelCodec
from worldsim.model.dit import SpacetimeDiT
from worldsim.model.text import ByteTextEncoder
from worldsim.model.world_model import WorldModel, WorldModelConfig

ACTIONS = {"worldsim/Balls-v0": 5, "worldsim/CartPole-v0": 2}


def randomise(module: torch.nn.Module) -> None:
    """Draws every parameter afresh from N(0, 0.2^2), so that every path carries signal (untrained
    adaLN-Zero blocks are identities and the output layer is zero)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.2)


def tiny_dit(random_weights: bool = True, **overrides) -> SpacetimeDiT:
    """A SpacetimeDiT of hidden size 32, 2 layers of 2 heads, patch size 2, 5 discrete actions and
    text of dim 32 (``overrides`` change any of them), built after ``torch.manual_seed(0)``; with
    its initial weights unless ``random_weights``."""
    torch.manual_seed(0)
    sizes = dict(in_channels=3, patch_size=2, hidden_size=32, depth=2, num_heads=2, num_actions=5, text_dim=32)
    dit = SpacetimeDiT(**{**sizes, **overrides})
    if random_weights:
        randomise(dit)
    return dit.eval()


def tiny_world_model(
    env_id: str = "worldsim/Balls-v0", frame_size: tuple[int, int] = (16, 16), num_actions: int | None = None, terminates: bool = False
) -> WorldModel:
    """A world model of ``env_id`` with patch size 4 (16 tokens per 16x16 frame), a window of 2
    frames and 2 sampler steps; its termination logit is always -1e3 (or +1e3 if ``terminates``)."""
    n = num_actions or ACTIONS[env_id]
    dit = tiny_dit(patch_size=4, num_actions=n, text_dim=16)
    with torch.no_grad():
        termination = dit.heads[-1]  # outputs (reward, termination) per frame
        termination.weight[1] = 0
        termination.bias[1] = 1e3 if terminates else -1e3
    config = WorldModelConfig(
        env_id=env_id,
        env_kwargs={"frame_size": list(frame_size)},
        frame_size=frame_size,
        fps=10,
        action_space=ActionSpace("discrete", n=n),
        context_frames=3,
        sampler_steps=2,
    )
    text_encoder = ByteTextEncoder(dim=16, depth=1, num_heads=2, max_length=32)
    return WorldModel(config, PixelCodec(), dit, text_encoder).eval()


def save_tiny_world_model(path: Path, **kwargs) -> Path:
    return tiny_world_model(**kwargs).save_pretrained(path)
