"""Check 1: Euler–Maruyama strong and weak orders on SDEs with known solutions (THEORY §6).

For dt = T / 2**l (l in ``levels``) every level integrates the *same* Brownian paths (the increments of
the finest grid, summed exactly: :mod:`diagsim.sde.brownian`) with the generic integrator
:func:`diagsim.sde.integrate`. Errors per level are statistics over paths:

* strong: RMS over paths of X_dt - X_ref on the same path;
* weak:   mean over paths of phi(X_dt) - phi(X_ref), phi(x) = x^2, plus the exact E phi(X_ref) - E phi(X_T).

References: geometric Brownian motion X_T = x0 exp((mu - sigma^2/2) T + sigma B_T) exactly on every path;
Ornstein–Uhlenbeck: Euler–Maruyama on a finer base grid (its own moments are exact closed forms, so its bias
is added back exactly). Predicted orders: weak 1; strong 1/2 for multiplicative noise (GBM) and 1 for
additive noise (OU, where Euler–Maruyama coincides with Milstein) — the ``1/2`` of THEORY §6 is the general
lower bound, and OU is the case that shows the additive-noise improvement.

Tolerance: Z_SCORE bootstrap standard errors of the fitted slope (paths resampled; every level uses the
same paths) plus the *exact* pre-asymptotic bias on this grid, |p_grid - p|, where p_grid is the slope of the
exactly known expected errors (closed-form Euler–Maruyama moments, :mod:`diagsim.sde.testproblems`).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..sde import testproblems as tp
from ..sde.brownian import BrownianPath
from ..sde.convergence import bootstrap_slope, rms
from ..sde.integrator import integrate
from . import plotting
from .base import register
from .stats import Z_SCORE, log_slope

ORDERS = {"gbm-strong": 0.5, "gbm-weak": 1.0, "ou-strong": 1.0, "ou-weak": 1.0}


def _levels_run(model, x0, hs, h_base, M, seed, T):
    out = []
    for h in hs:
        X = np.full((M, 1), float(x0))
        act = np.ones(M, bool)
        integrate(model.drift, model.diffusion, model.args, X, paths=np.arange(M, dtype=np.int64), active=act,
                  step0=0, n_steps=int(round(T / h)), dt=h, n_noise=1, n_work=0, amplitude=model.amplitude,
                  brownian=BrownianPath(seed, h_base))
        out.append(X[:, 0])
    return np.array(out)


def _base_increments(seed, M, h_base, T):
    from .. import rng
    return rng.normals(seed, "brownian", np.arange(M), int(round(T / h_base)), 1)[:, :, 0] * math.sqrt(h_base)


@register("em-orders", 1, "Euler-Maruyama strong and weak orders (OU, GBM)",
          quick={"paths": 4096, "levels": [4, 5, 6, 7, 8], "ou_base_level": 10, "T": 1.0, "seed": 0,
                 "orders": ORDERS, "n_boot": 200},
          full={"paths": 65536, "levels": [4, 5, 6, 7, 8], "ou_base_level": 11, "T": 1.0, "seed": 0,
                "orders": ORDERS, "n_boot": 400})
def em_orders(ctx):
    M, T, seed = int(ctx["paths"]), float(ctx["T"]), int(ctx["seed"])
    hs = T / 2.0 ** np.asarray(ctx["levels"], dtype=float)
    orders = {**ORDERS, **dict(ctx["orders"])}
    rows, curves = [], {}

    def row(case, p, se, exact_err, errs, t0, what):
        p_grid = log_slope(hs, exact_err)
        bias = abs(p_grid - orders[case])
        tol = Z_SCORE * se + bias
        curves[case] = (errs, p, orders[case])
        rows.append(ctx.result(
            case, f"{what} order: slope of log error vs log dt, dt = {hs[0]:g}..{hs[-1]:g}, {M} paths",
            p, orders[case], tol,
            derivation=f"{Z_SCORE:g} bootstrap SE ({se:.3g}) + exact pre-asymptotic bias |p_grid - p| = {bias:.3g}",
            numbers={"dt": hs, "errors": errs, "expected_errors": exact_err, "slope_se": se, "p_grid": p_grid,
                     "paths": M}, seconds=time.perf_counter() - t0))

    # geometric Brownian motion: strong (mu 0.5, sigma 1) and weak (mu 1, sigma 0.3), exact X_T per path
    for case, (mu, sigma) in (("gbm-strong", (0.5, 1.0)), ("gbm-weak", (1.0, 0.3))):
        t0 = time.perf_counter()
        model = tp.geometric_brownian_motion(mu, sigma)
        X = _levels_run(model, 1.0, hs, hs[-1], M, seed, T)
        XT = tp.gbm_exact(1.0, mu, sigma, T, _base_increments(seed, M, hs[-1], T).sum(axis=1))
        ex = [tp.gbm_em_moments(1.0, mu, sigma, T, h) for h in hs]
        if case == "gbm-strong":
            d = X - XT
            stat = lambda i: rms(d[:, i], axis=1)  # noqa: E731
            exact = [math.sqrt(e["mse"]) for e in ex]
        else:
            d = X ** 2 - XT ** 2
            stat = lambda i: d[:, i].mean(axis=1)  # noqa: E731
            exact = [e["second"] - e["exact_second"] for e in ex]
        p, se = bootstrap_slope(hs, stat, M, n_boot=int(ctx["n_boot"]), seed=seed)
        row(case, p, se, exact, stat(np.arange(M)), t0, "strong" if "strong" in case else "weak")

    # Ornstein–Uhlenbeck (rate 1, sigma 1, x0 1): reference = Euler–Maruyama on the base grid
    t0 = time.perf_counter()
    rate, sigma, x0 = 1.0, 1.0, 1.0
    h0 = T / 2.0 ** int(ctx["ou_base_level"])
    X = _levels_run(tp.ornstein_uhlenbeck(rate, sigma), x0, hs, h0, M, seed, T)
    dB = _base_increments(seed, M, h0, T)
    R = np.full(M, x0)
    for i in range(dB.shape[1]):
        R = R - rate * R * h0 + sigma * dB[:, i]
    ex = [tp.ou_em_moments(x0, rate, sigma, T, h, h0) for h in hs]
    d = X - R
    stat = lambda i: rms(d[:, i], axis=1)  # noqa: E731
    p, se = bootstrap_slope(hs, stat, M, n_boot=int(ctx["n_boot"]), seed=seed)
    row("ou-strong", p, se, [math.sqrt(e["mse_vs_base"]) for e in ex], stat(np.arange(M)), t0, "strong")
    t0 = time.perf_counter()
    corr = ex[0]["base_second"] - ex[0]["exact_second"]
    d2 = X ** 2 - R ** 2
    stat = lambda i: d2[:, i].mean(axis=1) + corr  # noqa: E731
    p, se = bootstrap_slope(hs, stat, M, n_boot=int(ctx["n_boot"]), seed=seed)
    row("ou-weak", p, se, [e["second"] - e["exact_second"] for e in ex], stat(np.arange(M)), t0, "weak")

    path = ctx.figure_path()
    if path is not None:
        fig, (a1, a2) = plotting.figure(2)
        for ax, prefix in ((a1, "gbm"), (a2, "ou")):
            for case, (errs, p, pred) in curves.items():
                if case.startswith(prefix):
                    plotting.loglog_fit(ax, hs, errs, slope=p, predicted=pred, label=case)
            ax.set_xlabel("dt")
            ax.set_ylabel("|error|")
            ax.set_title(f"Euler-Maruyama, {prefix.upper()} (dashed: predicted order)")
            ax.legend(fontsize=8)
        plotting.save(fig, path)
    return rows
