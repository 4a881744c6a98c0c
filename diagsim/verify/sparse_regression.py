"""Check 8, a claim: sparse regression with d >= 200 — does Adam with label noise reach a lower test loss
and a sparser w than SGD with label noise, once both have converged? (the paper's empirical claim, on the
reference setup of the theory)

Instances, chosen by a rule that uses no Adam-vs-SGD outcome (only SGD's theory and the paper's values):

* d = 200, k = 3 (teacher +-1, Gaussian design, init u = v = 0.1 g) and n = ceil(delta_1(d, k)), the
  statistical dimension of the l1 descent cone at a k-sparse vector (Amelunxen, Lotz, McCoy, Tropp 2014:
  delta_1 = inf_{t >= 0} k (1 + t^2) + (d - k) E[(|g| - t)_+^2]), i.e. the l1 / basis-pursuit recovery
  phase transition: n = 17 for d = 200, k = 3 (n = 10 is far below it, the paper's d = 1000, n = 50 far
  above it, where the LP recovers w* and the two implicit biases agree). Parameter ``n = 0`` means this
  rule; a positive ``n`` overrides it.
* seeds 0, 1, 2, ... in order; an instance is used when (i) SGD's predicted limit, the weighted-l1 LP
  solution, does NOT recover w* (max |w_LP - w*| > 1e-6): the paper's claim concerns the regime where the two
  implicit biases differ; where the LP recovers w*, SGD's limit has test loss 0 and Adam cannot be lower;
  and (ii) SGD's slow flow, started from Phi(theta_0), is within ``flow_tol`` (test loss) of the LP at
  tau_SGD, so that SGD's run can converge within the budget. Both criteria use only SGD's theory (LP and
  flow), never a run being compared. The first ``instances`` such seeds are used; skipped seeds and the
  reason are reported.

Hyperparameters: Adam exactly as the paper's stationary reference (lr 0.1, beta1 0.9, beta2 0.95, eps 1e-6,
label noise delta 0.5, v0 = 0, no bias correction). SGD: delta = 3 and lr = 0.01 (the paper: 0.5, 0.005):
SGD's limit (the LP) does not depend on delta or lr, but its slow flow's speed is proportional to
c = delta^2 / n, so the paper's values would need ~10^9 steps to converge; lr 0.01 is stable along the run.

Convergence, established and reported, not assumed:

* SGD: its slow flow is integrated to the run's slow time tau_SGD; the row ``sgd-flow-converged`` compares
  its test loss there with the LP's against Z_SCORE SE of SGD's mean test loss.
* Adam: its slow flow reaches a basic solution (a local minimizer of the weighted l_1/2 regularizer) by
  tau ~ 5 from Phi(theta_0); the discrete process at lr 0.1 keeps hopping between such vertices (noise-
  activated escapes towards w*) on a far longer scale, tau ~ 10^2..10^5 (the paper runs 10^7 steps,
  tau = 10^5). tau_adam is therefore long (full preset: the paper's 10^7 steps).
* both: per path, test loss at tau_end minus at tau_end / 2; the mean difference must be 0 within Z_SCORE
  standard errors (rows ``*-stationary``).

This is a *claim* check (see :mod:`diagsim.verify.base`): its three claim rows get a verdict HOLDS / FAILS /
NOT SIGNIFICANT (:func:`~diagsim.verify.base.claim_verdict`) that never changes the exit status of
``diagsim verify``; the convergence rows above are the *conditions* of its regime.

Claim rows, over the selected instances (fixed effects: the instances are fixed, the paths random), each a
mean over instances of [per-instance mean (Adam) - mean (SGD)] claimed < 0, with tolerance Z_SCORE SE,
SE = sqrt(sum_i (se_adam_i^2 + se_sgd_i^2)) / S:

* ``test-loss``: the test loss at the last step;
* ``sparsity``: the effective number of non-zeros N_eff(w) = ||w||_1^2 / ||w||_2^2 (threshold-free) of the
  iterate's w(theta), the noisy state of the run;
* ``sparsity-at-phi``: the same at Phi(theta), the limit of gradient flow from the final theta
  (:func:`diagsim.slowflow.gradient_flow_limit`), i.e. its projection onto the manifold Gamma of
  interpolators. The implicit-bias theory describes the slow motion of Phi(theta) on Gamma, so this is the
  sparsity it speaks about; the iterate adds the optimizer's fluctuations around Gamma. The ``sparsity`` row
  (fixed before any comparison) keeps its definition and verdict; this row is reported next to it.

The support sizes #{|w_i| > 0.01}, at the iterate and at Phi(theta), are reported per instance (ranges over
paths) without a verdict (Adam's discrete noise at lr 0.1 keeps off-support coordinates at |u_i| ~ lr,
|w_i| ~ lr^2, near that threshold).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..engine.driver import simulate
from ..networks.diagonal.problem import make_problem
from ..optimizers import SGD, Adam, LabelNoise
from ..slowflow import gradient_flow_limit
from . import plotting
from .base import numba_threads, register
from .estimates import Z_SCORE, mean_se
from .flow_runs import FlowRunner

#: threshold of the reported support sizes #{|w_i| > SUPPORT_THRESHOLD} (no verdict rests on it)
SUPPORT_THRESHOLD = 0.01


def n_eff(W: np.ndarray) -> np.ndarray:
    """||w||_1^2 / ||w||_2^2 per row (the effective number of non-zeros)."""
    a = np.abs(W)
    return a.sum(axis=1) ** 2 / np.maximum((a * a).sum(axis=1), 1e-300)


def l1_statistical_dimension(d: int, k: int) -> float:
    """Statistical dimension of the l1 descent cone at a k-sparse vector in R^d (Amelunxen, Lotz, McCoy,
    Tropp 2014, Prop. 4.5): inf_{t >= 0} k (1 + t^2) + (d - k) E[(|g| - t)_+^2], g ~ N(0, 1), with
    E[(|g| - t)_+^2] = 2 [(1 + t^2) Q(t) - t phi(t)]. Basis pursuit recovers w* with probability ~1/2 at
    n = delta (the transition has width O(sqrt d))."""
    from scipy.optimize import minimize_scalar
    from scipy.stats import norm

    def f(t):
        return k * (1 + t * t) + (d - k) * 2.0 * ((1 + t * t) * norm.sf(t) - t * norm.pdf(t))

    return float(minimize_scalar(f, bounds=(0.0, 20.0), method="bounded",
                                 options={"xatol": 1e-10}).fun)


def support_size(W: np.ndarray, threshold: float = SUPPORT_THRESHOLD) -> np.ndarray:
    """#{i: |w_i| > threshold} per row."""
    return np.sum(np.abs(W) > threshold, axis=1)


def fixed_effects(diff_means, se_a, se_b) -> tuple[float, float]:
    """Mean over instances of per-instance differences of means and its SE, the instances fixed:
    (mean_i diff_i, sqrt(sum_i se_a_i^2 + se_b_i^2) / S)."""
    diff = np.asarray(diff_means, dtype=np.float64)
    var = np.asarray(se_a, dtype=np.float64) ** 2 + np.asarray(se_b, dtype=np.float64) ** 2
    return float(diff.mean()), float(math.sqrt(var.sum()) / diff.size)


def _range(counts) -> str:
    """"lo-hi" of integer counts over paths ("lo" when all equal)."""
    lo, hi = int(np.min(counts)), int(np.max(counts))
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _run(P, opt, tau, M, seed, device="cpu"):
    steps = int(round(tau / opt.lr ** 2))
    grid = np.unique(np.array([0, steps // 4, steps // 2, steps], dtype=np.int64))
    r = simulate(P, opt, steps=steps, n_paths=M, seed=seed, progress=False, record=grid, device=device)
    ok = ~r.diverged_mask
    tl = r.records["test_loss"][:, ok]
    return r, tl, r.w[ok], grid


def select_instances(ctx, n, sgd):
    """The first ``instances`` seeds (from ``first_seed``) whose LP misses w* and whose SGD slow flow reaches
    the LP within ``flow_tol`` by tau_SGD. Returns (chosen [(seed, P, lp, tl_flow, flow_dist)], skipped)."""
    from ..predict import predict
    chosen, skipped = [], []
    seed = int(ctx["first_seed"])
    while len(chosen) < int(ctx["instances"]) and seed < int(ctx["first_seed"]) + int(ctx["max_scan"]):
        P = make_problem(n, int(ctx["d"]), int(ctx["k"]), alpha=float(ctx["alpha"]), seed=seed)
        lp = predict(P, "sgd")
        err = float(np.abs(lp.w - P.w_star).max())
        if err <= 1e-6 * max(1.0, float(np.abs(P.w_star).max())):
            skipped.append({"seed": seed, "reason": "LP recovers w*"})
        else:
            flow = FlowRunner(P, sgd, dtau=float(ctx["flow_dtau"]), start="gradient-flow")
            wf = P.w(flow.advance_to(float(ctx["tau_sgd"])))
            gap = abs(float(P.test_loss_w(wf)) - float(P.test_loss_w(lp.w)))
            if gap > float(ctx["flow_tol"]):
                skipped.append({"seed": seed, "reason": f"SGD flow not converged at tau {ctx['tau_sgd']:g} "
                                                        f"(|test - LP| = {gap:.3g})"})
            else:
                chosen.append((seed, P, lp, float(P.test_loss_w(wf)), float(np.abs(wf - lp.w).max())))
        seed += 1
    return chosen, skipped


_BASE = {"n": 0, "d": 200, "k": 3, "alpha": 0.1, "first_seed": 0, "max_scan": 60, "flow_tol": 1e-3,
         "adam_lr": 0.1, "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_eps": 1e-6, "adam_label_noise": 0.5,
         "sgd_lr": 0.01, "sgd_label_noise": 3.0, "flow_dtau": 0.05, "run_seed": 0}


@register("sparse-regression", 8,
          "d >= 200: Adam (label noise) reaches lower test loss and sparser w than SGD", kind="claim",
          quick={**_BASE, "instances": 2, "paths_adam": 8, "paths_sgd": 8, "tau_sgd": 256.0,
                 "tau_adam": 1.0e4},
          full={**_BASE, "instances": 4, "paths_adam": 8, "paths_sgd": 8, "tau_sgd": 512.0,
                "tau_adam": 1.0e5})
def sparse_regression(ctx):
    t_all = time.perf_counter()
    d, k = int(ctx["d"]), int(ctx["k"])
    sdim = l1_statistical_dimension(d, k)
    n = int(ctx["n"]) or int(math.ceil(sdim))
    la = float(ctx["adam_lr"])
    adam = Adam(lr=la, beta1=float(ctx["adam_beta1"]), beta2=float(ctx["adam_beta2"]),
                eps=float(ctx["adam_eps"]), noise=LabelNoise(float(ctx["adam_label_noise"])))
    ls = float(ctx["sgd_lr"])
    sgd = SGD(lr=ls, noise=LabelNoise(float(ctx["sgd_label_noise"])))
    chosen, skipped = select_instances(ctx, n, sgd)
    ctx.log(f"  n = {n} (l1 statistical dimension {sdim:.3f}); instances {[c[0] for c in chosen]}, "
            f"skipped {len(skipped)} ({time.perf_counter() - t_all:.0f} s)")
    rows, panels, per = [], [], []
    for seed, P, lp, tl_flow, flow_dist in chosen:
        t0 = time.perf_counter()
        tag = f"seed={seed}"
        dev = ctx.device_for("discrete")
        ra, tla, Wa, ga = _run(P, adam, float(ctx["tau_adam"]), int(ctx["paths_adam"]), int(ctx["run_seed"]), dev)
        rs, tls, Ws, gs = _run(P, sgd, float(ctx["tau_sgd"]), int(ctx["paths_sgd"]), int(ctx["run_seed"]), dev)
        with numba_threads(1):
            Wa_phi = P.w(gradient_flow_limit(P, ra.theta[~ra.diverged_mask]))
            Ws_phi = P.w(gradient_flow_limit(P, rs.theta[~rs.diverged_mask]))
        ctx.log(f"  {tag}: adam and sgd done, Phi(theta) computed ({time.perf_counter() - t0:.0f} s)")
        tl_lp = float(P.test_loss_w(lp.w))
        ma, sa = mean_se(tla[-1])
        ms, ss = mean_se(tls[-1])
        na, nsa = mean_se(n_eff(Wa))
        ns, nss = mean_se(n_eff(Ws))
        nap, nsap = mean_se(n_eff(Wa_phi))
        nsp, nssp = mean_se(n_eff(Ws_phi))
        sec = time.perf_counter() - t0
        per.append({"seed": seed, "adam_test_loss": tla[-1], "sgd_test_loss": tls[-1], "lp_test_loss": tl_lp,
                    "adam_mean": float(ma), "adam_se": float(sa), "sgd_mean": float(ms), "sgd_se": float(ss),
                    "adam_neff": n_eff(Wa), "sgd_neff": n_eff(Ws), "lp_neff": float(n_eff(lp.w[None])[0]),
                    "adam_neff_mean": float(na), "adam_neff_se": float(nsa), "sgd_neff_mean": float(ns),
                    "sgd_neff_se": float(nss),
                    "adam_support_0.01": support_size(Wa), "sgd_support_0.01": support_size(Ws),
                    "adam_neff_phi": n_eff(Wa_phi), "sgd_neff_phi": n_eff(Ws_phi),
                    "adam_neff_phi_mean": float(nap), "adam_neff_phi_se": float(nsap),
                    "sgd_neff_phi_mean": float(nsp), "sgd_neff_phi_se": float(nssp),
                    "adam_support_0.01_phi": support_size(Wa_phi),
                    "sgd_support_0.01_phi": support_size(Ws_phi),
                    "adam_max_dist_to_phi": float(np.abs(Wa - Wa_phi).max()),
                    "sgd_max_dist_to_phi": float(np.abs(Ws - Ws_phi).max()),
                    "lp_support": int(lp.support.size), "teacher_support": np.flatnonzero(P.w_star).tolist(),
                    "adam_test_loss_tau_half": tla[-2], "sgd_test_loss_tau_half": tls[-2],
                    "diverged": {"adam": int(ra.diverged_mask.sum()), "sgd": int(rs.diverged_mask.sum())}})
        rows.append(ctx.result(
            f"{tag}/sgd-flow-converged", f"|test loss of SGD's slow flow at tau = {ctx['tau_sgd']:g} - "
                                         f"test loss of its limit (LP {tl_lp:.4g})|",
            abs(tl_flow - tl_lp), 0.0, Z_SCORE * ss,
            derivation="the resolution of the test-loss comparison (Z_SCORE SE of SGD's mean test loss)",
            numbers={"flow_test_loss": tl_flow, "lp_test_loss": tl_lp, "flow_dist_to_lp": flow_dist,
                     "sgd_mean_dist_to_lp": float(np.abs(Ws.mean(axis=0) - lp.w).max())}, seconds=sec))
        for name, tl, grid, lr in (("adam", tla, ga, la), ("sgd", tls, gs, ls)):
            dm, dse = mean_se(tl[-1] - tl[-2])
            rows.append(ctx.result(
                f"{tag}/{name}-stationary", f"mean per-path change of the test loss from tau = "
                                            f"{grid[-2] * lr ** 2:g} to {grid[-1] * lr ** 2:g}",
                float(dm), 0.0, Z_SCORE * float(dse),
                derivation=f"{Z_SCORE:g} SE of the mean paired difference", seconds=sec))
        panels.append((tag, tla, tls, ga * la ** 2, gs * ls ** 2, tl_lp))
    if not per:
        raise RuntimeError(f"no instance qualified among seeds {ctx['first_seed']}.."
                           f"{int(ctx['first_seed']) + int(ctx['max_scan']) - 1}: {skipped}")
    sec = time.perf_counter() - t_all
    dt, dt_se = fixed_effects([p["adam_mean"] - p["sgd_mean"] for p in per], [p["adam_se"] for p in per],
                              [p["sgd_se"] for p in per])
    dn, dn_se = fixed_effects([p["adam_neff_mean"] - p["sgd_neff_mean"] for p in per],
                              [p["adam_neff_se"] for p in per], [p["sgd_neff_se"] for p in per])
    dp, dp_se = fixed_effects([p["adam_neff_phi_mean"] - p["sgd_neff_phi_mean"] for p in per],
                              [p["adam_neff_phi_se"] for p in per], [p["sgd_neff_phi_se"] for p in per])
    common = {"n": n, "d": d, "k": k, "l1_statistical_dimension": sdim,
              "instances": [p["seed"] for p in per], "skipped": skipped, "per_instance": per,
              "adam": adam.config(), "sgd": sgd.config(),
              "tau": {"adam": float(ctx["tau_adam"]), "sgd": float(ctx["tau_sgd"])},
              "paths": {"adam": int(ctx["paths_adam"]), "sgd": int(ctx["paths_sgd"])}}
    seeds = [p["seed"] for p in per]
    steps = {"adam": int(round(float(ctx["tau_adam"]) / la ** 2)),
             "sgd": int(round(float(ctx["tau_sgd"]) / ls ** 2))}
    regime = (f"n={n}, d={d}, k={k} (n = ceil of the l1 statistical dimension {sdim:.3f}); instances: seeds "
              f"{seeds}, the first {int(ctx['instances'])} from seed {int(ctx['first_seed'])} whose LP "
              f"misses w* and whose SGD slow flow is within {float(ctx['flow_tol']):g} of the LP at tau "
              f"{float(ctx['tau_sgd']):g} ({len(skipped)} skipped); Adam lr {la:g}, beta1 {adam.beta1:g}, "
              f"beta2 {adam.beta2:g}, eps {adam.eps:g}, label noise {float(ctx['adam_label_noise']):g}, "
              f"{steps['adam']:.3g} steps (tau {float(ctx['tau_adam']):g}), {int(ctx['paths_adam'])} paths; "
              f"SGD lr {ls:g}, label noise {float(ctx['sgd_label_noise']):g}, {steps['sgd']:.3g} steps "
              f"(tau {float(ctx['tau_sgd']):g}), {int(ctx['paths_sgd'])} paths; statistic: mean over "
              f"instances of (mean Adam - mean SGD) at the last step, tolerance {Z_SCORE:g} SE")
    common["steps"] = steps
    derivation = f"{Z_SCORE:g} SE of the difference of independent means, instances fixed"

    def values(key):
        return "Adam " + ", ".join(f"{p['adam_' + key]:.3g}" for p in per) + "; SGD " + ", ".join(
            f"{p['sgd_' + key]:.3g}" for p in per)

    def supports(key, where):
        return (f"support #{{|w_i| > {SUPPORT_THRESHOLD:g}}} {where}: Adam "
                + ", ".join(_range(p["adam_" + key]) for p in per) + "; SGD "
                + ", ".join(_range(p["sgd_" + key]) for p in per))

    claims = [
        ctx.claim("test-loss", f"mean over {len(per)} instances (n={n}, d={d}, k={k}, seeds {seeds}) of mean "
                               f"test loss Adam - SGD ({values('mean')})",
                  dt, Z_SCORE * dt_se, direction="<", regime=regime, derivation=derivation, numbers=common,
                  seconds=sec),
        ctx.claim("sparsity", "mean over instances of mean N_eff = |w|_1^2/|w|_2^2 at the iterate w(theta), "
                              f"Adam - SGD ({values('neff_mean')}); "
                              f"{supports('support_0.01', 'at the iterate')}",
                  dn, Z_SCORE * dn_se, direction="<", regime=regime, derivation=derivation, seconds=sec),
        ctx.claim("sparsity-at-phi", "mean over instances of mean N_eff at Phi(theta), the gradient-flow "
                                     "projection onto Gamma (the state the theory is about), Adam - SGD "
                                     f"({values('neff_phi_mean')}); "
                                     f"{supports('support_0.01_phi', 'at Phi(theta)')}",
                  dp, Z_SCORE * dp_se, direction="<", regime=regime, derivation=derivation, seconds=sec)]
    rows[:0] = claims
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
