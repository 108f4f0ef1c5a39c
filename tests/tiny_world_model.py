"""A tiny random world model saved as a model folder, for tests of what consumes a WorldModel.

Random weights (untrained adaLN-Zero blocks would be identities, so every parameter is drawn
afresh) make frames that change with the noise and the actions; the termination head is pinned so
that episodes end when a test wants them to.
"""

from pathlib import Path

import torch

from worldsim.model.codec import PixelCodec
from worldsim.model.dit import SpacetimeDiT
from worldsim.model.text import ByteTextEncoder
from worldsim.model.world_model import WorldModel, WorldModelConfig

ACTIONS = {"worldsim/Balls-v0": 5, "worldsim/CartPole-v0": 2}


def tiny_world_model(
    env_id: str = "worldsim/Balls-v0",
    frame_size: tuple[int, int] = (16, 16),
    num_actions: int | None = None,
    terminates: bool = False,
) -> WorldModel:
    """A world model of ``env_id`` with patch size 4 (16 tokens per 16x16 frame), a window of 2
    frames and 2 sampler steps; its termination logit is always -1e3 (or +1e3 if ``terminates``)."""
    torch.manual_seed(0)
    n = num_actions or ACTIONS[env_id]
    dit = SpacetimeDiT(in_channels=3, patch_size=4, hidden_size=32, depth=2, num_heads=2, num_actions=n, text_dim=16)
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0, 0.2)
        termination = dit.heads[-1]  # outputs (reward, termination) per frame
        termination.weight[1] = 0
        termination.bias[1] = 1e3 if terminates else -1e3
    config = WorldModelConfig(
        env_id=env_id,
        env_kwargs={"frame_size": list(frame_size)},
        frame_size=frame_size,
        fps=10,
        action_space={"type": "discrete", "n": n},
        context_frames=3,
        sampler_steps=2,
    )
    text_encoder = ByteTextEncoder(dim=16, depth=1, num_heads=2, max_length=32)
    return WorldModel(config, PixelCodec(), dit, text_encoder).eval()


def save_tiny_world_model(path: Path, **kwargs) -> Path:
    return tiny_world_model(**kwargs).save_pretrained(path)
