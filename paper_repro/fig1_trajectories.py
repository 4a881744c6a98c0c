"""Figure 1: test loss, ||w||_1 and support size vs steps for SGD and Adam with label noise, with the
predicted limits (SGD: weighted l1 LP; Adam: weighted l_1/2) as dashed horizontal lines.

Reads cached results only: compute them with ``diagsim figures --only fig1_trajectories [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"sgd": "#1f77b4", "adam": "#d62728"}
FLOOR = 1e-6  # where a predicted test loss of (numerically) zero is drawn on the log axis


def mean_band(ax, x, values, color, label):
    """Ensemble mean and +-1 standard error of values (n_records, n_paths) against x."""
    v = np.asarray(values, dtype=float)
    m = np.nanmean(v, axis=1)
    cnt = np.sum(np.isfinite(v), axis=1)
    se = np.nanstd(v, axis=1, ddof=1) / np.sqrt(np.maximum(cnt, 1)) if v.shape[1] > 1 else np.zeros_like(m)
    ax.plot(x, m, color=color, label=label)
    ax.fill_between(x, m - se, m + se, color=color, alpha=0.2, lw=0)


def plot(ctx):
    runs = ctx.results("runs")
    limits = {job.config["predict"]["optimizer"]: res for job, res in ctx.results("limits")}
    fig, axes = plt.subplots(1, 3, figsize=(10.0, 3.1))
    for job, res in runs:
        name = job.config["optimizer"]["optimizer"]
        lr = job.config["optimizer"]["lr"]
        keep = res.steps > 0
        k = res.steps[keep]
        for ax, obs in zip(axes, ("test_loss", "l1", "support")):
            mean_band(ax, k, res.records[obs][keep], COLORS[name], f"{name} (lr {lr:g})")
    names = {"sgd": "SGD limit: weighted $\\ell_1$ (LP)", "adam": "Adam limit: weighted $\\ell_{1/2}$"}
    for name, pred in limits.items():
        kind = "global" if bool(pred["is_global"]) else "local"
        tl = float(pred["test_loss"])
        axes[0].axhline(max(tl, FLOOR), color=COLORS[name], ls="--", lw=1,
                        label=f"{names[name]} ({kind}): {tl:.2g}")
        axes[1].axhline(float(pred["l1"]), color=COLORS[name], ls="--", lw=1)
        axes[2].axhline(int(pred["support_size"]), color=COLORS[name], ls="--", lw=1)
    job0 = runs[0][0].config
    p = job0["problem"]
    axes[0].set(xscale="log", yscale="log", xlabel="step", ylabel="test loss $\\frac{1}{2}\\|w-w^*\\|^2$",
                title="test loss")
    axes[1].set(xscale="log", xlabel="step", ylabel="$\\|w\\|_1$", title="$\\ell_1$ norm")
    thr = job0["simulate"]["support_threshold"]
    axes[2].set(xscale="log", yscale="log", xlabel="step", ylabel=f"#{{i: |w_i| > {thr:g}}}",
                title="support size")
    axes[2].set_ylim(bottom=1)
    axes[0].legend(fontsize=6.5, loc="lower left")
    axes[1].legend(fontsize=7)
    delta = job0["optimizer"]["noise"]["delta"]
    fig.suptitle(f"label noise $\\delta$ = {delta:g}, n = {p['n']}, d = {p['d']}, "
                 f"k = {p['k']}, {job0['simulate']['n_paths']} paths (mean $\\pm$ s.e.)"
                 + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.tight_layout()
    ctx.save(fig)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
