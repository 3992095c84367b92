"""The validators: every argument of the package is judged here, so every message about it reads the same.

Each returns the value normalised (a Python ``int``, ``float``, ``bool`` or the canonical spelling of a choice) or
raises ``TypeError`` (wrong kind) / ``ValueError`` (right kind, wrong value) naming the argument and quoting it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import TypeVar

import numpy as np

_S = TypeVar("_S", bound=str)


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_int(value: object, name: str, minimum: int | None = 1, *, maximum: int | None = None) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]``; a 1-tuple (Keras style, ``strides=(2,)``) is accepted.

    Examples
    --------
    >>> check_int((2,), "stride")
    2
    >>> check_int(0, "stride")
    Traceback (most recent call last):
    ...
    ValueError: `stride` must be >= 1, got 0.
    """
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value!r}.")
    return value


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """Return ``value`` as a float in the interval given by ``low``/``high`` (open ends with ``*_open``).

    Examples
    --------
    >>> check_real(0.5, "forgetting", low=0, high=1, low_open=True)
    0.5
    >>> check_real(0, "forgetting", low=0, high=1, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: `forgetting` must be in (0, 1], got 0.
    """
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r} ({type(value).__name__}).")
    v = float(value)
    bad = math.isnan(v) or (finite and math.isinf(v))
    bad = bad or (low is not None and (v <= low if low_open else v < low))
    bad = bad or (high is not None and (v >= high if high_open else v > high))
    if bad:
        raise ValueError(f"`{name}` must be {_interval(low, high, low_open, high_open, finite)}, got {value!r}.")
    return v


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool, finite: bool) -> str:
    def show(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else repr(v)

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {show(low)}" + (" and finite" if finite else "")
    if high is not None:
        return f"{'<' if high_open else '<='} {show(high)}" + (" and finite" if finite else "")
    return "finite" if finite else "a number"


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` as a bool; only ``True``/``False`` (and NumPy's) are accepted, not 0/1 or strings."""
    if not _is_bool(value):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def check_choice(value: object, name: str, choices: Iterable[_S]) -> _S:
    """Return the spelling in ``choices`` that ``value`` names, case-insensitively; else say which were meant.

    Examples
    --------
    >>> check_choice("SAME", "padding", ("valid", "same"))
    'same'
    >>> check_choice("vald", "padding", ("valid", "same"))
    Traceback (most recent call last):
    ...
    ValueError: `padding` must be 'valid' or 'same', got 'vald' (did you mean 'valid'?).
    """
    options = tuple(choices)
    if isinstance(value, str):
        for option in options:
            if value.lower() == option.lower():
                return option
    shown = ", ".join(map(repr, options[:-1])) + f" or {options[-1]!r}" if len(options) > 1 else repr(options[0])
    lowered = [o.lower() for o in options]
    close = difflib.get_close_matches(value.lower(), lowered, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {options[lowered.index(close[0])]!r}?)" if close else ""
    raise ValueError(f"`{name}` must be {shown}, got {value!r}{hint}.")
