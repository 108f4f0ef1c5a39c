"""worldsim: a generative video model as an interactive world simulator.

``import worldsim`` registers the Gymnasium ids of :mod:`worldsim.envs`.
"""

from worldsim.envs import register_envs

__version__ = "0.1.0"

register_envs()
