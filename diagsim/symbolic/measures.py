"""Sharpness measures on the manifold of minimizers, derived from w(u, v) (docs/theory.md §3.4, §9.1).

On Gamma = {theta : Z w(theta) = y} the residual vanishes and H = (1/n) J^T J with
J = Z [diag(a), diag(b)], a = dw/du, b = dw/dv. Hence, for every elementwise parametrization::

    diag H = (s * a**2, s * b**2)                     (per coordinate i: H_{u_i u_i}, H_{v_i v_i})
    tr H = sum_i s_i (a_i**2 + b_i**2)
    tr diag(H)**(1/2) = sum_i sqrt(s_i) (|a_i| + |b_i|)
    tr diag(H)**(1 - lambda) = sum_i (s_i a_i**2)**(1 - lambda) + (s_i b_i**2)**(1 - lambda)
    block (Adam-mini / Adalayer, blocks {u}, {v} of size d) = sqrt(d tr H_uu) + sqrt(d tr H_vv),
        tr H_uu = sum_i s_i a_i**2,  tr H_vv = sum_i s_i b_i**2.

The per-coordinate summands are SymPy expressions in ``u``, ``v``, ``s`` (and ``lam``); :func:`measure_values`
evaluates them with NumPy through a cached :func:`sympy.lambdify`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from ..errors import DiagsimError, as_float_array, check_interval
from .expressions import SymbolicParametrization, lam, s, symbolic_parametrization, u, v

#: measure name -> formula (for reports)
MEASURES = {
    "trace": "tr H",
    "adam": "tr diag(H)^{1/2}",
    "adame": "tr diag(H)^{1-lambda}",
    "block": "sum_b sqrt(|b| tr H_bb)",
}
SEPARABLE = ("trace", "adam", "adame")


def diag_hessian(param) -> tuple[sp.Expr, sp.Expr]:
    """(H_uu, H_vv) of one coordinate on Gamma: (s a**2, s b**2)."""
    P = symbolic_parametrization(param)
    return s * P.a**2, s * P.b**2


def block_summands(param) -> tuple[sp.Expr, sp.Expr]:
    """Per-coordinate contributions to tr H_uu and tr H_vv (the same as :func:`diag_hessian`)."""
    return diag_hessian(param)


def measure_summand(param, measure: str, lam_value=None) -> sp.Expr:
    """Per-coordinate summand of a separable measure ("trace", "adam", "adame") on Gamma.

    ``lam_value`` (only for "adame"): a number in [0, 1) or ``None`` for the symbol ``lam``.
    """
    hu, hv = diag_hessian(param)
    if measure == "trace":
        return sp.expand(hu + hv)
    if measure == "adam":
        return sp.simplify(sp.sqrt(hu) + sp.sqrt(hv))
    if measure == "adame":
        p = 1 - (lam if lam_value is None else sp.nsimplify(lam_value, rational=True))
        return hu**p + hv**p
    raise DiagsimError(f"measure must be one of 'trace', 'adam', 'adame' (separable) or 'block'; "
                       f"got {measure!r}")


@lru_cache(maxsize=None)
def _numeric(P: SymbolicParametrization, measure: str):
    if measure == "diag":
        hu, hv = diag_hessian(P)
        fu, fv = (sp.lambdify((u, v, s), e, "numpy") for e in (hu, hv))
        return lambda uu, vv, ss: (np.broadcast_to(fu(uu, vv, ss), uu.shape),
                                   np.broadcast_to(fv(uu, vv, ss), uu.shape))
    if measure == "adame":
        f = sp.lambdify((u, v, s, lam), measure_summand(P, "adame"), "numpy")
        return lambda uu, vv, ss, ll: np.broadcast_to(f(uu, vv, ss, ll), uu.shape)
    f = sp.lambdify((u, v, s), measure_summand(P, measure), "numpy")
    return lambda uu, vv, ss: np.broadcast_to(f(uu, vv, ss), uu.shape)


def diag_hessian_values(param, theta, s_values) -> np.ndarray:
    """diag H on Gamma for states ``theta`` of shape (M, 2d) (or (2d,)): returns (M, 2d)."""
    P = symbolic_parametrization(param)
    th, sv = _states(theta, s_values)
    dd = sv.shape[0]
    hu, hv = _numeric(P, "diag")(th[:, :dd], th[:, dd:], sv)
    return np.concatenate([hu, hv], axis=1)


def measure_values(param, measure: str, theta, s_values, lam_value: float | None = None) -> np.ndarray:
    """Value of a measure on Gamma at states ``theta`` (M, 2d) (or (2d,)): returns (M,).

    measure: "trace" (tr H), "adam" (tr diag(H)^{1/2}), "adame" (tr diag(H)^{1-lambda}, needs
    ``lam_value`` in [0, 1)) or "block" (sum over the blocks {u}, {v} of sqrt(d tr H_bb)).
    Only valid on Gamma (where the residual part of H vanishes).
    """
    P = symbolic_parametrization(param)
    th, sv = _states(theta, s_values)
    dd = sv.shape[0]
    uu, vv = th[:, :dd], th[:, dd:]
    if measure == "block":
        hu, hv = _numeric(P, "diag")(uu, vv, sv)
        return np.sqrt(dd * hu.sum(axis=1)) + np.sqrt(dd * hv.sum(axis=1))
    if measure == "adame":
        if lam_value is None:
            raise DiagsimError("measure 'adame' needs lam (lambda in [0, 1))")
        lv = check_interval("lam", lam_value, 0.0, 1.0)
        return _numeric(P, "adame")(uu, vv, sv, lv).sum(axis=1)
    if measure not in SEPARABLE:
        raise DiagsimError(f"measure must be one of {', '.join(map(repr, MEASURES))}; got {measure!r}")
    return _numeric(P, measure)(uu, vv, sv).sum(axis=1)


def _states(theta, s_values):
    sv = as_float_array("s", s_values, (None,))
    th = np.asarray(theta, dtype=np.float64)
    if th.ndim == 1:
        th = th[None, :]
    th = as_float_array("theta", th, (None, 2 * sv.shape[0]))
    return th, sv
