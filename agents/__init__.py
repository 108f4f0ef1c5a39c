"""Agents trained in imagination with stable-baselines3 and evaluated in the real worlds.

- :class:`~worldsim.agents.vec_env.DreamVecEnv`: SB3's ``VecEnv`` over a batched dream env;
- :mod:`~worldsim.agents.imagination`: the agent (``FrameCNN``, stacked frames, normalised rewards,
  the PPO settings), trained in a dream, evaluated in the real twin, filmed real beside dream
  (``worldsim agent train``);
- :mod:`~worldsim.agents.dyna`: the Dyna loop and the model-free baseline with the same agent
  (``worldsim agent dyna``).
"""
