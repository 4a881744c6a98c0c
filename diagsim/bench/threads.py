"""Limit every contestant's threads (``diagsim bench --threads N``), for fair runs on a shared machine.

Sets Numba's threads, OpenBLAS's (NumPy's bundled library, through its C entry point), torch's
intra-op threads (applied by the torchsde contestant) and XLA's CPU threading (environment, effective
only before jax is first imported). Without ``--threads`` every library keeps its default.
"""
from __future__ import annotations

import os

from ..lowlevel import threads as _threads

#: the limit in force (None: library defaults)
LIMIT: int | None = None


def limit_threads(n: int) -> dict:
    """Apply the limit (Numba and OpenBLAS through :mod:`diagsim.lowlevel.threads`, XLA through its
    environment); returns which libraries it reached."""
    global LIMIT
    LIMIT = int(n)
    done = _threads.limit_threads(LIMIT)
    if LIMIT == 1:
        flags = " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + flags).strip()
    return done


def apply_torch() -> None:
    """Called by the torchsde contestant after importing torch."""
    if LIMIT is not None:
        import torch
        torch.set_num_threads(LIMIT)
