"""Hardware floors measured in the same run as the contestants.

* dgemm rate: best of 5 square 1000 x 1000 float64 products through NumPy's BLAS (all its threads);
  the arithmetic floor of the reference problem is ``rate / flops_per_path_step`` path-steps per second.
* noise rates: N(0, 1) draws per second from NumPy's Generator (one thread) and from diagsim's
  ``rng.fill_normals`` (one thread, 40 per call as the SDE draws them).
"""
from __future__ import annotations

import time

import numpy as np

from ..lowlevel import rng
from ..lowlevel.jit import jit


def dgemm_rate(size: int = 1000, repeats: int = 5) -> float:
    """Measured dgemm rate in FLOP/s (2 size^3 per product, best of ``repeats``)."""
    g = np.random.default_rng(0)
    a = g.standard_normal((size, size))
    b = g.standard_normal((size, size))
    c = np.empty((size, size))
    np.matmul(a, b, out=c)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2.0 * size ** 3 / best


@jit
def _fill_loop(k0, k1, n_calls, n):
    out = np.empty(n)
    acc = 0.0
    for s in range(n_calls):
        rng.fill_normals(k0, k1, 0, s, out, 1.0)
        acc += out[0]
    return acc


def normal_rates(n: int = 40, total: int = 2_000_000) -> dict:
    """Normals per second: NumPy Generator (PCG64, one thread) and diagsim's Philox fill_normals."""
    g = np.random.default_rng(0)
    buf = np.empty(total)
    g.standard_normal(out=buf[:1000])
    t = time.perf_counter()
    g.standard_normal(out=buf)
    numpy_rate = total / (time.perf_counter() - t)
    k0, k1 = rng.key_for(0, "test")
    _fill_loop(k0, k1, 2, n)
    calls = total // n
    t = time.perf_counter()
    _fill_loop(k0, k1, calls, n)
    philox_rate = calls * n / (time.perf_counter() - t)
    return {"numpy_generator_per_s": numpy_rate, "diagsim_philox_per_s": philox_rate}
