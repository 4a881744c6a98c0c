"""Check 5: each optimizer's measure is non-increasing along its slow flow; Adam's flow does not depend on the
label-noise level delta, SGD's runs at a speed proportional to c = delta^2 / n (docs/theory.md §8.5).

* monotone/<flow>: the flow (eps = 0, quasi-static v: the exact Riemannian gradient flow of its measure) is
  sampled at ``n_samples`` slow times; its measure is evaluated with :mod:`diagsim.measures` (independent
  of the flow's own code): tr H (SGD), tr diag(H)^{1/2} (Adam), tr diag(H)^{1-lambda} (AdamE), sum_b
  sqrt(|b| tr H_bb) (Adam-mini). Measured: the largest increase between consecutive samples; predicted
  <= 0; tolerance: the rounding error of evaluating a sum of 2d non-negative terms, (2d + 8) eps (|m_j| +
  |m_j+1|) (standard summation bound; no allowance for the integrator). The exact derivative
  dPhi/dtau = <grad Phi, velocity> at every sample is reported too (it must be <= 0 up to rounding).
* adam-delta-invariance: S = (c diag H)^{-1/2} makes the velocity -(c/4) P^S S grad tr(S H) independent of c,
  so the flows for delta and 3 delta coincide. Measured: max |w_delta(tau) - w_3delta(tau)| over the
  samples (same dtau); tolerance: the integrator's own error, estimated as the difference between the
  delta run and one with dtau and kappa halved.
* sgd-speed-scaling: the SGD velocity is proportional to c, so w_3delta(tau) = w_delta(9 tau). Measured: max
  |w_3delta(tau) - w_delta(9 tau)|, the delta run with dtau 9 times larger (the same steps in c tau);
  tolerance as above. (The unscaled difference max |w_3delta(tau) - w_delta(tau)| is reported: it is O(1).)
  The factor 3 (not a power of two) keeps the rescaling from being exact in floating point.
* noise-scale/n=<n>: the covariance of SGD's label-noise gradient on Gamma is c H with c = delta^2 / n.
  One discrete SGD step from a point of Gamma (grad L = 0) with M paths: E ||g||^2 = c tr H. Measured:
  mean ||g||^2 / tr H; predicted delta^2 / n; tolerance Z_SCORE standard errors of the mean. Two sample sizes.
"""
from __future__ import annotations

import time

import numpy as np

from .. import measures as MS
from ..engine.driver import simulate
from ..networks.diagonal.problem import make_problem
from ..optimizers import SGD, Adam, AdamMini, LabelNoise
from ..slowflow import gradient_flow_limit
from . import plotting
from .base import numba_threads, register
from .estimates import Z_SCORE, mean_se
from .flow_runs import flow_trajectory

EPS = np.finfo(float).eps


def _spec(kind, lam, delta):
    noise = LabelNoise(delta)
    return {"sgd": lambda: SGD(lr=0.01, noise=noise), "adam": lambda: Adam(lr=0.01, noise=noise),
            "adame": lambda: Adam(lr=0.01, noise=noise, lam=lam),
            "block": lambda: AdamMini(lr=0.01, noise=noise)}[kind]()


def measure_of(kind, P, theta, lam):
    if kind == "sgd":
        return MS.trace(P, theta)
    if kind == "adam":
        return MS.trace_diag_sqrt(P, theta)
    if kind == "adame":
        return MS.trace_diag_pow(P, theta, lam=lam)
    return MS.block_trace_sqrt(P, theta)


def _opts(kind, **extra):
    o = {"start": "gradient-flow"}
    if kind != "sgd":
        o["eps"] = 0.0
    o.update(extra)
    return o


def _dphi(stepper, theta):
    """<grad Phi, velocity> / (|grad Phi| |velocity|) and the raw value, per sample (quasi-static v,
    eps = 0)."""
    flow = stepper.flow
    S = flow.preconditioner(theta)
    g = flow.semi_gradient(theta, S)  # = grad Phi for the quasi-static flow (see slowflow.flows)
    vel, _ = flow.velocity(theta)
    raw = np.einsum("mi,mi->m", g, vel)
    nrm = np.linalg.norm(g, axis=1) * np.linalg.norm(vel, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(nrm > 0, raw / np.where(nrm > 0, nrm, 1.0), 0.0)
    return cos, raw


_P = {"n": 6, "d": 20, "k": 2, "alpha": 0.3, "seed": 0}


@register("flow-measures", 5, "measures non-increasing along the flows; Adam delta-invariance, SGD speed ~ c",
          quick={"problem": _P, "flows": ["sgd", "adam", "adame", "block"], "lam": 0.25, "label_noise": 1.0,
                 "tau_end": {"sgd": 40.0, "adam": 4.0, "adame": 4.0, "block": 20.0}, "n_samples": 81,
                 "dtau": 0.05, "kappa": 0.1, "noise_n": [6, 12], "noise_paths": 20000, "noise_lr": 1e-3,
                 "seed": 0},
          full={"problem": _P, "flows": ["sgd", "adam", "adame", "block"], "lam": 0.25, "label_noise": 1.0,
                "tau_end": {"sgd": 160.0, "adam": 8.0, "adame": 8.0, "block": 80.0}, "n_samples": 401,
                "dtau": 0.01, "kappa": 0.05, "noise_n": [6, 12, 24], "noise_paths": 400000, "noise_lr": 1e-3,
                "seed": 0})
def flow_measures(ctx):
    pp = ctx["problem"]
    P = make_problem(int(pp["n"]), int(pp["d"]), int(pp["k"]), alpha=float(pp["alpha"]), seed=int(pp["seed"]))
    lam, delta = float(ctx["lam"]), float(ctx["label_noise"])
    dtau, kappa, N = float(ctx["dtau"]), float(ctx["kappa"]), int(ctx["n_samples"])
    rows, curves = [], {}
    for kind in ctx["flows"]:
        t0 = time.perf_counter()
        try:
            taus = np.linspace(0.0, float(ctx["tau_end"][kind]), N)
            _, th, st = flow_trajectory(P, _spec(kind, lam, delta), taus, dtau=dtau,
                                        **_opts(kind, kappa=kappa))
            m = measure_of(kind, P, th, lam)
            inc = np.diff(m)
            tol_j = (2 * P.d + 8) * EPS * (np.abs(m[:-1]) + np.abs(m[1:]))
            j = int(np.argmax(inc - tol_j))
            with numba_threads(1):
                cos, raw = _dphi(st, th)
            curves[kind] = (taus, m)
            rows.append(ctx.result(
                f"monotone/{kind}", f"largest increase of the flow's measure between {N} samples on "
                                    f"[0, {taus[-1]:g}] (measure from diagsim.measures)",
                float(inc[j]), 0.0, float(tol_j[j]), relation="<=",
                derivation="summation rounding bound (2d + 8) eps (|m_j| + |m_j+1|)",
                numbers={"measure_start": m[0], "measure_end": m[-1], "max_increase": float(inc.max()),
                         "max_cos_grad_velocity": float(cos.max()), "max_dphi_dtau": float(raw.max()),
                         "n_increases_above_rounding": int(np.sum(inc > tol_j)), "taus": taus, "measure": m},
                seconds=time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001
            rows.append(ctx.error_row(f"monotone/{kind}", "measure along the slow flow", exc,
                                      time.perf_counter() - t0))

    # delta-invariance of Adam's flow, delta^2/n speed of SGD's
    for kind, case in (("adam", "adam-delta-invariance"), ("sgd", "sgd-speed-scaling")):
        t0 = time.perf_counter()
        try:
            T = float(ctx["tau_end"][kind])
            taus = np.linspace(0.0, T, 21)
            scale = 1.0 if kind == "adam" else 9.0
            def run(dl, ts, dt, kp, kind=kind):
                return P.w(flow_trajectory(P, _spec(kind, lam, dl), ts, dtau=dt, **_opts(kind, kappa=kp))[1])

            W2 = run(3 * delta, taus, dtau, kappa)
            W1 = run(delta, scale * taus, scale * dtau, kappa)
            W1h = run(delta, scale * taus, scale * dtau / 2, kappa / 2)
            meas = float(np.abs(W2 - W1).max())
            tol = float(np.abs(W1h - W1).max())
            unscaled = float(np.abs(W2 - run(delta, taus, dtau, kappa)).max()) if kind == "sgd" else meas
            what = ("max |w_delta(tau) - w_3delta(tau)|" if kind == "adam"
                    else "max |w_3delta(tau) - w_delta(9 tau)|")
            rows.append(ctx.result(
                case, f"{what} over tau in [0, {T:g}] (delta = {delta:g})", meas, 0.0, tol,
                derivation="integrator error estimate: same run with dtau and kappa halved",
                numbers={"unscaled_difference": unscaled, "integrator_error": tol, "taus": taus},
                seconds=time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001
            rows.append(ctx.error_row(case, "delta scaling of the slow flow", exc, time.perf_counter() - t0))

    # c = delta^2 / n: one discrete SGD step from a point of Gamma
    for n in ctx["noise_n"]:
        t0 = time.perf_counter()
        try:
            Pn = make_problem(int(n), int(pp["d"]), int(pp["k"]), alpha=float(pp["alpha"]),
                              seed=int(pp["seed"]))
            with numba_threads(1):
                th = gradient_flow_limit(Pn, Pn.theta0(1))
            lr, M = float(ctx["noise_lr"]), int(ctx["noise_paths"])
            r = simulate(Pn, SGD(lr=lr, noise=LabelNoise(delta)), steps=1, n_paths=M, seed=int(ctx["seed"]),
                         theta0=th[0], progress=False, n_records=2, device=ctx.device_for("discrete"))
            g = (th - r.theta) / lr
            q = np.einsum("mi,mi->m", g, g) / float(MS.trace(Pn, th)[0])
            mq, sq = mean_se(q)
            rows.append(ctx.result(
                f"noise-scale/n={n}", f"E ||g||^2 / tr H of one label-noise SGD step on Gamma ({M} paths)",
                float(mq), delta ** 2 / int(n), Z_SCORE * float(sq),
                derivation=f"{Z_SCORE:g} SE of the mean ({float(sq):.2g})",
                numbers={"n": int(n), "c_predicted": delta ** 2 / int(n)}, seconds=time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001
            rows.append(ctx.error_row(f"noise-scale/n={n}", "label-noise covariance scale", exc,
                                      time.perf_counter() - t0))

    path = ctx.figure_path()
    if path is not None and curves:
        fig, axes = plotting.figure(len(curves))
        for ax, (kind, (taus, m)) in zip(axes, curves.items()):
            ax.plot(taus, m, "-")
            ax.set_xlabel("tau")
            ax.set_ylabel("measure")
            ax.set_title(f"{kind} flow: its measure", fontsize=9)
        plotting.save(fig, path)
    return rows
