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


def wilson_interval(successes, trials, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (elementwise; docs/theory.md §9.8).

    With p = x / n and z the two-sided normal quantile of ``conf``: centre (p + z^2/2n) / (1 + z^2/n),
    half-width z sqrt(p(1 - p)/n + z^2/4n^2) / (1 + z^2/n). Cells with n = 0 give (0, 1).
    """
    from statistics import NormalDist

    from ..errors import DiagsimError
    if not 0.0 < conf < 1.0:
        raise DiagsimError(f"conf must lie in (0, 1); got {conf!r}")
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(n < 0) or np.any(x < 0) or np.any(x > n):
        raise DiagsimError("Wilson interval needs 0 <= successes <= trials")
    z = NormalDist().inv_cdf(0.5 + conf / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.where(n > 0, n, 1.0), 0.5)
        nn = np.where(n > 0, n, 1.0)
        den = 1.0 + z * z / nn
        centre = (p + z * z / (2 * nn)) / den
        half = z * np.sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / den
    lo = np.where((n > 0) & (x > 0), np.clip(centre - half, 0.0, 1.0), 0.0)   # exact 0 / 1 at the ends
    hi = np.where((n > 0) & (x < n), np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def logistic_transition(x, successes, trials, *, max_iter: int = 100) -> dict:
    """The 50 % point of a recovery curve: maximum-likelihood logistic fit P(x) = 1 / (1 + exp(-b (x - x50))).

    Binomial counts ``successes`` of ``trials`` at each ``x``. Newton's method on (a, b) with
    logit P = a + b x, x50 = -a / b; its standard error by the delta method from the inverse Fisher
    information. When the data are separated (no x with 0 < P < 1 between the last all-fail and the
    first all-success point) the MLE does not exist: x50 is then the midpoint of that gap and its
    "standard error" a quarter of the gap (``separated`` = True). Returns dict(x50, se, slope, separated,
    ok): ``ok`` is False (x50 NaN) when the curve never crosses 1/2 inside the range of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(trials, dtype=np.float64)
    keep = m > 0
    x, k, m = x[keep], k[keep], m[keep]
    order = np.argsort(x)
    x, k, m = x[order], k[order], m[order]
    nan = {"x50": math.nan, "se": math.nan, "slope": math.nan, "separated": False, "ok": False}
    if x.size < 2:
        return nan
    p = k / m
    if not (p.min() < 0.5 < p.max() or (p.min() <= 0.5 <= p.max() and p.min() < p.max())):
        return nan
    inner = (k > 0) & (k < m)
    last_fail = np.flatnonzero(k == 0)
    first_ok = np.flatnonzero(k == m)
    if not inner.any() and last_fail.size and first_ok.size and x[last_fail.max()] < x[first_ok.min()]:
        a, b = x[last_fail.max()], x[first_ok.min()]
        return {"x50": 0.5 * (a + b), "se": 0.25 * (b - a), "slope": math.inf, "separated": True, "ok": True}
    xc, xs = x.mean(), max(x.std(), 1e-12)
    t = (x - xc) / xs
    theta = np.array([0.0, 1.0])
    for _ in range(max_iter):
        eta = theta[0] + theta[1] * t
        mu = 1.0 / (1.0 + np.exp(-eta))
        g = np.array([np.sum(k - m * mu), np.sum((k - m * mu) * t)])
        wgt = m * mu * (1 - mu)
        H = np.array([[wgt.sum(), (wgt * t).sum()], [(wgt * t).sum(), (wgt * t * t).sum()]])
        try:
            step = np.linalg.solve(H + 1e-12 * np.eye(2), g)
        except np.linalg.LinAlgError:
            return nan
        theta = theta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    eta = theta[0] + theta[1] * t
    mu = 1.0 / (1.0 + np.exp(-eta))
    wgt = m * mu * (1 - mu)
    H = np.array([[wgt.sum(), (wgt * t).sum()], [(wgt * t).sum(), (wgt * t * t).sum()]])
    a, b = theta
    if not np.isfinite(b) or b <= 0:
        return nan
    cov = np.linalg.inv(H)
    grad = np.array([-1.0 / b, a / (b * b)])       # d(-a/b)/d(a, b), in the standardized variable
    t50 = -a / b
    se_t = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    return {"x50": float(xc + xs * t50), "se": xs * se_t, "slope": float(b / xs), "separated": False,
            "ok": bool(x.min() <= xc + xs * t50 <= x.max())}
