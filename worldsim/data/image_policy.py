"""The image policy of every worldsim agent: :class:`FrameCNN`, its ``policy_kwargs`` and :class:`FrameStacker`.

They sit below both their users: :mod:`worldsim.agents` trains policies with them, and
:class:`worldsim.data.policies.SB3Policy` rebuilds a saved policy with them to collect episodes
(data never imports agents). SB3's default NatureCNN needs frames of at least 36x36 and
worldsim's are often 32x32 or smaller, hence FrameCNN.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations
from torch import nn


class FrameCNN(BaseFeaturesExtractor):
    """An SB3 features extractor for small frames ``[3k, H, W]`` (``k`` stacked frames; SB3
    transposes channel-last frames and scales them to [0, 1]): three 3x3 convolutions of stride 2,
    then a linear layer."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256):
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


def policy_kwargs() -> dict[str, Any]:
    """The ``policy_kwargs`` of every worldsim image policy (a zip loads only with the same)."""
    return {"features_extractor_class": FrameCNN}


class FrameStacker:
    """What ``VecFrameStack`` shows a policy, for one env stepped by hand: uint8 ``[H, W, 3k]``, the
    episode's last ``k`` frames on the channels (zeros before its first frame)."""

    def __init__(self, space: gym.spaces.Box, k: int):
        self.stack = StackedObservations(1, k, space, "last")
        self.space = self.stack.stacked_observation_space

    def reset(self, frame: np.ndarray) -> np.ndarray:
        return self.stack.reset(frame[None])[0].copy()

    def step(self, frame: np.ndarray) -> np.ndarray:
        stacked, _ = self.stack.update(frame[None], np.zeros(1, dtype=bool), [{}])
        return stacked[0].copy()
