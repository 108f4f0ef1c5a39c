"""DreamVecEnv: a stable-baselines3 ``VecEnv`` over a batched dream env, so SB3 trains in imagination.

SB3 steps a ``VecEnv`` (``step_async`` / ``step_wait``) and expects finished envs to be reset in the
same step, their last observation in ``info["terminal_observation"]``. :class:`DreamVectorEnv
<worldsim.envs.dream.DreamVectorEnv>` does exactly that (``AutoresetMode.SAME_STEP``), so the
adapter only reshapes Gymnasium's dict-of-arrays infos into SB3's list of dicts: every step is one
batched call of the world model for all envs, never a Python loop over them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from worldsim.errors import UserError


class DreamVecEnv(VecEnv):
    """SB3's view of a Gymnasium vector env that autoresets in the same step (a DreamVectorEnv).

    ``infos[i]`` holds env ``i``'s step info (``caption``, ``step``), ``"TimeLimit.truncated"``
    (truncated and not terminated) and, when the env finished, the finished episode's info with
    ``"terminal_observation"``; ``reset_infos[i]`` holds the info of its new episode. ``seed(s)``
    makes the next ``reset()`` start env ``i`` from seed ``s + i``. The sub-envs are rows of one
    batch, not objects: ``get_attr`` / ``set_attr`` / ``env_method`` act on the vector env and
    report the result for every index asked.
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        mode = venv.metadata.get("autoreset_mode")
        if mode is not AutoresetMode.SAME_STEP:
            raise UserError(f"DreamVecEnv needs a vector env with autoreset_mode SAME_STEP (SB3's convention), got {mode}")
        self.venv = venv
        self.actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> VecEnvObs:
        seed, options = self._next_seed(), self._next_options()
        observations, info = self.venv.reset(seed=seed, options=options)
        self.reset_infos = split_info(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, terminated, truncated, info = self.venv.step(self.actions)
        dones = terminated | truncated
        infos = split_info(info, self.num_envs)
        if dones.any():
            finals = split_info(info["final_info"], self.num_envs)
            for i in np.flatnonzero(dones):
                self.reset_infos[i] = infos[i]
                infos[i] = {**finals[i], "terminal_observation": info["final_obs"][i]}
        for i, env_info in enumerate(infos):
            env_info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> list[np.ndarray]:
        frames = self.venv.render()
        return list(frames) if frames is not None else []

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # --------------------------------------------------------------------------------- internals

    def _next_seed(self) -> int | None:
        """SB3 stores ``seed + i`` per env; the vector env takes ``seed`` and adds ``i`` itself."""
        first = self._seeds[0]
        if first is None:
            return None
        if self._seeds != [first + i for i in range(self.num_envs)]:
            raise UserError(f"DreamVecEnv seeds env i with seed + i; got per-env seeds {self._seeds}")
        return int(first)

    def _next_options(self) -> dict[str, Any] | None:
        first = self._options[0]
        if any(options != first for options in self._options):
            raise UserError("DreamVecEnv takes one set of reset options for every env (set_options(dict))")
        return dict(first) or None


def split_info(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (arrays with ``_key`` masks) as SB3's list of per-env dicts
    (``final_obs`` / ``final_info`` are left out: SB3 reads them as ``terminal_observation``)."""
    envs: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        present = info.get(f"_{key}", np.ones(num_envs, dtype=bool))
        nested = split_info(value, num_envs) if isinstance(value, dict) else None
        for i in np.flatnonzero(present):
            envs[i][key] = nested[i] if nested is not None else value[i]
    return envs
