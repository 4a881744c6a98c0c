"""Batched small linear algebra shared by the measures: n x n Gram matrices and their top eigenpairs.

The central object is the weighted Gram matrix ``K[m] = Z diag(c[m]) Z^T`` (n x n) for a batch of weight
vectors ``c`` of shape (M, d). Every Gauss-Newton spectrum on the manifold of minimizers is one of these:
(1/n) J J^T = (1/n) Z diag(wu^2 + wv^2) Z^T, the u-block (1/n) Z diag(wu^2) Z^T, and so on.

For all paths at once it is a single GEMM: with the d x n(n+1)/2 matrix of column products
``P[i, (j, k)] = Z[j, i] Z[k, i]`` (j >= k), the lower triangles of all K are ``c @ P``. ``P`` depends only
on Z and is cached per problem (it costs d n (n + 1) / 2 floats; above ``PAIR_MEMORY_LIMIT`` bytes a
chunked batched product is used instead).
"""
from __future__ import annotations

import numpy as np

from ..networks.diagonal.gram import weighted_gram  # noqa: F401  (re-exported for the measures)


def top_eigpair(K: np.ndarray, eigenvalues: np.ndarray | None = None):
    """Largest eigenvalue and a unit eigenvector of each symmetric K[m] (M, n, n).

    Eigenvalues from ``eigvalsh`` (or the given ascending ``eigenvalues``); the vector by two steps of
    inverse iteration shifted just above the top eigenvalue (a batched LU solve, much cheaper than a full
    batched ``eigh``). Returns (kappa (M,), x (M, n)).
    """
    if eigenvalues is None:
        eigenvalues = np.linalg.eigvalsh(K)
    kappa = eigenvalues[:, -1].copy()
    M, n, _ = K.shape
    spread = np.abs(eigenvalues).max(axis=1)
    zero = ~(spread > 1e-280)              # K = 0 (to rounding): every unit vector is an eigenvector
    spread = np.where(zero, 1.0, spread)
    shift = kappa + 1e-10 * spread
    A = K - shift[:, None, None] * np.eye(n)
    A[zero] = -np.eye(n)
    x = np.ones((M, n)) + np.linspace(0.0, 1.0, n)[None, :]  # generic start
    for _ in range(2):
        x = np.linalg.solve(A, x[..., None])[..., 0]
        nrm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(nrm > 0, nrm, 1.0)
    kappa[zero] = 0.0
    return kappa, x
