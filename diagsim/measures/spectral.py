"""Spectral sharpness measures: lambda_max, tr H, tr diag(H)^{1/2}, tr diag(H)^{1-lam}, the Adam-mini block
measure, the log pseudo-determinant and the Fisher-Rao norm (docs/theory.md §10.2).

Conventions. H is the Hessian of L(theta) = (1/2n) ||Z w(theta) - y||^2 at theta = [u, v] (2d parameters).
H = G + R/n with the Gauss-Newton (Fisher) part G = (1/n) J^T J and a residual part that vanishes on the
manifold of minimizers Gamma = {Z w = y}. Every measure here is defined on Gamma; off Gamma, by default
(``hessian="gn"``), it is evaluated for G, which is positive semi-definite (so square roots, powers and
logarithms are defined). ``lambda_max`` and ``trace`` accept ``hessian="full"`` for the exact H anywhere.
Spectra come from n x n reductions ((1/n) Z diag(c) Z^T, whose spectrum is the non-zero spectrum of G),
never from a 2d x 2d eigendecomposition.

Every function takes ``(problem, theta)`` with theta of shape (M, 2d) (or (2d,)) and returns shape (M,).

Other model families (e.g. "matrix", docs/theory.md §13): every measure here except ``block_trace_sqrt``
is computed from the interface of :mod:`diagsim.networks.model` (gn_diag, hessian_diag, jvp, the n x n Gram
(1/n) J J^T from n vjp's per path; ``hessian="full"`` for lambda_max builds the dense Hessian, small P
only) through :class:`~._context.ModelContext`.
"""
from __future__ import annotations

import numpy as np

from ..errors import check_choice, check_interval, check_positive
from ._context import ZERO_RTOL, Context

HESSIANS = ("gn", "full")


def lambda_max(problem, theta, *, hessian: str = "gn", ctx: Context | None = None) -> np.ndarray:
    """Largest Hessian eigenvalue lambda_max(H), shape (M,).

    ``"gn"``: top eigenvalue of the n x n matrix (1/n) Z diag(wu^2 + wv^2) Z^T = the top eigenvalue of
    G = (1/n) J^T J (= H on Gamma). ``"full"``: exact lambda_max of H = G + R/n anywhere, from the secular
    equation on n x n matrices (see :mod:`._structured`).
    """
    ctx = Context.of(problem, theta, ctx)
    check_choice("hessian", hessian, HESSIANS)
    if hessian == "gn":
        return ctx.spectrum("all")[:, -1].copy()
    return ctx.full_lambda_max()


def trace(problem, theta, *, hessian: str = "gn", ctx: Context | None = None) -> np.ndarray:
    """tr H, shape (M,).

    ``"gn"``: tr G = sum_i s_i (wu_i^2 + wv_i^2) ("uu-vv": 4 sum s (u^2 + v^2); "uv": sum s (u^2 + v^2)).
    ``"full"``: adds tr R/n = sum_i gw_i (d2w/du2 + d2w/dv2), which is identically 0 for "uu-vv" and "uv"
    (so both agree everywhere for them) but not for "depth-D".
    """
    ctx = Context.of(problem, theta, ctx)
    check_choice("hessian", hessian, HESSIANS)
    if hessian == "full":
        return ctx.full_trace
    return ctx.gn_diag.sum(axis=1)


def trace_diag_sqrt(problem, theta, *, ctx: Context | None = None) -> np.ndarray:
    """Adam's measure tr diag(H)^{1/2} = sum_i sqrt(H_ii) over all 2d parameters, shape (M,).

    With diag H on Gamma = [s wu^2, s wv^2]: sum_i sqrt(s_i) (|wu_i| + |wv_i|); "uu-vv":
    2 sum sqrt(s_i) (|u_i| + |v_i|) (docs/theory.md §3.4). Uses the Gauss-Newton diagonal (= diag H on Gamma).
    """
    ctx = Context.of(problem, theta, ctx)
    return np.sqrt(ctx.gn_diag).sum(axis=1)


def trace_diag_pow(problem, theta, *, lam: float = 0.25, ctx: Context | None = None) -> np.ndarray:
    """AdamE-lambda's measure tr diag(H)^{1-lam} = sum_i H_ii^{1-lam}, shape (M,).

    lam = 0 gives tr H (SGD), lam = 1/2 gives tr diag(H)^{1/2} (Adam); lam must lie in [0, 1). Uses the
    Gauss-Newton diagonal (= diag H on Gamma). The default lam = 0.25 sits between SGD and Adam.
    """
    ctx = Context.of(problem, theta, ctx)
    lam = check_interval("lam", lam, 0.0, 1.0)
    return (ctx.gn_diag ** (1.0 - lam)).sum(axis=1)


def block_trace_sqrt(problem, theta, *, ctx: Context | None = None) -> np.ndarray:
    """Adam-mini / Adalayer's measure sum_b sqrt(|b| tr H_bb) over the blocks b = u, v (|b| = d), (M,).

    tr H_uu = sum_i s_i wu_i^2 and tr H_vv = sum_i s_i wv_i^2 (Gauss-Newton, = H on Gamma).
    """
    ctx = Context.of(problem, theta, ctx)
    d = ctx.d
    g = ctx.gn_diag
    return np.sqrt(d * g[:, :d].sum(axis=1)) + np.sqrt(d * g[:, d:].sum(axis=1))


def log_pdet(problem, theta, *, rtol: float = ZERO_RTOL, ctx: Context | None = None) -> np.ndarray:
    """Log pseudo-determinant on Gamma: sum of log lambda_i over the non-zero eigenvalues of G, (M,).

    The non-zero spectrum of G = (1/n) J^T J is that of the n x n matrix (1/n) Z diag(wu^2 + wv^2) Z^T
    (rank <= n). Eigenvalues <= rtol * lambda_max count as zero (default 1e-12); when the rank is n this is
    log det((1/n) J J^T). Returns -inf when G = 0.
    """
    ctx = Context.of(problem, theta, ctx)
    rtol = check_positive("rtol", rtol)
    eig = ctx.spectrum("all")
    mask = ctx.nonzero_mask(eig, rtol)
    out = np.where(mask, np.log(np.where(mask, eig, 1.0)), 0.0).sum(axis=1)
    return np.where(mask.any(axis=1), out, -np.inf)


def fisher_rao(problem, theta, *, ctx: Context | None = None) -> np.ndarray:
    """Fisher-Rao norm <theta, F theta> with F = (1/n) J^T J, i.e. (1/n) ||J theta||^2, shape (M,).

    J theta = Z (wu u + wv v); for the 2-homogeneous "uu-vv" and "uv" this is 2 Z w, so the norm is
    (4/n) ||Z w||^2 (D^2/n ||Z w||^2 for "depth-D"), which is constant, (4/n) ||y||^2, on Gamma.
    """
    ctx = Context.of(problem, theta, ctx)
    Jt = ctx.j_theta
    return np.einsum("mj,mj->m", Jt, Jt) / ctx.n
