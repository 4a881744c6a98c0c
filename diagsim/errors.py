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


class CorruptFileError(DiagsimError):
    """A stored file (result, checkpoint, cache entry, data) is truncated, damaged or not what its name
    says; the message names it."""


class StoredWorkMismatch(DiagsimError):
    """Stored work (a checkpoint, a saved result, a cache entry) was made from another configuration than
    the one asked for; the message names the differences (also in ``differences``, with the file in
    ``path``). Nothing is reused or overwritten."""

    def __init__(self, message: str, *, path=None, differences=()):
        super().__init__(message)
        self.path = path
        self.differences = list(differences)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM after writing its checkpoint (``checkpoint``: the file,
    or None when the second signal stopped it at once). A ``KeyboardInterrupt``, so code that handles
    Ctrl-C handles both; ``signum`` tells them apart."""

    def __init__(self, signum: int, checkpoint=None):
        super().__init__(signum)
        self.signum = int(signum)
        self.checkpoint = checkpoint

    @property
    def exit_status(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


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


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MiB"


def check_memory(nbytes: float, what: str, hint: str) -> None:
    """Raise a one-line error, before anything is allocated, when ``what`` needs more than 90 % of the
    available memory; ``hint`` says what to change."""
    avail = available_memory()
    if avail is not None and nbytes > 0.9 * avail:
        raise DiagsimError(f"{what} needs about {_gib(nbytes)} of memory; {_gib(avail)} are available: {hint}")
