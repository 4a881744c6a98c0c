"""Check 4: where the slow flows end, against the predictions of :mod:`diagsim.predict` (docs/theory.md §9).

Each flow starts at the gradient-flow limit Phi(theta_0) (the fast phase) and runs on Gamma until it has
converged; the eps -> 0 flows with quasi-static v are used (exactly the Riemannian gradient flows of the
measures):

=============  ==========================  ===============================================================
flow           measure on Gamma            prediction (``diagsim.predict``)
=============  ==========================  ===============================================================
SGD            tr H                        weighted basis pursuit min sum s_i |w_i|, Z w = y (LP)
Adam           tr diag(H)^{1/2}            weighted l_{1/2}: a KKT point (every basic solution is a local
                                           minimizer; which one depends on the path); in the sparse-
                                           recovery regime, the global minimizer (support enumeration)
AdamE-lambda   tr diag(H)^{1-lambda}       weighted l_{1-lambda}: the same two statements
Adam-mini      sum_b sqrt(|b| tr H_bb)     block regularizer: global minimizer over the Pareto vertices
=============  ==========================  ===============================================================

Two instances: "recovery" (n large enough that the teacher w* is the sparse solution: the global minimizers
are predicted) and "hard" (fewer samples: only the KKT property is predicted for the non-convex measures;
the objective there and the global minimum are reported).

Convergence is established, not assumed: the flow is sampled at doubling slow times up to ``tau_max``; the
distance still to go is bounded by the geometric tail of the last increments (``stats.geometric_tail``;
exactly 0 once an adaptive flow has reached its vertex in finite time, infinite — hence a failure — when the
increments are not yet contracting). Tolerance on max_i |w_flow - w_pred|: that tail plus the effect of the
residuals r of the two points (the flow is retracted to |r| ~ 1e-12): ||Z_S^+||_2 (|r_flow| + |r_pred|) on the
union S of their supports (:func:`off_manifold_error`). KKT rows: the support S of the
limit must have full column rank (a basic solution; else the row fails) and the measured number is the
distance of w_flow from the basic solution Z_S^+ y on its own support, with the same tolerance.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..networks.diagonal.problem import make_problem
from ..optimizers import SGD, Adam, AdamMini, LabelNoise
from . import plotting
from .base import register
from .estimates import geometric_tail
from .flow_runs import FlowRunner

FLOWS = ("sgd", "adam", "adame", "block")


def flow_spec(kind: str, lam: float, delta: float):
    noise = LabelNoise(delta)
    if kind == "sgd":
        return SGD(lr=0.01, noise=noise)
    if kind == "adam":
        return Adam(lr=0.01, noise=noise)
    if kind == "adame":
        return Adam(lr=0.01, noise=noise, lam=lam)
    return AdamMini(lr=0.01, noise=noise)


def predict_for(P, kind: str, lam: float, **kw):
    from ..predict import predict
    if kind == "sgd":
        return predict(P, "sgd")
    if kind == "adam":
        return predict(P, "adam", **kw)
    if kind == "adame":
        return predict(P, "adame", lam=lam, **kw)
    return predict(P, "adam-mini")


def converge(P, opt, *, dtau: float, tau_first: float, tau_max: float, tail_target: float, adaptive: bool):
    """Run the flow to tau = tau_first * 2^j, j = 0, 1, ..., until the geometric tail bound of the last two
    increments of w is <= tail_target, or tau_max.

    Returns (taus, W (T, d), theta_end, tail, stepper)."""
    opts = {"start": "gradient-flow"}
    if adaptive:
        opts.update(eps=0.0)
    run = FlowRunner(P, opt, dtau=dtau, **opts)
    taus, W = [0.0], [P.w(run.theta)]
    th = run.theta
    tail, t = math.inf, tau_first
    while t <= tau_max * (1 + 1e-12):
        th = run.advance_to(t)
        taus.append(t)
        W.append(P.w(th))
        if len(W) >= 4:
            inc = [float(np.abs(W[-i] - W[-i - 1]).max()) for i in (2, 1)]
            tail = geometric_tail(inc)
            if tail <= tail_target:
                break
        t *= 2.0
    return np.array(taus), np.array(W), th, tail, run.stepper


def off_manifold_error(P, theta, w_other) -> float:
    """Bound on how much the residuals r of the flow's end point and of the compared point move w: both lie on
    the coordinates S = supp(w_flow) U supp(w_other); if Z_S has full column rank,
    |dw| <= ||Z_S^+||_2 (|r_flow|
    + |r_other|), else the minimum-norm correction ||Z^+||_2 (...)."""
    w = P.w(theta)
    r = float(np.linalg.norm(P.Z @ w - P.y) + np.linalg.norm(P.Z @ w_other - P.y))
    S = np.flatnonzero((np.abs(w) > 0) | (np.abs(w_other) > 0))
    ZS = P.Z[:, S]
    A = ZS if (S.size <= P.n and np.linalg.matrix_rank(ZS) == S.size) else P.Z
    return float(np.linalg.norm(np.linalg.pinv(A), 2) * r)


def basic_solution(P, w, rel: float = 1e-8):
    """(support S, full column rank?, Z_S^+ y on S as a (d,) vector)."""
    S = np.flatnonzero(np.abs(w) > rel * max(float(np.abs(w).max()), 1e-300))
    ZS = P.Z[:, S]
    full = S.size <= P.n and np.linalg.matrix_rank(ZS) == S.size
    wb = np.zeros(P.d)
    wb[S] = np.linalg.lstsq(ZS, P.y, rcond=None)[0]
    return S, bool(full), wb


_INST = {"recovery": {"n": 10, "d": 20, "k": 2, "alpha": 0.1, "seed": 0},
         "hard": {"n": 6, "d": 20, "k": 2, "alpha": 0.3, "seed": 0}}


@register("flow-limits", 4, "slow-flow limits vs symbolic predictions (LP, l_1/2, l_{1-lam}, block)",
          quick={"instances": _INST, "flows": list(FLOWS), "lam": 0.25, "label_noise": 1.0, "dtau": 0.05,
                 "tau_first": 5.0, "tau_max": 1280.0, "tail_target": 1e-6},
          full={"instances": _INST, "flows": list(FLOWS), "lam": 0.25, "label_noise": 1.0, "dtau": 0.02,
                "tau_first": 5.0, "tau_max": 5120.0, "tail_target": 1e-8})
def flow_limits(ctx):
    rows, panels = [], []
    lam, delta = float(ctx["lam"]), float(ctx["label_noise"])
    for inst, spec in ctx["instances"].items():
        P = make_problem(int(spec["n"]), int(spec["d"]), int(spec["k"]), alpha=float(spec["alpha"]),
                         seed=int(spec["seed"]))
        for kind in ctx["flows"]:
            t0 = time.perf_counter()
            case = f"{inst}/{kind}"
            try:
                adaptive = kind != "sgd"
                taus, W, th, tail, st = converge(P, flow_spec(kind, lam, delta), dtau=float(ctx["dtau"]),
                                                 tau_first=float(ctx["tau_first"]),
                                                 tau_max=float(ctx["tau_max"]),
                                                 tail_target=float(ctx["tail_target"]), adaptive=adaptive)
                w = W[-1]
                pred = predict_for(P, kind, lam)
                geo = off_manifold_error(P, th, pred.w)
                tol = tail + geo
                nums = {"tau": taus, "tail_bound": tail, "off_manifold": geo, "w_flow": w,
                        "w_predicted": pred.w,
                        "predict_method": pred.method, "predict_global": pred.is_global,
                        "support_flow": np.flatnonzero(np.abs(w) > 1e-8).tolist(),
                        "support_predicted": pred.support.tolist(), "teacher_support":
                            np.flatnonzero(P.w_star).tolist(), "n": P.n, "d": P.d}
                panels.append((case, taus, W, pred.w))
                non_convex = kind in ("adam", "adame")
                if non_convex and inst == "hard":
                    S, full, wb = basic_solution(P, w)
                    meas = float(np.abs(w - wb).max()) if full else math.inf
                    geo = off_manifold_error(P, th, wb)
                    tol = tail + geo
                    R = _objective(P, kind, lam)
                    local = predict_for(P, kind, lam, method="local", x0=P.w(st.start_point(P.theta0(1)))[0])
                    nums.update(support_size=int(S.size), full_column_rank=full, objective_flow=R(w),
                                objective_global=R(pred.w), objective_local_from_start=R(local.w),
                                w_local_from_start=local.w,
                                local_equals_flow=bool(np.abs(local.w - w).max() < 1e-6))
                    label = "l_1/2" if kind == "adam" else f"l_{1 - lam:g}"
                    rows.append(ctx.result(
                        f"{case}-kkt", f"flow limit is a KKT point of weighted {label}: |S| = {S.size} <= "
                                       f"n = {P.n}, "
                                       f"Z_S full column rank = {full}; max|w_flow - Z_S^+ y|",
                        meas, 0.0, tol, derivation=f"flow tail bound {tail:.2g} + off-manifold {geo:.2g}",
                        numbers=nums, seconds=time.perf_counter() - t0))
                else:
                    what = {"sgd": "LP solution (weighted basis pursuit)",
                            "adam": "global weighted l_1/2 minimizer",
                            "adame": f"global weighted l_{1 - lam:g} minimizer",
                            "block": "global block-regularizer minimizer (Pareto vertices)"}[kind]
                    rows.append(ctx.result(
                        case, f"max_i |w_flow - w_predicted|, predicted = {what} (n={P.n}, d={P.d})",
                        float(np.abs(w - pred.w).max()), 0.0, tol,
                        derivation=f"flow tail bound {tail:.2g} + off-manifold {geo:.2g}",
                        numbers=nums, seconds=time.perf_counter() - t0))
            except Exception as exc:  # noqa: BLE001
                rows.append(ctx.error_row(case, "slow-flow limit vs prediction", exc,
                                          time.perf_counter() - t0))
    path = ctx.figure_path()
    if path is not None and panels:
        fig, axes = plotting.figure(4, (len(panels) + 3) // 4)
        for ax, (case, taus, W, wp) in zip(axes, panels):
            tt = np.maximum(taus, taus[1] / 4)
            for i in np.flatnonzero(np.abs(W).max(axis=0) > 1e-3):
                line, = ax.plot(tt, W[:, i], lw=1)
                ax.axhline(wp[i], color=line.get_color(), ls="--", lw=0.7)
            ax.set_xscale("log")
            ax.set_xlabel("tau")
            ax.set_title(case, fontsize=9)
        axes[0].set_ylabel("w_i (dashed: prediction)")
        plotting.save(fig, path)
    return rows


def _objective(P, kind, lam):
    from ..symbolic import regularizer
    R = regularizer(P.param, "adam") if kind == "adam" else regularizer(P.param, "adame", lam)
    return lambda w: float(R.total(w, P.s))
