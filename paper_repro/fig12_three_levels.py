"""Figure 12: the three levels (discrete optimizer, SDE, slow flow) converge as lr -> 0, per adaptive optimizer.

The figure version of verify's slow-limit check (diagsim/verify/slow_limit.py, docs/theory.md §8, §11): for each
optimizer, ensembles of the discrete optimizer and of its SDE at the slow time tau, lr halved four times, against
the slow flow from the gradient-flow limit Phi(theta_0). One panel per optimizer: the distance
D = |mean w - w_flow(tau)| / |w_flow(tau) - w_flow(0)| (verify's ``distance``: noise floor removed, bootstrap
standard errors) of the discrete and the SDE ensembles, and the distance between the two ensembles' means (the
same function), with fitted exponents p of D ~ lr^p (verify's ``parametric_slope``). Verdict per level: p > 0
by Z_SCORE standard errors (verify's criterion). w_flow(0), the gradient-flow limit, is diagsim.predict's "gd"
prediction. Numbers go to ``<out>/fig12_three_levels.json``.

Reads cached results only: compute them with ``diagsim figures --only fig12_three_levels [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

#: sweep label -> panel title
OPTS = {"adam": "Adam", "rmsprop": "RMSProp ($\\beta_1$ = 0)", "adame": "AdamE-$\\lambda$",
        "adam_mini": "Adam-mini (blocks {u$_i$, v$_i$})", "adalayer": "Adalayer (blocks {u}, {v})"}
LEVELS = {"discrete": ("C0", "o"), "sde": ("C1", "s"), "discrete_vs_sde": ("C2", "^")}


def optimizer_rows(ctx, label, n_boot) -> dict:
    """Distances and fitted exponents of one optimizer's sweep and its slow flow."""
    from diagsim.predict import predict
    from diagsim.sweep.simjob import build_problem
    from diagsim.verify.estimates import Z_SCORE, parametric_slope
    from diagsim.verify.slow_limit import distance
    ens = {}
    for job, res in ctx.results(label):
        ens[(job.config["simulate"]["model"], float(job.config["optimizer"]["lr"]))] = (job, res)
    lrs = sorted({lr for _, lr in ens}, reverse=True)
    fjob, fres = ens[("slow-flow", lrs[-1])]
    P = build_problem(fjob.config["problem"])
    w0 = predict(P, "gd").w
    wt = fres.w[0]
    scale = float(np.linalg.norm(wt - w0))
    # the flow depends on lr only through C = (1 - beta2) / lr^2, the same at every lr
    spread = max(float(np.max(np.abs(ens[("slow-flow", lr)][1].w[0] - wt))) for lr in lrs)
    ens = {k: r for k, (_, r) in ens.items()}
    out = {"optimizer": fjob.config["optimizer"], "lr": lrs, "tau": float(fjob.config["simulate"]["tau"]),
           "w_flow_tau": wt.tolist(), "w_flow_0": w0.tolist(), "flow_displacement": scale,
           "flow_max_abs_diff_over_lr": spread,
           "paths": {m: int(ens[(m, lrs[0])].w.shape[0]) for m in ("discrete", "sde")}}
    for lev in LEVELS:
        D, SE, ndiv = [], [], []
        for lr in lrs:
            if lev == "discrete_vs_sde":
                a, b = ens[("discrete", lr)], ens[("sde", lr)]
                d, se = distance(a.w[~a.diverged_mask], b.w[~b.diverged_mask], scale, n_boot, seed=0)
                nd = int(a.diverged_mask.sum() + b.diverged_mask.sum())
            else:
                r = ens[(lev, lr)]
                d, se = distance(r.w[~r.diverged_mask], wt, scale, n_boot, seed=0)
                nd = int(r.diverged_mask.sum())
            D.append(d), SE.append(se), ndiv.append(nd)
        # a distance within its noise floor is 0 after the correction: it carries no exponent, so it is left
        # out of the fit (and reported)
        fit = [j for j, x in enumerate(D) if x > 0]
        p, sp = (parametric_slope([lrs[j] for j in fit], [D[j] for j in fit], [SE[j] for j in fit], seed=0)
                 if len(fit) >= 2 else (np.nan, np.nan))
        out[lev] = {"D": D, "D_se": SE, "diverged": ndiv, "slope": p, "slope_se": sp,
                    "lr_fitted": [lrs[j] for j in fit],
                    "verdict": "converges" if p > Z_SCORE * sp else "not significant"}
    return out


def plot(ctx):
    from diagsim.verify import plotting
    n_boot = int(ctx.options.get("n_boot", 200))
    rows = {label: optimizer_rows(ctx, label, n_boot) for label in OPTS}
    fig, axes = plt.subplots(1, len(OPTS), figsize=(4.0 * len(OPTS), 3.9), sharey=True)
    names = {"discrete": "discrete vs flow", "sde": "SDE vs flow", "discrete_vs_sde": "discrete vs SDE"}
    for ax, (label, title) in zip(axes, OPTS.items()):
        r = rows[label]
        for lev, (col, mk) in LEVELS.items():
            e = r[lev]
            fit = [j for j, lr in enumerate(r["lr"]) if lr in e["lr_fitted"]]
            plotting.loglog_fit(ax, [r["lr"][j] for j in fit], [e["D"][j] for j in fit], [e["D_se"][j] for j in fit],
                                slope=e["slope"], color=col, marker=mk,
                                label=f"{names[lev]}, SE {e['slope_se']:.2f}"
                                      + (f" ({len(r['lr']) - len(fit)} at 0)" if len(fit) < len(r["lr"]) else ""))
        lam = r["optimizer"].get("lam", 0.5)
        ax.set(xlabel="lr ($1-\\beta_2 = 4\\,$lr$^2$)",
               title=title.replace("$\\lambda$", f"$\\lambda$ = {lam:g}") if label == "adame" else title)
        ax.legend(fontsize=6)
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel("D = |mean w - w$_{flow}(\\tau)$| / |flow displacement|")
    r0 = next(iter(rows.values()))
    npath = r0["paths"]
    fig.suptitle(f"Three levels as lr -> 0 at $\\tau$ = {r0['tau']:g} ({npath['discrete']} discrete / "
                 f"{npath['sde']} SDE paths; verify's slow-limit problem, d = 10)" + (" [quick]" if ctx.quick else ""),
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    ctx.save(fig)
    ctx.save_json(rows)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
