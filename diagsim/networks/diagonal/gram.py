"""Weighted Gram matrices K[m] = Z diag(c[m]) Z^T (n x n) for a batch of weights c (M, d).

Every Gauss-Newton object on the manifold of minimizers is one of these: J J^T = Z diag(wu^2 + wv^2) Z^T,
its u- and v-blocks, J S J^T for a diagonal preconditioner S. For all paths at once it is a single GEMM:
with the d x n(n+1)/2 matrix of column products P[i, (j, k)] = Z[j, i] Z[k, i] (j >= k), the lower
triangles of all K are ``c @ P``. P depends only on Z and is cached per problem (d n (n + 1) / 2 floats;
above ``PAIR_MEMORY_LIMIT`` bytes a chunked batched product is used instead).
"""
from __future__ import annotations

import weakref

import numpy as np

_pairs: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

PAIR_MEMORY_LIMIT = 256 * 2 ** 20
_CHUNK = 64

_pairs: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _pair_products(problem):
    """(tril row indices, tril column indices, P^T of shape (d, n(n+1)/2)) or None if too large."""
    hit = _pairs.get(problem)
    if hit is not None:
        return hit
    n, d = problem.Z.shape
    if d * n * (n + 1) // 2 * 8 > PAIR_MEMORY_LIMIT:
        return None
    rows, cols = np.tril_indices(n)
    PT = np.ascontiguousarray((problem.Z[rows] * problem.Z[cols]).T)
    _pairs[problem] = (rows, cols, PT)
    return _pairs[problem]


def weighted_gram(problem, c: np.ndarray) -> np.ndarray:
    """K[m] = Z diag(c[m]) Z^T for c of shape (M, d); returns (M, n, n), symmetric.

    Not divided by n: callers scale. Exact up to rounding (one GEMM per batch, no 2d x 2d matrix).
    """
    c = np.ascontiguousarray(c, dtype=np.float64)
    M = c.shape[0]
    n = problem.n
    pairs = _pair_products(problem)
    if pairs is not None:
        rows, cols, PT = pairs
        vals = c @ PT
        K = np.empty((M, n, n))
        K[:, rows, cols] = vals
        K[:, cols, rows] = vals
        return K
    Z, ZT = problem.Z, problem.ZT
    K = np.empty((M, n, n))
    for s in range(0, M, _CHUNK):
        cs = c[s:s + _CHUNK]
        K[s:s + _CHUNK] = np.matmul(Z[None, :, :] * cs[:, None, :], ZT[None, :, :])
    return 0.5 * (K + K.transpose(0, 2, 1))
