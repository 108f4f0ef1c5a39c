"""worldsim: a generative video model as an interactive world simulator.

``import worldsim`` registers the Gymnasium ids of :mod:`worldsim.envs`. ``worldsim.load(name_or_path)``
returns a :class:`~worldsim.model.world_model.WorldModel` (imported on first use, so that importing
worldsim for its environments does not load torch).
"""

from worldsim.envs import register_envs

__version__ = "0.1.0"

register_envs()


def __getattr__(name: str):
    if name in ("load", "WorldModel"):
        from worldsim.model import world_model

        return getattr(world_model, name)
    raise AttributeError(f"module 'worldsim' has no attribute {name!r}")
