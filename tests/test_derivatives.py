"""Exact derivatives (diagsim.networks.diagonal.derivatives) against central finite differences and SymPy, the "uu-vv" /
"uv" correspondence, and the n x n reduction of the Hessian on the manifold of minimizers."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from diagsim.networks.diagonal import derivatives as D
from diagsim.networks.diagonal.manifold import retract
from diagsim.networks.diagonal.parametrization import corresponding_uv
from diagsim.networks.diagonal.problem import make_problem

PARAMS = ["uu-vv", "uv", "depth-3"]


def rel_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


def small_problem(param, n=4, d=6, seed=3):
    return make_problem(n, d, 2, parametrization=param, seed=seed)


def random_states(problem, m=3, seed=0, scale=0.8):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((m, problem.dim))


# --------------------------------------------------------------------------- finite differences
def central_fd(fun, x, h):
    """Central differences of fun: R^k -> R^p at x, shape (p, k) (p = 1 squeezed)."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.atleast_1d(fun(x + e)) - np.atleast_1d(fun(x - e))) / (2 * h))
    J = np.stack(cols, axis=-1)
    return J[0] if J.shape[0] == 1 else J


@pytest.mark.parametrize("param", PARAMS)
def test_gradient_matches_finite_differences(param):
    p = small_problem(param)
    th = random_states(p)
    g = D.gradient(p, th)
    for m in range(th.shape[0]):
        fd = central_fd(lambda x: D.loss(p, x)[0], th[m], 1e-5)
        assert rel_err(g[m], fd) < 1e-6


@pytest.mark.parametrize("param", PARAMS)
def test_hessian_hvp_diag_match_finite_differences(param):
    p = small_problem(param)
    th = random_states(p, seed=1)
    H = D.hessian(p, th)
    diag = D.hessian_diag(p, th)
    rng = np.random.default_rng(5)
    vec = rng.standard_normal(th.shape)
    hv = D.hvp(p, th, vec)
    for m in range(th.shape[0]):
        fd = central_fd(lambda x: D.gradient(p, x)[0], th[m], 1e-5)
        assert rel_err(H[m], fd) < 1e-6
        assert rel_err(hv[m], fd @ vec[m]) < 1e-6
        assert rel_err(diag[m], np.diag(fd)) < 1e-6
        np.testing.assert_allclose(H[m], H[m].T, rtol=0, atol=1e-12 * np.abs(H[m]).max())


@pytest.mark.parametrize("param", PARAMS)
def test_jacobian_and_residual_match_finite_differences(param):
    p = small_problem(param)
    th = random_states(p, seed=2)
    J = D.jacobian(p, th)
    r = D.residual(p, th)
    np.testing.assert_allclose(r, p.w(th) @ p.Z.T - p.y, rtol=1e-13, atol=1e-13)
    for m in range(th.shape[0]):
        fd = central_fd(lambda x: p.Z @ p.w(x), th[m], 1e-5)
        assert rel_err(J[m], fd) < 1e-6
    # gradient = J^T r / n
    np.testing.assert_allclose(D.gradient(p, th), np.einsum("mji,mj->mi", J, r) / p.n, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- SymPy
def sympy_reference(param: str, Z: np.ndarray, y: np.ndarray):
    """Loss, gradient, Hessian and Jacobian of f = Z w(theta), derived symbolically and lambdified."""
    n, d = Z.shape
    u = sp.symbols(f"u0:{d}", real=True)
    v = sp.symbols(f"v0:{d}", real=True)
    if param == "uu-vv":
        w = [ui ** 2 - vi ** 2 for ui, vi in zip(u, v)]
    elif param == "uv":
        w = [ui * vi for ui, vi in zip(u, v)]
    else:
        D_ = int(param.split("-")[1])
        w = [ui ** D_ - vi ** D_ for ui, vi in zip(u, v)]
    Zs = sp.Matrix(Z.tolist())
    f = Zs * sp.Matrix(w)
    res = f - sp.Matrix(y.tolist())
    L = (res.T * res)[0] / (2 * n)
    th = list(u) + list(v)
    grad = [sp.diff(L, t) for t in th]
    hess = [[sp.diff(gi, t) for t in th] for gi in grad]
    jac = [[sp.diff(fj, t) for t in th] for fj in f]
    mk = lambda e: sp.lambdify([th], e, "numpy")  # noqa: E731
    return mk(L), mk(grad), mk(hess), mk(jac)


@pytest.mark.parametrize("param", PARAMS)
def test_derivatives_match_sympy(param):
    rng = np.random.default_rng(11)
    n, d = 3, 2
    Z = rng.integers(-3, 4, size=(n, d)).astype(float)
    y = rng.integers(-2, 3, size=n).astype(float)
    from diagsim.networks.diagonal.problem import Problem
    p = Problem(Z, y, None, param)
    L, grad, hess, jac = sympy_reference(param, Z, y)
    th = rng.standard_normal((4, 2 * d))
    for m in range(4):
        x = th[m]
        assert rel_err(D.loss(p, x), np.array([L(x)])) < 1e-12
        assert rel_err(D.gradient(p, x)[0], np.array(grad(x), dtype=float)) < 1e-12
        Hs = np.array(hess(x), dtype=float)
        assert rel_err(D.hessian(p, x)[0], Hs) < 1e-12
        assert rel_err(D.hessian_diag(p, x)[0], np.diag(Hs)) < 1e-12
        vec = rng.standard_normal(2 * d)
        assert rel_err(D.hvp(p, x, vec)[0], Hs @ vec) < 1e-12
        assert rel_err(D.jacobian(p, x)[0], np.array(jac(x), dtype=float)) < 1e-12


# --------------------------------------------------------------------------- "uu-vv" = 2 x "uv"
def test_uuvv_spectrum_is_twice_uv_at_corresponding_point():
    """L_uuvv(theta) = L_uv(M theta) with M = [[I, I], [I, -I]] = sqrt(2) x orthogonal, so
    H_uuvv = M^T H_uv M has exactly twice the eigenvalues of H_uv, at every point."""
    p = make_problem(5, 7, 2, parametrization="uu-vv", seed=4)
    q = p.with_param("uv")
    th = random_states(p, m=4, seed=6)
    th_uv = corresponding_uv(th)
    np.testing.assert_allclose(p.w(th), q.w(th_uv), rtol=1e-13, atol=1e-13)
    ev = np.linalg.eigvalsh(D.hessian(p, th))
    ev_uv = np.linalg.eigvalsh(D.hessian(q, th_uv))
    scale = np.abs(ev).max()
    np.testing.assert_allclose(ev, 2 * ev_uv, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(D.hessian_diag(p, th).sum(1), 2 * D.hessian_diag(q, th_uv).sum(1), rtol=1e-12)
    # and on the manifold of minimizers, through the measures (n x n reductions)
    from diagsim import measures as S
    on = retract(p, th)
    on_uv = corresponding_uv(on)
    for hess in ("gn", "full"):
        np.testing.assert_allclose(S.lambda_max(p, on, hessian=hess),
                                   2 * S.lambda_max(q, on_uv, hessian=hess), rtol=1e-12)
        np.testing.assert_allclose(S.trace(p, on, hessian=hess), 2 * S.trace(q, on_uv, hessian=hess),
                                   rtol=1e-12)
    np.testing.assert_allclose(S.lambda_max(p, th, hessian="full"),
                               2 * S.lambda_max(q, th_uv, hessian="full"), rtol=1e-12)


# --------------------------------------------------------------------------- n x n reduction on Gamma
@pytest.mark.parametrize("param", PARAMS)
def test_gauss_newton_gram_spectrum_is_nonzero_spectrum_of_H_on_manifold(param):
    p = make_problem(5, 12, 2, parametrization=param, seed=8)
    th = retract(p, p.theta0(3) + 0.1 * random_states(p, m=3, seed=9))
    assert np.abs(D.residual(p, th)).max() < 1e-10
    G = D.gauss_newton_gram(p, th)
    H = D.hessian(p, th)
    for m in range(th.shape[0]):
        ev_g = np.linalg.eigvalsh(G[m])
        ev_h = np.linalg.eigvalsh(H[m])
        scale = ev_h.max()
        top = ev_h[-p.n:]
        np.testing.assert_allclose(top, ev_g, rtol=0, atol=1e-11 * scale)
        assert np.all(np.abs(ev_h[:-p.n]) <= 1e-11 * scale)
