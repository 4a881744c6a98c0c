"""Sharpness measures against independent references: dense Hessians (small d), Monte Carlo, SciPy
optimizers, closed forms of docs/theory.md §10, and the symmetry properties of geodesic sharpness."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from diagsim import measures as S
from diagsim.errors import DiagsimError
from diagsim.networks.diagonal import derivatives as D
from diagsim.networks.diagonal.manifold import retract
from diagsim.networks.diagonal.parametrization import corresponding_uv
from diagsim.networks.diagonal.problem import Problem, make_problem

PARAMS = ["uu-vv", "uv", "depth-3"]


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


def setup(param, n=6, d=10, m=3, seed=1, on=True, scale=0.5):
    p = make_problem(n, d, 2, parametrization=param, seed=seed)
    rng = np.random.default_rng(seed + 100)
    th = p.theta0(m) + scale * rng.standard_normal((m, p.dim))
    if param == "uv" or param.startswith("depth"):
        th = scale * rng.standard_normal((m, p.dim)) + 0.3
    return p, (retract(p, th) if on else th)


def dense_positive_spectrum(H, rtol=1e-10):
    ev = np.linalg.eigvalsh(H)
    return ev[ev > rtol * ev.max()]


# --------------------------------------------------------------------------- spectral
@pytest.mark.parametrize("param", PARAMS)
def test_lambda_max_reduction_equals_dense_eigvalsh(param):
    p, th = setup(param)
    H = D.hessian(p, th)
    top = np.linalg.eigvalsh(H)[:, -1]
    np.testing.assert_allclose(S.lambda_max(p, th), top, rtol=1e-11)
    np.testing.assert_allclose(S.lambda_max(p, th, hessian="full"), top, rtol=1e-11)


@pytest.mark.parametrize("param", PARAMS)
def test_lambda_max_full_off_manifold(param):
    p, th = setup(param, on=False, scale=0.9)
    assert np.abs(D.residual(p, th)).max() > 0.1
    top = np.linalg.eigvalsh(D.hessian(p, th))[:, -1]
    np.testing.assert_allclose(S.lambda_max(p, th, hessian="full"), top, rtol=1e-11)


@pytest.mark.parametrize("param", PARAMS)
def test_traces_and_diagonal_measures_on_manifold(param):
    p, th = setup(param)
    H = D.hessian(p, th)
    diag = np.einsum("mii->mi", H)
    d = p.d
    np.testing.assert_allclose(S.trace(p, th), diag.sum(1), rtol=1e-11)
    np.testing.assert_allclose(S.trace_diag_sqrt(p, th), np.sqrt(diag).sum(1), rtol=1e-11)
    np.testing.assert_allclose(S.trace_diag_pow(p, th, lam=0.3), (diag ** 0.7).sum(1), rtol=1e-11)
    np.testing.assert_allclose(S.trace_diag_pow(p, th, lam=0.0), S.trace(p, th), rtol=1e-13)
    np.testing.assert_allclose(S.trace_diag_pow(p, th, lam=0.5), S.trace_diag_sqrt(p, th), rtol=1e-13)
    blocks = np.sqrt(d * diag[:, :d].sum(1)) + np.sqrt(d * diag[:, d:].sum(1))
    np.testing.assert_allclose(S.block_trace_sqrt(p, th), blocks, rtol=1e-11)
    if param == "uu-vv":  # docs/theory.md §3.4 closed forms
        u, v = th[:, :d], th[:, d:]
        np.testing.assert_allclose(S.trace(p, th), 4 * (p.s * (u ** 2 + v ** 2)).sum(1), rtol=1e-12)
        np.testing.assert_allclose(S.trace_diag_sqrt(p, th), 2 * (np.sqrt(p.s) * (abs(u) + abs(v))).sum(1),
                                   rtol=1e-12)


@pytest.mark.parametrize("param", PARAMS)
def test_trace_full_off_manifold(param):
    p, th = setup(param, on=False, scale=0.9)
    np.testing.assert_allclose(S.trace(p, th, hessian="full"), np.trace(D.hessian(p, th), axis1=1, axis2=2),
                               rtol=1e-11)


@pytest.mark.parametrize("param", PARAMS)
def test_log_pdet_and_fisher_rao(param):
    p, th = setup(param)
    H = D.hessian(p, th)
    ref = [np.log(dense_positive_spectrum(h)).sum() for h in H]
    np.testing.assert_allclose(S.log_pdet(p, th), ref, rtol=1e-10)
    J = D.jacobian(p, th)
    F = np.einsum("mji,mjk->mik", J, J) / p.n
    np.testing.assert_allclose(S.fisher_rao(p, th), np.einsum("mi,mik,mk->m", th, F, th), rtol=1e-11)
    k = 3.0 if param == "depth-3" else 2.0       # Euler: J theta = (degree) Z w
    Zw = p.w(th) @ p.Z.T
    np.testing.assert_allclose(S.fisher_rao(p, th), k * k / p.n * (Zw ** 2).sum(1), rtol=1e-11)


# --------------------------------------------------------------------------- Renyi
@pytest.mark.parametrize("order", [0.5, 1.0, 2.0, 3.7, math.inf])
def test_renyi_of_uniform_spectrum_is_minus_log_P(order):
    for P in (1, 3, 17):
        H = S.renyi_entropy_of_spectrum(np.full((1, P), 2.5), order)
        np.testing.assert_allclose(-H, -np.log(P), atol=1e-13)


def test_renyi_measure_of_uniform_hessian():
    """Z = [I_4, I_4] and constant u, v: (1/n) J J^T = c I, a uniform spectrum of P = n = 4 eigenvalues."""
    n = 4
    Z = np.hstack([np.eye(n), np.eye(n)])
    th = np.concatenate([np.full(2 * n, 0.7), np.full(2 * n, 0.2)])
    for param in ("uu-vv", "uv"):
        p0 = Problem(Z, np.zeros(n), None, param)
        p = Problem(Z, Z @ p0.w(th), None, param)
        for order in (0.5, 1.0, 2.0, math.inf):
            for fn in (S.renyi, S.renyi_u, S.renyi_v):
                np.testing.assert_allclose(fn(p, th, order=order), -np.log(n), atol=1e-12)


@pytest.mark.parametrize("param", PARAMS)
def test_renyi_matches_dense_spectrum_and_shannon_limit(param):
    p, th = setup(param)
    H = D.hessian(p, th)
    d = p.d
    for m in range(th.shape[0]):
        for block, sl in (("all", slice(None)), ("u", slice(0, d)), ("v", slice(d, 2 * d))):
            lam = dense_positive_spectrum(H[m][sl, sl])
            q = lam / lam.sum()
            for order in (0.5, 2.0, 3.0):
                ref = np.log((q ** order).sum()) / (1 - order)   # H_alpha
                np.testing.assert_allclose(S.renyi(p, th[m], order=order, block=block), -ref, rtol=1e-9)
            shannon = -(q * np.log(q)).sum()
            np.testing.assert_allclose(S.renyi(p, th[m], order=1.0, block=block), -shannon, rtol=1e-9)
    # alpha -> 1 from both sides: |H_alpha - H_1| = O(|alpha - 1|)
    h1 = S.renyi(p, th, order=1.0)
    for eps in (1e-4, 1e-7, 1e-10):
        for a in (1 - eps, 1 + eps):
            assert np.max(np.abs(S.renyi(p, th, order=a) - h1)) < 10 * eps


def test_renyi_bad_order():
    p, th = setup("uv", m=1)
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(DiagsimError, match="order"):
            S.renyi(p, th, order=bad)


# --------------------------------------------------------------------------- average case
def average_closed_form_by_hand(param, p, th, rho):
    """docs/theory.md §10.4: (rho^2/2) tr H + c rho^4 tr(Z^T Z)/n, c = 2 (uu-vv) / 1/2 (uv), dense H."""
    trH = np.trace(D.hessian(p, th), axis1=1, axis2=2)
    c = {"uu-vv": 2.0, "uv": 0.5}[param]
    return 0.5 * rho ** 2 * trH + c * rho ** 4 * (p.Z ** 2).sum() / p.n


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("on", [True, False])
def test_average_case_closed_form_vs_monte_carlo(param, on):
    p, th = setup(param, n=5, d=8, m=2, seed=4, on=on, scale=0.6)
    rho = 0.3
    closed = S.average(p, th, rho=rho)
    mc, se = S.average_mc(p, th, rho=rho, n_samples=20000, seed=1)
    assert np.all(np.abs(closed - mc) <= 3 * se), (closed, mc, se)
    if param != "depth-3":
        theory = S.average_theory(p, th, rho=rho)
        np.testing.assert_allclose(closed, theory, rtol=1e-12)
        np.testing.assert_allclose(closed, average_closed_form_by_hand(param, p, th, rho), rtol=1e-12)


@pytest.mark.parametrize("param", PARAMS)
def test_adaptive_average_case_vs_monte_carlo(param):
    p, th = setup(param, n=5, d=8, m=2, seed=5, on=False, scale=0.6)
    rho = 0.4
    closed = S.average_adaptive(p, th, rho=rho, eta=0.05)
    mc, se = S.average_mc(p, th, rho=rho, n_samples=20000, seed=2, adaptive=True, eta=0.05)
    assert np.all(np.abs(closed - mc) <= 3 * se), (closed, mc, se)


# --------------------------------------------------------------------------- trust region
def dense_trust_region(g, H, rho):
    """max g.x + x.Hx/2 over ||x|| <= rho from the eigendecomposition (secular equation by brentq)."""
    w, U = np.linalg.eigh(H)
    gt = U.T @ g
    lo = max(w[-1], 0.0)
    if np.abs(gt[-1]) < 1e-14 * max(np.linalg.norm(gt), 1e-300) or np.linalg.norm(gt) == 0:
        pytest.skip("hard case")
    f = lambda mu: np.sqrt(np.sum((gt / (mu - w)) ** 2)) - rho  # noqa: E731
    hi = lo + np.linalg.norm(gt) / rho + 1.0
    mu = optimize.brentq(f, lo + 1e-13 * (1 + abs(lo)), hi, xtol=1e-15, rtol=1e-15)
    x = U @ (gt / (mu - w))
    return g @ x + 0.5 * x @ H @ x


def scipy_ball_max(fun, grad, k, rho, starts=20, seed=0):
    """Best of SLSQP runs maximizing fun over ||x|| <= rho from random starts."""
    rng = np.random.default_rng(seed)
    best = -np.inf
    cons = [{"type": "ineq", "fun": lambda x: rho ** 2 - x @ x, "jac": lambda x: -2 * x}]
    for _ in range(starts):
        x0 = rng.standard_normal(k)
        x0 *= rho * rng.uniform(0.2, 1.0) / np.linalg.norm(x0)
        res = optimize.minimize(lambda x: -fun(x), x0, jac=lambda x: -grad(x), constraints=cons,
                                method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
        x = res.x * min(1.0, rho / np.linalg.norm(res.x))   # SLSQP may overshoot the ball by its tolerance
        best = max(best, fun(x))
    return best


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("rho", [0.05, 0.5, 5.0])
def test_trust_region_matches_dense_and_scipy(param, rho):
    p, th = setup(param, n=4, d=6, m=2, seed=6, on=False, scale=0.8)
    val, delta = S.worst_quadratic(p, th, rho=rho, return_perturbation=True)
    H = D.hessian(p, th)
    g = D.gradient(p, th)
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), rho, rtol=1e-10)
    for m in range(th.shape[0]):
        q = lambda x: g[m] @ x + 0.5 * x @ H[m] @ x  # noqa: E731
        np.testing.assert_allclose(q(delta[m]), val[m], rtol=1e-10)
        np.testing.assert_allclose(val[m], dense_trust_region(g[m], H[m], rho), rtol=1e-9)
        sc = scipy_ball_max(q, lambda x: g[m] + H[m] @ x, p.dim, rho)
        assert val[m] >= sc - 1e-10 * abs(sc)
        if rho <= 0.5:  # at rho = 5 the local SLSQP runs do not all converge within maxiter
            assert sc >= val[m] - 1e-6 * abs(val[m])   # SciPy finds the same global maximum


@pytest.mark.parametrize("param", PARAMS)
def test_adaptive_trust_region_matches_dense(param):
    p, th = setup(param, n=4, d=6, m=2, seed=7, on=False, scale=0.8)
    rho = 0.3
    val = S.worst_adaptive_quadratic(p, th, rho=rho, eta=0.01)
    H = D.hessian(p, th)
    g = D.gradient(p, th)
    for m in range(th.shape[0]):
        T = np.abs(th[m]) + 0.01
        np.testing.assert_allclose(val[m], dense_trust_region(T * g[m], T[:, None] * H[m] * T[None, :], rho),
                                   rtol=1e-9)


@pytest.mark.parametrize("param", PARAMS)
def test_trust_region_on_manifold_is_half_rho2_lambda_max(param):
    p, th = setup(param)
    rho = 0.2
    np.testing.assert_allclose(S.worst_quadratic(p, th, rho=rho), 0.5 * rho ** 2 * S.lambda_max(p, th),
                               rtol=1e-12)


# --------------------------------------------------------------------------- worst case (ascent)
def remainder_bound(p, th, rho):
    """Bound on |L(theta + delta) - L - g.delta - delta.H delta / 2| over ||delta|| <= rho.

    Z Delta = J delta + Z q(delta) with q = a^2 - b^2 ('uu-vv', ||q|| <= rho^2) or a b ('uv',
    ||q|| <= rho^2/2), so the remainder (1/n)(J delta).Z q + (1/2n)||Z q||^2 is at most
    (||J|| ||Z|| c rho^3 + ||Z||^2 c^2 rho^4/2)/n.
    """
    c = {"uu-vv": 1.0, "uv": 0.5}[p.param.name]
    Zn = np.linalg.norm(p.Z, 2)
    Jn = np.linalg.norm(D.jacobian(p, th), 2, axis=(1, 2))
    return (Jn * Zn * c * rho ** 3 + 0.5 * Zn ** 2 * c * c * rho ** 4) / p.n


@pytest.mark.parametrize("param", ["uu-vv", "uv"])
@pytest.mark.parametrize("on", [True, False])
def test_worst_case_ascent_vs_quadratic_model(param, on):
    p, th = setup(param, n=5, d=8, m=3, seed=8, on=on, scale=0.6)
    rho = 0.1
    q, dq = S.worst_quadratic(p, th, rho=rho, return_perturbation=True)
    at_q = D.loss(p, th + dq) - D.loss(p, th)
    rem = at_q - q
    assert np.all(np.abs(rem) <= remainder_bound(p, th, rho))
    # random starts only: still at least the quadratic value minus the remainder
    w_rand, x = S.worst(p, th, rho=rho, model_starts=False, n_random=4, return_perturbation=True)
    assert np.all(w_rand >= q - np.abs(rem) - 1e-12 * np.abs(q))
    assert np.all(w_rand >= q - remainder_bound(p, th, rho))
    assert np.all(np.linalg.norm(x, axis=1) <= rho * (1 + 1e-12))
    np.testing.assert_allclose(D.loss(p, th + x) - D.loss(p, th), w_rand, rtol=1e-10, atol=1e-15)
    # default starts (+-delta_Q): at least the value at delta_Q, and the same maximum
    w_def = S.worst(p, th, rho=rho)
    assert np.all(w_def >= at_q - 1e-13 * np.abs(at_q))
    np.testing.assert_allclose(w_def, w_rand, rtol=1e-8)


@pytest.mark.parametrize("param", PARAMS)
def test_worst_case_matches_scipy_multistart(param):
    p, th = setup(param, n=4, d=5, m=2, seed=9, on=False, scale=0.6)
    rho = 0.4
    val = S.worst(p, th, rho=rho, n_random=3)
    for m in range(th.shape[0]):
        base = D.loss(p, th[m])[0]
        f = lambda x: D.loss(p, th[m] + x)[0] - base  # noqa: E731
        gr = lambda x: D.gradient(p, th[m] + x)[0]  # noqa: E731
        sc = scipy_ball_max(f, gr, p.dim, rho, starts=30)
        assert val[m] >= sc - 1e-8 * abs(sc)


@pytest.mark.parametrize("param", ["uu-vv", "uv"])
def test_adaptive_worst_case_matches_scipy_multistart(param):
    p, th = setup(param, n=4, d=5, m=2, seed=10, on=True)
    rho = 0.3
    val = S.worst_adaptive(p, th, rho=rho, n_random=3)
    for m in range(th.shape[0]):
        T = np.abs(th[m])
        base = D.loss(p, th[m])[0]
        f = lambda e: D.loss(p, th[m] + T * e)[0] - base  # noqa: E731
        gr = lambda e: T * D.gradient(p, th[m] + T * e)[0]  # noqa: E731
        sc = scipy_ball_max(f, gr, p.dim, rho, starts=30)
        assert val[m] >= sc - 1e-8 * abs(sc)


# --------------------------------------------------------------------------- geodesic
def test_first_order_geodesic_equals_adaptive_sharpness():
    rho = 0.3  # <= 1/sqrt(2)
    for on in (True, False):
        p, th = setup("uv", n=5, d=8, m=3, seed=11, on=on, scale=0.6)
        first = S.geodesic(p, th, order="first", rho=rho, n_random=2)
        adaptive = S.worst_adaptive(p, th, rho=rho, n_random=2)
        np.testing.assert_allclose(first, adaptive, rtol=1e-9)
        # "uu-vv": through the corresponding "uv" point (p, q) = (u + v, u - v)
        pu, thu = setup("uu-vv", n=5, d=8, m=3, seed=12, on=on, scale=0.6)
        first = S.geodesic(pu, thu, order="first", rho=rho, n_random=2)
        adaptive = S.worst_adaptive(pu.with_param("uv"), corresponding_uv(thu), rho=rho, n_random=2)
        np.testing.assert_allclose(first, adaptive, rtol=1e-9)


def rescale(param, th, a):
    """The symmetry: (u, v) -> (a u, v / a) for "uv"; the same on (p, q) = (u + v, u - v) for "uu-vv"."""
    d = th.shape[1] // 2
    if param == "uv":
        return np.concatenate([th[:, :d] * a, th[:, d:] / a], axis=1)
    P, Q = th[:, :d] + th[:, d:], th[:, :d] - th[:, d:]
    P, Q = P * a, Q / a
    return np.concatenate([(P + Q) / 2, (P - Q) / 2], axis=1)


@pytest.mark.parametrize("param", ["uu-vv", "uv"])
def test_geodesic_invariant_under_rescaling_while_euclidean_is_not(param):
    p, th = setup(param, n=5, d=8, m=3, seed=13)
    a = np.exp(np.random.default_rng(3).uniform(-0.7, 0.7, size=p.d))
    th2 = rescale(param, th, a)
    np.testing.assert_allclose(p.w(th2), p.w(th), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(D.loss(p, th2), D.loss(p, th), rtol=1e-10, atol=1e-20)
    rho = 0.2
    for fn in (S.geodesic_inv, S.geodesic_mix):
        np.testing.assert_allclose(fn(p, th2, rho=rho), fn(p, th, rho=rho), rtol=1e-10)
    w1, w2 = S.worst(p, th, rho=0.05), S.worst(p, th2, rho=0.05)
    assert np.all(np.abs(w2 - w1) > 0.01 * np.abs(w1))
    l1, l2 = S.lambda_max(p, th), S.lambda_max(p, th2)
    assert np.all(np.abs(l2 - l1) > 0.01 * l1)


@pytest.mark.parametrize("on", [True, False])
def test_geodesic_mix_is_the_exact_quadratic(on):
    p, th = setup("uv", n=4, d=6, m=2, seed=14, on=on, scale=0.6)
    rho = 0.5
    R = rho / math.sqrt(2)
    val, b = S.geodesic(p, th, metric="mix", rho=rho, return_perturbation=True)
    beta = p.w(th)
    r = beta @ p.Z.T - p.y
    for m in range(th.shape[0]):
        Zb = p.Z * (2 * beta[m])
        g = Zb.T @ r[m] / p.n
        H = Zb.T @ Zb / p.n
        np.testing.assert_allclose(val[m], dense_trust_region(g, H, R) if not on else
                                   0.5 * R ** 2 * np.linalg.eigvalsh(H)[-1], rtol=1e-9)
        L1 = 0.5 * np.mean((p.Z @ (beta[m] * (1 + 2 * b[m])) - p.y) ** 2)
        np.testing.assert_allclose(L1 - 0.5 * np.mean(r[m] ** 2), val[m], rtol=1e-10, atol=1e-15)
        assert np.linalg.norm(b[m]) <= R * (1 + 1e-12)


def test_geodesic_inv_matches_scipy_multistart():
    p, th = setup("uv", n=4, d=5, m=2, seed=15, on=True)
    rho = 0.6
    R = rho / math.sqrt(2)
    val = S.geodesic_inv(p, th, rho=rho, n_random=3)
    beta = p.w(th)
    for m in range(th.shape[0]):
        L = lambda bb: 0.5 * np.mean((p.Z @ (beta[m] * np.exp(2 * bb)) - p.y) ** 2)  # noqa: E731
        def gr(bb, m=m):
            e = np.exp(2 * bb)
            return (p.Z.T @ (p.Z @ (beta[m] * e) - p.y) / p.n) * beta[m] * 2 * e
        base = L(np.zeros(p.d))
        with np.errstate(over="ignore", invalid="ignore"):   # SLSQP may probe far outside the ball
            sc = scipy_ball_max(lambda bb: L(bb) - base, gr, p.d, R, starts=30)
        assert val[m] >= sc - 1e-8 * abs(sc)


def test_geodesic_undefined_for_depth():
    p, th = setup("depth-3", m=1)
    with pytest.raises(DiagsimError, match="geodesic"):
        S.geodesic_inv(p, th)
    assert "geodesic_mix" not in S.evaluate(p, th, names="all", rho=0.05)
    with pytest.raises(DiagsimError, match="not defined"):
        S.evaluate(p, th, ["geodesic_mix"])


# --------------------------------------------------------------------------- evaluate / registry
def test_evaluate_matches_direct_calls_and_routes_options():
    p, th = setup("uu-vv", n=6, d=12, m=3, seed=16)
    out = S.evaluate(p, th, "all", rho=0.07, rho_adaptive=0.2, order=3.0, lam=0.1)
    assert list(out) == list(S.MEASURES)
    assert list(S.evaluate(p, th)) == list(S.DEFAULT_MEASURES)
    assert not set(S.DEFAULT_MEASURES) & S.ITERATIVE
    for vals in out.values():
        assert vals.shape == (3,)
    np.testing.assert_allclose(out["renyi"], S.renyi(p, th, order=3.0), rtol=1e-13)
    np.testing.assert_allclose(out["renyi_u"], S.renyi(p, th, order=3.0, block="u"), rtol=1e-13)
    np.testing.assert_allclose(out["trace_diag_pow"], S.trace_diag_pow(p, th, lam=0.1), rtol=1e-13)
    np.testing.assert_allclose(out["average"], S.average(p, th, rho=0.07), rtol=1e-13)
    np.testing.assert_allclose(out["average_adaptive"], S.average_adaptive(p, th, rho=0.2), rtol=1e-13)
    np.testing.assert_allclose(out["geodesic_mix"], S.geodesic_mix(p, th, rho=0.2), rtol=1e-12)
    np.testing.assert_allclose(out["worst"], S.worst(p, th, rho=0.07), rtol=1e-12)
    np.testing.assert_allclose(out["lambda_max"], S.lambda_max(p, th), rtol=1e-13)
    one = S.evaluate(p, th[1], "trace, lambda_max")
    assert list(one) == ["trace", "lambda_max"] and one["trace"].shape == (1,)
    with pytest.raises(DiagsimError, match="option 'order'"):
        S.evaluate(p, th, ["trace"], order=2.0)
    with pytest.raises(DiagsimError, match="lam"):
        S.evaluate(p, th, ["trace_diag_pow"], lam=1.5)
    with pytest.raises(DiagsimError, match="rho"):
        S.evaluate(p, th, ["average"], rho=-1)


def test_kendall_tau_helper():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(30), rng.standard_normal(30)
    tau, pval = S.kendall_tau(a, b)
    ref = stats.kendalltau(a, b)
    assert tau == pytest.approx(ref.statistic) and pval == pytest.approx(ref.pvalue)
    assert S.kendall_tau(a, 2 * a + 1)[0] == pytest.approx(1.0)
    table = S.kendall_table({"x": a, "y": -a}, a)
    assert table["y"][0] == pytest.approx(-1.0)
    with pytest.raises(DiagsimError, match="same length"):
        S.kendall_tau(a, b[:5])
    with pytest.raises(DiagsimError, match="at least 2"):
        S.kendall_tau(a[:1], b[:1])


def test_weighted_gram_matches_foundation_and_chunked_path(monkeypatch):
    from diagsim.measures import eigen
    from diagsim.networks.diagonal import gram
    p, th = setup("uu-vv", n=6, d=12, m=4, seed=17)
    wu, wv = 2 * th[:, :p.d], -2 * th[:, p.d:]
    ref = D.gauss_newton_gram(p, th)
    np.testing.assert_allclose(eigen.weighted_gram(p, wu ** 2 + wv ** 2) / p.n, ref, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(gram, "PAIR_MEMORY_LIMIT", 0)  # the chunked product instead of the pair products
    q = make_problem(6, 12, 2, seed=17)          # a fresh problem: no cached pair products
    np.testing.assert_allclose(eigen.weighted_gram(q, wu ** 2 + wv ** 2) / q.n, D.gauss_newton_gram(q, th),
                               rtol=1e-12, atol=1e-14)
