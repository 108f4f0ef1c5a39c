"""Gymnasium environments of worldsim: real worlds (ground truth) and dream worlds (a world model).

Importing ``worldsim`` registers, for every world of :data:`worldsim.envs.worlds.WORLDS`, its real
id and its dream id:

- ``worldsim/Balls-v0``: balls in a box on pymunk (:class:`worldsim.envs.balls.BallsEnv`).
- ``worldsim/CartPole-v0``: CartPole-v1 seen through pixels
  (:func:`worldsim.envs.cartpole.make_pixel_cartpole`).
- ``worldsim/DreamBalls-v0``, ``worldsim/DreamCartPole-v0``: a world model's dream of each
  (:class:`worldsim.envs.dream.DreamEnv`; ``gym.make_vec`` gives the batched
  :class:`worldsim.envs.dream.DreamVectorEnv`). They need ``model=NAME_OR_PATH``.
"""

from gymnasium.envs.registration import register, registry

# Imports within envs/ are relative: the folder installs as worldsim.envs, but a type checker
# reading the source tree knows it as envs.
from .worlds import WORLDS

REAL_WORLDS = {world.env_id: world.entry_point for world in WORLDS}
DREAM_WORLDS = {world.dream_id: world.env_id for world in WORLDS}  # dream id: its real twin


def register_envs() -> None:
    """Registers every worldsim id with Gymnasium; calling it again does nothing."""
    for world in WORLDS:
        if world.env_id not in registry:
            register(world.env_id, entry_point=world.entry_point)
        if world.dream_id not in registry:
            register(
                world.dream_id,
                entry_point="worldsim.envs.dream:DreamEnv",
                vector_entry_point="worldsim.envs.dream:DreamVectorEnv",
                kwargs={"env_id": world.env_id},
            )
