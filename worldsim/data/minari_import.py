"""Minari import: turns a local Minari dataset of image episodes into a worldsim collection.

worldsim keeps episodes in its own format (:mod:`worldsim.data.episode`: compressed, one atomic
file per episode, resumable, captioned); this module lets users bring datasets recorded with
`Minari <https://minari.farama.org>`_ (``minari.DataCollector`` or
``minari.create_dataset_from_buffers``). Minari is optional: ``pip install "worldsim[minari]"``.
Only local datasets are read; fetch a remote one first with ``minari download ID``.

## Mapping (Minari ``EpisodeData`` -> :class:`~worldsim.data.episode.Episode`)

| Minari | worldsim |
| --- | --- |
| ``observations`` uint8 ``[T + 1, H, W, 3]``, or ``observations[key]`` of a Dict space | ``frames`` |
| ``actions`` of ``Discrete`` ``[T]`` | ``actions`` int64 ``[T]`` |
| ``actions`` of ``Box`` ``[T, ...]`` | ``actions`` float32 ``[T, A]`` (flattened) |
| ``rewards`` ``[T]`` | ``rewards`` float32 |
| ``terminations``, ``truncations`` ``[T]`` | ``terminated``, ``truncated`` bool |
| ``infos["state"][k]`` ``[T + 1, ...]`` (numeric) | ``states[k]`` |
| ``infos["caption"][0]`` | ``caption``; else the ``caption`` argument; else ``""`` |
| dataset id, env spec id and kwargs, episode id and seed | ``meta`` (``source="minari"``, ...) |

Minari episode ``i`` of the dataset becomes ``out/episodes/{i:06d}.npz``.

## What Minari keeps (0.5.4)
- Infos are recorded only with ``DataCollector(env, record_infos=True)``; Minari stores them with
  ``T + 1`` entries (the reset info first). Nested dicts such as worldsim's ``info["state"]`` are
  kept as nested dicts of per-step arrays. Strings are kept too (the HDF5 format gives them back
  as ``bytes``, decoded here); a dataset without a ``"caption"`` info takes the ``caption``
  argument for every episode.
- Recording with ``DataCollector`` needs jax (``pip install "minari[create]"``); importing needs
  only ``minari[hdf5]``.
- Minari's Arrow format (``data_format="arrow"``) returns nested infos as per-step dicts of
  flattened arrays, losing their shapes; importing states from it raises UserError (use HDF5).
- Image observation spaces of at least 32 x 32 pixels are JPEG-encoded on disk unless the dataset
  was written with ``jpeg_encoding=False``: such frames are what Minari decodes, not the exact
  frames the env drew. The collection's settings record ``minari_jpeg_encoding``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import worldsim
from worldsim.data.collection import Collection, create_collection, episode_path
from worldsim.data.episode import Episode
from worldsim.errors import MissingFileError, UserError

INSTALL = 'pip install "worldsim[minari]"'
# Settings that may change between an interrupted import and its continuation.
RESUMABLE = ("episodes", "worldsim_version")
ACCEPTED = "uint8 H x W x 3 image observations (a Box space, or an entry of a Dict space)"


def import_minari(dataset_id: str, out: str | Path, caption: str | None = None, observation_key: str | None = None) -> Collection:
    """Writes every episode of the local Minari dataset ``dataset_id`` into the collection ``out``.

    ``observation_key`` picks the image entry of Dict observations (default: the only one).
    ``caption`` is used for episodes whose infos have no ``"caption"``. Rerunning with the same
    arguments resumes: episode files already in ``out`` are kept (damaged ones are imported again).
    Raises MissingFileError when the dataset is not local, UserError when its observations or actions
    have no worldsim equivalent or ``out`` holds another collection.
    """
    try:
        import minari
    except ImportError as error:
        raise ImportError(f"importing Minari datasets needs Minari: {INSTALL}") from error
    dataset = load_local(minari, dataset_id)
    key = image_key(dataset.observation_space, observation_key, dataset_id)
    convert_actions = action_converter(dataset.action_space, dataset_id)
    spec = dataset.env_spec
    source = {
        "source": "minari",
        "dataset_id": dataset_id,
        "env_id": spec.id if spec is not None else None,
        "env_kwargs": dict(spec.kwargs) if spec is not None else {},
    }
    settings = {
        **source,
        "observation_key": key,
        "caption": caption,
        "episodes": len(dataset),
        "minari_jpeg_encoding": bool(getattr(dataset.storage, "jpeg_encoding", False)),
        "worldsim_version": worldsim.__version__,
    }
    # Through JSON first, so that tuples compare equal to the lists a resumed run reads back.
    settings = json.loads(json.dumps(settings))
    collection = create_collection(out, settings, resume_ignores=RESUMABLE)
    collection.discard_damaged()

    todo = [(i, int(index)) for i, index in enumerate(dataset.episode_indices)]
    todo = [(i, index) for i, index in todo if not episode_path(collection.root, "episodes", i).exists()]
    indices = [index for _, index in todo]
    episodes = dataset.iterate_episodes(indices)
    metadatas = dataset.storage.get_episode_metadata(indices)
    for (i, index), data, metadata in zip(todo, episodes, metadatas):
        seed = metadata.get("seed")
        meta = {**source, "minari_episode": index, "seed": None if seed is None else int(seed)}
        episode = to_episode(data, key, convert_actions, caption or "", meta)
        episode.save(episode_path(collection.root, "episodes", i))
    return collection


def load_local(minari: Any, dataset_id: str) -> Any:
    """The MinariDataset ``dataset_id`` from the local Minari folder; never downloads."""
    try:
        return minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError as error:
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets (MINARI_DATASETS_PATH unset)")
        raise MissingFileError(
            f"Minari dataset {dataset_id!r} is not in the local Minari folder {root}; worldsim imports local "
            f"datasets only: create it there, fetch it with `minari download {dataset_id}`, or set "
            "MINARI_DATASETS_PATH to the folder that holds it"
        ) from error


def is_image_space(space: Any) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3


def image_key(space: Any, observation_key: str | None, dataset_id: str) -> str | None:
    """The Dict entry holding the frames, or None when the observations are the frames."""
    if isinstance(space, gym.spaces.Dict):
        images = [k for k, sub in space.spaces.items() if is_image_space(sub)]
        if observation_key is None and len(images) == 1:
            return images[0]
        if observation_key is not None and observation_key in images:
            return observation_key
        if observation_key is None:
            wanted = "pass observation_key= to choose one"
        else:
            wanted = f"observation_key={observation_key!r} is not one of them"
        raise UserError(
            f"Minari dataset {dataset_id!r} has Dict observations with image entries {images} of "
            f"{list(space.spaces)}; {wanted}. worldsim accepts {ACCEPTED}"
        )
    if is_image_space(space) and observation_key is None:
        return None
    if is_image_space(space):
        raise UserError(
            f"observation_key={observation_key!r} was given, but Minari dataset {dataset_id!r} has a single "
            "image observation, not a Dict; leave observation_key out"
        )
    raise UserError(f"Minari dataset {dataset_id!r} has observations {space}; worldsim accepts {ACCEPTED}")


def action_converter(space: Any, dataset_id: str) -> Callable[[Any], np.ndarray]:
    """A function from Minari's ``actions`` to worldsim's: int64 ``[T]`` or float32 ``[T, A]``."""
    if isinstance(space, gym.spaces.Discrete):
        return lambda actions: np.asarray(actions, dtype=np.int64).reshape(-1)
    if isinstance(space, gym.spaces.Box):
        return lambda actions: np.asarray(actions, dtype=np.float32).reshape(len(actions), -1)
    raise UserError(
        f"Minari dataset {dataset_id!r} has actions {space}; worldsim accepts Discrete (stored as int64 [T]) "
        "or Box (stored as float32 [T, A])"
    )


def to_episode(data: Any, key: str | None, convert_actions: Callable, caption: str, meta: dict[str, Any]) -> Episode:
    """One Minari ``EpisodeData`` as an Episode (see the mapping in the module docstring)."""
    frames = data.observations if key is None else data.observations[key]
    infos = data.infos or {}  # None (HDF5) or {} (Arrow) when infos were not recorded
    return Episode(
        frames=np.asarray(frames, dtype=np.uint8),
        actions=convert_actions(data.actions),
        rewards=np.asarray(data.rewards, dtype=np.float32),
        terminated=np.asarray(data.terminations, dtype=bool),
        truncated=np.asarray(data.truncations, dtype=bool),
        states=info_states(infos.get("state", {}), data.id),
        caption=info_caption(infos.get("caption"), caption),
        meta=meta,
    )


def info_states(state: Any, episode_id: int) -> dict[str, np.ndarray]:
    """``infos["state"]`` as Episode states: numeric arrays of one entry per frame."""
    if isinstance(state, np.ndarray) and state.dtype == object:
        raise UserError(
            f"Minari episode {episode_id}: infos['state'] came back as per-step dicts of flattened arrays, as "
            "Minari 0.5.4's Arrow format returns nested infos, so the state shapes are lost; record the dataset "
            'with data_format="hdf5" (the default) to import its states'
        )
    if not isinstance(state, dict):
        kind = type(state).__name__
        raise UserError(f"Minari episode {episode_id}: infos['state'] must be a dict of per-step arrays, got {kind}")
    states = {}
    for name, value in state.items():
        array = np.asarray(value) if not isinstance(value, dict) else None
        if array is None or array.dtype.kind not in "biuf":
            kind = "a dict" if array is None else f"dtype {array.dtype}"
            raise UserError(
                f"Minari episode {episode_id}: infos['state'][{name!r}] is {kind}; worldsim states are numeric arrays [T + 1, ...]"
            )
        states[name] = array
    return states


def info_caption(captions: Any, default: str) -> str:
    """The first recorded caption (Minari's HDF5 gives ``bytes``), or ``default``."""
    if captions is None or len(captions) == 0:
        return default
    first = captions[0]
    return first.decode("utf-8") if isinstance(first, bytes) else str(first)
