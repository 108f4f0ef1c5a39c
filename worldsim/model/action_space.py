"""ActionSpace: the actions a world model is conditioned on, a typed record of the real world's
Gymnasium ``Discrete`` or ``Box`` as ``worldsim.json`` stores it."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from worldsim.errors import UserError, is_integer

if TYPE_CHECKING:
    import gymnasium as gym

ACTION_KEYS = {"discrete": ("type", "n"), "box": ("type", "shape", "low", "high")}  # worldsim.json's keys, in order


@dataclass(frozen=True)
class ActionSpace:
    """The actions a world model is conditioned on: ``discrete`` (an integer in ``[0, n)`` per
    step) or ``box`` (floats of ``shape`` within ``[low, high]``); the real world's Gymnasium
    ``Discrete`` or ``Box`` (:meth:`from_gym`).

    ``worldsim.json`` stores it as a dict (:meth:`to_dict`, :meth:`from_dict`), the same since the
    first models:

    | kind | dict |
    | --- | --- |
    | discrete | ``{"type": "discrete", "n": 5}`` |
    | box | ``{"type": "box", "shape": [2], "low": [-1.0, -1.0], "high": [1.0, 1.0]}`` (bounds nested as ``shape``) |
    """

    kind: Literal["discrete", "box"]
    n: int = 0  # discrete: the number of actions (0 for a box)
    shape: tuple[int, ...] = ()  # of one action: () for discrete (an integer)
    low: tuple[float, ...] = ()  # box: the bounds, flattened in row-major order (() for discrete)
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if self.discrete:
            if not is_integer(self.n, 1):
                raise UserError(f"action_space.n must be an integer >= 1 (the number of actions), got {self.n!r}")
            if self.shape or self.low or self.high:
                raise UserError(f"a discrete action space has no shape or bounds, got shape {self.shape}, low {self.low}, high {self.high}")
            return
        check_shape(self.shape)
        for name in ("low", "high"):
            bounds = getattr(self, name)
            if len(bounds) != self.dim or not all(is_bound(x) for x in bounds):
                raise UserError(f"action_space.{name} must be {self.dim} numbers (nested as shape {list(self.shape)}), got {bounds}")
        if any(a > b for a, b in zip(self.low, self.high)):
            raise UserError(f"action_space.low must be <= action_space.high everywhere, got low {self.low} and high {self.high}")

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def dim(self) -> int:
        """Numbers per action: a box's size, 0 for discrete (``SpacetimeDiT``'s ``action_dim``)."""
        return 0 if self.discrete else math.prod(self.shape)

    def __str__(self) -> str:
        if self.discrete:
            return f"Discrete({self.n})"
        return f"Box({nest(self.low, self.shape)}, {nest(self.high, self.shape)}, {self.shape})"

    @classmethod
    def from_gym(cls, space: gym.Space[Any]) -> ActionSpace:
        """The action space of a Gymnasium ``Discrete`` (its ``start`` aside: the model numbers
        actions from 0) or ``Box``; a UserError for any other space."""
        from gymnasium import spaces  # here only: the model itself knows nothing of Gymnasium

        if isinstance(space, spaces.Discrete):
            return cls("discrete", n=int(space.n))
        if isinstance(space, spaces.Box):
            return cls("box", shape=tuple(space.shape), low=tuple(space.low.ravel().tolist()), high=tuple(space.high.ravel().tolist()))
        raise UserError(f"worldsim models support Discrete and Box action spaces, not {space}")

    def to_dict(self) -> dict[str, Any]:
        """The dict of ``worldsim.json`` (see the class docstring)."""
        if self.discrete:
            return {"type": "discrete", "n": self.n}
        return {"type": "box", "shape": list(self.shape), "low": nest(self.low, self.shape), "high": nest(self.high, self.shape)}

    @classmethod
    def from_dict(cls, raw: object) -> ActionSpace:
        """The action space of a ``worldsim.json``'s dict; a one-line UserError that names the bad field."""
        if not isinstance(raw, Mapping):
            example = '{"type": "discrete", "n": 5} or {"type": "box", "shape": [2], "low": [-1, -1], "high": [1, 1]}'
            raise UserError(f"action_space must be a dict like {example}, got {raw!r}")
        kind = check_kind(raw.get("type"))
        keys = ACTION_KEYS[kind]
        missing, unknown = [k for k in keys if k not in raw], sorted(set(map(str, raw)) - set(keys))
        if missing or unknown:
            wrong = f"lacks {missing}" if missing else f"has unknown key(s) {unknown}"
            raise UserError(f"action_space {wrong}: a {kind} space has exactly the keys {list(keys)}")
        if kind == "discrete":
            return cls(kind, n=raw["n"])
        shape = tuple(int(d) for d in check_shape(raw["shape"]))
        bounds = []
        for name in ("low", "high"):
            flat = flatten(raw[name], shape)
            if flat is None:
                raise UserError(f"action_space.{name} must be numbers nested as shape {list(shape)}, got {raw[name]!r}")
            bounds.append(tuple(flat))
        return cls(kind, shape=shape, low=bounds[0], high=bounds[1])


def check_kind(kind: object) -> Literal["discrete", "box"]:
    if kind not in ("discrete", "box"):
        raise UserError(f"action_space.type must be 'discrete' or 'box', got {kind!r}")
    return "discrete" if kind == "discrete" else "box"


def check_shape(shape: object) -> Sequence[int]:
    if not (isinstance(shape, (list, tuple)) and all(is_integer(d, 1) for d in shape)):
        raise UserError(f"action_space.shape must be a list of integers >= 1, got {shape!r}")
    return shape


def is_bound(value: object) -> bool:
    """A number (not a bool) that may bound a Box: finite or infinite, not NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def flatten(value: Any, shape: tuple[int, ...]) -> list[Any] | None:
    """The items of ``value``, lists nested as ``shape``, in row-major order; None where it is not so nested."""
    if not shape:
        return [value]
    if not isinstance(value, (list, tuple)) or len(value) != shape[0]:
        return None
    items: list[Any] = []
    for part in value:
        flat = flatten(part, shape[1:])
        if flat is None:
            return None
        items += flat
    return items


def nest(flat: Sequence[float], shape: tuple[int, ...]) -> Any:
    """The inverse of :func:`flatten`: lists nested as ``shape`` (a bare number for ``()``), as ``ndarray.tolist`` gives them."""
    if not shape:
        return flat[0]
    step = len(flat) // shape[0]
    return [nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
