"""Fibre-minimized regularizers R(w) = min over {(u, v) : w(u, v) = w} of a measure (docs/theory.md §9.2-9.4).

For a homogeneous polynomial parametrization of degree D, a = dw/du and b = dw/dv have degree D - 1, so on
the fibre w = ±W the per-coordinate measures scale as powers of W and

    R(w) = s**p * c_sign(w) * |w|**e,    p = 1 - lambda,  e = 2 p (D - 1) / D,

where c_± is the minimum of |a|**(2p) + |b|**(2p) over the *unit* fibre w(u, v) = ±1 (computed exactly by
:func:`diagsim.symbolic.fibre.unit_fibre_minimum`). "trace" (tr H) is lambda = 0, "adam"
(tr diag(H)^{1/2}) lambda = 1/2, "adame" (tr diag(H)^{1-lambda}) any lambda in [0, 1).

For "uu-vv" this gives the closed forms 4 s |w| (SGD) and 2 sqrt(s |w|) (Adam) of docs/theory.md §9.3.

A symbolic lambda is handled when one point of each unit fibre minimizes both a**2 and b**2 (a *dominant*
point, as for "uu-vv" and even depth-D): every measure that increases with each diagonal entry of H is then
minimized there. Otherwise give lambda as a number.

The block measure of Adam-mini / Adalayer, sum_b sqrt(|b| tr H_bb) with blocks {u}, {v} of size d, couples
the coordinates (it is not a sum over i). Writing P = sum_i s_i a_i**2, N = sum_i s_i b_i**2:

* dominant case: the dominant point minimizes every a_i**2 and b_i**2 at once, hence P and N, so
  R_block = sqrt(d) [sqrt(sum_i s_i alpha_sign |w_i|**k) + sqrt(sum_i s_i beta_sign |w_i|**k)],
  k = 2 (D - 1) / D, alpha_± = min a**2 and beta_± = min b**2 on the unit fibres. "uu-vv":
  2 sqrt(d) (sqrt(sum_i s_i w_i^+) + sqrt(sum_i s_i w_i^-)).
* symmetric case (a sign flip of u and/or v maps w to -w and keeps a**2, b**2, as for "uv" and odd depth):
  the unit fibres for w = 1 and w = -1 carry the same set S of (a**2, b**2). With
  sqrt(x) = min_{c > 0} (x / c + c) / 2 the problem separates over coordinates for fixed (c_u, c_v); the
  minimum over the scale of c is sqrt(G psi(c) (c_u + c_v)) with G = sum_i s_i |w_i|**k and
  psi(c) = min_S (alpha / c_u + beta / c_v), and min over the direction of c of psi(c) (c_u + c_v) =
  min_S (sqrt(alpha) + sqrt(beta))**2. Hence R_block = sqrt(d) c_adam sqrt(sum_i s_i |w_i|**k) with
  c_adam = min over the unit fibre of |a| + |b|. "uv": 2 sqrt(d sum_i s_i |w_i|).
* otherwise no closed form is derived (a DiagsimError says so).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from ..errors import DiagsimError, as_float_array, check_interval
from .expressions import SymbolicParametrization, W, d, lam, s, symbolic_parametrization, u, v, w
from .fibre import FibreMinimum, Term, unit_fibre_minimum

G_pos = sp.Symbol("G_+", nonnegative=True)
G_neg = sp.Symbol("G_-", nonnegative=True)
G_abs = sp.Symbol("G", nonnegative=True)

_LAMBDAS = {"trace": sp.Integer(0), "adam": sp.Rational(1, 2)}
_MAX_Q = 24


@dataclass(frozen=True)
class Regularizer:
    """R(w) = min over the fibre of a separable measure, per coordinate: s**p c_sign |w|**e.

    Attributes
    ----------
    param : the parametrization.
    measure : "trace", "adam" or "adame"; ``lam`` its lambda (a number or the symbol ``lam``).
    power : p = 1 - lambda (the power of s); ``exponent`` : e = 2 p (D - 1) / D.
    c_pos, c_neg : minima over the unit fibres w = +1, w = -1 (``sp.oo``: w cannot have that sign).
    point_pos, point_neg : a minimizer (x, y) on each unit fibre (the minimizer on w = ±W is W**(1/D) (x, y)).
    exact : whether the constants are exact (else numerical, about 1e-12 relative).
    method : how they were obtained.
    """

    param: SymbolicParametrization
    measure: str
    lam: sp.Expr
    power: sp.Expr
    exponent: sp.Expr
    degree: int
    c_pos: sp.Expr
    c_neg: sp.Expr
    point_pos: tuple | None
    point_neg: tuple | None
    exact: bool
    method: str

    @property
    def pos(self) -> sp.Expr:
        """R at w = W > 0 (an expression in ``W``, ``s``; ``oo`` if w cannot be positive)."""
        return _branch(self.c_pos, self.power, W, self.exponent)

    @property
    def neg(self) -> sp.Expr:
        """R at w = -W < 0 (``oo`` if w cannot be negative)."""
        return _branch(self.c_neg, self.power, W, self.exponent)

    @property
    def expr(self) -> sp.Expr:
        """R(w) as an expression in ``w``, ``s`` (with Abs(w) when c_pos == c_neg, else a Piecewise)."""
        if self.symmetric:
            return s**self.power * self.c_pos * sp.Abs(w)**self.exponent
        return sp.Piecewise((_branch(self.c_pos, self.power, w, self.exponent), w > 0),
                            (sp.Integer(0), sp.Eq(w, 0)),
                            (_branch(self.c_neg, self.power, -w, self.exponent), True))

    @property
    def symmetric(self) -> bool:
        """Whether R depends on |w| only (c_pos == c_neg)."""
        if self.c_pos is sp.oo or self.c_neg is sp.oo:
            return False
        diff = sp.N(self.c_pos - self.c_neg, 30)
        if diff.free_symbols:
            return sp.simplify(self.c_pos - self.c_neg) == 0
        tol = 1e-25 if self.exact else 1e-10
        return bool(abs(diff) <= tol * (1 + abs(sp.N(self.c_pos, 30))))

    def coefficients(self) -> tuple[float, float]:
        """(c_pos, c_neg) as floats (inf where that sign is impossible)."""
        return _float(self.c_pos), _float(self.c_neg)

    def weights(self, s_values) -> tuple[np.ndarray, np.ndarray]:
        """Weights (s**p c_pos, s**p c_neg), (d,) each, so that R_i(w) = weight_sign |w_i|**e."""
        if not self.power.is_number:
            raise DiagsimError("this regularizer has a symbolic lambda; derive it for a number "
                               "(regularizer(..., lam_value=x))")
        sv = as_float_array("s", s_values, (None,))
        sp_ = sv ** float(self.power)
        cp, cn = self.coefficients()
        return sp_ * cp, sp_ * cn

    def __call__(self, w_values, s_values) -> np.ndarray:
        """R_i(w_i) per coordinate, shape of ``w_values`` (last axis d)."""
        wv = np.asarray(w_values, dtype=np.float64)
        wp, wn = self.weights(s_values)
        e = float(self.exponent)
        a = np.abs(wv)
        with np.errstate(invalid="ignore"):
            out = np.where(wv > 0, wp * a**e, np.where(wv < 0, wn * a**e, 0.0))
        return out

    def total(self, w_values, s_values) -> np.ndarray:
        """sum_i R_i(w_i) (over the last axis)."""
        return self(w_values, s_values).sum(axis=-1)

    def fibre_point(self, w_values) -> np.ndarray:
        """A minimizer theta = [u, v] (2d,) of the measure on the fibre of w (d,)."""
        wv = as_float_array("w", w_values, (None,))
        pts = []
        for point, c, has in ((self.point_pos, self.c_pos, np.any(wv > 0)), (self.point_neg, self.c_neg,
                                                                             np.any(wv < 0))):
            if point is None and has and c is not sp.oo:
                raise DiagsimError(f"no fibre minimizer recorded for the {self.measure} regularizer of "
                                   f"{self.param}")
            pts.append((np.nan, np.nan) if point is None else tuple(_float(x) for x in point))
        (xp, yp), (xn, yn) = pts
        r = np.abs(wv) ** (1.0 / self.degree)
        uu = np.where(wv > 0, r * xp, np.where(wv < 0, r * xn, 0.0))
        vv = np.where(wv > 0, r * yp, np.where(wv < 0, r * yn, 0.0))
        return np.concatenate([uu, vv])

    def describe(self) -> str:
        """The regularizer as text, e.g. "sum_i 4 s_i |w_i|"."""
        e, p = _exp(self.exponent), _exp(self.power)
        if self.symmetric:
            return f"sum_i {_short(self.c_pos)} s_i{p} |w_i|{e}"
        parts = [f"{_short(c)} (w_i^{sg}){e}" for c, sg in ((self.c_pos, "+"), (self.c_neg, "-"))
                 if c is not sp.oo]
        forced = (" (w_i >= 0 forced)" if self.c_neg is sp.oo else
                  " (w_i <= 0 forced)" if self.c_pos is sp.oo else "")
        return f"sum_i s_i{p} ({' + '.join(parts)}){forced}"


@dataclass(frozen=True)
class BlockRegularizer:
    """R_block(w) = min over the fibre of sum_b sqrt(|b| tr H_bb), blocks {u}, {v} (see the module text).

    ``kind`` "decoupled": sqrt(d) [sqrt(alpha_pos G_+ + alpha_neg G_-) + sqrt(beta_pos G_+ + beta_neg G_-)];
    ``kind`` "symmetric": sqrt(d) c sqrt(G); with G_± = sum_i s_i (w_i^±)**kappa, G = G_+ + G_-.
    """

    param: SymbolicParametrization
    kind: str
    kappa: sp.Expr
    alpha_pos: sp.Expr
    alpha_neg: sp.Expr
    beta_pos: sp.Expr
    beta_neg: sp.Expr
    c: sp.Expr
    expr: sp.Expr
    method: str
    point_reg: Regularizer | None = None

    def aggregates(self, w_values, s_values) -> tuple[float, float]:
        """(G_+, G_-) = (sum s_i (w_i^+)**kappa, sum s_i (w_i^-)**kappa)."""
        wv = np.asarray(w_values, dtype=np.float64)
        sv = np.asarray(s_values, dtype=np.float64)
        k = float(self.kappa)
        return (float(np.sum(sv * np.maximum(wv, 0.0) ** k)), float(np.sum(sv * np.maximum(-wv, 0.0) ** k)))

    def __call__(self, w_values, s_values) -> float:
        wv = np.asarray(w_values, dtype=np.float64)
        gp, gn = self.aggregates(wv, s_values)
        dd = wv.shape[-1]
        if self.kind == "symmetric":
            return float(np.sqrt(dd) * _float(self.c) * np.sqrt(gp + gn))
        ap, an, bp, bn = (_float(x) for x in (self.alpha_pos, self.alpha_neg, self.beta_pos, self.beta_neg))
        if (gp > 0 and not np.isfinite(ap)) or (gn > 0 and not np.isfinite(an)):
            return float("inf")
        root_u = np.sqrt(_mul(ap, gp) + _mul(an, gn))
        root_v = np.sqrt(_mul(bp, gp) + _mul(bn, gn))
        return float(np.sqrt(dd) * (root_u + root_v))

    def fibre_point(self, w_values) -> np.ndarray:
        """A minimizer theta (2d,) of the block measure on the fibre of w."""
        return self.point_reg.fibre_point(w_values)

    def describe(self) -> str:
        return f"{sp.sstr(self.expr)} with G_± = sum_i s_i (w_i^±)^{sp.nsimplify(self.kappa)}, G = G_+ + G_-"


def _branch(c, p, x, e):
    return sp.oo if c is sp.oo else s**p * c * x**e


def _exp(e) -> str:
    e = sp.nsimplify(e) if e.is_number else e
    if e == 1:
        return ""
    txt = sp.sstr(e)
    return f"^{txt}" if e.is_Integer or (e.is_Rational and "/" not in txt) else f"^({txt})"


def _mul(c: float, g: float) -> float:
    return 0.0 if g == 0.0 or not np.isfinite(c) else c * g


def _float(x) -> float:
    if x is sp.oo or x == sp.oo:
        return float("inf")
    return float(sp.N(x, 30))


def _short(x) -> str:
    x = sp.nsimplify(x) if x.is_number and not x.has(sp.CRootOf) else x
    txt = sp.sstr(x)
    return txt if len(txt) <= 24 else f"{float(sp.N(x, 17)):.12g}"


def _lam_value(measure: str, lam_value):
    if measure in _LAMBDAS:
        if lam_value is not None and sp.nsimplify(lam_value) != _LAMBDAS[measure]:
            raise DiagsimError(f"measure {measure!r} has lambda = {_LAMBDAS[measure]}; use 'adame' for "
                               "another lambda")
        return _LAMBDAS[measure]
    if measure != "adame":
        raise DiagsimError(f"measure must be 'trace', 'adam' or 'adame' (or use block_regularizer); "
                           f"got {measure!r}")
    if lam_value is None or lam_value is lam:
        return lam
    if isinstance(lam_value, sp.Basic) and not lam_value.is_number:
        raise DiagsimError(f"lam must be a number in [0, 1) or the symbol diagsim.symbolic.lam; "
                           f"got {lam_value}")
    x = check_interval("lam", float(lam_value), 0.0, 1.0)
    if isinstance(lam_value, sp.Rational):
        return lam_value
    q = sp.Rational(x).limit_denominator(10**6)
    return q if abs(float(q) - x) <= 1e-15 else sp.Float(x, 17)


def regularizer(param, measure: str = "trace", lam_value=None) -> Regularizer:
    """Derive the fibre-minimized regularizer of a separable measure.

    Parameters
    ----------
    param : a parametrization (name, Parametrization, SymPy expression or string; see
        :func:`~diagsim.symbolic.expressions.symbolic_parametrization`).
    measure : "trace" (tr H; lambda = 0), "adam" (tr diag(H)^{1/2}; lambda = 1/2) or "adame"
        (tr diag(H)^{1-lambda}).
    lam_value : lambda for "adame": a number in [0, 1) (floats are converted to nearby rationals when they
        are within 1e-15), or ``None`` / the symbol ``lam`` for a symbolic lambda.
    """
    P = symbolic_parametrization(param)
    return _regularizer(P, measure, _lam_value(measure, lam_value))


@lru_cache(maxsize=None)
def _regularizer(P: SymbolicParametrization, measure: str, lam_v) -> Regularizer:
    D = P.require_homogeneous("the fibre-minimized regularizer")
    p = 1 - lam_v
    e = sp.nsimplify(2 * p * (D - 1) / sp.Integer(D)) if p.is_number else sp.simplify(2 * p * (D - 1) / D)
    direct_ok = p.is_Rational and sp.Rational(2 * p).q <= _MAX_Q
    if direct_ok:
        terms = (Term(sp.Integer(1), P.a, 2 * p), Term(sp.Integer(1), P.b, 2 * p))
        fp, fn = (unit_fibre_minimum(P.expr, terms, sg, max_q=_MAX_Q) for sg in (1, -1))
        return Regularizer(P, measure, lam_v, p, e, D, fp.value, fn.value, _point(fp), _point(fn), True,
                           "exact 1-D minimization over the unit fibres w(u, v) = ±1")
    dom = _dominance(P)
    if dom is not None:
        (ap, bp, pt_p), (an, bn, pt_n) = dom
        return Regularizer(P, measure, lam_v, p, e, D, _sum_pow(ap, bp, p), _sum_pow(an, bn, p),
                           pt_p, pt_n, True,
                           "dominant fibre point (it minimizes a**2 and b**2 at once, hence every measure "
                           "increasing in both)")
    if not p.is_number:
        raise DiagsimError(f"the tr diag(H)^(1-lambda) regularizer of {P} has no dominant fibre point, "
                           "so it is "
                           "derived only for a numeric lambda; pass lam=<number>")
    terms = (Term(sp.Integer(1), P.a, 2 * p), Term(sp.Integer(1), P.b, 2 * p))
    fp, fn = (unit_fibre_minimum(P.expr, terms, sg, max_q=0) for sg in (1, -1))
    return Regularizer(P, measure, lam_v, p, e, D, fp.value, fn.value, _point(fp), _point(fn),
                       fp.exact and fn.exact,
                       "numeric 1-D minimization over the unit fibres (lambda is not a small-denominator "
                       "rational)")


def _sum_pow(a, b, p):
    if a is sp.oo or b is sp.oo:
        return sp.oo
    return (sp.Integer(0) if a == 0 else a**p) + (sp.Integer(0) if b == 0 else b**p)


def _point(fm: FibreMinimum):
    for c in fm.argmins:
        if c.kind != "limit":
            return tuple(c.point)
    return None


@lru_cache(maxsize=None)
def _axis_minima(P: SymbolicParametrization):
    """Per sign: (min a**2, min b**2) fibre minima on the unit fibres."""
    out = []
    for sg in (1, -1):
        fa = unit_fibre_minimum(P.expr, (Term(sp.Integer(1), P.a, sp.Integer(2)),), sg)
        fb = unit_fibre_minimum(P.expr, (Term(sp.Integer(1), P.b, sp.Integer(2)),), sg)
        out.append((fa, fb))
    return tuple(out)


def _dominance(P: SymbolicParametrization):
    """((alpha, beta, point) for w = +1, same for w = -1) if a dominant point exists on both unit fibres."""
    res = []
    for fa, fb in _axis_minima(P):
        if fa.value is sp.oo:
            res.append((sp.oo, sp.oo, None))
            continue
        hit = None
        for c in fa.argmins:
            if c.kind == "limit":
                continue
            bval = sp.N(P.b.subs({u: c.point[0], v: c.point[1]}, simultaneous=True) ** 2, 40)
            if abs(bval - sp.N(fb.value, 40)) <= sp.Float("1e-30") * (1 + abs(bval)):
                hit = c
                break
        if hit is None:
            return None
        res.append((fa.value, fb.value, tuple(hit.point)))
    return tuple(res)


def _symmetric(P: SymbolicParametrization) -> bool:
    a2, b2 = sp.expand(P.a**2), sp.expand(P.b**2)
    for su, sv in ((-1, 1), (1, -1), (-1, -1)):
        sub = {u: su * u, v: sv * v}
        if sp.expand(P.expr.subs(sub, simultaneous=True) + P.expr) == 0 and \
                sp.expand(a2.subs(sub, simultaneous=True) - a2) == 0 and \
                sp.expand(b2.subs(sub, simultaneous=True) - b2) == 0:
            return True
    return False


def block_regularizer(param) -> BlockRegularizer:
    """Derive the fibre-minimized Adam-mini / Adalayer block measure (blocks {u}, {v}; module text)."""
    return _block(symbolic_parametrization(param))


@lru_cache(maxsize=None)
def _block(P: SymbolicParametrization) -> BlockRegularizer:
    D = P.require_homogeneous("the fibre-minimized block measure")
    kappa = sp.Rational(2 * (D - 1), D)
    dom = _dominance(P)
    if dom is not None:
        (ap, bp, pt_p), (an, bn, pt_n) = dom
        expr = sp.sqrt(d) * (sp.sqrt(_lin(ap, G_pos) + _lin(an, G_neg))
                             + sp.sqrt(_lin(bp, G_pos) + _lin(bn, G_neg)))
        point_reg = Regularizer(P, "block", sp.nan, sp.Integer(1), kappa, D, sp.Integer(0), sp.Integer(0),
                                pt_p, pt_n, True, "dominant fibre point")
        return BlockRegularizer(P, "decoupled", kappa, ap, an, bp, bn, sp.nan, expr,
                                "dominant fibre point: it minimizes tr H_uu and tr H_vv at once", point_reg)
    if _symmetric(P):
        ra = _regularizer(P, "adam", sp.Rational(1, 2))
        c = ra.c_pos
        expr = sp.sqrt(d) * c * sp.sqrt(G_abs)
        return BlockRegularizer(P, "symmetric", kappa, sp.nan, sp.nan, sp.nan, sp.nan, c, expr,
                                "variational form sqrt(x) = min_c (x/c + c)/2; both unit fibres carry the "
                                "same (a**2, b**2) set, so R = sqrt(d) * min(|a| + |b| on the unit fibre) "
                                "* sqrt(G)",
                                ra)
    raise DiagsimError(f"the block measure of {P} couples the coordinates and neither a dominant fibre "
                       "point nor "
                       "a sign symmetry exists, so no closed form is derived")


def _lin(c, g):
    """c * g, with an impossible sign (c = oo) dropped: its aggregate must be 0 (checked when evaluating)."""
    return sp.Integer(0) if c == 0 or c is sp.oo else c * g
