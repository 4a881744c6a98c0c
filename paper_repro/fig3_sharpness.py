"""Figure 3: tr H and tr diag(H)^{1/2} along the SGD and Adam runs of Figure 1, with the fibre-minimized
value of each measure at the two predicted limits (dashed). SGD drives tr H down, Adam drives
tr diag(H)^{1/2} down: each optimizer reduces its own form of sharpness.

Reads cached results only: compute them with ``diagsim figures --only fig3_sharpness [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"sgd": "#1f77b4", "adam": "#d62728"}


def plot(ctx):
    runs = ctx.results("runs")
    limits = {job.config["predict"]["optimizer"]: res for job, res in ctx.results("limits")}
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.1))
    panels = (("trace_h", "measure_trace", "tr $H$"),
              ("trace_sqrt_diag_h", "measure_adam", "tr diag$(H)^{1/2}$"))
    for job, res in runs:
        name = job.config["optimizer"]["optimizer"]
        keep = res.steps > 0
        for ax, (obs, _, _) in zip(axes, panels):
            v = res.records[obs][keep]
            ax.plot(res.steps[keep], v, color=COLORS[name], lw=0.6, alpha=0.35)
            ax.plot(res.steps[keep], np.nanmean(v, axis=1), color=COLORS[name], lw=1.6,
                    label=f"{name} (lr {job.config['optimizer']['lr']:g})")
    for name, pred in limits.items():
        for ax, (_, key, _) in zip(axes, panels):
            ax.axhline(float(pred[key]), color=COLORS[name], ls="--", lw=1,
                       label=f"at the {name.upper()} limit: {float(pred[key]):.3g}")
    for ax, (_, _, label) in zip(axes, panels):
        ax.set(xscale="log", xlabel="step", ylabel=label, title=f"{label} (thin: single paths)")
        ax.legend(fontsize=7)
    p = runs[0][0].config["problem"]
    fig.suptitle(f"sharpness along the runs (n = {p['n']}, d = {p['d']}, k = {p['k']})"
                 + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.tight_layout()
    ctx.save(fig)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
