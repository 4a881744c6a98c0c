"""The manifold of minimizers Gamma = {theta : f(theta) = y} of any model problem, from the model's products.

What the slow flows need of Gamma (docs/theory.md §8) for a :class:`diagsim.networks.model.ModelProblem`:
the residual, the Newton retraction theta <- theta - J^T (J J^T)^-1 r, and the orthogonal projection
P v = v - J^T (J J^T)^-1 J v onto its tangent space (oblique P^S v = v - S J^T (J S J^T)^-1 J v with a
diagonal preconditioner S). The n x n Gram matrices are built from the model's products: the rows of J are
``vjp(theta, e_j)`` for the n unit vectors (one batched product of n M rows), so no P x P matrix is formed
(cost O(n (product) + n^2 P + n^3) per path). The diagonal family keeps its closed forms
(:mod:`diagsim.networks.diagonal.manifold`); :func:`manifold_of` picks the one of a problem.
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError
from ..networks.diagonal import manifold as _diagonal
from ..networks.model import is_diagonal


def jacobian_rows(problem, theta: np.ndarray) -> np.ndarray:
    """J (M, n, P): row j of path m is J(theta_m)^T e_j, from one batched ``vjp``."""
    M, n = theta.shape[0], problem.n
    X = np.tile(np.eye(n), (M, 1))
    return problem.vjp(np.repeat(theta, n, axis=0), X).reshape(M, n, -1)


class ModelManifold:
    """Gamma of a model problem through its products (see the module doc)."""

    def __init__(self, problem):
        self.problem = problem

    def residual_norm(self, theta: np.ndarray) -> np.ndarray:
        """max_j |f_j(theta) - y_j| per path, (M,)."""
        return np.abs(self.problem.residual(theta)).max(axis=1)

    def retract(self, theta, *, tol: float = 1e-12, max_iter: int = 50) -> np.ndarray:
        """Newton: theta <- theta - J^T (J J^T)^-1 r until max|r| <= tol (1 + max|y|); (M, P) (a copy).
        A one-line DiagsimError when it does not converge."""
        P = self.problem
        th = P.check_theta(theta).copy()
        scale = 1.0 + np.abs(P.y).max()
        for _ in range(max_iter):
            r = P.residual(th)
            err = np.abs(r).max(axis=1)
            if np.all(err <= tol * scale):
                return th
            J = jacobian_rows(P, th)
            x = _diagonal._solve(np.einsum("mip,mjp->mij", J, J), r[..., None])[..., 0]
            th -= P.vjp(th, x)
        raise DiagsimError(f"retraction did not converge in {max_iter} Newton steps "
                           f"(max residual {float(err.max()):.3g}); the start point is too far from the manifold")

    def relative_speed(self, theta: np.ndarray, vel: np.ndarray, floor: float) -> np.ndarray:
        """max_i |vel_i| / max(max_i |theta_i|, floor) per path: the slow flow's substep control (kappa / this).
        Relative to the size of the whole state, not of each coordinate: a model's parameters (a factor's
        entries) do not move multiplicatively one by one, and entries near 0 must not stall the flow."""
        return np.abs(vel).max(axis=1) / np.maximum(np.abs(theta).max(axis=1), floor)

    def project(self, theta: np.ndarray, vec: np.ndarray, S: np.ndarray | None = None) -> np.ndarray:
        """P vec (S None) or P^S vec, (M, P)."""
        P = self.problem
        J = jacobian_rows(P, theta)
        Jv = np.einsum("mjp,mp->mj", J, vec)
        if S is None:
            x = _diagonal._solve(np.einsum("mip,mjp->mij", J, J), Jv[..., None])[..., 0]
            return vec - P.vjp(theta, x)
        x = _diagonal._solve(np.einsum("mip,mp,mjp->mij", J, S, J), Jv[..., None])[..., 0]
        return vec - S * P.vjp(theta, x)


class DiagonalManifold:
    """Gamma of the diagonal family by its closed forms (:mod:`diagsim.networks.diagonal.manifold`)."""

    def __init__(self, problem):
        self.problem = problem

    def residual_norm(self, theta: np.ndarray) -> np.ndarray:
        return _diagonal.residual_norm(self.problem, theta)

    def retract(self, theta, *, tol: float = 1e-12, max_iter: int = 50) -> np.ndarray:
        return _diagonal.retract(self.problem, theta, tol=tol, max_iter=max_iter)

    def relative_speed(self, theta: np.ndarray, vel: np.ndarray, floor: float) -> np.ndarray:
        """max_i |vel_i / theta_i| (:func:`diagsim.slowflow.flows.rate_bound`): coordinates of a diagonal network
        move multiplicatively."""
        from .flows import rate_bound
        return rate_bound(theta, vel, floor)

    def project(self, theta: np.ndarray, vec: np.ndarray, S: np.ndarray | None = None) -> np.ndarray:
        return _diagonal.project_tangent(self.problem, theta, vec, S)


def manifold_of(problem):
    """The diagonal family's closed forms for its Problem, the product-based :class:`ModelManifold` otherwise."""
    return DiagonalManifold(problem) if is_diagonal(problem) else ModelManifold(problem)
