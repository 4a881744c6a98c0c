"""Figure 2: final test loss vs the number of samples n for SGD and Adam with label noise (median over
problem seeds of each run's ensemble-mean test loss; the band spans the seeds' interquartile range),
with the predicted limits' test losses (dashed: SGD's weighted l1 LP, Adam's weighted l_1/2 local
minimizer).

Reads cached results only: compute them with ``diagsim figures --only fig2_sample_size [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"sgd": "#1f77b4", "adam": "#d62728"}
FLOOR = 1e-6


def by_n(table, value, where):
    t = table.where(where)
    ns = np.unique(t["problem.n"])
    vals = [np.asarray(t[value])[t["problem.n"] == n] for n in ns]
    vals = [np.maximum(v[np.isfinite(v)], FLOOR) for v in vals]
    med = np.array([np.median(v) if v.size else np.nan for v in vals])
    lo = np.array([np.percentile(v, 25) if v.size else np.nan for v in vals])
    hi = np.array([np.percentile(v, 75) if v.size else np.nan for v in vals])
    return ns, med, lo, hi


def plot(ctx):
    runs = ctx.table("runs")
    limits = ctx.table("limits")
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.1))
    for name in ("sgd", "adam"):
        ns, med, lo, hi = by_n(runs, "test_loss", {"optimizer.optimizer": name})
        axes[0].plot(ns, med, "o-", color=COLORS[name], ms=3, label=f"{name} (simulated)")
        axes[0].fill_between(ns, lo, hi, color=COLORS[name], alpha=0.15, lw=0)
        ns, med, _, _ = by_n(limits, "test_loss", {"predict.optimizer": name})
        axes[0].plot(ns, med, "--", color=COLORS[name], lw=1, label=f"{name} predicted limit")
        ns, rec, _, _ = by_n(runs, "recovered", {"optimizer.optimizer": name})
        t = runs.where({"optimizer.optimizer": name})
        frac = [np.nanmean(np.asarray(t["recovered"])[t["problem.n"] == n]) for n in ns]
        axes[1].plot(ns, frac, "o-", color=COLORS[name], ms=3, label=f"{name} (simulated)")
        lt = limits.where({"predict.optimizer": name})
        lns = np.unique(lt["problem.n"])
        axes[1].plot(lns, [np.mean(np.asarray(lt["recovered"])[lt["problem.n"] == n]) for n in lns], "--",
                     color=COLORS[name], lw=1, label=f"{name} predicted limit")
    axes[0].set(yscale="log", xlabel="samples n", ylabel="final test loss", title="test loss at the end")
    axes[1].set(xlabel="samples n", ylabel="fraction recovered", ylim=(-0.05, 1.05),
                title="recovery ($\\|w-w^*\\| \\leq 0.1\\,\\|w^*\\|$)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7, loc="lower right")
    rows = ctx.results("runs")[:1]
    cfg = rows[0][0].config
    fig.suptitle(f"d = {cfg['problem']['d']}, k = {cfg['problem']['k']}, label noise "
                 f"$\\delta$ = {cfg['optimizer']['noise']['delta']:g}, {cfg['simulate']['steps']:,} steps, "
                 f"{len(np.unique(runs['problem.seed']))} problem seeds" + (" [quick]" if ctx.quick else ""),
                 fontsize=9)
    fig.tight_layout()
    ctx.save(fig)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
