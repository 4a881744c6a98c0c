"""Exact minimization of a homogeneous measure over a unit fibre {(u, v) : w(u, v) = ±1}.

Setting: w is a homogeneous polynomial of degree D in (u, v) and the per-coordinate measure is

    m(u, v) = sum_j kappa_j |G_j(u, v)|**e_j,

with G_j homogeneous polynomials of degrees D_j and a common homogeneity k = e_j D_j (for the measures of
docs/theory.md §9.2: G = dw/du, dw/dv, e = 2(1 - lambda)). Then on the fibre w = sign * W (W > 0) the minimum
is W**(k/D) times the minimum over the *unit* fibre w = sign, which this module computes:

* Every point of the unit fibre is r * direction with direction (0, ±1) or sigma * (1, t), sigma = ±1,
  t real, and r = (sign * h(t))**(-1/D) where h(t) = w(sigma, sigma t) (a polynomial in t); only the t with
  sign * h(t) > 0 are on the fibre. Along it m = phi(t) = sum_j kappa_j |G_j(sigma, sigma t)|**e_j /
  (sign * h(t))**(k/D).
* The real line is cut at the real roots of h and of every G_j (exact algebraic numbers). On each open
  interval with sign * h > 0 the signs tau_j of G_j are fixed, phi is smooth and its critical points solve
  N(t) = sum_j X_j**(e_j - 1) B_j = 0 with X_j = tau_j G_j > 0 and
  B_j = kappa_j tau_j (e_j G_j' h - (k/D) G_j h'). With one term this is the polynomial B_1 = 0; with two
  terms of equal exponent e - 1 = P/Q it becomes the polynomial X_1**P B_1**Q = (-1)**Q X_2**P B_2**Q
  (P >= 0; P < 0 is multiplied through), whose real roots are checked against N(t) = 0 (raising to the
  Q-th power can add spurious roots).
* Candidates are: these critical points, the finite interval ends with h != 0 (kinks of |G_j|), the
  axis directions (0, ±1) (the limits t -> ±inf), and finite limits of phi at roots of h where the
  numerator vanishes too, or at t -> ±inf when the axis direction is not on the fibre (an infimum that
  need not be attained, flagged as "limit"). phi is continuous on
  each interval, so its minimum over the fibre is the least candidate value: the result is exact (the
  values are algebraic numbers compared at 50 digits).

When the exponents are irrational, differ between terms, or Q is too large for the polynomial to be
practical, each interval is minimized numerically instead (grid + bounded Brent) and the result is
flagged ``exact=False``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from .expressions import u, v

t = sp.Symbol("t", real=True)
_DIGITS = 50
_ZERO = sp.Float("1e-35", _DIGITS)
_MAX_DEGREE = 80  # larger critical-point polynomials: numerical minimization instead


@dataclass(frozen=True)
class Term:
    """kappa * |G(u, v)|**e."""

    kappa: sp.Expr
    G: sp.Expr
    e: sp.Expr


@dataclass(frozen=True)
class Candidate:
    """A candidate minimizer on the unit fibre: ``point`` = (x, y) with w(x, y) = sign, ``value`` m."""

    point: tuple
    value: sp.Expr
    approx: sp.Float
    kind: str


@dataclass(frozen=True)
class FibreMinimum:
    """min over {w(u, v) = sign} of the measure (``value`` is ``sp.oo`` when that fibre is empty)."""

    sign: int
    value: sp.Expr
    argmins: tuple
    candidates: tuple
    exact: bool


def _num(x) -> sp.Float:
    return sp.N(x, _DIGITS)


def _degree(G) -> int:
    poly = sp.Poly(G, u, v)
    if poly.is_zero:
        return 0
    order = poly.homogeneous_order()
    if order is None:
        raise ValueError(f"{G} is not homogeneous in u, v")
    return int(order)


def _real_roots(poly: sp.Poly) -> list:
    if poly.is_zero or poly.degree() <= 0:
        return []
    return list(dict.fromkeys(sp.real_roots(poly)))


def unit_fibre_minimum(w_expr: sp.Expr, terms: tuple[Term, ...], sign: int, *,
                       max_q: int = 24) -> FibreMinimum:
    """Minimum of sum_j kappa_j |G_j|**e_j over the unit fibre {w(u, v) = sign} (see the module text)."""
    D = _degree(w_expr)
    ks = {sp.nsimplify(tm.e * _degree(tm.G)) for tm in terms if sp.expand(tm.G) != 0}
    if len(ks) > 1:
        raise ValueError(f"the measure is not homogeneous (degrees {sorted(ks, key=float)})")
    gamma = (ks.pop() if ks else sp.Integer(0)) / D
    live = tuple(tm for tm in terms if sp.expand(tm.G) != 0)

    def m_at(x, y):
        return sum((tm.kappa * sp.Abs(tm.G.subs({u: x, v: y}, simultaneous=True)) ** tm.e for tm in live),
                   sp.Integer(0))

    cands: list[Candidate] = []
    exact = True
    # axis directions (0, sigma): the limits t -> ±inf of the other charts
    for sig in (1, -1):
        h0 = sp.nsimplify(w_expr.subs({u: 0, v: sig}, simultaneous=True))
        if sign * h0 > 0:
            val = m_at(0, sig) / (sign * h0) ** gamma
            r = (sign * h0) ** sp.Rational(-1, D)
            cands.append(Candidate((sp.Integer(0), sig * r), val, _num(val), "axis"))
    for sig in (1, -1):
        sub = {u: sig, v: sig * t}
        h = sp.Poly(sp.expand(w_expr.subs(sub, simultaneous=True)), t)
        Gs = [(tm, sp.Poly(sp.expand(tm.G.subs(sub, simultaneous=True)), t)) for tm in live]
        roots = _real_roots(h)
        for _, G in Gs:
            roots += _real_roots(G)
        # sort and merge numerically equal roots (keep the simplest representation)
        keyed = sorted(((_num(r), r) for r in roots), key=lambda p: p[0])
        cuts: list[tuple] = []
        for a, r in keyed:
            if cuts and abs(a - cuts[-1][0]) <= _ZERO * (1 + abs(a)):
                if sp.count_ops(r) < sp.count_ops(cuts[-1][1]):
                    cuts[-1] = (a, r)
                continue
            cuts.append((a, r))
        edges = [(None, None)] + cuts + [(None, None)]

        def phi_at(tt, taus=None):
            num = sum((tm.kappa * sp.Abs(G.as_expr().subs(t, tt)) ** tm.e for tm, G in Gs), sp.Integer(0))
            return num / (sign * h.as_expr().subs(t, tt)) ** gamma

        def point_at(tt):
            r = (sign * h.as_expr().subs(t, tt)) ** sp.Rational(-1, D)
            return (sig * r, sig * r * tt)

        # kinks: cut points that are on the fibre
        for _a, r in cuts:
            if sign * _num(h.as_expr().subs(t, r)) > _ZERO:
                val = phi_at(r)
                cands.append(Candidate(point_at(r), val, _num(val), "kink"))
            else:  # a root of h: finite limit only if the numerator vanishes too
                numer = sum((tm.kappa * abs(_num(G.as_expr().subs(t, r)))) for tm, G in Gs)
                if numer <= _ZERO:
                    for dirn in ("+", "-"):
                        lim = _side_limit(phi_at(t), r, dirn, h, sign)
                        if lim is not None:
                            cands.append(Candidate((sp.nan, sp.nan), lim, _num(lim), "limit"))
        for i in range(len(edges) - 1):
            lo, hi = edges[i][0], edges[i + 1][0]
            q = _sample(lo, hi)
            if sign * h.eval(q) <= 0:
                continue
            taus = [int(sp.sign(_num(G.eval(q)))) for _, G in Gs]
            # unbounded interval whose limit direction (0, ±sig) is not on the fibre: phi may still have a
            # finite limit there (an infimum at infinity); include it
            for end, bound in ((1, hi), (-1, lo)):
                if bound is None and not sign * w_expr.subs({u: 0, v: end * sig}, simultaneous=True) > 0:
                    lim = _limit_at_infinity(Gs, h, gamma, sign)
                    if lim is not None:
                        cands.append(Candidate((sp.nan, sp.nan), lim, _num(lim), "limit"))
            crit = _critical_poly(Gs, taus, h, gamma, max_q)
            if crit is None:
                exact = False
                c = _numeric_interval(phi_at(t), lo, hi, point_at)
                if c is not None:
                    cands.append(c)
                continue
            if crit.is_zero:
                val = phi_at(q)
                cands.append(Candidate(point_at(q), val, _num(val), "flat"))
                continue
            for r in _real_roots(crit):
                a = _num(r)
                if (lo is not None and a <= lo + _ZERO * (1 + abs(lo))) or \
                        (hi is not None and a >= hi - _ZERO * (1 + abs(hi))):
                    continue
                if not _is_critical(Gs, taus, h, gamma, r):
                    continue
                val = phi_at(r)
                cands.append(Candidate(point_at(r), val, _num(val), "critical"))
    if not cands:
        return FibreMinimum(sign, sp.oo, (), (), exact)
    best = min(c.approx for c in cands)
    tol = (_ZERO if exact else sp.Float(1e-9)) * (1 + abs(best))
    argmins = tuple(c for c in cands if c.approx - best <= tol)
    value = min((c.value for c in argmins), key=sp.count_ops)
    if exact and not value.has(sp.CRootOf):
        value = sp.nsimplify(sp.simplify(value)) if value.is_number else sp.simplify(value)
        if abs(_num(value) - best) > tol:  # nsimplify must not change the number
            value = min((c.value for c in argmins), key=sp.count_ops)
    return FibreMinimum(sign, value, argmins, tuple(cands), exact)


def _limit_at_infinity(Gs, h, gamma, sign):
    """lim phi(t) as |t| -> inf from the leading terms (None when it is +inf)."""
    top = gamma * h.degree()
    grow = [(tm.e * G.degree(), tm, G) for tm, G in Gs]
    if any(g > top for g, _, _ in grow):
        return None
    lc_h = abs(h.LC())
    val = sum((tm.kappa * abs(G.LC()) ** tm.e for g, tm, G in grow if g == top), sp.Integer(0))
    return val / lc_h ** gamma


def _sample(lo, hi):
    if lo is None and hi is None:
        return sp.Integer(0)
    if lo is None:
        return sp.Rational(float(hi) - 1.0).limit_denominator(10**12)
    if hi is None:
        return sp.Rational(float(lo) + 1.0).limit_denominator(10**12)
    mid = (lo + hi) / 2
    q = sp.Rational(str(mid)).limit_denominator(10**30)
    return q


def _critical_poly(Gs, taus, h, gamma, max_q):
    """The polynomial whose real roots contain the critical points of phi on an interval (None: no exact
    reduction available)."""
    hp = h.diff(t)
    X, B, es = [], [], []
    for (tm, G), tau in zip(Gs, taus):
        if tau == 0:
            return None
        X.append(G * tau)
        B.append((G.diff(t) * h * tm.e - G * hp * gamma) * (tm.kappa * tau))
        es.append(sp.nsimplify(tm.e))
    if len(X) == 0:
        return sp.Poly(0, t)
    if len(X) == 1:
        return B[0]
    if len(X) != 2 or es[0] != es[1] or not es[0].is_Rational:
        return None
    ee = es[0] - 1
    P, Q = int(ee.p), int(ee.q)
    degree = abs(P) * max(X[0].degree(), X[1].degree()) + Q * max(B[0].degree(), B[1].degree())
    if Q > max_q or degree > _MAX_DEGREE:
        return None
    sgn = (-1) ** Q
    if P == 0:
        return B[0] + B[1]
    if P > 0:
        return X[0] ** P * B[0] ** Q - X[1] ** P * B[1] ** Q * sgn
    return X[1] ** (-P) * B[0] ** Q - X[0] ** (-P) * B[1] ** Q * sgn


def _is_critical(Gs, taus, h, gamma, r) -> bool:
    hp = h.diff(t)
    total, scale = sp.Float(0, _DIGITS), sp.Float(0, _DIGITS)
    hr, hpr = _num(h.as_expr().subs(t, r)), _num(hp.as_expr().subs(t, r))
    for (tm, G), tau in zip(Gs, taus):
        g = _num(G.as_expr().subs(t, r))
        gp = _num(G.diff(t).as_expr().subs(t, r))
        x = tau * g
        if x <= 0:
            return False
        term = _num(x ** (tm.e - 1) * tm.kappa * tau * (tm.e * gp * hr - gamma * g * hpr))
        total += term
        scale += abs(term)
    return abs(total) <= sp.Float("1e-30", _DIGITS) * (scale + _ZERO)


def _side_limit(expr, r, dirn, h, sign):
    # only the side on which the point lies on the fibre
    eps = sp.Float("1e-20", _DIGITS)
    probe = _num(r) + (eps if dirn == "+" else -eps)
    if sign * _num(h.as_expr().subs(t, probe)) <= 0:
        return None
    try:
        lim = sp.limit(expr, t, r, dir=dirn)
    except Exception:  # noqa: BLE001 - SymPy cannot take this limit: no candidate
        return None
    return lim if lim.is_finite else None


def _numeric_interval(phi_expr, lo, hi, point_at):
    """Numerical minimum of phi over an open interval (grid + bounded Brent), as a Candidate."""
    from scipy.optimize import minimize_scalar

    f = sp.lambdify(t, phi_expr, "numpy")
    lo_f = None if lo is None else float(lo)
    hi_f = None if hi is None else float(hi)

    def tmap(x):
        if lo_f is None and hi_f is None:
            return np.tan(np.pi * (x - 0.5))
        if lo_f is None:
            return hi_f - x / (1.0 - x)
        if hi_f is None:
            return lo_f + x / (1.0 - x)
        return lo_f + (hi_f - lo_f) * x

    xs = np.linspace(0.0, 1.0, 4003)[1:-1]
    with np.errstate(all="ignore"):
        vals = np.array([float(f(tmap(x))) for x in xs])
    vals[~np.isfinite(vals)] = np.inf
    j = int(np.argmin(vals))
    if not np.isfinite(vals[j]):
        return None
    a, b = xs[max(j - 1, 0)], xs[min(j + 1, len(xs) - 1)]
    res = minimize_scalar(lambda x: float(f(tmap(x))), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-14})
    x_best, v_best = (res.x, res.fun) if res.fun < vals[j] else (xs[j], vals[j])
    tt = sp.Float(float(tmap(x_best)), 20)
    return Candidate(point_at(tt), sp.Float(float(v_best), 17), sp.Float(float(v_best), _DIGITS), "numeric")
