"""Limit every contestant's threads (``diagsim bench --threads N``), for fair runs on a shared machine.

Sets Numba's threads, OpenBLAS's (NumPy's bundled library, through its C entry point), torch's
intra-op threads (applied by the torchsde contestant) and XLA's CPU threading (environment, effective
only before jax is first imported). Without ``--threads`` every library keeps its default.
"""
from __future__ import annotations

import ctypes
import glob
import os

#: the limit in force (None: library defaults)
LIMIT: int | None = None


def _openblas_set(n: int) -> bool:
    import numpy as np
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                return True
    return False


def limit_threads(n: int) -> dict:
    """Apply the limit; returns which libraries it reached."""
    global LIMIT
    import numba
    LIMIT = int(n)
    numba.set_num_threads(min(LIMIT, numba.config.NUMBA_NUM_THREADS))
    done = {"numba": True, "openblas": _openblas_set(LIMIT)}
    if LIMIT == 1:
        flags = " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + flags).strip()
    return done


def apply_torch() -> None:
    """Called by the torchsde contestant after importing torch."""
    if LIMIT is not None:
        import torch
        torch.set_num_threads(LIMIT)
