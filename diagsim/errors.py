"""Errors and input validation shared by every module.

Every check raises :class:`DiagsimError` (a ``ValueError``) whose message names the argument, what was
given and what is allowed, in one line. The CLI prints that line and exits with status 2, no traceback.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


class DiagsimError(ValueError):
    """A user-facing error: bad input, an infeasible problem, or a run that cannot continue."""


class DivergenceError(DiagsimError):
    """Every path of a run diverged (non-finite or exploding loss)."""


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is finite and > 0 (>= 0 with ``allow_zero``), else raise."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DiagsimError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        rel = ">= 0" if allow_zero else "> 0"
        raise DiagsimError(f"{name} must be finite and {rel}, got {value!r}")
    return x


def check_int(name: str, value, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``int(value)`` if it is an integer in [minimum, maximum], else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise DiagsimError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise DiagsimError(f"{name} must be >= {minimum}{hi}, got {v}")
    return v


def check_interval(name: str, value, lo: float, hi: float, *, closed_hi: bool = False) -> float:
    """Return ``float(value)`` if lo <= value < hi (<= hi with ``closed_hi``), else raise."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DiagsimError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(x) and lo <= x and (x <= hi if closed_hi else x < hi)
    if not ok:
        br = "]" if closed_hi else ")"
        raise DiagsimError(f"{name} must lie in [{lo}, {hi}{br}, got {value!r}")
    return x


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise listing the allowed values."""
    allowed = list(allowed)
    if value not in allowed:
        raise DiagsimError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def as_float_array(name: str, value, shape: tuple | None = None, *, finite: bool = True) -> np.ndarray:
    """Coerce to a C-contiguous float64 array and check its shape (``None`` entries match any size)."""
    try:
        a = np.ascontiguousarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiagsimError(f"{name} must be an array of numbers") from None
    if shape is not None:
        if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise DiagsimError(f"{name} must have shape {want}, got {a.shape}")
    if finite and not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise DiagsimError(f"{name} contains a non-finite value at index {tuple(int(i) for i in bad)}")
    return a
