"""Agents trained in imagination with stable-baselines3 and evaluated in the real worlds.

Not built yet: the agent loop arrives with the "Agents trained in imagination" issue.
"""
