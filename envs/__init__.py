"""Gymnasium environments of worldsim: real worlds (ground truth) and dream worlds (a world model).

Importing ``worldsim`` registers these ids:

- ``worldsim/Balls-v0``: balls in a box on pymunk (:class:`worldsim.envs.balls.BallsEnv`).
- ``worldsim/CartPole-v0``: CartPole-v1 seen through pixels
  (:func:`worldsim.envs.cartpole.make_pixel_cartpole`).
- ``worldsim/DreamBalls-v0``, ``worldsim/DreamCartPole-v0``: a world model's dream of each
  (:class:`worldsim.envs.dream.DreamEnv`; ``gym.make_vec`` gives the batched
  :class:`worldsim.envs.dream.DreamVectorEnv`). They need ``model=NAME_OR_PATH``.
"""

from gymnasium.envs.registration import register, registry

REAL_WORLDS = {
    "worldsim/Balls-v0": "worldsim.envs.balls:BallsEnv",
    "worldsim/CartPole-v0": "worldsim.envs.cartpole:make_pixel_cartpole",
}
DREAM_WORLDS = {  # dream id: its real twin
    "worldsim/DreamBalls-v0": "worldsim/Balls-v0",
    "worldsim/DreamCartPole-v0": "worldsim/CartPole-v0",
}


def register_envs() -> None:
    """Registers every worldsim id with Gymnasium; calling it again does nothing."""
    for env_id, entry_point in REAL_WORLDS.items():
        if env_id not in registry:
            register(env_id, entry_point=entry_point)
    for dream_id, real_id in DREAM_WORLDS.items():
        if dream_id not in registry:
            register(
                dream_id,
                entry_point="worldsim.envs.dream:DreamEnv",
                vector_entry_point="worldsim.envs.dream:DreamVectorEnv",
                kwargs={"env_id": real_id},
            )
