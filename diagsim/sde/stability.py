"""Step-size safety for explicit Euler–Maruyama on the diagonal-network SDEs.

Explicit Euler on d theta = -S grad L dt is stable only while dt * lambda_max(S^{1/2} H S^{1/2}) < 2 (and
dt * rate < 2 for every linear relaxation term, e.g. dv = -C lr v dt). :func:`lambda_max` estimates the
largest rate at a state; :func:`auto_dt` picks dt = lr / 2**j (so that SDE step 2**j k is optimizer step k)
with dt * rate <= ``target``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from ..networks.diagonal.problem import Problem
from ..networks.model import is_diagonal

#: dt * rate above which a warning is issued (explicit Euler is unstable above 2)
WARN_AT = 1.0
#: dt * rate that dt="auto" aims for
AUTO_TARGET = 0.25


def lambda_max(problem: Problem, theta: np.ndarray, S: np.ndarray | None = None) -> float:
    """Largest |eigenvalue| of S^{1/2} H(theta) S^{1/2} (H exact, residual term included, by ``problem.hvp``:
    any model problem); theta (P,)."""
    th = np.ascontiguousarray(theta, dtype=np.float64).reshape(1, -1)
    dim = th.shape[1]
    rs = np.ones(dim) if S is None else np.sqrt(np.asarray(S, dtype=np.float64).reshape(-1))

    def mv(x):
        return rs * problem.hvp(th, rs * np.asarray(x).reshape(-1))[0]

    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    v0 = np.linspace(1.0, 2.0, dim)
    if dim <= 8:
        H = np.column_stack([mv(e) for e in np.eye(dim)])
        return float(np.abs(np.linalg.eigvalsh(0.5 * (H + H.T))).max())
    val = eigsh(op, k=1, which="LM", tol=1e-3, v0=v0, return_eigenvectors=False, maxiter=20 * dim)
    return float(abs(val[0]))


def teacher_point(problem: Problem) -> np.ndarray | None:
    """A point of Gamma with w = w_star (None without a teacher, or for a non-diagonal model family):
    u = (w*_+)^{1/D}, v = (w*_-)^{1/D}."""
    if not is_diagonal(problem):
        return None
    if problem.w_star is None or not np.allclose(problem.Z @ problem.w_star, problem.y):
        return None
    w = problem.w_star
    if problem.param.name == "uv":
        a = np.sqrt(np.abs(w))
        return np.concatenate([a, np.sign(w) * a])
    D = problem.param.depth
    return np.concatenate([np.maximum(w, 0) ** (1.0 / D), np.maximum(-w, 0) ** (1.0 / D)])


def auto_dt(lr: float, rate: float, target: float = AUTO_TARGET) -> float:
    """dt = lr / 2**j, the largest with dt * rate <= target."""
    if rate <= 0 or lr * rate <= target:
        return lr
    j = math.ceil(math.log2(lr * rate / target))
    return lr / 2 ** j


def warn_if_unstable(dt: float, rate: float, where: str, hint: str = "") -> bool:
    """Warn (RuntimeWarning) when dt * rate >= WARN_AT; returns whether it warned."""
    if dt * rate >= WARN_AT:
        warnings.warn(f"dt * lambda_max = {dt * rate:.3g} at {where}: explicit Euler-Maruyama is unstable "
                      f"above 2 and inaccurate near it; use a smaller dt or dt='auto'{hint}", RuntimeWarning,
                      stacklevel=3)
        return True
    return False
