"""Figure 6: the sample-size experiment at the paper's own scale (d = 1000, k = 3, Rademacher design,
10^7 steps; see fig6_paper_scale.toml for every setting).

Left: each run's score -- its mean test loss over the last ``score_window`` logged points, averaged
over its paths -- against n, one marker per problem seed, the line through the seeds' mean; dashed,
the test loss of each optimizer's predicted limit (SGD: weighted l1 LP; Adam: weighted l_1/2, local).
Right: the test loss along the runs (mean over paths) for three sample sizes, problem seed 1.
The scores are also written to ``fig6_paper_scale.json`` next to the figure.

Reads cached results only: compute them with ``diagsim figures --only fig6_paper_scale [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"sgd": "#1f77b4", "adam": "#d62728"}
LABELS = {"sgd": "SGD + label noise", "adam": "Adam + label noise"}
#: predicted limits that recover w* exactly have test loss ~1e-30; they are drawn at this floor
FLOOR = 1e-8


def scores(ctx, window):
    """{(optimizer, n, seed): (score, mean final rel. error, result)} from the cached runs."""
    out = {}
    for job, res in ctx.results("runs", missing="none"):
        if res is None:          # not computed (yet): the figure says how many runs it shows
            continue
        cfg = job.config
        tl = np.asarray(res.records["test_loss"], dtype=float)      # (n_records, n_paths)
        w = min(window, tl.shape[0])
        per_path = np.nanmean(tl[-w:], axis=0)
        w_star = None
        rel = np.nan
        try:
            from diagsim.sweep.simjob import build_problem
            w_star = build_problem(cfg["problem"]).w_star
            rel = float(np.mean(np.linalg.norm(res.w - w_star, axis=1) / np.linalg.norm(w_star)))
        except Exception:  # noqa: BLE001 - the relative error is an extra column only
            pass
        key = (cfg["optimizer"]["optimizer"], int(cfg["problem"]["n"]), int(cfg["problem"]["seed"]))
        out[key] = (float(np.mean(per_path)), rel, res)
    return out


def plot(ctx):
    window = int(ctx.options.get("score_window", 1000))
    sc = scores(ctx, window)
    total = len(ctx.results("runs", missing="none"))
    limits = ctx.table("limits")
    ns = sorted({k[1] for k in sc})
    seeds = sorted({k[2] for k in sc})
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    summary = {"score_window": window, "runs_computed": len(sc), "runs_total": total, "rows": []}
    for name in ("sgd", "adam"):
        means = []
        for n in ns:
            vals = [sc[(name, n, s)][0] for s in seeds if (name, n, s) in sc]
            axes[0].plot([n] * len(vals), vals, "o", mfc="none", color=COLORS[name], ms=4, alpha=0.7)
            means.append(np.mean(vals) if vals else np.nan)
            for s in seeds:
                if (name, n, s) in sc:
                    summary["rows"].append({"optimizer": name, "n": n, "seed": s, "score": sc[(name, n, s)][0],
                                            "rel_error_end": sc[(name, n, s)][1]})
        axes[0].plot(ns, means, "-", color=COLORS[name], lw=1.5, label=f"{LABELS[name]} (mean of seeds)")
        lt = limits.where({"predict.optimizer": name})
        lns = np.unique(lt["problem.n"])
        lv = [np.mean(np.asarray(lt["test_loss"])[lt["problem.n"] == n]) for n in lns]
        axes[0].plot(lns, np.maximum(lv, FLOOR), "--", color=COLORS[name], lw=1,
                     label=("SGD limit: weighted $\\ell_1$ (LP)" if name == "sgd"
                            else "Adam limit: weighted $\\ell_{1/2}$ (local)"))
        for n, v in zip(lns, lv):
            summary["rows"].append({"optimizer": name, "n": int(n), "predicted_test_loss": float(v)})
    axes[0].set(yscale="log", xlabel="samples n", ylabel=f"test loss (mean of the last {window} logs)",
                title=f"score vs sample size (limits < {FLOOR:g} drawn at {FLOOR:g})")
    axes[0].legend(fontsize=6.5)
    show = [ns[0], ns[len(ns) // 2], ns[-1]] if len(ns) >= 3 else ns
    styles = ["-", "--", ":"]
    for name in ("sgd", "adam"):
        for n, ls in zip(show, styles):
            key = (name, n, seeds[0])
            if key not in sc:
                continue
            res = sc[key][2]
            tl = np.nanmean(np.asarray(res.records["test_loss"], dtype=float), axis=1)
            steps = np.asarray(res.steps)
            keep = steps > 0
            axes[1].plot(steps[keep], tl[keep], ls, color=COLORS[name], lw=1, label=f"{name}, n = {n}")
    axes[1].set(xscale="log", yscale="log", xlabel="step", ylabel="test loss (mean over paths)",
                title=f"along the runs (problem seed {seeds[0]})")
    axes[1].legend(fontsize=6.5, ncol=2)
    first = next(iter(sc.values()))[2]
    cfg = first.config
    partial = f" [partial: {len(sc)} of {total} runs computed]" if len(sc) < total else ""
    fig.suptitle(f"d = {ctx.spec.sweeps['runs'].base['problem']['d']}, k = 3, Rademacher design, "
                 f"label noise $\\delta$ = 0.5, {int(cfg['steps']):,} steps, {len(seeds)} problem seeds x "
                 f"{first.n_paths} paths" + (" [quick]" if ctx.quick else "") + partial, fontsize=9)
    fig.tight_layout()
    ctx.save(fig)
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
