"""Thread counts of the libraries diagsim computes with: Numba's parallel loops and OpenBLAS (NumPy's and
SciPy's bundled BLAS/LAPACK).

Processes that share cores must limit both. OpenBLAS in particular busy-waits for its threads: with two
BLAS threads per process on two loaded cores an SVD of a 300 × 1000 matrix was measured 80 times slower
than with one (the sweep guide, "Workers and threads"). The sweep's local workers therefore set both
limits before their first job; ``diagsim bench --threads`` uses the same functions.

OpenBLAS is reached through its C entry points in the ``numpy.libs`` / ``scipy_openblas64`` folders (no
extra dependency); where none is found the functions report it instead of failing.
"""
from __future__ import annotations

import ctypes
import glob
import os

_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
        "openblas_set_num_threads")
_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
        "openblas_get_num_threads")


def _openblas_libraries() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries loaded (or loadable) by NumPy and SciPy in this environment."""
    import numpy as np
    site = os.path.dirname(os.path.dirname(np.__file__))
    paths = []
    for folder in ("numpy.libs", "scipy.libs", "scipy_openblas64/lib", "scipy_openblas32/lib"):
        paths += sorted(glob.glob(os.path.join(site, folder, "*openblas*.so*")))
    libs = []
    for path in paths:
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def set_blas_threads(n: int) -> bool:
    """Limit every OpenBLAS found to ``n`` threads; False if none was found."""
    found = False
    for lib in _openblas_libraries():
        for name in _SET:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(int(n)))
                found = True
                break
    return found


def blas_threads() -> list[int]:
    """The thread count of every OpenBLAS found (empty if none)."""
    out = []
    for lib in _openblas_libraries():
        for name in _GET:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                out.append(int(fn()))
                break
    return out


def set_numba_threads(n: int) -> None:
    """Limit Numba's parallel loops to ``n`` threads (through the environment if Numba is not imported yet)."""
    import sys
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(int(n))


def limit_threads(n: int) -> dict:
    """Limit Numba and OpenBLAS to ``n`` threads; returns which libraries were reached."""
    set_numba_threads(n)
    return {"numba": True, "openblas": set_blas_threads(n)}
