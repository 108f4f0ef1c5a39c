"""Agents trained in imagination with stable-baselines3 and evaluated in the real worlds.

- :class:`~worldsim.agents.vec_env.DreamVecEnv`: SB3's ``VecEnv`` over a batched dream env;
- :mod:`~worldsim.agents.imagination`: train PPO / DQN in a dream, evaluate in the real twin,
  film real beside dream (``worldsim agent train``).

The Dyna loop (``worldsim agent dyna``) arrives with the rest of the "Agents trained in imagination" issue.
"""
