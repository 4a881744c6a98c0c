"""The manifold of minimizers Gamma = {theta : Z w(theta) = y}: retraction and projections.

With J = df/dtheta (n x 2d), J J^T = Z diag(wu^2 + wv^2) Z^T (n x n) and J^T x = [wu * Z^T x, wv * Z^T x],
so every operation here costs O(n d + n^3) per path and never forms a 2d x 2d matrix.
"""
from __future__ import annotations

import numpy as np

from ...errors import DiagsimError
from .derivatives import phi_derivatives
from .gram import weighted_gram
from .problem import Problem


def jjt(problem: Problem, wu: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """J J^T per path, (M, n, n)."""
    return weighted_gram(problem, wu * wu + wv * wv)


def jt(problem: Problem, wu: np.ndarray, wv: np.ndarray, x: np.ndarray) -> np.ndarray:
    """J^T x per path: x (M, n) -> (M, 2d)."""
    g = x @ problem.Z
    return np.concatenate([wu * g, wv * g], axis=1)


def jvp(problem: Problem, wu: np.ndarray, wv: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """J vec per path: vec (M, 2d) -> (M, n)."""
    d = problem.d
    return (wu * vec[:, :d] + wv * vec[:, d:]) @ problem.ZT


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve A x = b per path (A (M, n, n) symmetric PSD).

    Where A is singular (rank J < n: fewer than n active coordinates, e.g. at a degenerate vertex of
    {Zw = y} that an adaptive flow reaches in finite time) the minimum-norm least-squares solution is used;
    J v and the range of S J^T are consistent, so it is exact there.
    """
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        out = np.empty(b.shape)
        for p in range(A.shape[0]):
            out[p] = np.linalg.lstsq(A[p], b[p], rcond=None)[0]
        return out


def residual_norm(problem: Problem, theta: np.ndarray) -> np.ndarray:
    """max_j |(Z w - y)_j| per path, (M,)."""
    r = problem.w(theta) @ problem.ZT - problem.y
    return np.abs(r).max(axis=1)


def retract(problem: Problem, theta, *, tol: float = 1e-12, max_iter: int = 50,
            max_start_residual: float | None = None) -> np.ndarray:
    """Newton retraction onto Gamma: theta <- theta - J^T (J J^T)^-1 r until max|r| <= tol * (1 + max|y|).

    Parameters
    ----------
    theta : (M, 2d) or (2d,) states (not modified).
    max_start_residual : if given, raise when a start point has max|r| above it (not near Gamma).

    Returns the retracted states, (M, 2d). Raises DiagsimError if Newton does not converge (J J^T singular,
    i.e. fewer than n active coordinates, or a start too far from Gamma).
    """
    th = problem.check_theta(theta).copy()
    scale = 1.0 + np.abs(problem.y).max()
    if max_start_residual is not None:
        r0 = residual_norm(problem, th)
        if np.any(r0 > max_start_residual):
            p = int(np.argmax(r0))
            raise DiagsimError(f"start point of path {p} is not near the manifold of minimizers: max|Zw - y| = "
                               f"{r0[p]:.3g} > {max_start_residual:g}; run the discrete optimizer or gradient "
                               "flow first, or raise the tolerance")
    for _ in range(max_iter):
        r = problem.w(th) @ problem.ZT - problem.y
        err = np.abs(r).max(axis=1)
        if np.all(err <= tol * scale):
            return th
        wu, wv, *_ = phi_derivatives(problem, th)
        x = _solve(jjt(problem, wu, wv), r[..., None])[..., 0]
        th -= jt(problem, wu, wv, x)
    raise DiagsimError(f"retraction did not converge in {max_iter} Newton steps "
                       f"(max residual {float(err.max()):.3g}); the start point is too far from the manifold")


def project_tangent(problem: Problem, theta: np.ndarray, vec: np.ndarray, S: np.ndarray | None = None
                    ) -> np.ndarray:
    """Project vec onto the tangent space of Gamma at theta, (M, 2d).

    Without ``S``: orthogonal projection P vec = vec - J^T (J J^T)^-1 J vec. With a positive diagonal
    preconditioner ``S`` (M, 2d): the oblique projection P^S vec = vec - S J^T (J S J^T)^-1 J vec, which maps
    S-scaled gradients to tangent vectors (docs/theory.md §3.3, §8.3).
    """
    th = problem.check_theta(theta)
    wu, wv, *_ = phi_derivatives(problem, th)
    Jv = jvp(problem, wu, wv, vec)
    if S is None:
        x = _solve(jjt(problem, wu, wv), Jv[..., None])[..., 0]
        return vec - jt(problem, wu, wv, x)
    d = problem.d
    Su, Sv = S[:, :d], S[:, d:]
    c = Su * wu * wu + Sv * wv * wv
    JSJ = weighted_gram(problem, c)
    x = _solve(JSJ, Jv[..., None])[..., 0]
    return vec - S * jt(problem, wu, wv, x)
