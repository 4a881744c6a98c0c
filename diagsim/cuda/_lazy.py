"""The one place where ``numba.cuda`` is imported (lazily), so ``import diagsim`` works with plain numba.

``cuda()`` returns the ``numba.cuda`` module (from the optional ``numba-cuda`` package, extra ``gpu``);
``unavailable_reason()`` says why CUDA cannot run here (``None`` when a device or the simulator is usable).

Shared arithmetic: device code calls the *same* ``@jit`` functions as the CPU kernels
(:mod:`diagsim.networks.diagonal.pathwise`, :mod:`diagsim.lowlevel.rng`, the optimizer and SDE helpers).
:func:`device` gives the device twin of such a function:

* on a GPU, ``cuda.jit(device=True)(fn.py_func)``; the functions it calls are CPU dispatchers, which
  numba-cuda compiles for the device from the same Python source, except the few CPU-only ones that have a
  device twin (the group products with Z: the CPU's run an explicit-SIMD kernel on scratch they allocate;
  their twins run the row loops, with the same numbers);
* under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is imported), a shim that hands
  the simulator's fake device arrays to the CPU-compiled function as the NumPy arrays they wrap (the
  simulator runs kernels as Python and cannot pass its arrays to compiled code). The simulator therefore
  checks the kernels' indexing and logic around the shared arithmetic; the arithmetic itself is the CPU's.
"""
from __future__ import annotations

import functools
import os

_CUDA = None


def simulator() -> bool:
    """True when the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda():
    """The ``numba.cuda`` module; raises ImportError when numba-cuda is not installed."""
    global _CUDA
    if _CUDA is None:
        from numba import cuda as _c  # the only numba.cuda import in diagsim
        _CUDA = _c
    return _CUDA


def unavailable_reason() -> str | None:
    """``None`` if CUDA kernels can run (a device, or the simulator), else why not."""
    try:
        c = cuda()
    except Exception as exc:  # noqa: BLE001 - any import failure means "no CUDA here"
        return f"numba.cuda is not importable ({type(exc).__name__}: {exc}); pip install 'diagsim[gpu]'"
    if simulator():
        return None
    try:
        ok = c.is_available()
    except Exception as exc:  # noqa: BLE001
        return f"CUDA driver not usable ({type(exc).__name__}: {exc})"
    return None if ok else "no CUDA device found"


def _unwrap(a):
    # FakeWithinKernelCUDAArray -> FakeCUDAArray -> numpy array (the same memory); tuples element-wise
    if isinstance(a, tuple):
        return tuple(_unwrap(x) for x in a)
    while hasattr(a, "_item"):
        a = a._item
    return getattr(a, "_ary", a)


def _device_source(fn):
    """``fn``'s Python function, with the CPU-only functions it calls replaced by their device twins
    (:data:`diagsim.networks.diagonal.grouped.DEVICE_TWINS`: the group products, whose SIMD lanes kernel and
    scratch allocation cannot run on a GPU; the twins give the same numbers)."""
    import types

    from ..networks.diagonal.grouped import DEVICE_TWINS
    py = fn.py_func
    twins = {id(cpu): dev for cpu, dev in DEVICE_TWINS.items()}
    swaps = {name: twins[id(obj)] for name, obj in py.__globals__.items() if id(obj) in twins}
    if not swaps:
        return py
    return types.FunctionType(py.__code__, {**py.__globals__, **swaps}, py.__name__, py.__defaults__, py.__closure__)


@functools.lru_cache(maxsize=None)
def device(fn):
    """The device function sharing ``fn``'s arithmetic (see the module docstring)."""
    if simulator():
        def shim(*args):
            return fn(*(_unwrap(a) for a in args))
        shim.__name__ = getattr(fn, "__name__", "shim")
        return shim
    return cuda().jit(device=True)(_device_source(fn))
