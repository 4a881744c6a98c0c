"""Check 3: discrete and SDE ensembles approach the slow flow at fixed slow time tau as lr -> 0
(docs/theory.md §8, §11).

Diagonal net ("uu-vv", small n, d), label noise delta, c = delta^2/n. For each lr of a grid, ensembles of the
discrete optimizer (``model="discrete"``) and of its SDE (``model="sde"``) run from theta_0 to the slow time
tau (k = tau / lr^2 steps); the slow flow (``model="slow-flow"``) starts at the gradient-flow limit
Phi(theta_0) (the fast phase) and runs to the same tau:

* SGD: d zeta/d tau = -(c/4) P grad tr H;
* Adam in the paper's regime 1 - beta2 = C lr^2 (C fixed): the adaptive flow with dv/d tau = C (c diag H - v),
  started at the optimizer's v0 (during the fast phase S(v0) is scalar, so Phi(theta_0) is its start too).

Measured: the distance of the ensemble mean of w from the flow, relative to how far the flow moved,
D(lr) = ||mean w - w_flow(tau)|| / ||w_flow(tau) - w_flow(0)||, with the noise floor removed
(D^2 - sum_i SE_i^2) and a bootstrap standard error over paths. The theorem (Li, Wang, Arora 2022 for SGD; the
paper's for Adam) says D -> 0 as lr -> 0 but gives no rate, so the verdict is on the fitted exponent p of
D ~ lr^p: predicted p > 0 (the ensembles converge to the flow), tolerance Z_SCORE standard errors of p
(parametric bootstrap over the per-level SEs). A flow with the wrong speed or direction leaves D(lr) flat,
p ~ 0. The numbers also give the fraction of the flow's displacement the ensembles covered, per lr.

2-D toy of docs/theory.md §8.8 (L = h(y) x^2 / 2, h = 1 + y^2, x-noise of variance c h, S = diag(s_x, s_y)):
Euler–Maruyama ensembles at dt = lr/4; their mean y(tau) has an O(lr) bias (x needs time ~1/(2 s_x h) to
equilibrate; Euler's stationary variance is off by O(dt)), so y(tau; lr) = a + b lr is fitted by weighted
least squares over the lr grid and the extrapolated a is compared with y0 exp(-(c/2) s_x s_y tau);
tolerance Z_SCORE SE(a) (the fit's chi^2 is reported to validate the linear bias model).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..engine.driver import simulate
from ..networks.diagonal.problem import make_problem
from ..optimizers import SGD, Adam, LabelNoise
from ..sde import testproblems as tp
from ..sde.brownian import BrownianPath
from ..sde.integrator import integrate
from . import plotting
from .base import register
from .estimates import Z_SCORE, mean_se, parametric_slope, weighted_line
from .flow_runs import flow_trajectory


def _optimizer(kind, lr, p):
    noise = LabelNoise(float(p["label_noise"]))
    if kind == "sgd":
        return SGD(lr=lr, noise=noise)
    return Adam(lr=lr, beta1=float(p["beta1"]), beta2=1.0 - float(p["C"]) * lr ** 2, eps=float(p["eps"]),
                v0=float(p["v0"]), noise=noise)


def distance(W: np.ndarray, w_ref: np.ndarray, scale: float, n_boot: int, seed: int) -> tuple[float, float]:
    """Noise-corrected ||mean W - w_ref|| / scale and its bootstrap SE (W (M, d)).

    ``w_ref`` is a point (d,) or a second, independent ensemble (M2, d): then the distance is between the two
    means, both noise floors are removed and both ensembles are resampled."""
    M = W.shape[0]
    R = np.asarray(w_ref, dtype=np.float64)
    M2 = R.shape[0] if R.ndim == 2 else 0

    def stat(idx, idx2):
        m, se = mean_se(W[idx])
        d2 = float(np.sum(se ** 2))
        if M2:
            ref, se2 = mean_se(R[idx2])
            d2 += float(np.sum(se2 ** 2))
        else:
            ref = R
        return math.sqrt(max(float(np.sum((m - ref) ** 2)) - d2, 0.0)) / scale

    g = np.random.default_rng(seed)
    boots = [stat(g.integers(0, M, M), g.integers(0, M2, M2) if M2 else None) for _ in range(n_boot)]
    return stat(np.arange(M), np.arange(M2)), float(np.std(boots, ddof=1))


def _ensemble(problem, opt, model, tau, M, seed, device="cpu"):
    opts = {} if model == "discrete" else {"dt": "auto"}
    r = simulate(problem, opt, tau=tau, n_paths=M, seed=seed, model=model, progress=False, n_records=2,
                 model_options=opts, device=device)
    return r.w[~r.diverged_mask], int(r.diverged_mask.sum())


def toy_ensemble(lr, dt, M, seed, c, s, tau, y0):
    m = tp.toy2d(c, lr, s)
    X = np.zeros((M, 2))
    X[:, 1] = y0
    act = np.ones(M, bool)
    integrate(m.drift, m.diffusion, m.args, X, paths=np.arange(M, dtype=np.int64), active=act, step0=0,
              n_steps=int(round(tau / lr / dt)), dt=dt, n_noise=1, n_work=0, amplitude=m.amplitude,
              brownian=BrownianPath(seed, dt))
    y = X[act, 1]
    return float(y.mean()), float(y.std(ddof=1) / math.sqrt(y.size))


_NET = {"n": 5, "d": 10, "k": 2, "seed": 2, "alpha": 0.5, "label_noise": 1.0, "beta1": 0.9, "C": 4.0,
        "eps": 1e-8, "v0": 0.1, "dtau": 0.005, "n_boot": 200}
_TOY = {"toy_c": 0.5, "toy_s": [2.0, 3.0], "toy_tau": 0.2, "toy_y0": 1.0}


@register("slow-limit", 3, "discrete and SDE ensembles vs the slow flow at fixed tau as lr -> 0; 2-D toy",
          quick={**_NET, **_TOY, "tau": 1.0, "lrs": [0.04, 0.02, 0.01], "paths": 768,
                 "cases": ["sgd-discrete", "sgd-sde", "adam-discrete", "adam-sde"],
                 "toy_lrs": [0.04, 0.02, 0.01], "toy_paths": 2000},
          full={**_NET, **_TOY, "tau": 2.0, "lrs": [0.04, 0.02, 0.01, 0.005], "paths": 1024,
                "cases": ["sgd-discrete", "sgd-sde", "adam-discrete", "adam-sde"],
                "toy_lrs": [0.04, 0.02, 0.01, 0.005], "toy_paths": 20000})
def slow_limit(ctx):
    P = make_problem(int(ctx["n"]), int(ctx["d"]), int(ctx["k"]), alpha=float(ctx["alpha"]),
                     seed=int(ctx["seed"]))
    tau, M, seed = float(ctx["tau"]), int(ctx["paths"]), int(ctx["seed"])
    lrs = [float(x) for x in ctx["lrs"]]
    rows, panels = [], []
    flows = {}
    for case in ctx["cases"]:
        t0 = time.perf_counter()
        kind, model = case.split("-", 1)
        try:
            if kind not in flows:
                opts = {"start": "gradient-flow"}
                if kind == "adam":
                    opts.update(v="ode", v0=float(ctx["v0"]), eps=float(ctx["eps"]))
                grid = np.linspace(0.0, tau, 41)
                _, th, _ = flow_trajectory(P, _optimizer(kind, lrs[-1], ctx.params), grid,
                                           dtau=float(ctx["dtau"]), **opts)
                flows[kind] = (grid, P.w(th))
            grid, Wf = flows[kind]
            w0, wt = Wf[0], Wf[-1]
            scale = float(np.linalg.norm(wt - w0))
            D, SE, frac, fse, ndiv = [], [], [], [], []
            wbar = None
            for lr in lrs:
                W, nd = _ensemble(P, _optimizer(kind, lr, ctx.params), model, tau, M, seed, ctx.device_for(model))
                wbar = W.mean(axis=0)
                dd, ds = distance(W, wt, scale, int(ctx["n_boot"]), seed)
                f = (W - w0) @ (wt - w0) / scale ** 2
                fm, fs = mean_se(f)
                D.append(dd), SE.append(ds), frac.append(float(fm)), fse.append(float(fs)), ndiv.append(nd)
                ctx.log(f"  {case} lr={lr:g}: D = {dd:.4g} +- {ds:.2g}, fraction of the flow's displacement "
                        f"{fm:.4g} +- {fs:.2g}")
            p, sp = parametric_slope(lrs, D, SE, seed=seed)
            fit = weighted_line(lrs, frac, fse)
            panels.append((case, grid, Wf, lrs, D, SE, p, wbar))
            rows.append(ctx.result(
                case, f"exponent p of D(lr) ~ lr^p, D = |mean w - w_flow(tau)| / |w_flow(tau) - w_flow(0)| "
                      f"at "
                      f"tau = {tau:g} ({M} paths per lr)",
                p, 0.0, Z_SCORE * sp, relation=">",
                derivation=f"{Z_SCORE:g} SE of p ({sp:.3g}, parametric bootstrap over per-lr bootstrap SEs "
                           "of D)",
                numbers={"lr": lrs, "D": D, "D_se": SE, "fraction_of_displacement": frac, "fraction_se": fse,
                         "fraction_extrapolated_lr0": fit["a"], "fraction_extrapolated_se": fit["se_a"],
                         "flow_w_tau": wt, "flow_w_0": w0, "flow_displacement": scale, "diverged": ndiv,
                         "slope_se": sp},
                seconds=time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001 - a crash is a failing row
            rows.append(ctx.error_row(case, "ensemble vs slow flow", exc, time.perf_counter() - t0))

    # the 2-D toy drift
    t0 = time.perf_counter()
    c, s, ttau, y0 = float(ctx["toy_c"]), tuple(ctx["toy_s"]), float(ctx["toy_tau"]), float(ctx["toy_y0"])
    tl = [float(x) for x in ctx["toy_lrs"]]
    ys = [toy_ensemble(lr, lr / 4, int(ctx["toy_paths"]), seed, c, s, ttau, y0) for lr in tl]
    ym, yse = np.array([a for a, _ in ys]), np.array([b for _, b in ys])
    fit = weighted_line(tl, ym, yse)
    oracle = float(tp.toy2d_slow_flow(y0, c, s, ttau))
    rows.append(ctx.result(
        "toy2d", f"mean y at tau = {ttau:g} extrapolated to lr -> 0 (fit a + b lr over lr = {tl}; "
                 f"Euler-Maruyama dt = lr/4, {int(ctx['toy_paths'])} paths)",
        fit["a"], oracle, Z_SCORE * fit["se_a"],
        derivation=f"{Z_SCORE:g} SE of the intercept ({fit['se_a']:.2g}); O(lr) bias model a + b lr, "
                   f"chi2 = {fit['chi2']:.2f} on {fit['dof']} dof",
        numbers={"lr": tl, "mean_y": ym, "se": yse, "slope_b": fit["b"], "chi2": fit["chi2"],
                 "dof": fit["dof"],
                 "oracle": oracle, "c": c, "s": list(s)},
        seconds=time.perf_counter() - t0))

    path = ctx.figure_path()
    if path is not None:
        fig, axes = plotting.figure(3)
        for case, _grid, _Wf, lr_, D, SE, p, _ in panels:
            plotting.loglog_fit(axes[0], lr_, D, SE, slope=p, label=case)
        axes[0].set_xlabel("lr")
        axes[0].set_ylabel("D = |mean w - w_flow| / |flow displacement|")
        axes[0].legend(fontsize=7)
        axes[0].set_title(f"ensembles vs slow flow at tau = {tau:g}")
        for case, grid, Wf, *_, wbar in panels:
            if case.endswith("discrete"):
                ax = axes[1]
                sgd_ = case.startswith("sgd")
                for i in np.flatnonzero(np.abs(Wf).max(axis=0) > 0.05):
                    line, = ax.plot(grid, Wf[:, i], lw=1, ls="-" if sgd_ else "--")
                    ax.plot([grid[-1]], [wbar[i]], "o" if sgd_ else "s", ms=4, color=line.get_color())
        axes[1].set_xlabel("tau")
        axes[1].set_ylabel("w_i")
        axes[1].set_title(f"slow flows (SGD solid, Adam dashed); markers: discrete\nensemble means at "
                          f"lr = {lrs[-1]:g}", fontsize=8)
        axes[2].errorbar(tl, ym, yerr=yse, fmt="o", label="EM ensembles")
        xx = np.linspace(0, max(tl), 10)
        axes[2].plot(xx, fit["a"] + fit["b"] * xx, "-", label="fit a + b lr")
        axes[2].axhline(oracle, ls="--", color="k", label="slow flow y0 exp(-(c/2) s_x s_y tau)")
        axes[2].set_xlabel("lr")
        axes[2].set_ylabel("mean y(tau)")
        axes[2].legend(fontsize=7)
        axes[2].set_title("2-D toy drift")
        plotting.save(fig, path)
    return rows
