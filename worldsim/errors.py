"""The one exception type for a user's mistake: a bad value, file or setting handed to worldsim.

Whatever checks an input at an edge (the CLI, an env's ``reset``/``step``, ``load``, a collection,
a config) raises :class:`UserError`, with a message that names the bad value and what is accepted;
the ``worldsim`` command prints it as one line. Any other exception is an internal error and keeps
its traceback. ``UserError`` is a ``ValueError`` (and :class:`MissingFileError` also a
``FileNotFoundError``), so callers that catch those keep working.
"""

import math
import numbers
from typing import cast


class UserError(ValueError):
    """A bad input: the message says what was wrong and what is accepted."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist or is not what it should be."""


# The checks of plain values that every edge shares (the CLI, the config dataclasses, collect, the
# simulator, the envs): what counts as an integer or a number is here, and how an error names it.


def is_integer(value: object, low: int | None = None) -> bool:
    """An integer (not a bool: ``steps=true`` is a mistake, though Python counts it as 1) >= ``low``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and (low is None or int(value) >= low)


def is_number(value: object, low: float | None = None, high: float | None = None, open_low: bool = False) -> bool:
    """A finite real number (not a bool) in ``[low, high]`` (``(low, high]`` if ``open_low``); None: no bound."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        return False
    number = float(value)  # as math.isfinite reads it; numbers.Real declares no comparison with a float
    return (low is None or (number > low if open_low else number >= low)) and (high is None or number <= high)


def accepted_number(low: float | None = None, high: float | None = None, open_low: bool = False, integer: bool = False) -> str:
    """How an error names what :func:`is_number` (or, with ``integer``, :func:`is_integer`) accepts."""
    kind = "an integer" if integer else "a finite number"
    if low is not None and high is not None:
        return f"{kind} in [{low}, {high}]"
    return f"{kind} {'>' if open_low else '>='} {low}" if low is not None else kind


def check_integer(name: str, value: object, low: int = 1, note: str = "") -> int:
    """``value`` as an int if it is an integer >= ``low`` (a bool is not a count), else a UserError
    that names ``name``, what is accepted (and why, ``note``) and the bad value."""
    if not is_integer(value, low):
        raise UserError(f"{name} must be {accepted_number(low, integer=True)}{f' ({note})' if note else ''}, got {value!r}")
    return int(cast(numbers.Integral, value))  # is_integer made sure


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is true or false; else a UserError naming ``name`` (a config's ``yes`` is a string)."""
    if not isinstance(value, bool):
        raise UserError(f"{name} must be true or false, got {value!r}")
    return value
