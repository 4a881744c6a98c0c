"""Batched maximization over Euclidean balls: Riemannian Newton on the sphere with a projected-gradient
safeguard, run from several starts.

Maximizes f_m(x) over ||x|| <= radius_m for many independent rows m at once (one per path and start).
Every iteration each active row proposes one candidate and keeps it only if f increases (so the
iteration is monotone):

* Newton (row on the sphere, outward gradient, i.e. multiplier mu = x.g / radius^2 > 0): the Newton step
  of the KKT system g(x) = mu x, ||x|| = radius, restricted to the tangent space,
      (Hess f - mu I) xi = -(g - mu x),   x.xi = 0,
  solved as a bordered system with the rank-one shift sigma x x^T (sigma = -|mu| / radius^2), which does not
  change the solution but removes the near-null direction x; then x <- radius (x + xi) / ||x + xi||.
  It converges quadratically near a non-degenerate maximizer; the Hessian comes from the objective as a
  :class:`~._structured.StructuredHessian`, so a step costs one n x n Gram product per row.
* Projected gradient (otherwise, or after a rejected Newton step): x <- P(x + eta g / ||g||); eta doubles
  after an accepted step and shrinks 4x after a rejected one.

A candidate is accepted only if it increases f by more than 4 ulp. A row stops when its tangential
gradient ||g - mu x|| <= gtol ||g|| on the sphere (a KKT point), when a Newton step is rejected at
||g - mu x|| <= 1e-6 ||g|| (the value is then converged to rounding: its error is O(||g - mu x||^2)), when
eta < eta_tol * radius, or after ``steps`` iterations.
"""
from __future__ import annotations

import numpy as np


def project(x: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Project each row of x onto {||x|| <= radius}."""
    nrm = np.linalg.norm(x, axis=1)
    scale = np.where(nrm > radius, radius / np.where(nrm > 0, nrm, 1.0), 1.0)
    return x * scale[:, None]


def _dot(a, b):
    return np.einsum("mi,mi->m", a, b)


def ball_ascent(objective, starts: np.ndarray, rows: np.ndarray, radius: np.ndarray, *, steps: int = 100,
                gtol: float = 1e-9, eta_tol: float = 1e-10, newton: bool = True):
    """Maximize from every start.

    Parameters
    ----------
    objective : callable(x (B, k), rows (B,), hessian: bool) -> (f (B,), grad (B, k), H or None), where H
        is a StructuredHessian of f at those points (k = 2d) when ``hessian`` is true.
    starts : (B, k) initial points (projected onto the balls first).
    rows : (B,) problem (path) index of each start, passed back to ``objective``.
    radius : (B,) ball radius of each start.

    Returns
    -------
    f (B,), x (B, k), iterations (B,).
    """
    x = project(np.array(starts, dtype=np.float64), radius)
    B = len(x)
    f = np.empty(B)
    g = np.empty_like(x)
    f[:], g[:], _ = objective(x, rows, False)
    eta = radius.astype(np.float64).copy()
    use_newton = np.full(B, bool(newton))
    active = np.linalg.norm(g, axis=1) > 0
    iters = np.zeros(B, dtype=np.int64)
    for _ in range(steps):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        iters[act] += 1
        xa, ga, ra = x[act], g[act], radius[act]
        nx = np.linalg.norm(xa, axis=1)
        on = nx >= ra * (1 - 1e-12)
        mu = _dot(xa, ga) / np.maximum(nx * nx, 1e-300)
        t = ga - mu[:, None] * xa
        gn = np.linalg.norm(ga, axis=1)
        kkt = on & (mu > 0) & (np.linalg.norm(t, axis=1) <= gtol * gn)
        active[act[kkt]] = False
        keep = ~kkt
        act, xa, ga, ra, on, mu, t, gn = act[keep], xa[keep], ga[keep], ra[keep], on[keep], mu[keep], t[keep], gn[keep]
        if act.size == 0:
            break
        cand = project(xa + (eta[act] / gn)[:, None] * ga, ra)
        nw = np.flatnonzero(on & (mu > 0) & use_newton[act])
        if nw.size:
            _, _, H = objective(xa[nw], rows[act[nw]], True)
            xs, m_ = xa[nw], mu[nw]
            sigma = -np.maximum(np.abs(m_), 1e-300) / ra[nw] ** 2
            with np.errstate(all="ignore"):
                z1, z2 = H.solve_bordered(m_, sigma, xs, [-t[nw], xs])
                nu = _dot(xs, z1) / _dot(xs, z2)
                xi = z1 - nu[:, None] * z2
                y = xs + xi
                y = y * (ra[nw] / np.linalg.norm(y, axis=1))[:, None]
            ok = np.all(np.isfinite(y), axis=1)
            cand[nw[ok]] = y[ok]
            is_newton = np.zeros(act.size, dtype=bool)
            is_newton[nw[ok]] = True
        else:
            is_newton = np.zeros(act.size, dtype=bool)
        fc, gc, _ = objective(cand, rows[act], False)
        fa = f[act]
        acc = fc > fa + 4 * np.finfo(float).eps * np.abs(fa)   # an increase beyond rounding
        ia = act[acc]
        x[ia], f[ia], g[ia] = cand[acc], fc[acc], gc[acc]
        pg = ~is_newton
        eta[act[acc & pg]] = np.minimum(2.0 * eta[act[acc & pg]], 1e8 * radius[act[acc & pg]])
        eta[act[~acc & pg]] *= 0.25
        # a rejected Newton step is followed by a gradient step; an accepted gradient step re-enables Newton
        use_newton[act[~acc & is_newton]] = False
        use_newton[act[acc & pg]] = bool(newton)
        # a rejected Newton step at a point whose tangential gradient is at rounding level is converged
        tiny = ~acc & is_newton & (np.linalg.norm(t, axis=1) <= 1e-6 * gn)
        active[act[tiny]] = False
        active[act] &= eta[act] >= eta_tol * radius[act]
    return f, x, iters


def best_of(values: np.ndarray, points: np.ndarray, rows: np.ndarray, n_problems: int):
    """Per problem, the maximum value over its starts and the point attaining it."""
    best = np.full(n_problems, -np.inf)
    arg = np.zeros(n_problems, dtype=np.int64)
    order = np.argsort(-values, kind="stable")
    seen = np.zeros(n_problems, dtype=bool)
    for i in order:
        m = rows[i]
        if not seen[m]:
            seen[m] = True
            best[m] = values[i]
            arg[m] = i
    return best, points[arg]
