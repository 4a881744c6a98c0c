"""The constraint set {w : Z w = y}: feasibility, rank reduction, and the linear programs on it.

* :func:`reduce_system` checks that Z w = y has a solution and returns an equivalent system with full row
  rank (the SVD row space when rank Z < n).
* :func:`weighted_l1` solves min sum_i (c+_i w_i^+ + c-_i w_i^-) s.t. Z w = y as an LP in the split variables
  (w^+, w^-) >= 0 with SciPy's HiGHS, then polishes the basic solution by solving Z_S w_S = y on its support.
  An infinite weight forbids that sign (c-_i = inf: w_i >= 0).
* :func:`pareto_vertices` enumerates the vertices of the lower-left (Pareto) frontier of the two linear
  objectives (G_+, G_-) = (sum s_i w_i^+, sum s_i w_i^-) over the same polyhedron (the non-inferior set
  estimation method: lexicographic end points, then the weighted LP normal to each frontier segment, until
  no point lies below it). A concave function increasing in both objectives is minimized at one of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from ..errors import DiagsimError

HIGHS_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


@dataclass(frozen=True)
class System:
    """Z w = y with Z of full row rank r (``Z`` (r, d), ``y`` (r,)); ``n`` the original number of rows."""

    Z: np.ndarray
    y: np.ndarray
    rank: int
    n: int


def reduce_system(Z: np.ndarray, y: np.ndarray, *, rtol: float = 1e-10) -> System:
    """Check Z w = y is feasible and return an equivalent full-row-rank system.

    Raises DiagsimError when y is not in the range of Z (naming the rank and the least-squares residual).
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = Z.shape
    U, S, Vt = np.linalg.svd(Z, full_matrices=False)
    tol = max(rtol, max(n, d) * np.finfo(float).eps) * (S[0] if S.size else 0.0)
    r = int(np.sum(S > tol)) if S.size and S[0] > 0 else 0
    yr = U[:, :r].T @ y
    resid = float(np.linalg.norm(y - U[:, :r] @ yr))
    if resid > 1e-9 * (1.0 + float(np.linalg.norm(y))):
        raise DiagsimError(f"Z w = y has no solution: y is not in the range of Z (rank {r} < n = {n}; "
                           "least-squares "
                           f"residual ||Z w - y|| = {resid:.3g}); check the data file or the labels")
    if r == 0:
        return System(np.zeros((0, d)), np.zeros(0), 0, n)
    if r == n:
        return System(np.ascontiguousarray(Z), y.copy(), r, n)
    return System(np.ascontiguousarray(S[:r, None] * Vt[:r]), yr, r, n)


@dataclass(frozen=True)
class LPResult:
    """Solution of a weighted-l1 LP: ``w`` (d,), objective ``value``, equality duals ``nu`` (r,)."""

    w: np.ndarray
    value: float
    nu: np.ndarray
    raw: object


def _split(c_pos, c_neg):
    c_pos = np.asarray(c_pos, dtype=np.float64)
    c_neg = np.asarray(c_neg, dtype=np.float64)
    fp, fn = np.isfinite(c_pos), np.isfinite(c_neg)
    return c_pos, c_neg, fp, fn


def weighted_l1(system: System, c_pos, c_neg) -> LPResult:
    """min sum_i c_pos_i w_i^+ + c_neg_i w_i^- s.t. Z w = y (HiGHS), polished on its support."""
    Z, y = system.Z, system.y
    d = Z.shape[1]
    c_pos, c_neg, fp, fn = _split(c_pos, c_neg)
    ip, ineg = np.flatnonzero(fp), np.flatnonzero(fn)
    cost = np.concatenate([c_pos[ip], c_neg[ineg]])
    A = np.hstack([Z[:, ip], -Z[:, ineg]])
    if system.rank == 0:
        return LPResult(np.zeros(d), 0.0, np.zeros(0), None)
    res = linprog(cost, A_eq=A, b_eq=y, bounds=(0, None), method="highs", options=HIGHS_OPTIONS)
    if res.status == 2:
        raise DiagsimError("Z w = y has no solution with the allowed signs of w (the LP is infeasible)")
    if res.status != 0:
        raise DiagsimError(f"the linear program failed: {res.message}")
    x = res.x
    w = np.zeros(d)
    np.add.at(w, ip, x[: ip.size])
    np.add.at(w, ineg, -x[ip.size:])
    w = polish(system, w)
    return LPResult(w, split_value(w, c_pos, c_neg), np.asarray(res.eqlin.marginals, dtype=np.float64), res)


def split_value(w: np.ndarray, c_pos, c_neg, e: float = 1.0) -> float:
    """sum_{w_i > 0} c_pos_i w_i**e + sum_{w_i < 0} c_neg_i |w_i|**e (inf if a forbidden sign is used)."""
    pos, neg = w > 0, w < 0
    a = np.abs(w)
    return float(np.sum(np.asarray(c_pos)[pos] * a[pos] ** e) + np.sum(np.asarray(c_neg)[neg] * a[neg] ** e))


def polish(system: System, w: np.ndarray, *, rel: float = 1e-9) -> np.ndarray:
    """Re-solve Z_S w_S = y on S = {|w_i| > rel max|w|} when Z_S has full column rank, keeping the signs."""
    Z, y = system.Z, system.y
    scale = max(float(np.max(np.abs(w))), 1e-300)
    S = np.flatnonzero(np.abs(w) > rel * scale)
    out = np.zeros_like(w)
    if S.size == 0 or S.size > Z.shape[0]:
        return w
    ZS = Z[:, S]
    sol, *_ = np.linalg.lstsq(ZS, y, rcond=None)
    if np.linalg.matrix_rank(ZS) < S.size or np.any(np.sign(sol) != np.sign(w[S])):
        return w
    out[S] = sol
    r_old = np.max(np.abs(Z @ w - y), initial=0.0)
    r_new = np.max(np.abs(Z @ out - y), initial=0.0)
    return out if r_new <= r_old else w


def _lp_split(system: System, cost_pos, cost_neg, fixed=None):
    """LP over the split variables x = (w^+, w^-) >= 0; ``fixed`` (2d,) bool forces those x_j = 0.

    Returns (w^+, w^-, reduced costs (2d,))."""
    Z, y = system.Z, system.y
    d = Z.shape[1]
    A = np.hstack([Z, -Z])
    bounds = np.zeros((2 * d, 2))
    bounds[:, 1] = np.inf
    if fixed is not None:
        bounds[fixed, 1] = 0.0
    res = linprog(np.concatenate([cost_pos, cost_neg]), A_eq=A, b_eq=y, bounds=bounds, method="highs",
                  options=HIGHS_OPTIONS)
    if res.status != 0:
        raise DiagsimError(f"the linear program failed: {res.message}")
    return res.x[:d], res.x[d:], np.asarray(res.lower.marginals, dtype=np.float64)


def pareto_vertices(system: System, s_values, *, max_vertices: int = 200, rtol: float = 1e-10) -> list[dict]:
    """Vertices of the Pareto frontier of (G_+, G_-) = (sum s w^+, sum s w^-) over {Z w = y}.

    The two end points are lexicographic minima: the second objective is minimized over the optimal face of
    the first (the split variables with a positive reduced cost in the first LP are fixed at 0: by
    complementary slackness every feasible point with them at 0 is optimal for the first objective).
    Returns a list of dicts {"G": (G_+, G_-), "w": w (d,)} sorted by G_+.
    """
    sv = np.asarray(s_values, dtype=np.float64)
    zero = np.zeros_like(sv)
    cmax = float(np.max(sv, initial=1.0))

    def lexmin(first):
        a, b = (sv, zero) if first == 0 else (zero, sv)
        _, _, reduced = _lp_split(system, a, b)
        xp, xn, _ = _lp_split(system, b, a, fixed=reduced > 1e-9 * cmax)
        return xp, xn

    def point(xp, xn):
        w = polish(system, xp - xn)
        return {"G": (float(sv @ np.maximum(w, 0)), float(sv @ np.maximum(-w, 0))), "w": w}

    a = point(*lexmin(0))
    b = point(*lexmin(1))
    pts = [a]
    if abs(a["G"][0] - b["G"][0]) + abs(a["G"][1] - b["G"][1]) <= rtol * (1 + sum(a["G"]) + sum(b["G"])):
        return pts
    stack = [(a, b)]
    found = [b]
    while stack:
        if len(pts) + len(found) > max_vertices:
            raise DiagsimError(f"the Pareto frontier has more than {max_vertices} vertices; "
                               "raise max_vertices")
        p, q = stack.pop()
        l1 = p["G"][1] - q["G"][1]
        l2 = q["G"][0] - p["G"][0]
        xp, xn, _ = _lp_split(system, l1 * sv, l2 * sv)
        c = point(xp, xn)
        level = l1 * p["G"][0] + l2 * p["G"][1]
        if l1 * c["G"][0] + l2 * c["G"][1] < level - rtol * (1.0 + abs(level)):
            found.append(c)
            stack.append((p, c))
            stack.append((c, q))
    pts += found
    return sorted(pts, key=lambda x: x["G"][0])
