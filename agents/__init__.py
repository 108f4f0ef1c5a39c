"""Agents trained in imagination with stable-baselines3 and evaluated in the real worlds.

Built so far: :class:`~worldsim.agents.vec_env.DreamVecEnv`, SB3's ``VecEnv`` over a batched dream
env. The agent loop (train, evaluate, Dyna) arrives with the "Agents trained in imagination" issue.
"""
