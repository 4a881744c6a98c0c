"""Check 8: sparse regression with d >= 200 — does Adam with label noise reach a lower test loss and a
sparser w than SGD with label noise, once both have converged? (the paper's claim; THEORY §3 reference
setup)

Instance: the paper's ratios at d = 200: n/d = 0.05 (n = 10), k = 3, teacher ±1, Gaussian design, init
u = v = 0.1 g. Both optimizers use the same label noise delta (larger than the paper's 0.5 so that SGD's slow
flow, whose speed is proportional to c = delta^2/n, converges within an affordable number of steps; Adam's
flow does not depend on delta). Adam: lr 0.02, beta1 0.9, 1 - beta2 = 5 lr^2 (the paper's C = (1-0.95)/0.1^2),
eps 1e-6, v0 = 0. SGD: lr 0.01 (stable: lr lambda_max(H) < 2 along the run).

Convergence, established and reported, not assumed:

* SGD: its slow flow (from Phi(theta_0)) is integrated to the run's slow time tau_SGD; the row
  ``sgd-flow-converged`` compares its test loss there with that of its limit, the LP solution (the
  unique limit, check 4), against the resolution of the comparison below (Z_SCORE SE of the SGD ensemble's
  mean test loss). The distance of the SGD ensemble mean from the LP solution is reported.
* both: stationarity of the discrete runs: per path, test loss at tau_end minus at tau_end / 2; the mean
  difference must be 0 within Z_SCORE standard errors (rows ``*-stationary``).

Verdicts (independent ensembles, Z_SCORE standard errors of the difference of means):
``test-loss``: mean test loss (Adam) - mean test loss (SGD) < 0; ``sparsity``: the effective number of
non-zeros N_eff(w) = ||w||_1^2 / ||w||_2^2 (threshold-free), Adam - SGD < 0. The counts #{|w_i| > 0.01} and
#{|w_i| > 1e-3} are reported too (Adam's discrete noise keeps off-support coordinates at |u_i| ~ lr, a floor
that a fixed threshold would count).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..optimizers import Adam, LabelNoise, SGD
from ..problem import make_problem
from ..simulate import simulate
from . import plotting
from .base import register
from .flows import FlowRunner
from .stats import Z_SCORE, mean_se


def n_eff(W: np.ndarray) -> np.ndarray:
    """||w||_1^2 / ||w||_2^2 per row (the effective number of non-zeros)."""
    a = np.abs(W)
    return a.sum(axis=1) ** 2 / np.maximum((a * a).sum(axis=1), 1e-300)


def _run(P, opt, tau, M, seed):
    steps = int(round(tau / opt.lr ** 2))
    grid = np.unique(np.array([0, steps // 4, steps // 2, steps], dtype=np.int64))
    r = simulate(P, opt, steps=steps, n_paths=M, seed=seed, progress=False, record=grid)
    ok = ~r.diverged_mask
    tl = r.records["test_loss"][:, ok]
    return r, tl, r.w[ok], grid


_BASE = {"n": 10, "d": 200, "k": 3, "alpha": 0.1, "label_noise": 3.0, "adam_lr": 0.02, "adam_beta1": 0.9,
         "adam_C": 5.0, "adam_eps": 1e-6, "sgd_lr": 0.01, "flow_dtau": 0.05, "run_seed": 0}


@register("sparse-regression", 8,
          "d >= 200: Adam (label noise) reaches lower test loss and sparser w than SGD",
          quick={**_BASE, "seeds": [0], "paths": 4, "tau_sgd": 128.0, "tau_adam": 50.0},
          full={**_BASE, "seeds": [0, 1, 2], "paths": 8, "tau_sgd": 512.0, "tau_adam": 100.0})
def sparse_regression(ctx):
    from ..predict import predict
    rows, panels = [], []
    delta, M = float(ctx["label_noise"]), int(ctx["paths"])
    for seed in ctx["seeds"]:
        t0 = time.perf_counter()
        tag = f"seed={seed}"
        try:
            P = make_problem(int(ctx["n"]), int(ctx["d"]), int(ctx["k"]), alpha=float(ctx["alpha"]),
                             seed=int(seed))
            noise = LabelNoise(delta)
            la = float(ctx["adam_lr"])
            adam = Adam(lr=la, beta1=float(ctx["adam_beta1"]), beta2=1.0 - float(ctx["adam_C"]) * la ** 2,
                        eps=float(ctx["adam_eps"]), noise=noise)
            sgd = SGD(lr=float(ctx["sgd_lr"]), noise=noise)
            ra, tla, Wa, ga = _run(P, adam, float(ctx["tau_adam"]), M, int(ctx["run_seed"]))
            ctx.log(f"  {tag}: adam done ({time.perf_counter() - t0:.0f} s)")
            rs, tls, Ws, gs = _run(P, sgd, float(ctx["tau_sgd"]), M, int(ctx["run_seed"]))
            ctx.log(f"  {tag}: sgd done ({time.perf_counter() - t0:.0f} s)")
            lp = predict(P, "sgd")
            tl_lp = float(P.test_loss_w(lp.w))
            flow = FlowRunner(P, sgd, dtau=float(ctx["flow_dtau"]), start="gradient-flow")
            wf = P.w(flow.advance_to(float(ctx["tau_sgd"])))
            tl_flow = float(P.test_loss_w(wf))
            ma, sa = mean_se(tla[-1])
            ms, ss = mean_se(tls[-1])
            na, nsa = mean_se(n_eff(Wa))
            ns, nss = mean_se(n_eff(Ws))
            common = {"n": P.n, "d": P.d, "k": int(ctx["k"]), "label_noise": delta, "paths": M,
                      "adam_test_loss": tla[-1], "sgd_test_loss": tls[-1], "lp_test_loss": tl_lp,
                      "adam_neff": n_eff(Wa), "sgd_neff": n_eff(Ws), "lp_neff": float(n_eff(lp.w[None])[0]),
                      "adam_support_0.01": np.sum(np.abs(Wa) > 0.01, axis=1),
                      "sgd_support_0.01": np.sum(np.abs(Ws) > 0.01, axis=1),
                      "adam_support_1e-3": np.sum(np.abs(Wa) > 1e-3, axis=1),
                      "sgd_support_1e-3": np.sum(np.abs(Ws) > 1e-3, axis=1),
                      "lp_support": lp.support.size, "teacher_support": np.flatnonzero(P.w_star).tolist(),
                      "sgd_mean_dist_to_lp": float(np.abs(Ws.mean(axis=0) - lp.w).max()),
                      "diverged": {"adam": int(ra.diverged_mask.sum()), "sgd": int(rs.diverged_mask.sum())},
                      "tau": {"adam": float(ctx["tau_adam"]), "sgd": float(ctx["tau_sgd"])}}
            sec = time.perf_counter() - t0
            rows.append(ctx.result(
                f"{tag}/test-loss", f"mean test loss Adam - SGD (Adam {ma:.4g} +- {sa:.2g}, "
                                    f"SGD {ms:.4g} +- {ss:.2g}; "
                                    f"LP limit {tl_lp:.4g}; n={P.n}, d={P.d}, k={ctx['k']}, {M} paths each)",
                ma - ms, 0.0, Z_SCORE * math.hypot(sa, ss), relation="<",
                derivation=f"{Z_SCORE:g} SE of the difference of independent means", numbers=common,
                seconds=sec))
            rows.append(ctx.result(
                f"{tag}/sparsity", f"mean N_eff = |w|_1^2/|w|_2^2, Adam - SGD (Adam {na:.4g}, SGD {ns:.4g}, "
                                   f"LP {common['lp_neff']:.4g})",
                na - ns, 0.0, Z_SCORE * math.hypot(nsa, nss), relation="<",
                derivation=f"{Z_SCORE:g} SE of the difference of independent means", seconds=sec))
            rows.append(ctx.result(
                f"{tag}/sgd-flow-converged", f"|test loss of SGD's slow flow at tau = {ctx['tau_sgd']:g} - "
                                             f"test loss of "
                                             f"its limit (LP)|",
                abs(tl_flow - tl_lp), 0.0, Z_SCORE * ss,
                derivation="the resolution of the test-loss comparison (Z_SCORE SE of SGD's mean test loss)",
                numbers={"flow_test_loss": tl_flow, "lp_test_loss": tl_lp,
                         "flow_dist_to_lp": float(np.abs(wf - lp.w).max())}, seconds=sec))
            for name, tl, grid, lr in (("adam", tla, ga, la), ("sgd", tls, gs, float(ctx["sgd_lr"]))):
                dm, dse = mean_se(tl[-1] - tl[-2])
                rows.append(ctx.result(
                    f"{tag}/{name}-stationary", f"mean per-path change of the test loss from tau = "
                                                f"{grid[-2] * lr ** 2:g} to {grid[-1] * lr ** 2:g}",
                    float(dm), 0.0, Z_SCORE * float(dse),
                    derivation=f"{Z_SCORE:g} SE of the mean paired difference", seconds=sec))
            panels.append((tag, tla, tls, ga * la ** 2, gs * float(ctx["sgd_lr"]) ** 2, tl_lp))
        except Exception as exc:  # noqa: BLE001
            rows.append(ctx.error_row(tag, "Adam vs SGD on sparse regression", exc, time.perf_counter() - t0))
    path = ctx.figure_path()
    if path is not None and panels:
        fig, axes = plotting.figure(len(panels))
        for ax, (tag, tla, tls, ta, ts, tl_lp) in zip(axes, panels):
            ax.plot(np.maximum(ta, ta[1] / 2), tla, "-", color="C0", lw=0.8, alpha=0.7)
            ax.plot(np.maximum(ts, ts[1] / 2), tls, "-", color="C1", lw=0.8, alpha=0.7)
            ax.plot([], [], "-", color="C0", label="Adam (paths)")
            ax.plot([], [], "-", color="C1", label="SGD (paths)")
            ax.axhline(tl_lp, ls="--", color="k", lw=0.8, label="LP limit (SGD's prediction)")
            ax.set_xscale("log")
            ax.set_xlabel("tau = lr^2 k")
            ax.set_ylabel("test loss")
            ax.set_title(f"sparse regression, {tag}", fontsize=9)
            ax.legend(fontsize=7)
        plotting.save(fig, path)
    return rows
