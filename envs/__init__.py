"""Gymnasium environments of worldsim: real worlds (ground truth) and, later, dream worlds.

Importing ``worldsim`` registers these ids:

- ``worldsim/Balls-v0``: balls in a box on pymunk (:class:`worldsim.envs.balls.BallsEnv`).
- ``worldsim/CartPole-v0``: CartPole-v1 seen through pixels
  (:func:`worldsim.envs.cartpole.make_pixel_cartpole`).
"""

from gymnasium.envs.registration import register, registry

REAL_WORLDS = {
    "worldsim/Balls-v0": "worldsim.envs.balls:BallsEnv",
    "worldsim/CartPole-v0": "worldsim.envs.cartpole:make_pixel_cartpole",
}


def register_envs() -> None:
    """Registers every worldsim id with Gymnasium; calling it again does nothing."""
    for env_id, entry_point in REAL_WORLDS.items():
        if env_id not in registry:
            register(env_id, entry_point=entry_point)
