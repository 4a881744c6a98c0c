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


def jit_typed(signature, **overrides):
    """njit with an explicit ``signature`` and the project's options (eager compilation, cached).

    Used for functions passed as first-class function values (``numba.types.FunctionType``): a kernel
    whose argument is typed by signature is compiled once for every function of that signature, and the
    cache survives restarts (a kernel specialized on a dispatcher argument is not cached across processes).
    """
    opts = {**JIT_OPTIONS, **overrides}
    return lambda f: numba.njit(signature, **opts)(f)


def serial_and_parallel(fn):
    """(serial, parallel) compilations of one function whose outer loop is a ``prange`` over paths.

    The serial one is compiled from a renamed copy of ``fn``: Numba's on-disk cache is keyed by the
    function's qualified name and signature, not by the ``parallel`` flag, so two variants of one name
    would overwrite each other's cache entries.
    """
    import types

    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + "_serial"
    copy.__doc__ = fn.__doc__
    return jit(copy), pjit(fn)
