"""Quantities shared by several measures at the same states, computed once and cached.

A :class:`Context` wraps a problem and a validated batch of states theta (M, 2d). Everything is derived
lazily: w, the residual r = Z w - y, gw = Z^T r / n, the first and second derivatives of w(theta), and the
Gauss-Newton spectra on the manifold (of (1/n) J J^T and of its u- and v-blocks, all n x n).
:func:`diagsim.measures.evaluate` builds one context and hands it to every measure, so that the
eigenvalues of the n x n Gram matrices are computed once however many measures use them.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ..errors import DiagsimError, check_memory
from ..networks.diagonal.derivatives import phi_derivatives
from ..networks.diagonal.problem import Problem
from ..networks.model import family_of
from .eigen import top_eigpair, weighted_gram

#: eigenvalues <= ZERO_RTOL * (largest eigenvalue) count as zero (rank / pseudo-determinant / Renyi)
ZERO_RTOL = 1e-12


class Context:
    """Cached per-state quantities for ``problem`` at ``theta`` ((M, 2d), or (2d,) promoted).

    Attributes (lazy)
    -----------------
    theta (M, 2d); u, v (M, d); w (M, d); r (M, n) = Z w - y; gw (M, d) = Z^T r / n; loss (M,);
    wu, wv (M, d) = dw/du, dw/dv; huu, huv, hvv (M, d) second derivatives of w;
    gn_diag (M, 2d) = diag of (1/n) J^T J = [s wu^2, s wv^2];
    spectrum(block) (M, n) ascending eigenvalues of the Gauss-Newton matrix (block "all", "u" or "v").
    """

    def __init__(self, problem: Problem, theta):
        self.problem = problem
        self.theta = problem.check_theta(theta)
        self.M = self.theta.shape[0]
        self.d = problem.d
        self.n = problem.n
        self._spectra: dict = {}

    @classmethod
    def of(cls, problem: Problem, theta, ctx: "Context | None" = None) -> "Context":
        """``ctx`` if it was built for this problem (and, by contract, these states), else a new one
        (a :class:`ModelContext` for a problem of another family than "diagonal")."""
        if ctx is not None:
            if ctx.problem is not problem:
                raise ValueError("ctx was built for another problem")
            return ctx
        return make_context(problem, theta)

    # ------------------------------------------------------------------ basic fields
    @property
    def u(self) -> np.ndarray:
        return self.theta[:, :self.d]

    @property
    def v(self) -> np.ndarray:
        return self.theta[:, self.d:]

    @cached_property
    def w(self) -> np.ndarray:
        return self.problem.w(self.theta)

    @cached_property
    def r(self) -> np.ndarray:
        return self.w @ self.problem.ZT - self.problem.y

    @cached_property
    def gw(self) -> np.ndarray:
        return (self.r @ self.problem.Z) / self.n

    @cached_property
    def loss(self) -> np.ndarray:
        return 0.5 * np.mean(self.r * self.r, axis=1)

    @cached_property
    def _derivs(self):
        return phi_derivatives(self.problem, self.theta)

    @property
    def wu(self) -> np.ndarray:
        return self._derivs[0]

    @property
    def wv(self) -> np.ndarray:
        return self._derivs[1]

    @property
    def second(self):
        """(d2w/du2, d2w/dudv, d2w/dv2), each (M, d)."""
        return self._derivs[2:]

    @cached_property
    def gradient(self) -> np.ndarray:
        """J^T r / n, (M, 2d)."""
        return np.concatenate([self.gw * self.wu, self.gw * self.wv], axis=1)

    @cached_property
    def residual_blocks(self):
        """The residual part R/n of the Hessian as 2x2 blocks per coordinate: (B11, B12, B22), each (M, d)."""
        huu, huv, hvv = self.second
        return self.gw * huu, self.gw * huv, self.gw * hvv

    @cached_property
    def gn_diag(self) -> np.ndarray:
        """diag((1/n) J^T J) = [s wu^2, s wv^2], (M, 2d); equals diag H where r = 0."""
        s = self.problem.s
        return np.concatenate([s * self.wu ** 2, s * self.wv ** 2], axis=1)

    @cached_property
    def full_trace(self) -> np.ndarray:
        """tr H (exact, residual term included), (M,)."""
        B11, _, B22 = self.residual_blocks
        return self.gn_diag.sum(axis=1) + (B11 + B22).sum(axis=1)

    def full_lambda_max(self) -> np.ndarray:
        """lambda_max(H) (exact), (M,), by the secular equation of :mod:`._structured`."""
        op, _ = hessian_operator(self)
        return op.lambda_max()[0]

    @cached_property
    def j_theta(self) -> np.ndarray:
        """J theta, (M, n)."""
        return (self.wu * self.u + self.wv * self.v) @ self.problem.ZT

    @cached_property
    def max_residual(self) -> np.ndarray:
        """max_j |(Z w - y)_j| per path, (M,)."""
        return np.abs(self.r).max(axis=1)

    # ------------------------------------------------------------------ spectra on the manifold
    def block_weights(self, block: str) -> np.ndarray:
        """c with (1/n) Z diag(c) Z^T the n x n reduction of the Gauss-Newton block ("all", "u", "v")."""
        if block == "u":
            return self.wu ** 2
        if block == "v":
            return self.wv ** 2
        return self.wu ** 2 + self.wv ** 2

    def gram(self, block: str = "all") -> np.ndarray:
        """(1/n) Z diag(c_block) Z^T, (M, n, n): its spectrum is the non-zero spectrum of the block of G."""
        key = ("gram", block)
        if key not in self._spectra:
            if block == "all" and ("gram", "u") in self._spectra and ("gram", "v") in self._spectra:
                self._spectra[key] = self._spectra[("gram", "u")] + self._spectra[("gram", "v")]
            else:
                self._spectra[key] = weighted_gram(self.problem, self.block_weights(block)) / self.n
        return self._spectra[key]

    def spectrum(self, block: str = "all") -> np.ndarray:
        """Ascending eigenvalues (M, n) of the n x n reduction of the Gauss-Newton matrix (block)."""
        key = ("eig", block)
        if key not in self._spectra:
            self._spectra[key] = np.linalg.eigvalsh(self.gram(block))
        return self._spectra[key]

    def top_eigpair(self, block: str = "all"):
        """(lambda_max (M,), x (M, n)) of the n x n reduction; the 2d-eigenvector is J^T x / ||J^T x||."""
        key = ("top", block)
        if key not in self._spectra:
            self._spectra[key] = top_eigpair(self.gram(block), self.spectrum(block))
        return self._spectra[key]

    def nonzero_mask(self, eig: np.ndarray, rtol: float = ZERO_RTOL) -> np.ndarray:
        """eig > rtol * max(eig) per row (the numerically non-zero eigenvalues)."""
        top = np.maximum(eig[:, -1:], 0.0)
        return eig > rtol * top


class ModelContext:
    """The :class:`Context` of a problem of any family, built only from the interface members of
    :class:`diagsim.networks.model.ModelProblem`: the Gauss-Newton diagonal, the exact Hessian's diagonal
    (its trace), J theta, and the spectrum of the n x n Gram matrix (1/n) J J^T, whose J comes from n
    vector-Jacobian products per path. What needs the diagonal network's structure (the u / v blocks, w,
    the structured Hessian) is a one-line DiagsimError.
    """

    def __init__(self, problem, theta):
        self.problem = problem
        self.theta = problem.check_theta(theta)
        self.M = self.theta.shape[0]
        self.n = problem.n
        self._spectra: dict = {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise DiagsimError(f"this measure needs the diagonal network's structure ({name}); it is not defined for "
                           f"model family {family_of(self.problem)!r}")

    @cached_property
    def gn_diag(self) -> np.ndarray:
        return self.problem.gn_diag(self.theta)

    @cached_property
    def full_trace(self) -> np.ndarray:
        return self.problem.hessian_diag(self.theta).sum(axis=1)

    def full_lambda_max(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.problem.hessian(self.theta))[:, -1]

    @cached_property
    def j_theta(self) -> np.ndarray:
        return self.problem.jvp(self.theta, self.theta)

    @cached_property
    def jacobian(self) -> np.ndarray:
        """J (M, n, P) from n vector-Jacobian products per path."""
        M, n, P = self.M, self.n, self.problem.dim
        check_memory(16.0 * M * n * P, "the Jacobian of the Gram spectrum", "evaluate fewer states at once")
        J = self.problem.vjp(np.repeat(self.theta, n, axis=0), np.tile(np.eye(n), (M, 1)))
        return J.reshape(M, n, P)

    def gram(self, block: str = "all") -> np.ndarray:
        if block != "all":
            raise DiagsimError(f"the Gauss-Newton block {block!r} needs the diagonal network's u / v blocks; model "
                               f"family {family_of(self.problem)!r} has the block 'all' only")
        if ("gram", block) not in self._spectra:
            J = self.jacobian
            self._spectra[("gram", block)] = np.matmul(J, np.swapaxes(J, 1, 2)) / self.n
        return self._spectra[("gram", block)]

    spectrum = Context.spectrum
    top_eigpair = Context.top_eigpair
    nonzero_mask = Context.nonzero_mask


def make_context(problem, theta):
    """:class:`Context` for the diagonal network, :class:`ModelContext` for any other model family."""
    if family_of(problem) == "diagonal":
        return Context(problem, theta)
    return ModelContext(problem, theta)


def hessian_operator(ctx: Context, adaptive: bool = False, eta: float = 0.0, scale: np.ndarray | None = None):
    """The exact Hessian at ctx.theta as a :class:`~._structured.StructuredHessian` (M paths).

    ``adaptive``: the rescaled Hessian T H T with T = diag(|theta| + eta) (the curvature of
    eps -> L(theta + T eps)); ``scale`` (M, 2d) gives T explicitly instead. Returns (operator, gradient)
    with the gradient rescaled the same way (T g).
    """
    from ._structured import StructuredHessian

    B11, B12, B22 = ctx.residual_blocks
    au, av, g = ctx.wu, ctx.wv, ctx.gradient
    if adaptive and scale is None:
        scale = np.abs(ctx.theta) + eta
    if scale is not None:
        d = ctx.d
        tu, tv = scale[:, :d], scale[:, d:]
        au, av = au * tu, av * tv
        B11, B12, B22 = B11 * tu * tu, B12 * tu * tv, B22 * tv * tv
        g = g * scale
    top = (lambda: ctx.top_eigpair("all")) if scale is None else None
    return StructuredHessian(ctx.problem, au, av, B11, B12, B22, top), g
