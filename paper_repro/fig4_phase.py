"""Figure 4: recovery phase diagrams over (n, k) from sweeps: the fraction of runs (problem seeds x paths)
whose final w is within ``recovery_tol`` of w* (relative l2 error), for SGD and Adam with label noise,
and the recovery of the predicted SGD limit (weighted basis pursuit).

Reads cached results only: compute them with ``diagsim figures --only fig4_phase [--quick]``.
"""
import sys

import matplotlib.pyplot as plt

from diagsim.sweep import plot_phase


def plot(ctx):
    runs = ctx.table("runs")
    lp = ctx.table("lp")
    tol = ctx.spec.sweeps["runs"].summary.get("recovery_tol", 0.1)
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.2))
    for ax, name in zip(axes, ("sgd", "adam")):
        plot_phase(runs, "problem.n", "problem.k", "recovered", where={"optimizer.optimizer": name}, ax=ax,
                   vmin=0, vmax=1, cmap="magma", title=f"{name.upper()} with label noise", label="recovered")
    plot_phase(lp, "problem.n", "problem.k", "recovered", ax=axes[2], vmin=0, vmax=1, cmap="magma",
               title="predicted SGD limit (weighted $\\ell_1$ LP)", label="recovered")
    for ax in axes:
        ax.set(xlabel="samples n", ylabel="sparsity k")
        ax.grid(False)
    cfg = ctx.results("runs")[0][0].config
    fig.suptitle(f"recovery ($\\|w-w^*\\| \\leq {tol:g}\\,\\|w^*\\|$), d = {cfg['problem']['d']}, "
                 f"{cfg['simulate']['steps']:,} steps" + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.tight_layout()
    ctx.save(fig)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
