"""Validation of user-supplied parameters, done once at the edge, with messages that name them.

A module at the bottom of the layout: every package may use it, and it imports nothing of distlda.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["is_integer", "check_int", "check_float", "check_dtype", "num_terms_of"]


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), bools excluded."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """``value`` as an int; TypeError if it is not an integer, ValueError if below ``minimum``."""
    if value is None and allow_none:
        return None
    if not is_integer(value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within [low, high] (or open ends); errors name ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_dtype(dtype: Any) -> np.dtype:
    """float32 or float64; anything else is a ValueError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def num_terms_of(id2word: Any) -> int:
    """Vocabulary size implied by an id → word mapping: one more than the largest id."""
    if hasattr(id2word, "keys"):
        keys = list(id2word.keys())
    else:
        raise TypeError(f"id2word must be a Dictionary or a mapping of id to word, got {type(id2word).__name__}")
    if not keys:
        return 0
    # checked per type, not per key: a per-key isinstance against the numbers ABCs took 1.3 s for a million words
    for kind in set(map(type, keys)):
        if issubclass(kind, (bool, np.bool_)) or not issubclass(kind, (numbers.Integral, np.integer)):
            bad = next(k for k in keys if type(k) is kind)
            raise ValueError(f"id2word keys must be non-negative integer ids, found {bad!r}")
    lowest = min(keys)
    if lowest < 0:
        raise ValueError(f"id2word keys must be non-negative integer ids, found {lowest!r}")
    return 1 + int(max(keys))
