"""Check 6: off-support coordinates vanish in finite slow time under Adam and decay exponentially under SGD
(docs/theory.md §8.6).

Along Adam's eps -> 0 flow an off-support coordinate obeys d(u_i^2)/d tau = -1 + O(|u_i|) (S g = 2/(c u_i)
dominates the projection near 0), so x_i = u_i^2 + v_i^2 reaches 0 linearly at a finite tau*:
x = a (tau* - tau). Along SGD's flow the same coordinate obeys du_i/d tau = -(c/4) 8 s_i u_i + (projection,
also linear in u_i): x = A exp(-r tau).

For every coordinate that is off the support of the flow's limit, both laws (two parameters each) are fitted
by least squares to log x over the final stretch of its decay (samples with floor < x <= x_max / 4, at least
``min_points``; Adam: floor = (10 zero_tol)^2, samples at the integrator's resolution are excluded):
law F (finite time) log x = log a + log(tau* - tau), tau* > last sample; law E
(exponential) log x = log A - r tau. Measured: the mean over coordinates of log10(RMS_E / RMS_F) (> 0: the
finite-time law fits better); its standard error is the spread over coordinates. Predicted: > 0 for Adam,
< 0 for SGD; tolerance Z_SCORE standard errors. Adam's coordinates must also actually reach 0 (set exactly
to 0 by the flow once below ``zero_tol``) within the run: their count is reported.

Integrator note: the Adam flow runs with zero_tol = 1e-6 (the stepper's default 1e-9 lies below the noise
floor of its Heun step + Newton retraction: a coordinate whose partner u_i or v_i was already zeroed can
jitter around |u_i| ~ 5e-7, changing sign, for a slow-time span of order 1 instead of vanishing — an
integrator artifact, reported to the slow-flow owners; kappa = 0.02 removes it too).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import minimize_scalar

from ..networks.diagonal.problem import make_problem
from ..optimizers import SGD, Adam, LabelNoise
from . import plotting
from .base import register
from .estimates import Z_SCORE, mean_se
from .flow_runs import flow_trajectory


def fit_exponential(t, x):
    """(rms of log-residuals, rate r) of log x = log A - r t."""
    lx = np.log(x)
    b, a = np.polyfit(t, lx, 1)
    res = lx - (a + b * t)
    return float(np.sqrt(np.mean(res ** 2))), float(-b)


def fit_finite_time(t, x):
    """(rms of log-residuals, tau*) of log x = log a + log(tau* - t), tau* > t[-1]."""
    lx = np.log(x)
    span = float(t[-1] - t[0])

    def rss(z):  # tau* = t[-1] + span * exp(z)
        ts = t[-1] + span * math.exp(z)
        lg = np.log(ts - t)
        la = float(np.mean(lx - lg))
        return float(np.mean((lx - la - lg) ** 2))

    starts = (-14.0, -10.0, -6.0, -2.0, 2.0)
    best = min((minimize_scalar(rss, bounds=(lo, lo + 4.0), method="bounded") for lo in starts),
               key=lambda r: r.fun)
    return float(math.sqrt(best.fun)), float(t[-1] + span * math.exp(best.x))


def window(t, x, min_points, floor: float = 0.0):
    """Samples of the final decay: floor < x <= max(x) / 4, from the first time x falls below max / 4 on."""
    pos = x > floor
    if pos.sum() < min_points:
        return None
    j0 = int(np.argmax(x))
    below = np.flatnonzero((np.arange(x.size) >= j0) & (x <= x[j0] / 4.0))
    if below.size == 0:
        return None
    sel = np.arange(below[0], x.size)
    sel = sel[pos[sel]]
    return (t[sel], x[sel]) if sel.size >= min_points else None


@register("extinction", 6, "off-support coordinates: finite-time (Adam) vs exponential (SGD) decay",
          quick={"n": 10, "d": 40, "k": 2, "alpha": 0.3, "seed": 0, "label_noise": 1.0,
                 "tau_end": {"adam": 4.0, "sgd": 160.0}, "n_samples": 801, "dtau": 0.005, "min_points": 8,
                 "zero_tol": 1e-6},
          full={"n": 10, "d": 40, "k": 2, "alpha": 0.3, "seed": 0, "label_noise": 1.0,
                "tau_end": {"adam": 6.0, "sgd": 320.0}, "n_samples": 3001, "dtau": 0.002, "min_points": 8,
                "zero_tol": 1e-6})
def extinction(ctx):
    P = make_problem(int(ctx["n"]), int(ctx["d"]), int(ctx["k"]), alpha=float(ctx["alpha"]),
                     seed=int(ctx["seed"]))
    delta, d = float(ctx["label_noise"]), P.d
    rows, panels = [], {}
    for kind in ("adam", "sgd"):
        t0 = time.perf_counter()
        try:
            noise = LabelNoise(delta)
            opt = Adam(lr=0.01, noise=noise) if kind == "adam" else SGD(lr=0.01, noise=noise)
            opts = {"start": "gradient-flow"}
            if kind == "adam":
                opts.update(eps=0.0, zero_tol=float(ctx["zero_tol"]))
            T = float(ctx["tau_end"][kind])
            dtau = float(ctx["dtau"]) if kind == "adam" else float(ctx["dtau"]) * 40
            taus = np.round(np.linspace(0.0, T, int(ctx["n_samples"])) / dtau) * dtau
            _, th, st = flow_trajectory(P, opt, taus, dtau=dtau, **opts)
            X = th[:, :d] ** 2 + th[:, d:] ** 2
            w_end = P.w(th[-1])
            off = np.flatnonzero(np.abs(w_end) <= 1e-3 * np.abs(w_end).max())
            ratios, per = [], []
            floor = (10.0 * float(ctx["zero_tol"])) ** 2 if kind == "adam" else 0.0
            for i in off:
                win = window(taus, X[:, i], int(ctx["min_points"]), floor)
                if win is None:
                    continue
                rf, tstar = fit_finite_time(*win)
                re, rate = fit_exponential(*win)
                ratios.append(math.log10(max(re, 1e-300) / max(rf, 1e-300)))
                per_better = ratios[-1] > 0
                zero = np.flatnonzero(X[:, i] == 0.0)
                per.append({"coordinate": int(i), "rms_finite": rf, "rms_exponential": re, "tau_star": tstar,
                            "rate": rate, "reached_zero_at": float(taus[zero[0]]) if zero.size else None,
                            "points": int(win[0].size), "finite_time_fits_better": per_better})
            if not ratios:
                raise RuntimeError(f"no off-support coordinate with a decay window of >= {ctx['min_points']} "
                                   "samples")
            mr, sr = mean_se(np.array(ratios))
            reached = sum(p["reached_zero_at"] is not None for p in per)
            panels[kind] = (taus, X, off)
            better = "finite-time" if mr > 0 else "exponential"
            rows.append(ctx.result(
                kind, f"mean log10(RMS_exponential / RMS_finite-time) over {len(ratios)} off-support "
                      "coordinates "
                      f"(better fit: {better}; {reached} reached exactly 0 by tau = {T:g})",
                float(mr), 0.0, Z_SCORE * float(sr) if len(ratios) > 1 else math.inf,
                relation=">" if kind == "adam" else "<",
                derivation=f"{Z_SCORE:g} SE over coordinates ({float(sr):.2g})",
                numbers={"per_coordinate": per, "better_fit": better, "n_reached_zero": reached,
                         "fraction_finite_time_better": float(np.mean(np.array(ratios) > 0)),
                         "median_rms_finite": float(np.median([p["rms_finite"] for p in per])),
                         "median_rms_exponential": float(np.median([p["rms_exponential"] for p in per]))},
                seconds=time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001
            rows.append(ctx.error_row(kind, "off-support decay law", exc, time.perf_counter() - t0))
    path = ctx.figure_path()
    if path is not None and panels:
        fig, axes = plotting.figure(len(panels))
        for ax, (kind, (taus, X, off)) in zip(axes, panels.items()):
            for i in off[:12]:
                ax.plot(taus, np.where(X[:, i] > 0, X[:, i], np.nan), lw=0.8)
            ax.set_yscale("log")
            ax.set_xlabel("tau")
            ax.set_ylabel("u_i^2 + v_i^2 (off-support)")
            law = "linear to 0 in finite time" if kind == "adam" else "exponential decay"
            ax.set_title(f"{kind} flow: {law}",
                         fontsize=9)
        plotting.save(fig, path)
    return rows
