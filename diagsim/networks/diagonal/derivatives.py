"""Exact derivatives of L(theta) = (1/2n) ||Z w(theta) - y||^2, batched over an ensemble of paths.

Every function takes ``theta`` of shape (n_paths, 2d) (a single (2d,) state is promoted) and returns
arrays with a leading ``n_paths`` axis:

=====================  ===================  ==========================================================
function               shape                definition
=====================  ===================  ==========================================================
loss                   (M,)                 (1/2n) ||r||^2, r = Z w - y
gradient               (M, 2d)              J^T r / n
jacobian               (M, n, 2d)           J = df/dtheta = Z [diag(dw/du), diag(dw/dv)]
hvp                    (M, 2d)              H vec
hessian_diag           (M, 2d)              diag H
hessian                (M, 2d, 2d)          (1/n)(J^T J + R); d <= 2000 only
gauss_newton_gram      (M, n, n)            (1/n) J J^T: on the manifold (r = 0) its spectrum is the
                                            non-zero spectrum of H
=====================  ===================  ==========================================================

``loss``, ``gradient``, ``hvp`` and ``hessian_diag`` run the per-path Numba kernels of
:mod:`diagsim.networks.diagonal.pathwise` in parallel over paths (the same code the optimizers call); the
matrix-valued ones use NumPy/BLAS.
"""
from __future__ import annotations

import numpy as np

from ...errors import DiagsimError
from ...lowlevel.jit import prange, serial_and_parallel
from . import pathwise as K
from .gram import weighted_gram
from .parametrization import UUVV, UV
from .problem import Problem

MAX_DENSE_D = 2000


def _loss_grad_batch_py(theta, code, depth, Z, ZT, y, loss, grad):
    m = theta.shape[0]
    n, d = Z.shape
    for p in prange(m):
        w = np.empty(d)
        r = np.empty(n)
        gw = np.empty(d)
        loss[p] = K.loss_grad(theta[p], code, depth, Z, ZT, y, w, r, gw, grad[p])


def _hvp_batch_py(theta, code, depth, Z, ZT, y, vec, out):
    m = theta.shape[0]
    n, d = Z.shape
    for p in prange(m):
        w = np.empty(d)
        r = np.empty(n)
        gw = np.empty(d)
        K.forward(theta[p], code, depth, ZT, y, w, r)
        K.pullback(Z, r, 1.0 / n, gw)
        K.hvp(theta[p], code, depth, Z, ZT, gw, vec[p], np.empty(n), np.empty(d), out[p])


def _diag_batch_py(theta, code, depth, Z, ZT, y, s, out):
    m = theta.shape[0]
    n, d = Z.shape
    for p in prange(m):
        w = np.empty(d)
        r = np.empty(n)
        gw = np.empty(d)
        K.forward(theta[p], code, depth, ZT, y, w, r)
        K.pullback(Z, r, 1.0 / n, gw)
        K.diag_hessian(theta[p], code, depth, s, gw, out[p])


# each batch kernel compiled twice: parallel over paths for ensembles, serial for a few small paths
# (a prange launch costs more than the work when it is called in a tight Python loop, e.g. by an ODE solver)
_loss_grad_batch = serial_and_parallel(_loss_grad_batch_py)
_hvp_batch = serial_and_parallel(_hvp_batch_py)
_diag_batch = serial_and_parallel(_diag_batch_py)
PARALLEL_MIN_WORK = 200_000


def _pick(kernels, problem: Problem, th: np.ndarray):
    """The serial kernel when the work (paths x n x d) is too small to pay for threads."""
    return kernels[th.shape[0] > 1 and th.shape[0] * problem.n * problem.d >= PARALLEL_MIN_WORK]


def _states(problem: Problem, theta) -> np.ndarray:
    return problem.check_theta(theta)


def loss(problem: Problem, theta) -> np.ndarray:
    """Training loss per path, shape (M,)."""
    th = _states(problem, theta)
    out = np.empty(th.shape[0])
    P = problem
    _pick(_loss_grad_batch, P, th)(th, P.param.code, P.param.depth, P.Z, P.ZT, P.y, out, np.empty_like(th))
    return out


def loss_and_gradient(problem: Problem, theta) -> tuple[np.ndarray, np.ndarray]:
    """(loss (M,), gradient (M, 2d))."""
    th = _states(problem, theta)
    out, g = np.empty(th.shape[0]), np.empty_like(th)
    P = problem
    _pick(_loss_grad_batch, P, th)(th, P.param.code, P.param.depth, P.Z, P.ZT, P.y, out, g)
    return out, g


def gradient(problem: Problem, theta) -> np.ndarray:
    """Gradient J^T r / n per path, shape (M, 2d)."""
    return loss_and_gradient(problem, theta)[1]


def hvp(problem: Problem, theta, vec) -> np.ndarray:
    """Hessian-vector products H(theta_p) vec_p, shape (M, 2d); ``vec`` is (M, 2d) or (2d,)."""
    th = _states(problem, theta)
    v = np.asarray(vec, dtype=np.float64)
    v = np.ascontiguousarray(np.broadcast_to(v, th.shape)) if v.ndim == 1 else v
    if v.shape != th.shape:
        raise DiagsimError(f"vec must have shape {th.shape} or ({th.shape[1]},), got {np.shape(vec)}")
    out = np.empty_like(th)
    _pick(_hvp_batch, problem, th)(th, problem.param.code, problem.param.depth, problem.Z, problem.ZT, problem.y,
               np.ascontiguousarray(v), out)
    return out


def hessian_diag(problem: Problem, theta) -> np.ndarray:
    """diag H per path, shape (M, 2d) (exact, residual term included)."""
    th = _states(problem, theta)
    out = np.empty_like(th)
    P = problem
    _pick(_diag_batch, P, th)(th, P.param.code, P.param.depth, P.Z, P.ZT, P.y, P.s, out)
    return out


def phi_derivatives(problem: Problem, th: np.ndarray):
    """Elementwise dw/du, dw/dv, d2w/du2, d2w/dudv, d2w/dv2, each (M, d)."""
    d = problem.d
    u, v = th[:, :d], th[:, d:]
    p = problem.param
    if p.code == UUVV:
        return 2 * u, -2 * v, np.full_like(u, 2.0), np.zeros_like(u), np.full_like(u, -2.0)
    if p.code == UV:
        return v, u, np.zeros_like(u), np.ones_like(u), np.zeros_like(u)
    D = p.depth
    c = float(D * (D - 1))
    return D * u ** (D - 1), -D * v ** (D - 1), c * u ** (D - 2), np.zeros_like(u), -c * v ** (D - 2)


def jacobian(problem: Problem, theta) -> np.ndarray:
    """Per-sample Jacobian df_j/dtheta, shape (M, n, 2d)."""
    th = _states(problem, theta)
    wu, wv, *_ = phi_derivatives(problem, th)
    Z = problem.Z
    return np.concatenate([Z[None] * wu[:, None, :], Z[None] * wv[:, None, :]], axis=2)


def residual(problem: Problem, theta) -> np.ndarray:
    """r = Z w - y per path, shape (M, n)."""
    th = _states(problem, theta)
    return problem.w(th) @ problem.ZT - problem.y


def hessian(problem: Problem, theta) -> np.ndarray:
    """Full Hessian (M, 2d, 2d) = (1/n)(J^T J + R); refuses d > 2000 (use hvp / gauss_newton_gram)."""
    th = _states(problem, theta)
    if problem.d > MAX_DENSE_D:
        raise DiagsimError(f"hessian: d = {problem.d} > {MAX_DENSE_D}; use hvp(), hessian_diag() or "
                           "gauss_newton_gram() instead of a dense 2d x 2d matrix")
    n, d = problem.n, problem.d
    J = jacobian(problem, th)
    H = np.einsum("mji,mjk->mik", J, J) / n
    gw = residual(problem, th) @ problem.Z / n
    _, _, huu, huv, hvv = phi_derivatives(problem, th)
    idx = np.arange(d)
    H[:, idx, idx] += gw * huu
    H[:, idx, d + idx] += gw * huv
    H[:, d + idx, idx] += gw * huv
    H[:, d + idx, d + idx] += gw * hvv
    return H


def gauss_newton_gram(problem: Problem, theta) -> np.ndarray:
    """(1/n) J J^T = (1/n) Z diag(wu^2 + wv^2) Z^T per path, shape (M, n, n).

    On the manifold of minimizers (r = 0) the non-zero eigenvalues of H are those of this n x n matrix;
    use it instead of a 2d x 2d eigendecomposition when 2d >> n.
    """
    th = _states(problem, theta)
    wu, wv, *_ = phi_derivatives(problem, th)
    return weighted_gram(problem, wu * wu + wv * wv) / problem.n
