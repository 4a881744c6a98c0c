"""Batched maximization over Euclidean balls: Riemannian Newton on the sphere with a projected-gradient
safeguard, run from several starts.

Maximizes f_m(x) over ||x|| <= radius_m for many independent rows m at once (one per path and start).
Every iteration each active row proposes one candidate and keeps it only if f increases (so the
iteration is monotone):

* Damped Newton (row on the sphere with an outward gradient, i.e. multiplier mu = x.g / radius^2 > 0):
  the Newton step of the KKT system g(x) = mu x, ||x|| = radius on the tangent space, with
  Levenberg-Marquardt damping tau >= 0::

      (Hess f - (mu + tau) I) xi = -(g - mu x),   x.xi = 0,

  solved as a bordered system with a rank-one shift sigma x x^T (sigma << 0), which does not change the
  solution but removes the near-null direction x; then x <- radius (x + xi) / ||x + xi||. The step is
  only taken when the shifted matrix is negative definite (checked by Sylvester's inertia of the
  capacitance matrix), i.e. when the damped model has a maximum, so Newton is never drawn to a saddle;
  otherwise the row takes a gradient step and tau grows. tau = 0 is Newton (quadratic convergence near a
  non-degenerate maximizer); tau grows 4x after a rejected step (tending to a short tangential gradient
  step, which always ascends) and shrinks 4x after an accepted one. The Hessian comes from the objective as a
  :class:`~._structured.StructuredHessian`, so a step costs one n x n Gram product per row.
* Projected gradient (rows inside the ball or with an inward gradient): x <- P(x + eta g / ||g||); eta
  doubles after an accepted step and shrinks 4x after a rejected one.

A candidate is accepted only if it increases f by more than 4 ulp. A row stops when its tangential
gradient ||g - mu x|| <= gtol ||g|| on the sphere (a KKT point), when a Newton step is rejected at
||g - mu x|| <= 1e-6 ||g|| (the value is then converged to rounding: its error is O(||g - mu x||^2)) or
with tau > 1e12 mu, when a gradient row's eta < eta_tol * radius, or after ``steps`` iterations.
"""
from __future__ import annotations

import numpy as np

from ._structured import StructuredHessian

_FIELDS = ("au", "av", "B11", "B12", "B22")


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
        is a StructuredHessian of f at those points (k = 2d) when ``hessian`` is true (it is requested with
        every evaluation when ``newton``, and kept for the accepted points).
    starts : (B, k) initial points (projected onto the balls first).
    rows : (B,) problem (path) index of each start, passed back to ``objective``.
    radius : (B,) ball radius of each start.
    newton : use the (damped) Newton steps; False = projected gradient ascent only.

    Returns
    -------
    f (B,), x (B, k), iterations (B,).
    """
    x = project(np.array(starts, dtype=np.float64), radius)
    B = len(x)
    f = np.empty(B)
    g = np.empty_like(x)
    f[:], g[:], H0 = objective(x, rows, newton)
    bank = None if H0 is None else {k: getattr(H0, k).copy() for k in _FIELDS}   # Hessians at the iterates
    problem = None if H0 is None else H0.problem
    eta = radius.astype(np.float64).copy()
    tau = np.zeros(B)                       # Levenberg-Marquardt damping of the Newton steps
    active = np.linalg.norm(g, axis=1) > 0
    iters = np.zeros(B, dtype=np.int64)
    ulp4 = 4 * np.finfo(float).eps
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
        tn = np.linalg.norm(t, axis=1)
        gn = np.linalg.norm(ga, axis=1)
        kkt = on & (mu > 0) & (tn <= gtol * gn)
        active[act[kkt]] = False
        keep = ~kkt
        act, xa, ga, ra, on, mu, t, tn, gn = (a[keep] for a in (act, xa, ga, ra, on, mu, t, tn, gn))
        if act.size == 0:
            break
        cand = project(xa + (eta[act] / gn)[:, None] * ga, ra)
        is_newton = np.zeros(act.size, dtype=bool)
        nw = np.flatnonzero(on & (mu > 0)) if newton else np.zeros(0, dtype=np.int64)
        if nw.size:
            idx = act[nw]
            H = StructuredHessian(problem, *(bank[k][idx] for k in _FIELDS))
            xs, m_, rs = xa[nw], mu[nw], ra[nw]
            shift = m_ + tau[act[nw]]
            hx = np.linalg.norm(H.matvec(xs), axis=1) / rs
            sigma = -10.0 * (np.abs(shift) + hx + 1e-300) / rs ** 2
            with np.errstate(all="ignore"):
                (z1, z2), negdef = H.solve_bordered(shift, sigma, xs, [-t[nw], xs])
                nu = _dot(xs, z1) / _dot(xs, z2)
                y = xs + (z1 - nu[:, None] * z2)
                y = y * (rs / np.linalg.norm(y, axis=1))[:, None]
            ok = np.all(np.isfinite(y), axis=1) & negdef
            cand[nw[ok]] = y[ok]
            is_newton[nw[ok]] = True
            # not a local-maximum model (indefinite): take the gradient step and damp more
            bad = act[nw[~ok]]
            tau[bad] = np.maximum(4.0 * tau[bad], 1e-3 * mu[nw[~ok]])
        fc, gc, Hc = objective(cand, rows[act], newton)
        fa = f[act]
        acc = fc > fa + ulp4 * np.abs(fa)   # an increase beyond rounding
        ia = act[acc]
        x[ia], f[ia], g[ia] = cand[acc], fc[acc], gc[acc]
        if bank is not None:
            for k in _FIELDS:
                bank[k][ia] = getattr(Hc, k)[acc]
        pg = ~is_newton
        eta[act[acc & pg]] = np.minimum(2.0 * eta[act[acc & pg]], 1e8 * radius[act[acc & pg]])
        eta[act[~acc & pg]] *= 0.25
        an, rn = act[acc & is_newton], act[~acc & is_newton]
        tau[an] = np.where(tau[an] > 1e-3 * mu[acc & is_newton], 0.25 * tau[an], 0.0)
        tau[rn] = np.maximum(4.0 * tau[rn], 1e-3 * mu[~acc & is_newton])
        # converged: a rejected Newton step where the tangential gradient is at rounding level, or damping
        # so strong that the step is below resolution
        done = ~acc & is_newton & ((tn <= 1e-6 * gn) | (tau[act] > 1e12 * mu))
        active[act[done]] = False
        active[act[pg]] &= eta[act[pg]] >= eta_tol * radius[act[pg]]
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
