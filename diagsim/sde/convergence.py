"""Convergence orders measured as slopes, with standard errors from a bootstrap over paths.

An order test computes, for each step size h_l of a refinement (l = 1..L), an error e_l that is a statistic
of per-path values (e.g. the root-mean-square of X_h - X_exact over paths: strong error; the mean of
phi(X_h) - phi(X_exact): weak error), and fits log|e_l| = p log h_l + const by least squares. The standard
error of p is the spread of p over bootstrap resamples of the paths (the paths, not the levels, are
independent: every level uses the same Brownian paths).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def log_slope(h, e) -> float:
    """Least-squares slope of log|e| against log h."""
    x = np.log(np.asarray(h, dtype=float))
    return float(np.polyfit(x, np.log(np.abs(np.asarray(e, dtype=float))), 1)[0])


def bootstrap_slope(h, statistic: Callable[[np.ndarray], np.ndarray], n_paths: int, *, n_boot: int = 200,
                    seed: int = 0) -> tuple[float, float]:
    """(slope, standard error) of log|statistic(idx)| against log h.

    ``statistic(idx)`` returns the L errors computed from the paths ``idx`` (an index array, possibly with
    repeats); the slope is taken at idx = all paths, its standard error is the standard deviation over
    ``n_boot`` resamples drawn with ``numpy.random.default_rng(seed)``.
    """
    allp = np.arange(n_paths)
    p = log_slope(h, statistic(allp))
    g = np.random.default_rng(seed)
    boots = [log_slope(h, statistic(g.integers(0, n_paths, n_paths))) for _ in range(n_boot)]
    return p, float(np.std(boots, ddof=1))


def rms(x: np.ndarray, axis=0) -> np.ndarray:
    """Root mean square along ``axis``."""
    return np.sqrt(np.mean(np.square(x), axis=axis))
