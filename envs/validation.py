"""Checks of what users hand to the real worlds, raising errors that say what is accepted."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from worldsim.errors import UserError


def check_frame_size(frame_size: Any) -> tuple[int, int]:
    """``(H, W)`` as two ints >= 4, or a UserError that says what is accepted."""
    try:
        height, width = frame_size
        # Real, so that a string such as "64" is not read digit by digit.
        valid = all(isinstance(v, numbers.Real) and float(v) == int(v) >= 4 for v in (height, width))  # type: ignore[call-overload]  # typeshed's Real lacks __int__; every Real has it
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise UserError(f"frame_size must be two integers (H, W), each at least 4, e.g. (64, 64); got {frame_size!r}")
    return int(height), int(width)


def check_action(action: object, names: tuple[str, ...]) -> int:
    """A discrete action as an int in ``[0, len(names))``, or a UserError naming the accepted ones."""
    value = np.asarray(action)
    if value.shape != () or not np.issubdtype(value.dtype, np.integer) or not 0 <= int(value) < len(names):
        listing = ", ".join(f"{i} {name}" for i, name in enumerate(names))
        raise UserError(f"action must be one integer in [0, {len(names)}) ({listing}); got {action!r}")
    return int(value)


def check_seed(seed: object) -> None:
    """Raises a UserError unless ``seed`` is what Gymnasium's ``reset`` takes: None or a Python int >= 0."""
    if seed is not None and not (isinstance(seed, int) and seed >= 0):
        raise UserError(f"seed must be None or a non-negative Python int (as Gymnasium's reset takes), got {seed!r}")


def check_options(options: object) -> dict[str, Any]:
    """Reset options as a dict (None: empty), or a UserError: Gymnasium's ``options`` is a dict."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise UserError(f"reset options must be a dict or None, got {type(options).__name__} {options!r}")
    return options
