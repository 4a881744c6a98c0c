"""Check 2: discrete SGD and Adam versus their SDEs — weak error proportional to lr (docs/theory.md §7.10).

For each learning rate lr_l of a geometric grid, at the fixed SDE time t = T (k = T / lr optimizer steps):

* discrete: ``simulate(model="discrete")`` with Rademacher label noise (the paper's), M paths;
* SDE: ``simulate(model="sde")`` — the SGD label-noise SDE, resp. the Adam SDE of the paper's regime
  (1 - beta2 = C lr^2 with C fixed, beta1 fixed: momentum averages out at leading order) — integrated by
  Euler–Maruyama at dt = lr/2 and lr/4 on the same Brownian paths, Richardson-extrapolated
  (2 E_{lr/4} - E_{lr/2}) to remove the integrator's own O(dt) bias (what is left is O(dt^2), about
  lr/8 relative to the O(lr) weak error).

The weak error is e(lr) = E phi(theta_k) - E phi(X_T) for phi = the test loss (1/2)||w - w*||^2, a generic
smooth observable (the training loss is a poor choice: near Gamma it is itself O(lr), so its weak error is
O(lr^2)). Its standard error comes from the two independent ensembles. The measured order is the
least-squares slope of log|e| against log lr; its standard error comes from a parametric bootstrap over the
per-level standard errors. Predicted: 1. Tolerance: Z_SCORE standard errors of the slope (no bias allowance:
the grid is chosen in the asymptotic regime; the local slopes between levels are reported).

Choice of the regime (measured, not tuned to pass): at t = 2 with delta = 1 the weak error of SGD falls
faster than lr on lr in [0.0125, 0.1] (local slopes 1.4-1.7, then noisy): the noise-driven part of the
weak error is O(lr^2)-dominated there and its O(lr) part is small. At t = 0.5, delta = 0.5 and lr <= 0.0125
the O(lr) term dominates (for Adam, with beta1 = 0.5, C = 4, v0 = 0.1, local slopes rise 0.44, 0.66, 1.2
over lr = 0.025 ... 0.003 — pre-asymptotic above lr ~ 0.01), so that is the grid used.
"""
from __future__ import annotations

import time

import numpy as np

from ..engine.driver import simulate
from ..networks.diagonal.problem import make_problem
from ..optimizers import SGD, Adam, LabelNoise
from . import plotting
from .base import register
from .estimates import Z_SCORE, local_slopes, mean_se, parametric_slope


def test_loss(problem, res) -> np.ndarray:
    w = res.w
    return 0.5 * np.sum((w - problem.w_star) ** 2, axis=1)


def _optimizer(kind: str, lr: float, p: dict):
    noise = LabelNoise(float(p["label_noise"]))
    if kind == "sgd":
        return SGD(lr=lr, noise=noise)
    return Adam(lr=lr, beta1=float(p["beta1"]), beta2=1.0 - float(p["C"]) * lr ** 2, eps=float(p["eps"]),
                v0=float(p["v0"]), noise=noise)


def weak_errors(problem, kind: str, lrs, p: dict, log=lambda m: None, device: str = "cpu"):
    """Per lr: (e, se, discrete mean, SDE mean) of the test loss at t = T."""
    M, T, seed = int(p["paths"]), float(p["T"]), int(p["seed"])
    out = []
    for lr in lrs:
        opt = _optimizer(kind, lr, p)
        rd = simulate(problem, opt, t=T, n_paths=M, seed=seed, progress=False, n_records=2, device=device)
        fine = []
        for j in (1, 2):
            rs = simulate(problem, opt, t=T, n_paths=M, seed=seed + 1, model="sde", progress=False,
                          n_records=2,
                          model_options={"dt": lr / 2 ** j, "dt_base": lr / 4}, device=device)
            fine.append(test_loss(problem, rs))
        fd = test_loss(problem, rd)
        ref = 2.0 * fine[1] - fine[0]
        md, sd = mean_se(fd)
        mr, sr = mean_se(ref)
        n_div = int(rd.diverged_mask.sum())
        out.append({"lr": lr, "e": md - mr, "se": float(np.hypot(sd, sr)), "discrete": md, "sde": mr,
                    "sde_dt_half_minus_quarter": float(np.mean(fine[0] - fine[1])), "diverged": n_div})
        log(f"  {kind} lr={lr:g}: e = {md - mr:.4g} +- {float(np.hypot(sd, sr)):.2g}")
    return out


_COMMON = {"n": 5, "d": 10, "k": 2, "seed": 2, "alpha": 0.5, "label_noise": 0.5, "T": 0.5, "beta1": 0.5,
           "C": 4.0, "eps": 1e-8, "v0": 0.1, "order": 1.0}


@register("weak-error", 2, "discrete SGD and Adam vs their SDEs: weak error proportional to lr",
          quick={**_COMMON, "paths": 16384, "lrs": [0.0125, 0.00625, 0.003125],
                 "optimizers": ["sgd", "adam"]},
          full={**_COMMON, "paths": 131072, "lrs": [0.0125, 0.00625, 0.003125, 0.0015625],
                "optimizers": ["sgd", "adam"]})
def weak_error(ctx):
    P = make_problem(int(ctx["n"]), int(ctx["d"]), int(ctx["k"]), alpha=float(ctx["alpha"]),
                     seed=int(ctx["seed"]))
    lrs = [float(x) for x in ctx["lrs"]]
    rows, curves = [], {}
    for kind in ctx["optimizers"]:
        t0 = time.perf_counter()
        levels = weak_errors(P, kind, lrs, ctx.params, ctx.log, ctx.device_for("sde"))
        e = np.array([lv["e"] for lv in levels])
        se = np.array([lv["se"] for lv in levels])
        p, sp = parametric_slope(lrs, e, se, seed=int(ctx["seed"]))
        curves[kind] = (e, se, p)
        model = ("SGD label-noise SDE" if kind == "sgd" else
                 f"Adam SDE (1-beta2 = {ctx['C']:g} lr^2, beta1 = {ctx['beta1']:g}, v0 = {ctx['v0']:g})")
        rows.append(ctx.result(
            kind, f"order of the weak error |E test loss (discrete) - E (SDE)| at t = {ctx['T']:g} vs lr "
                  f"({model}; {int(ctx['paths'])} paths per ensemble)",
            p, float(ctx["order"]), Z_SCORE * sp,
            derivation=f"{Z_SCORE:g} SE of the slope ({sp:.3g}, parametric bootstrap over per-level SEs)",
            numbers={"lr": lrs, "weak_error": e, "se": se, "local_slopes": local_slopes(lrs, e),
                     "levels": levels, "slope_se": sp, "problem": P.describe()},
            seconds=time.perf_counter() - t0))
    path = ctx.figure_path()
    if path is not None:
        fig, (ax,) = plotting.figure(1)
        for kind, (e, se, p) in curves.items():
            plotting.loglog_fit(ax, lrs, e, se, slope=p, predicted=float(ctx["order"]), label=kind)
        ax.set_xlabel("lr")
        ax.set_ylabel("|weak error| of the test loss")
        ax.set_title(f"discrete vs SDE at t = {ctx['T']:g} (dashed: slope 1)")
        ax.legend(fontsize=8)
        plotting.save(fig, path)
    return rows
