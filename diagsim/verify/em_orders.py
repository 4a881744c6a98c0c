"""Check 1: Euler–Maruyama strong and weak orders on SDEs with known solutions (docs/theory.md §7.9).

For dt = T / 2**l (l in ``levels``) every level integrates the *same* Brownian paths (the increments of
the finest grid, summed exactly: :mod:`diagsim.sde.brownian`) with the generic integrator
:func:`diagsim.sde.integrate`. Errors per level are statistics over paths:

* strong: RMS over paths of X_dt - X_ref on the same path;
* weak:   mean over paths of phi(X_dt) - phi(X_ref), phi(x) = x^2, plus the exact E phi(X_ref) - E phi(X_T).

References: geometric Brownian motion X_T = x0 exp((mu - sigma^2/2) T + sigma B_T) exactly on every path;
Ornstein–Uhlenbeck strong: R = e^{-kT} x0 + sum_i b_i dB_i on the base grid (h0), with b_i = sigma (1/h0)
int_{t_i}^{t_i + h0} e^{-k(T-s)} ds the conditional expectation of the exact stochastic integral given the
base increments (it differs from the exact solution by independent noise of variance O(h0^2)); OU weak:
Euler–Maruyama on the base grid, whose moment bias E R^2 - E X_T^2 is known exactly and added back.

Predicted orders: weak 1; strong 1/2 for multiplicative noise (GBM) and 1 for additive noise (OU, where
Euler–Maruyama coincides with Milstein) — the ``1/2`` of docs/theory.md §7.9 is the general lower bound,
and OU is the case that shows the additive-noise improvement.

Tolerance: Z_SCORE bootstrap standard errors of the fitted slope (paths resampled; every level uses the
same paths) plus an explicit allowance for the pre-asymptotic regime: b = max |p_grid(dt) - p_grid(dt / f)|,
f = 16, 256: how much the slope of the *exactly known* expected errors (closed-form Euler–Maruyama moments,
:mod:`diagsim.sde.testproblems` and :func:`ou_strong_expected`) still changes when the whole grid is refined.
For OU strong, whose reference lives on a base grid, b also contains the exactly computed effect of that
reference, |p_grid(reference) - p_grid(exact solution)| (:func:`ou_strong_exact`), and the refinement is taken
against the exact solution. b does not depend on the predicted order, so a wrong predicted order is not
absorbed by it.
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
from .estimates import Z_SCORE, log_slope

ORDERS = {"gbm-strong": 0.5, "gbm-weak": 1.0, "ou-strong": 1.0, "ou-weak": 1.0}


def ou_strong_expected(x0, rate, sigma, T, h, h0):
    """E (X_h - R)^2 for OU Euler–Maruyama X_h at step h against the reference R (module text) on base h0."""
    m, a = tp.ou_em_coefficients(x0, rate, sigma, T, h, h0)
    t = np.arange(int(round(T / h0))) * h0
    b = sigma * np.exp(-rate * (T - t - h0)) * (-np.expm1(-rate * h0)) / (rate * h0)
    return (m - math.exp(-rate * T) * x0) ** 2 + h0 * float(np.sum((a - b) ** 2))


def ou_strong_exact(x0, rate, sigma, T, h):
    """E (X_h - X_T)^2 for OU Euler–Maruyama against the exact solution on the same path (closed form)."""
    N = int(round(T / h))
    q = 1.0 - rate * h
    A = q ** (N - 1 - np.arange(N, dtype=float))
    tm = np.arange(N) * h
    e1 = (np.exp(-rate * (T - tm - h)) - np.exp(-rate * (T - tm))) / rate
    e2 = (np.exp(-2 * rate * (T - tm - h)) - np.exp(-2 * rate * (T - tm))) / (2 * rate)
    mean_part = (q ** N - math.exp(-rate * T)) ** 2 * x0 ** 2
    return mean_part + sigma ** 2 * float(np.sum(A * A * h - 2 * A * e1 + e2))


def expected_errors(case: str, hs, *, T: float, ou_ratio: int | None) -> list[float]:
    """The exactly known expected error statistic of ``case`` at the steps ``hs`` (``ou_ratio`` = None: OU
    strong error against the exact solution instead of the base-grid reference)."""
    if case == "gbm-strong":
        return [math.sqrt(tp.gbm_em_moments(1.0, 0.5, 1.0, T, h)["mse"]) for h in hs]
    if case == "gbm-weak":
        return [_weak(tp.gbm_em_moments(1.0, 1.0, 0.3, T, h)) for h in hs]
    h0 = float(min(hs)) / (ou_ratio or 1)
    if case == "ou-strong":
        if ou_ratio is None:
            return [math.sqrt(ou_strong_exact(1.0, 1.0, 1.0, T, h)) for h in hs]
        return [math.sqrt(ou_strong_expected(1.0, 1.0, 1.0, T, h, h0)) for h in hs]
    return [_weak(tp.ou_em_moments(1.0, 1.0, 1.0, T, h, h0)) for h in hs]


def _weak(moments: dict) -> float:
    return moments["second"] - moments["exact_second"]


def _ou_references(seed, M, h0, T, rate, sigma, x0, bcoef, chunk: int = 1024):
    """Per path: Euler–Maruyama on the base grid (R) and e^{-kT} x0 + sum_i b_i dB_i (Rs), in chunks of
    paths."""
    from ..lowlevel import rng
    n = int(round(T / h0))
    R, Rs = np.empty(M), np.empty(M)
    for a in range(0, M, chunk):
        ids = np.arange(a, min(M, a + chunk))
        dB = rng.normals(seed, "brownian", ids, n, 1)[:, :, 0] * math.sqrt(h0)
        r = np.full(ids.size, x0)
        for i in range(n):
            r = r - rate * r * h0 + sigma * dB[:, i]
        R[ids] = r
        Rs[ids] = math.exp(-rate * T) * x0 + dB @ bcoef
    return R, Rs


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
    from ..lowlevel import rng
    return rng.normals(seed, "brownian", np.arange(M), int(round(T / h_base)), 1)[:, :, 0] * math.sqrt(h_base)


@register("em-orders", 1, "Euler-Maruyama strong and weak orders (OU, GBM)",
          quick={"paths": 4096, "levels": [4, 5, 6, 7, 8], "ou_base_level": 10, "T": 1.0, "seed": 0,
                 "orders": ORDERS, "n_boot": 200},
          full={"paths": 65536, "levels": [4, 5, 6, 7, 8], "ou_base_level": 14, "T": 1.0, "seed": 0,
                "orders": ORDERS, "n_boot": 400})
def em_orders(ctx):
    M, T, seed = int(ctx["paths"]), float(ctx["T"]), int(ctx["seed"])
    hs = T / 2.0 ** np.asarray(ctx["levels"], dtype=float)
    orders = {**ORDERS, **dict(ctx["orders"])}
    rows, curves = [], {}

    ratio = 2 ** (int(ctx["ou_base_level"]) - int(max(ctx["levels"])))

    def row(case, p, se, exact_err, errs, t0, what):
        p_grid = log_slope(hs, expected_errors(case, hs, T=T, ou_ratio=ratio))
        if case == "ou-strong":  # the base-grid reference's own effect, then refinement vs the exact solution
            p_true = log_slope(hs, expected_errors(case, hs, T=T, ou_ratio=None))
            p_fine = [log_slope(hs / f, expected_errors(case, hs / f, T=T, ou_ratio=None)) for f in (16, 256)]
            bias = abs(p_grid - p_true) + max(abs(p_true - q) for q in p_fine)
        else:
            p_fine = [log_slope(hs / f, expected_errors(case, hs / f, T=T, ou_ratio=ratio))
                      for f in (16, 256)]
            bias = max(abs(p_grid - q) for q in p_fine)
        tol = Z_SCORE * se + bias
        curves[case] = (errs, p, orders[case])
        rows.append(ctx.result(
            case, f"{what} order: slope of log error vs log dt, dt = {hs[0]:g}..{hs[-1]:g}, {M} paths",
            p, orders[case], tol,
            derivation=(f"{Z_SCORE:g} bootstrap SE ({se:.3g}) + pre-asymptotic allowance {bias:.3g} = "
                        + ("|p_grid(base-grid reference) - p_grid(exact)| + " if case == "ou-strong" else "")
                        + f"max |p_grid - p_grid(dt/16, dt/256)| (exact expected slopes {p_grid:.4g}, "
                        f"{p_fine[0]:.4g}, {p_fine[1]:.4g})"),
            numbers={"dt": hs, "errors": errs, "expected_errors": exact_err, "slope_se": se, "p_grid": p_grid,
                     "p_grid_refined_16x": p_fine[0], "p_grid_refined_256x": p_fine[1], "paths": M},
            seconds=time.perf_counter() - t0))

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
    tb = np.arange(int(round(T / h0))) * h0
    bcoef = sigma * np.exp(-rate * (T - tb - h0)) * (-np.expm1(-rate * h0)) / (rate * h0)
    R, Rs = _ou_references(seed, M, h0, T, rate, sigma, x0, bcoef)
    ex = [tp.ou_em_moments(x0, rate, sigma, T, h, h0) for h in hs]
    d = X - Rs
    stat = lambda i: rms(d[:, i], axis=1)  # noqa: E731
    p, se = bootstrap_slope(hs, stat, M, n_boot=int(ctx["n_boot"]), seed=seed)
    row("ou-strong", p, se, [math.sqrt(ou_strong_expected(x0, rate, sigma, T, h, h0)) for h in hs],
        stat(np.arange(M)), t0, "strong")
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
