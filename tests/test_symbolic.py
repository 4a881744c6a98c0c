"""diagsim.symbolic: derived measures and fibre-minimized regularizers against docs/theory.md §3.4, §9.3,
hand derivations, brute-force numerical fibre minimization and the Numba derivative kernels."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from diagsim import DiagsimError, make_problem
from diagsim.symbolic import (
    G_abs,
    G_neg,
    G_pos,
    W,
    block_regularizer,
    d,
    diag_hessian,
    diag_hessian_values,
    lam,
    measure_summand,
    measure_values,
    regularizer,
    s,
    symbolic_parametrization,
    u,
    v,
    w,
)


def _zero(expr) -> bool:
    """simplify(expr) == 0; for symbolic exponents the powers are first split ((a b)**x -> a**x b**x, valid
    here because every base is positive: s > 0, W = |w| > 0)."""
    if sp.simplify(expr) == 0:
        return True
    return sp.simplify(sp.expand_power_base(sp.expand(expr), force=True)) == 0


# ------------------------------------------------------------------------ docs/theory.md §3.4 (on Gamma)
def test_uuvv_measures_equal_theory_section1():
    hu, hv = diag_hessian("uu-vv")
    assert _zero(hu - 4 * s * u**2) and _zero(hv - 4 * s * v**2)          # diag H = 4 (s u^2, s v^2)
    assert _zero(measure_summand("uu-vv", "trace") - 4 * s * (u**2 + v**2))  # tr H = 4 sum s (u^2 + v^2)
    assert _zero(measure_summand("uu-vv", "adam") - 2 * sp.sqrt(s) * (sp.Abs(u) + sp.Abs(v)))
    # tr diag(H)^{1-lambda} at lambda = 1/2 is the Adam measure, at lambda = 0 it is tr H
    ame = measure_summand("uu-vv", "adame")
    assert _zero(ame.subs(lam, sp.Rational(1, 2)) - measure_summand("uu-vv", "adam"))
    assert _zero(ame.subs(lam, 0) - measure_summand("uu-vv", "trace"))


def test_uv_trace_is_half_of_uuvv_at_the_corresponding_point():
    # docs/theory.md §2.2: p = u + v, q = u - v maps "uu-vv" to "uv"; tr H("uu-vv") = 2 tr H("uv")
    tr_uv = measure_summand("uv", "trace").subs({u: u + v, v: u - v}, simultaneous=True)
    assert _zero(measure_summand("uu-vv", "trace") - 2 * tr_uv)


# -------------------------------------------------------------------- docs/theory.md §9.3 (fibre minima)
def test_uuvv_regularizers_equal_theory_section45():
    R_sgd = regularizer("uu-vv", "trace")
    R_adam = regularizer("uu-vv", "adam")
    closed_sgd = 4 * s * sp.Abs(w)              # min tr H over the fibre = 4 s |w|
    closed_adam = 2 * sp.sqrt(s * sp.Abs(w))    # min tr diag(H)^{1/2} = 2 sqrt(s |w|)
    for R, closed in ((R_sgd, closed_sgd), (R_adam, closed_adam)):
        # sign cases w = W > 0 and w = -W
        assert _zero(R.pos - closed.subs(w, W))
        assert _zero(R.neg - closed.subs(w, -W))
        assert _zero(R.expr - closed)
        assert R.exact


def _hand(name):
    """Hand derivations (per coordinate, w = +-W), see the docstring of each case."""
    S, A = s, sp.Abs(w)
    if name == "uv":           # min s(u^2+v^2) s.t. uv = w: AM-GM, |u| = |v| = sqrt|w|
        return 2 * S * A, 2 * sp.sqrt(S * A)
    if name == "depth-4":      # u^4 - v^4 = w: dominant point v = 0 (w > 0) / u = 0 (w < 0)
        return 16 * S * A**sp.Rational(3, 2), 4 * sp.sqrt(S) * A**sp.Rational(3, 4)
    # odd depth 3: with A = u^3, B = v^3, A - B = w: tr H = 9 s (|A|^{4/3} + |B|^{4/3}) is convex,
    # minimized at A = -B = w/2: 9 s 2^{-1/3} |w|^{4/3}; the Adam measure 3 sqrt(s)(|A|^{2/3} + |B|^{2/3}) is
    # concave, minimized at B = 0: 3 sqrt(s) |w|^{2/3}
    return 9 * S * 2**sp.Rational(-1, 3) * A**sp.Rational(4, 3), 3 * sp.sqrt(S) * A**sp.Rational(2, 3)


@pytest.mark.parametrize("spec", ["uv", "depth-4", "depth-3", "u**3 - v**3",
                                  sp.Symbol("u")**3 - sp.Symbol("v")**3])
def test_regularizers_equal_hand_derivations(spec):
    name = spec if spec in ("uv", "depth-4") else "depth-3"
    sgd, adam = _hand(name)
    for R, closed in ((regularizer(spec, "trace"), sgd), (regularizer(spec, "adam"), adam)):
        assert _zero(R.pos - closed.subs(w, W)) and _zero(R.neg - closed.subs(w, -W))


def test_adame_symbolic_lambda_uuvv_and_consistency():
    R = regularizer("uu-vv", "adame")   # symbolic lambda via the dominant fibre point
    closed = (4 * s * sp.Abs(w)) ** (1 - lam)
    assert _zero(R.pos - closed.subs(w, W))
    assert _zero(R.neg - closed.subs(w, -W))
    # numeric lambda (exact 1-D method) agrees with the symbolic formula; lambda = 0 is tr H
    for x in (sp.Rational(3, 10), sp.Rational(1, 3)):
        Rn = regularizer("uu-vv", "adame", x)
        assert _zero(Rn.pos - R.pos.subs(lam, x))
    assert _zero(regularizer("uu-vv", "adame", 0.0).pos - regularizer("uu-vv", "trace").pos)
    # "uv" has no dominant point: symbolic lambda refused, numeric lambda derived (AM-GM: 2 (s|w|)^(1-lam))
    with pytest.raises(DiagsimError, match="numeric lambda"):
        regularizer("uv", "adame")
    assert _zero(regularizer("uv", "adame", 0.25).pos - 2 * (s * W) ** sp.Rational(3, 4))


def test_block_regularizers():
    B = block_regularizer("uu-vv")    # 2 sqrt(d) (sqrt(sum s w+) + sqrt(sum s w-))
    assert B.kind == "decoupled" and B.kappa == 1
    assert _zero(B.expr - 2 * sp.sqrt(d) * (sp.sqrt(G_pos) + sp.sqrt(G_neg)))
    Buv = block_regularizer("uv")     # 2 sqrt(d sum s |w|)
    assert Buv.kind == "symmetric" and _zero(Buv.expr - 2 * sp.sqrt(d * G_abs))
    B3 = block_regularizer("u**3 - v**3")
    assert B3.kind == "symmetric" and B3.kappa == sp.Rational(4, 3)
    assert _zero(B3.expr - 3 * sp.sqrt(d * G_abs))


# ----------------------------------------------------------------------------- numerical brute force
def _brute_unit_fibre(spec, p, sign, n_grid=400_001):
    """min over {w(u, v) = sign} of |a|^(2p) + |b|^(2p), by a dense polar grid (each grid point is put on
    the fibre by solving w(r cos t, r sin t) = sign for r with Brent) and a local refinement."""
    from scipy.optimize import brentq, minimize_scalar

    P = symbolic_parametrization(spec)
    fw = sp.lambdify((u, v), P.expr, "numpy")
    fa = sp.lambdify((u, v), P.a, "numpy")
    fb = sp.lambdify((u, v), P.b, "numpy")

    def radius(th):
        c, sn = np.cos(th), np.sin(th)
        g = lambda r: sign * fw(r * c, r * sn) - 1.0  # noqa: E731
        if g(1e6) <= 0:
            return None
        return brentq(g, 0.0, 1e6, xtol=1e-15, rtol=1e-15)

    def meas(th):
        r = radius(th)
        if r is None:
            return np.inf
        x, y = r * np.cos(th), r * np.sin(th)
        return abs(fa(x, y)) ** (2 * p) + abs(fb(x, y)) ** (2 * p)

    th = np.linspace(0, 2 * np.pi, n_grid)
    c, sn = np.cos(th), np.sin(th)
    h = sign * fw(c, sn)
    ok = h > 1e-14
    D = P.degree
    with np.errstate(divide="ignore", invalid="ignore"):  # grid values; the best one is refined with brentq
        r = np.where(ok, np.abs(h) ** (-1.0 / D), np.nan)
        m = np.abs(fa(r * c, r * sn)) ** (2 * p) + np.abs(fb(r * c, r * sn)) ** (2 * p)
        vals = np.where(ok, m, np.inf)
    j = int(np.nanargmin(vals))
    step = th[1] - th[0]
    best = min(meas(th[j]), minimize_scalar(meas, bounds=(th[j] - step, th[j] + step), method="bounded",
                                            options={"xatol": 1e-13}).fun)
    return best


@pytest.mark.parametrize("spec,p", [("uu-vv", 1.0), ("uu-vv", 0.5), ("uu-vv", 0.7), ("uv", 1.0), ("uv", 0.5),
                                    ("uv", 0.6), ("depth-3", 1.0), ("depth-3", 0.5), ("depth-4", 0.75),
                                    ("u**2*v", 1.0), ("u**2*v", 0.5)])
def test_unit_fibre_minimum_matches_brute_force(spec, p):
    lam_v = 1.0 - p
    if p in (1.0, 0.5):
        R = regularizer(spec, "trace" if p == 1 else "adam")
    else:
        R = regularizer(spec, "adame", lam_v)
    cp, cn = R.coefficients()
    for sign, c in ((1, cp), (-1, cn)):
        ref = _brute_unit_fibre(spec, p, sign)
        assert c == pytest.approx(ref, rel=1e-7), (spec, p, sign)
        assert c <= ref * (1 + 1e-12)  # the exact minimum can never exceed a sampled value


def test_fibre_point_attains_the_regularizer():
    rng = np.random.default_rng(1)
    wv = rng.standard_normal(7)
    sv = rng.uniform(0.5, 2.0, 7)
    for spec in ("uu-vv", "uv", "depth-3", "u**2*v"):
        P = symbolic_parametrization(spec)
        for measure in ("trace", "adam"):
            R = regularizer(spec, measure)
            th = R.fibre_point(wv)
            fw = sp.lambdify((u, v), P.expr, "numpy")
            np.testing.assert_allclose(fw(th[:7], th[7:]), wv, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(measure_values(spec, measure, th, sv)[0], R.total(wv, sv), rtol=1e-10)


def test_regularizer_numeric_equals_lambdified_expression():
    rng = np.random.default_rng(2)
    wv, sv = rng.standard_normal(9), rng.uniform(0.5, 2.0, 9)
    for spec, measure, lv in (("uu-vv", "adam", None), ("depth-3", "trace", None), ("uv", "adame", 0.3)):
        R = regularizer(spec, measure, lv)
        f = sp.lambdify((w, s), R.expr, "numpy")
        np.testing.assert_allclose(R(wv, sv), f(wv, sv), rtol=1e-12)


def test_sign_restricted_parametrization():
    R = regularizer("u**2", "trace")      # w = u^2 >= 0: R = 4 s w, w < 0 impossible
    assert R.c_neg is sp.oo and _zero(R.pos - 4 * s * W)
    assert np.isinf(R(np.array([-1.0]), np.array([1.0]))[0])


# ----------------------------------------------------------------------------- numeric measures vs kernels
@pytest.mark.parametrize("param", ["uu-vv", "uv", "depth-3"])
def test_measures_on_manifold_match_derivative_kernels(param):
    from diagsim.networks.diagonal import derivatives
    from diagsim.networks.diagonal.manifold import retract

    pb = make_problem(5, 12, 2, parametrization=param, seed=4)
    rng = np.random.default_rng(5)
    th0 = 0.8 * rng.standard_normal((2, pb.dim))
    th0[:, :pb.d] += 0.3
    th = retract(pb, th0, tol=1e-13)
    H = derivatives.hessian(pb, th)                      # dense (1/n)(J^T J + R), R = 0 on Gamma
    dg = np.einsum("mii->mi", H)
    np.testing.assert_allclose(diag_hessian_values(param, th, pb.s), dg, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(measure_values(param, "trace", th, pb.s), dg.sum(axis=1), rtol=1e-9)
    np.testing.assert_allclose(measure_values(param, "adam", th, pb.s), np.sqrt(dg).sum(axis=1), rtol=1e-9)
    np.testing.assert_allclose(measure_values(param, "adame", th, pb.s, 0.3), (dg ** 0.7).sum(axis=1),
                               rtol=1e-9)
    blk = np.sqrt(pb.d * dg[:, :pb.d].sum(axis=1)) + np.sqrt(pb.d * dg[:, pb.d:].sum(axis=1))
    np.testing.assert_allclose(measure_values(param, "block", th, pb.s), blk, rtol=1e-9)


def test_block_regularizer_is_the_fibre_minimum_numerically():
    """R_block(w) <= the block measure at any point of the fibre, with equality at the recorded minimizer;
    and a direct numerical minimization over the fibre does not go below it."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(7)
    dd = 4
    wv = np.array([0.7, -1.3, 0.4, -0.2])
    sv = rng.uniform(0.5, 2.0, dd)
    # "uu-vv": the fibre is u_i = sqrt(w_i + v_i^2) (w_i + v_i^2 >= 0)
    B = block_regularizer("uu-vv")

    def meas_uuvv(t):
        vv = np.sqrt(np.maximum(-wv, 0.0)) + np.abs(t)
        uu = np.sqrt(np.maximum(wv + vv * vv, 0.0))
        return measure_values("uu-vv", "block", np.concatenate([uu, vv]), sv)[0]

    best = min(minimize(meas_uuvv, rng.uniform(0, 1, dd), method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).fun for _ in range(5))
    assert B(wv, sv) <= best + 1e-9 and best == pytest.approx(B(wv, sv), rel=1e-6)
    # "uv": the fibre is u_i = exp(t_i) sign, v_i = w_i / u_i
    Buv = block_regularizer("uv")

    def meas_uv(t):
        uu = np.exp(t)
        return measure_values("uv", "block", np.concatenate([uu, wv / uu]), sv)[0]

    best = min(minimize(meas_uv, rng.standard_normal(dd), method="BFGS", options={"gtol": 1e-12}).fun
               for _ in range(5))
    assert Buv(wv, sv) <= best + 1e-9 and best == pytest.approx(Buv(wv, sv), rel=1e-7)
    at = measure_values("uv", "block", Buv.fibre_point(wv), sv)[0]
    np.testing.assert_allclose(at, Buv(wv, sv), rtol=1e-10)


# ----------------------------------------------------------------------------- errors
def test_bad_parametrizations_raise():
    with pytest.raises(DiagsimError, match="only"):
        symbolic_parametrization("u**2 - x")
    with pytest.raises(DiagsimError, match="parse"):
        symbolic_parametrization("u**")
    with pytest.raises(DiagsimError, match="homogeneous"):
        regularizer("u**2 - v**3", "trace")
    with pytest.raises(DiagsimError, match="homogeneous"):
        regularizer("exp(u) - v", "adam")
    with pytest.raises(DiagsimError, match="lam"):
        regularizer("uu-vv", "adame", 1.0)
    with pytest.raises(DiagsimError, match="measure"):
        regularizer("uu-vv", "sharpness")
