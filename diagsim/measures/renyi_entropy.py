"""Rényi sharpness (Zhang et al., arXiv 2510.07758): the negative Rényi entropy of the Hessian spectrum.

With the non-zero eigenvalues lambda_1..lambda_P of the Hessian block on Gamma and p_i = lambda_i / tr,

    H_alpha = 1/(1 - alpha) * log sum_i p_i^alpha          (alpha > 0, alpha != 1),
    H_1     = -sum_i p_i log p_i                           (the alpha -> 1 Shannon limit),
    H_inf   = -log max_i p_i                               (alpha = inf, min-entropy),

and the Rényi sharpness is -H_alpha: -log P for a uniform spectrum, 0 for a single non-zero eigenvalue,
larger when the spectrum is more spread. The spectrum is that of the Gauss-Newton matrix G = (1/n) J^T J
(= H on Gamma; off Gamma this is the Gauss-Newton part, which keeps every lambda_i >= 0), taken from n x n
reductions: block "all" (all 2d parameters), "u" (H_uu, spectrum of (1/n) Z diag(wu^2) Z^T) or "v".
Eigenvalues <= rtol * lambda_max are treated as zero (their contribution vanishes for alpha > 0).
Near alpha = 1 the sum is evaluated as log1p(sum p (exp((alpha - 1) log p) - 1)), which is accurate.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DiagsimError, check_choice, check_positive
from ._context import ZERO_RTOL, Context

BLOCKS = ("all", "u", "v")


def renyi_entropy_of_spectrum(eigenvalues: np.ndarray, order: float, mask: np.ndarray | None = None
                              ) -> np.ndarray:
    """H_alpha of the normalized spectra, one per row of ``eigenvalues`` (M, P); ``mask`` selects entries.

    A row without any selected positive eigenvalue gives NaN.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim == 1:
        lam = lam[None]
    if mask is None:
        mask = lam > 0
    if np.any(lam[mask] < 0):
        raise DiagsimError("eigenvalues must be >= 0 for the Renyi entropy")
    lam = np.where(mask, lam, 0.0)
    tot = lam.sum(axis=1, keepdims=True)
    empty = tot[:, 0] <= 0
    p = lam / np.where(tot > 0, tot, 1.0)
    logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    if math.isinf(order):
        out = -np.log(np.where(empty, 1.0, p.max(axis=1)))
    elif order == 1.0:
        out = -(p * logp).sum(axis=1)
    else:
        a1 = order - 1.0
        s = (p * np.expm1(a1 * logp)).sum(axis=1)   # sum p^alpha - 1, exact for small a1
        out = np.log1p(s) / (1.0 - order)
    return np.where(empty, np.nan, out)


def renyi(problem, theta, *, order: float = 2.0, block: str = "all", rtol: float = ZERO_RTOL,
          ctx: Context | None = None) -> np.ndarray:
    """Rényi sharpness -H_alpha(H) of order ``order`` (alpha > 0, 1 = Shannon, inf = min-entropy), (M,).

    ``block``: "all" (all parameters), "u" or "v" (the diagonal Hessian block of that layer).
    """
    ctx = Context.of(problem, theta, ctx)
    order = _check_order(order)
    check_choice("block", block, BLOCKS)
    eig = ctx.spectrum(block)
    return -renyi_entropy_of_spectrum(eig, order, ctx.nonzero_mask(eig, check_positive("rtol", rtol)))


def renyi_u(problem, theta, *, order: float = 2.0, rtol: float = ZERO_RTOL, ctx: Context | None = None):
    """Rényi sharpness of the u-block H_uu (see :func:`renyi`), (M,)."""
    return renyi(problem, theta, order=order, block="u", rtol=rtol, ctx=ctx)


def renyi_v(problem, theta, *, order: float = 2.0, rtol: float = ZERO_RTOL, ctx: Context | None = None):
    """Rényi sharpness of the v-block H_vv (see :func:`renyi`), (M,)."""
    return renyi(problem, theta, order=order, block="v", rtol=rtol, ctx=ctx)


def _check_order(order) -> float:
    try:
        a = float(order)
    except (TypeError, ValueError):
        raise DiagsimError(f"order must be a number > 0 (inf allowed), got {order!r}") from None
    if not (a > 0) or math.isnan(a):
        raise DiagsimError(f"order must be > 0 (1 = Shannon, inf = min-entropy), got {order!r}")
    return a
