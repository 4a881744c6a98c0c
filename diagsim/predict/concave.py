"""Minimizing a concave power-law regularizer sum_i c_sign(w_i),i |w_i|**e (0 < e < 1) over {Z w = y}.

In the split variables (w^+, w^-) >= 0 the objective is concave and non-decreasing along every recession
direction of the polyhedron {Z (w^+ - w^-) = y}, so its minimum is attained at a vertex, i.e. at a *basic
solution* w: a support S of size r = rank Z with Z_S invertible and w_S = Z_S^{-1} y (degenerate vertices
with fewer non-zeros appear for several S).

* :func:`global_minimum` enumerates all C(d, r) supports, in batches (NumPy batched ``slogdet`` and
  ``solve``): exact, but only tractable when C(d, r) is small (a DiagsimError gives the count otherwise).
* :func:`reweighted_l1` is the local method: majorize-minimize from a start x0. The concave |w|**e lies
  below its tangent at |x_k| + eps, so each step solves the weighted LP
  min sum_i c_i e (|x_k,i| + eps)**(e - 1) |w_i| (Candes, Wakin and Boyd's reweighted l1) and the objective
  does not increase; iterates are basic solutions and stop when the support repeats. Every non-degenerate
  basic solution is a local minimizer of the concave objective (moving a zero coordinate off zero costs
  |t|**e >> |t|), so *which* one is reached depends on the start: the result is reported as local.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..errors import DiagsimError
from .linear import System, split_value, weighted_l1

_CHUNK = 20000


def n_supports(d: int, r: int) -> int:
    """C(d, r), the number of supports the global method enumerates."""
    return math.comb(d, r)


def global_minimum(system: System, c_pos, c_neg, e: float, *, max_supports: int = 1_000_000,
                   rtol: float = 1e-10) -> dict:
    """Global minimizer by enumerating all basic solutions.

    Returns dict(w, value, n_supports, n_basic (feasible basic solutions), n_minimizers (distinct
    minimizing vertices)).
    """
    Z, y = system.Z, system.y
    r, d = Z.shape
    count = n_supports(d, r)
    if count > max_supports:
        raise DiagsimError(f"the global minimizer enumerates C(d, rank Z) = C({d}, {r}) = {count:.4g} "
                           f"supports, more than max_supports = {max_supports:g}; use method='local' "
                           "(or raise max_supports)")
    c_pos = np.asarray(c_pos, dtype=np.float64)
    c_neg = np.asarray(c_neg, dtype=np.float64)
    if r == 0:
        return {"w": np.zeros(d), "value": 0.0, "n_supports": 1, "n_basic": 1, "n_minimizers": 1}
    ZT = np.ascontiguousarray(Z.T)
    lognorm = np.log(np.maximum(np.linalg.norm(Z, axis=0), 1e-300))
    ynorm = 1.0 + float(np.max(np.abs(y)))
    it = itertools.combinations(range(d), r)
    best_val, best = np.inf, []
    n_basic = 0
    while True:
        combos = np.fromiter(itertools.islice(it, _CHUNK), dtype=np.dtype((np.intp, r)))
        if combos.size == 0:
            break
        M = np.swapaxes(ZT[combos], 1, 2)  # (B, r, r): columns Z[:, S]
        sign, logdet = np.linalg.slogdet(M)
        ok = (sign != 0) & (logdet - lognorm[combos].sum(axis=1) > np.log(1e-13))
        if not np.any(ok):
            continue
        combos, M = combos[ok], M[ok]
        x = np.linalg.solve(M, np.broadcast_to(y, (M.shape[0], r))[..., None])[..., 0]
        res = np.max(np.abs(np.einsum("bij,bj->bi", M, x) - y), axis=1)
        good = res <= 1e-8 * ynorm
        combos, x = combos[good], x[good]
        n_basic += combos.shape[0]
        a = np.abs(x)
        cp, cn = c_pos[combos], c_neg[combos]
        with np.errstate(invalid="ignore"):
            terms = np.where(x > 0, cp * a**e, np.where(x < 0, cn * a**e, 0.0))
        vals = terms.sum(axis=1)
        vals[np.isnan(vals)] = np.inf
        j = int(np.argmin(vals)) if vals.size else -1
        if j < 0 or not np.isfinite(vals[j]):
            continue
        if vals[j] < best_val * (1 - rtol):
            best_val, best = float(vals[j]), []
        near = np.flatnonzero(vals <= best_val * (1 + rtol) + 1e-300)
        for k in near[:64]:
            best.append((combos[k], x[k]))
    if not best:
        raise DiagsimError("no basic solution of Z w = y has a finite regularizer "
                           "(the allowed signs exclude all)")
    # distinct minimizing vertices (a degenerate vertex is found from several supports)
    distinct = []
    for S, xs in best:
        wv = np.zeros(d)
        wv[S] = xs
        wv[np.abs(wv) <= 1e-12 * ynorm] = 0.0
        if not any(np.max(np.abs(wv - u)) <= 1e-9 * (1 + np.max(np.abs(u))) for u in distinct):
            distinct.append(wv)
    w = min(distinct, key=lambda wv: split_value(wv, c_pos, c_neg, e))
    return {"w": w, "value": split_value(w, c_pos, c_neg, e), "n_supports": count, "n_basic": n_basic,
            "n_minimizers": len(distinct)}


def reweighted_l1(system: System, c_pos, c_neg, e: float, x0: np.ndarray, *, max_iter: int = 100,
                  eps_rel: float = 1e-9) -> dict:
    """Local minimizer by reweighted l1 (majorize-minimize) from ``x0``.

    Returns dict(w, value, iterations, start_value).
    """
    c_pos = np.asarray(c_pos, dtype=np.float64)
    c_neg = np.asarray(c_neg, dtype=np.float64)
    x = np.asarray(x0, dtype=np.float64).copy()
    eps = eps_rel * max(1.0, float(np.max(np.abs(x), initial=0.0)))
    value = split_value(x, np.where(np.isfinite(c_pos), c_pos, 0), np.where(np.isfinite(c_neg), c_neg, 0), e)
    start = value
    prev_support = None
    it = 0
    for it in range(1, max_iter + 1):
        g = e * (np.abs(x) + eps) ** (e - 1.0)
        lp = weighted_l1(system, c_pos * g, c_neg * g)
        new_val = split_value(lp.w, c_pos, c_neg, e)
        support = tuple(np.flatnonzero(lp.w))
        if new_val > value * (1 + 1e-12) and it > 1:
            break  # no descent (possible only with sign-dependent weights): keep x
        x, value = lp.w, new_val
        if support == prev_support:
            break
        prev_support = support
    return {"w": x, "value": value, "iterations": it, "start_value": start}
