"""Statistics shared by the checks: standard errors, weighted straight-line fits, slope confidence intervals.

Every tolerance in ``diagsim verify`` is ``Z_SCORE`` standard errors of the measured quantity (z = 4: with
~30 rows the chance that a correct implementation fails any row by noise alone is ~0.2 %), plus, where a
check says so, an explicit model of a known bias.
"""
from __future__ import annotations

import math

import numpy as np

#: z-score of every statistical tolerance
Z_SCORE = 4.0


def mean_se(x, axis=0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error std(ddof=1)/sqrt(M) along ``axis`` (NaNs dropped)."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    cnt = ok.sum(axis=axis)
    xs = np.where(ok, x, 0.0)
    mean = xs.sum(axis=axis) / np.maximum(cnt, 1)
    dev = np.where(ok, x - np.expand_dims(mean, axis), 0.0)
    var = (dev * dev).sum(axis=axis) / np.maximum(cnt - 1, 1)
    return mean, np.sqrt(var / np.maximum(cnt, 1))


def weighted_line(x, y, se) -> dict:
    """Weighted least-squares fit y = a + b x with known standard errors ``se`` of the y's.

    Returns a, b, their standard errors (from the covariance (X^T W X)^-1, W = diag(1/se^2)), their
    covariance, chi2 = sum ((y - a - b x)/se)^2 and dof = len(x) - 2.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = 1.0 / np.asarray(se, dtype=np.float64) ** 2
    X = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    a, b = cov @ (X.T @ (w * y))
    chi2 = float(np.sum(w * (y - a - b * x) ** 2))
    return {"a": float(a), "b": float(b), "se_a": float(math.sqrt(cov[0, 0])),
            "se_b": float(math.sqrt(cov[1, 1])),
            "cov_ab": float(cov[0, 1]), "chi2": chi2, "dof": int(x.size - 2)}


def log_slope(h, e) -> float:
    """Least-squares slope of log|e| against log h."""
    lh = np.log(np.asarray(h, dtype=float))
    return float(np.polyfit(lh, np.log(np.abs(np.asarray(e, dtype=float))), 1)[0])


def parametric_slope(h, e, se, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(slope, standard error) of log|e| vs log h when each e_l has an independent standard error se_l.

    The standard error is the spread of the slope over ``n_boot`` parametric resamples e_l + se_l N(0, 1)
    (``numpy.random.default_rng(seed)``); resamples that change the sign of some e_l are kept (|e| is
    fitted), which makes the spread conservative when an error is within noise of 0.
    """
    h = np.asarray(h, dtype=float)
    e = np.asarray(e, dtype=float)
    se = np.asarray(se, dtype=float)
    p = log_slope(h, e)
    g = np.random.default_rng(seed)
    E = e[None, :] + se[None, :] * g.standard_normal((n_boot, e.size))
    lh = np.log(h)
    A = np.column_stack([lh, np.ones_like(lh)])
    coef = np.linalg.lstsq(A, np.log(np.abs(E)).T, rcond=None)[0]
    return p, float(np.std(coef[0], ddof=1))


def local_slopes(h, e) -> list[float]:
    """Slopes between consecutive refinement levels, log(e_{l+1}/e_l) / log(h_{l+1}/h_l)."""
    h = np.asarray(h, dtype=float)
    e = np.abs(np.asarray(e, dtype=float))
    return [float(np.log(e[i + 1] / e[i]) / np.log(h[i + 1] / h[i])) for i in range(h.size - 1)]


def geometric_tail(increments) -> float:
    """Bound on the remaining distance to the limit of a sequence converging geometrically, from the norms
    of its last increments ||x_{j+1} - x_j|| (sampled at equal spacing): q = ratio of the last two, tail =
    last * q / (1 - q) (inf when q >= 1, i.e. the sequence is not yet contracting)."""
    inc = [float(x) for x in increments]
    if len(inc) < 2:
        return math.inf
    last, prev = inc[-1], inc[-2]
    if last == 0.0:
        return 0.0
    if prev <= 0.0:
        return math.inf
    q = last / prev
    return last * q / (1.0 - q) if q < 1.0 else math.inf
