"""The one place that owns Numba's compilation options.

``jit`` = ``numba.njit(cache=True, error_model="numpy", fastmath=False)``; ``pjit`` adds
``parallel=True`` (kernels whose outer loop is a ``prange`` over paths). No fastmath anywhere: results
must be bitwise reproducible and identical between serial and parallel runs, which holds because every
path is computed by one thread in a fixed order.
"""
from __future__ import annotations

import numba

JIT_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


def jit(fn=None, **overrides):
    """Serial njit with the project's options (usable bare or with keyword overrides)."""
    opts = {**JIT_OPTIONS, **overrides}
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)


def pjit(fn=None, **overrides):
    """Parallel njit (``prange`` over paths) with the project's options."""
    return jit(fn, parallel=True, **overrides)


prange = numba.prange
