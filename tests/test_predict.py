"""diagsim.predict against independent references: KKT conditions of the LP (HiGHS duals), brute-force
enumeration of basic solutions in plain Python, random feasible points, and a long gradient-flow run
(scipy solve_ivp) for the Woodworth interpolator."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from diagsim import DiagsimError, make_problem
from diagsim.networks.diagonal.problem import Problem
from diagsim.optimizers import GD, SGD, AdaGrad, Adalayer, Adam, AdamMini, LabelNoise, Minibatch, NoNoise, RMSProp
from diagsim.predict import predict, reduce_system, weighted_l1


def _basic_solutions(Z, y, max_size=None):
    """All basic solutions of Z w = y by brute force: every support S with |S| <= rank, least squares on S,
    kept when it solves the system exactly (plain loop, independent of the package's batched code)."""
    n, d = Z.shape
    r = np.linalg.matrix_rank(Z)
    out = []
    for k in range(1, (max_size or r) + 1):
        for S in itertools.combinations(range(d), k):
            ZS = Z[:, S]
            if np.linalg.matrix_rank(ZS) < k:
                continue
            x, *_ = np.linalg.lstsq(ZS, y, rcond=None)
            if np.max(np.abs(ZS @ x - y)) <= 1e-9 * (1 + np.max(np.abs(y))):
                wv = np.zeros(d)
                wv[list(S)] = x
                out.append(wv)
    return out


def _weighted_lp_value(wv, s, p, e):
    return float(np.sum(s**p * np.abs(wv) ** e))


# ----------------------------------------------------------------------------- SGD: LP
@pytest.mark.parametrize("design,seed", [("gaussian", 0), ("gaussian", 1), ("rademacher", 2)])
def test_lp_satisfies_kkt_with_highs_duals(design, seed):
    pb = make_problem(6, 15, 2, design=design, seed=seed)
    pred = predict(pb, "sgd")
    wv = pred.w
    c = 4.0 * pb.s                                     # R = sum 4 s_i |w_i|
    lp = weighted_l1(reduce_system(pb.Z, pb.y), c, c)
    nu = lp.nu                                         # equality multipliers from linprog's marginals
    g = pb.Z.T @ nu
    tol = 1e-8 * (1 + np.max(c))
    assert pred.residual <= 1e-10                      # primal feasibility
    assert np.all(np.abs(g) <= c + tol)                # dual feasibility: reduced costs c -+ Z^T nu >= 0
    on = np.abs(wv) > 1e-12                            # complementary slackness: Z^T nu = c sign(w) on supp
    np.testing.assert_allclose(g[on], c[on] * np.sign(wv[on]), atol=tol)
    assert np.sum(c * np.abs(wv)) == pytest.approx(float(pb.y @ nu), rel=1e-9)   # zero duality gap
    assert pred.is_global and pred.objective == pytest.approx(np.sum(c * np.abs(wv)), rel=1e-12)


@pytest.mark.parametrize("design,seed", [("gaussian", 3), ("rademacher", 4)])
def test_lp_matches_brute_force_basic_solutions(design, seed):
    pb = make_problem(4, 10, 2, design=design, seed=seed)
    best = min(_weighted_lp_value(b, pb.s, 1.0, 1.0) for b in _basic_solutions(pb.Z, pb.y))
    pred = predict(pb, "sgd")
    assert _weighted_lp_value(pred.w, pb.s, 1.0, 1.0) == pytest.approx(best, rel=1e-9)


def test_adame_lambda_zero_equals_sgd():
    pb = make_problem(8, 30, 3, seed=5)
    sgd = predict(pb, "sgd")
    for pred in (predict(pb, "adame", lam=0.0), predict(pb, Adam(lr=0.1, lam=0.0))):
        np.testing.assert_allclose(pred.w, sgd.w, atol=1e-12)
        assert pred.objective == pytest.approx(sgd.objective, rel=1e-12)
        assert pred.measures["adame"] == pytest.approx(sgd.measures["trace"], rel=1e-12)


# ----------------------------------------------------------------------------- Adam: weighted l_1/2
@pytest.mark.parametrize("seed,design", [(0, "gaussian"), (1, "gaussian"), (2, "rademacher"),
                                         (6, "gaussian")])
def test_support_enumeration_matches_brute_force(seed, design):
    pb = make_problem(3, 8, 2, design=design, teacher="uniform", seed=seed)
    pred = predict(pb, "adam", method="global")
    R = lambda wv: _weighted_lp_value(wv, pb.s, 0.5, 0.5) * 2.0  # noqa: E731 - 2 sum sqrt(s |w|)
    basics = _basic_solutions(pb.Z, pb.y)
    best = min(R(b) for b in basics)
    assert pred.is_global and "support enumeration" in pred.method
    assert pred.objective == pytest.approx(best, rel=1e-10)
    assert R(pred.w) == pytest.approx(best, rel=1e-10)
    # independent sanity check of the vertex argument: no feasible point does better
    rng = np.random.default_rng(seed)
    w0 = np.linalg.lstsq(pb.Z, pb.y, rcond=None)[0]
    N = np.linalg.svd(pb.Z)[2][pb.n:].T
    pts = w0 + rng.standard_normal((20000, N.shape[1])) @ N.T * rng.uniform(0, 3, (20000, 1))
    vals = 2.0 * np.sum(np.sqrt(pb.s * np.abs(pts)), axis=1)
    assert np.min(vals) >= best * (1 - 1e-12)


def test_adam_and_rmsprop_specs_and_lam():
    pb = make_problem(4, 10, 2, seed=7)
    a = predict(pb, "adam")
    for other in (predict(pb, "rmsprop"), predict(pb, Adam(lr=0.1)), predict(pb, RMSProp(lr=0.1))):
        np.testing.assert_allclose(other.w, a.w, atol=1e-12)
    e1 = predict(pb, "adame", lam=0.3)
    e2 = predict(pb, Adam(lr=0.1, lam=0.3))
    np.testing.assert_allclose(e1.w, e2.w, atol=1e-12)
    best = min(np.sum((4 * pb.s * np.abs(b)) ** 0.7) for b in _basic_solutions(pb.Z, pb.y))
    assert e1.objective == pytest.approx(best, rel=1e-10)


def test_local_method_returns_a_basic_solution_no_better_than_global():
    pb = make_problem(5, 14, 2, teacher="uniform", seed=8)
    glob = predict(pb, "adam", method="global")
    loc = predict(pb, "adam", method="local")
    assert not loc.is_global and loc.method.startswith("local")
    assert len(loc.support) <= pb.n and loc.residual <= 1e-9
    assert loc.objective >= glob.objective * (1 - 1e-12)
    # a start at the global minimizer stays there (every basic solution is a local minimizer)
    again = predict(pb, "adam", method="local", x0=glob.w)
    np.testing.assert_allclose(again.w, glob.w, atol=1e-10)


def test_auto_falls_back_to_local_and_global_refuses_with_the_count():
    pb = make_problem(10, 40, 2, seed=9)   # C(40, 10) = 847,660,528 supports
    pred = predict(pb, "adam", max_supports=1000)
    assert not pred.is_global and any("C(40, 10) = 8.48e+08" in n for n in pred.notes)
    with pytest.raises(DiagsimError, match="C\\(40, 10\\)"):
        predict(pb, "adam", method="global", max_supports=1000)


# ----------------------------------------------------------------------------- gradient flow: Woodworth
def _gradient_flow_end(pb, T=1000.0):
    Z, y, n, d = pb.Z, pb.y, pb.n, pb.d
    uv = pb.param.name == "uv"

    def rhs(_, th):
        u, v = th[:d], th[d:]
        g = Z.T @ (Z @ (u * v if uv else u * u - v * v) - y) / n
        return np.concatenate([-v * g, -u * g]) if uv else np.concatenate([-2 * u * g, 2 * v * g])

    sol = solve_ivp(rhs, (0.0, T), pb.theta0(1)[0], method="DOP853", rtol=1e-12, atol=1e-14)
    th = sol.y[:, -1]
    wT = th[:d] * th[d:] if uv else th[:d] ** 2 - th[d:] ** 2
    assert np.max(np.abs(Z @ wT - y)) < 1e-9   # the flow has converged to the manifold
    return wT, th


@pytest.mark.parametrize("init,param", [("constant", "uu-vv"), ("gaussian", "uu-vv"), ("gaussian", "uv")])
def test_woodworth_interpolator_equals_gradient_flow_limit(init, param):
    pb = make_problem(3, 6, 2, init=init, alpha=0.3, parametrization=param, seed=3)
    wT, thT = _gradient_flow_end(pb)
    pred = predict(pb, "gd")
    assert np.max(np.abs(pred.w - wT)) < 1e-6
    assert np.max(np.abs(pred.theta - thT)) < 1e-6
    assert pred.residual < 1e-10
    np.testing.assert_allclose(predict(pb, GD(lr=0.01)).w, pred.w, atol=1e-14)
    np.testing.assert_allclose(predict(pb, SGD(lr=0.01, noise=NoNoise())).w, pred.w, atol=1e-14)


@pytest.mark.slow
def test_woodworth_small_init_long_flow():
    pb = make_problem(5, 12, 2, init="gaussian", alpha=0.05, seed=11)
    wT, _ = _gradient_flow_end(pb, T=20000.0)
    assert np.max(np.abs(predict(pb, "gd").w - wT)) < 1e-6


# ----------------------------------------------------------------------------- Adam-mini / Adalayer
def test_block_prediction_matches_brute_force():
    pb = make_problem(3, 8, 2, teacher="uniform", seed=12)
    pred = predict(pb, "adam-mini")
    d = pb.d

    def R(wv):  # 2 sqrt(d) (sqrt(sum s w+) + sqrt(sum s w-))
        return 2 * np.sqrt(d) * (np.sqrt(pb.s @ np.maximum(wv, 0)) + np.sqrt(pb.s @ np.maximum(-wv, 0)))

    best = min(R(b) for b in _basic_solutions(pb.Z, pb.y))
    assert pred.objective == pytest.approx(best, rel=1e-9) and pred.is_global
    assert predict(pb, Adalayer(lr=0.1)).objective == pytest.approx(best, rel=1e-9)
    assert predict(pb, AdamMini(lr=0.1)).objective == pytest.approx(best, rel=1e-9)


def test_block_prediction_uv_is_the_lp():
    # "uv": R_block = 2 sqrt(d sum s|w|) is increasing in the weighted l1 norm: same argmin as SGD
    pb = make_problem(5, 12, 2, parametrization="uv", seed=13)
    np.testing.assert_allclose(predict(pb, "adam-mini").w, predict(pb, "sgd").w, atol=1e-10)


# ----------------------------------------------------------------------------- user parametrizations
def test_user_parametrization_cubic():
    """w = u^3 - v^3 (as a string and as a SymPy expression), no code change: SGD -> sum 9 2^(-1/3) s|w|^(4/3)
    (convex), Adam -> sum 3 sqrt(s)|w|^(2/3) (concave)."""
    import sympy as sp

    pb = make_problem(4, 10, 2, teacher="uniform", seed=14)
    expr = sp.Symbol("u") ** 3 - sp.Symbol("v") ** 3
    sgd = predict(pb, "sgd", parametrization="u**3 - v**3")
    np.testing.assert_allclose(predict(pb, "sgd", parametrization=expr).w, sgd.w, atol=1e-12)
    np.testing.assert_allclose(predict(pb, "sgd", parametrization="depth-3").w, sgd.w, atol=1e-12)
    # KKT of the convex problem: grad R(w) = 9 2^(-1/3) (4/3) s |w|^(1/3) sign(w) lies in range(Z^T)
    grad = 9 * 2 ** (-1 / 3) * (4 / 3) * pb.s * np.cbrt(sgd.w)
    coef, *_ = np.linalg.lstsq(pb.Z.T, grad, rcond=None)
    assert np.max(np.abs(pb.Z.T @ coef - grad)) < 1e-8 * np.max(np.abs(grad))
    assert sgd.residual < 1e-10 and "convex" in sgd.method
    adam = predict(pb, "adam", parametrization="u**3 - v**3")
    R = lambda wv: float(np.sum(3 * np.sqrt(pb.s) * np.abs(wv) ** (2 / 3)))  # noqa: E731
    best = min(R(b) for b in _basic_solutions(pb.Z, pb.y))
    assert adam.objective == pytest.approx(best, rel=1e-10) and adam.parametrization == "u**3 - v**3"


def test_convex_power_law_depth4():
    pb = make_problem(4, 9, 2, seed=15, parametrization="depth-4")
    pred = predict(pb, "sgd")              # 16 s |w|^(3/2)
    grad = 16 * 1.5 * pb.s * np.sign(pred.w) * np.sqrt(np.abs(pred.w))
    coef, *_ = np.linalg.lstsq(pb.Z.T, grad, rcond=None)
    assert np.max(np.abs(pb.Z.T @ coef - grad)) < 1e-8 * np.max(np.abs(grad))
    assert pred.residual < 1e-10


# ----------------------------------------------------------------------------- rank deficiency, errors
def _problem(Z, y):
    return Problem(Z, y, None, "uu-vv")


def test_rank_deficient_consistent_design():
    rng = np.random.default_rng(16)
    Z = rng.standard_normal((3, 8))
    Z = np.vstack([Z, Z[0] + Z[1]])        # rank 3 < n = 4
    wt = np.zeros(8)
    wt[[1, 5]] = [1.0, -0.5]
    pred = predict(_problem(Z, Z @ wt), "adam")
    assert pred.details["rank"] == 3 and pred.residual < 1e-10 and "C(8, 3)" in pred.method


def test_errors():
    pb = make_problem(4, 10, 2, seed=17)
    Z = np.vstack([pb.Z, pb.Z[0]])
    y = np.concatenate([pb.y, [pb.y[0] + 1.0]])    # inconsistent duplicate row
    with pytest.raises(DiagsimError, match="no solution"):
        predict(_problem(Z, y), "sgd")
    with pytest.raises(DiagsimError, match="optimizer must be one of"):
        predict(pb, "lion")
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(DiagsimError, match="lam"):
            predict(pb, "adame", lam=bad)
    with pytest.raises(DiagsimError, match="needs lam"):
        predict(pb, "adame")
    with pytest.raises(DiagsimError, match="minibatch"):
        predict(pb, SGD(lr=0.1, noise=Minibatch(2)))
    with pytest.raises(DiagsimError, match="adagrad"):
        predict(pb, AdaGrad(lr=0.1))
    with pytest.raises(DiagsimError, match="Woodworth"):
        predict(pb, "gd", parametrization="depth-3")
    with pytest.raises(DiagsimError, match="method"):
        predict(pb, "adam", method="best")
    with pytest.raises(DiagsimError, match="blocks"):
        predict(pb, AdamMini(lr=0.1, blocks=tuple([0] * 10 + [1] * 10)))
    assert predict(pb, SGD(lr=0.1, noise=LabelNoise(0.5))).method.startswith("LP")


def test_woodworth_dual_newton_converges_where_armijo_stalled_on_rounding():
    # regression: this instance stalled at max|Zw - y| ~ 4e-10 (every step rejected by an exact Armijo test)
    from diagsim.networks.diagonal.problem import make_problem
    from diagsim.predict import predict
    pb = make_problem(10, 30, 3, alpha=1.0, init="gaussian", seed=1)
    pred = predict(pb, "gd")
    assert pred.residual <= 1e-12
    np.testing.assert_allclose(pb.Z @ pred.w, pb.y, atol=1e-12)
