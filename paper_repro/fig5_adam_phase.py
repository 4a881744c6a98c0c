"""Figure 5: where Adam beats SGD. Recovery of the implicit-bias limits over (n/d, k/d): SGD's weighted l1 LP,
plain l1, Adam's eta -> 0 limit (a local weighted-l1/2 minimizer from the gradient-flow limit) and, at a size
where support enumeration is feasible, the global weighted-l1/2 minimizer (docs/theory.md §9.6-9.8).

Rows: Gaussian design, Rademacher design (d from the config), and the small-d enumeration panel. Columns:
recovery maps of the LP and of Adam's limit with the curve n = d psi(k/d); recovery vs n / delta_1(d, k)
with 95 % Wilson intervals; the 50 % boundary n_50 / delta_1 per k (logistic fit, +-1 s.e.); the mean test
loss vs n / delta_1. The boundaries are also written to ``<out>/fig5_adam_phase.json``.

The last row is panel (d): discrete SGD and Adam with label noise on the d = 200 Rademacher cells, at the
paper's learning rates and at lr / 10 (one path per problem seed; the horizon is in the config): recovery
of the last iterate and mean test loss against the limits' values, the fraction of problem seeds on which
Adam ends with the lower test loss (Wilson 95 %), and maps of the median Adam / SGD test-loss ratio.

Reads cached results only: compute them with ``diagsim figures --only fig5_adam_phase [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

from diagsim.verify.estimates import logistic_transition, wilson_interval
from diagsim.verify.sparse_regression import l1_statistical_dimension

#: test losses below this are drawn at it (exact recovery gives ~1e-30, which would flatten the log axes)
FLOOR = 1e-10
FLOW = ("adam-slow-flow", "C5", "v", "-")
LIMITS = {"weighted_l1": ("SGD limit: weighted $\\ell_1$ LP", "C0", "o", "-"),
          "l1": ("plain $\\ell_1$ (theorem)", "C2", "s", ":"),
          "adam_local": ("Adam limit: local $\\ell_{1/2}$ from GF", "C3", "^", "--"),
          "lhalf_global": ("global weighted $\\ell_{1/2}$", "C4", "D", "-.")}


def boundaries(tab, d: int) -> dict:
    """{limit: [{k, n50, se, n50_over_delta, se_over_delta, separated, ok}]} from a limits table."""
    out = {}
    ks = np.unique(tab["problem.k"])
    for lim in LIMITS:
        if f"p_{lim}" not in tab:
            continue
        rows = []
        for k in ks:
            m = tab["problem.k"] == k
            n, rec, tot = tab["problem.n"][m], tab[f"rec_{lim}"][m], tab[f"n_{lim}"][m]
            fit = logistic_transition(n, rec, tot)
            delta = l1_statistical_dimension(d, int(k))
            rows.append({"k": int(k), "delta1": delta, "n50": fit["x50"], "se": fit["se"],
                         "n50_over_delta": fit["x50"] / delta, "se_over_delta": fit["se"] / delta,
                         "separated": fit["separated"], "ok": fit["ok"]})
        out[lim] = rows
    return out


def _psi_curve(ax, d: int, kmax: int):
    ks = np.arange(1, max(kmax, 2) + 1)
    ax.plot([l1_statistical_dimension(d, int(k)) / d for k in ks], ks / d, color="w", lw=1.6)
    ax.plot([l1_statistical_dimension(d, int(k)) / d for k in ks], ks / d, color="k", lw=0.8,
            label="$n = d\\,\\psi(k/d)$")


def _map(ax, tab, lim, d, title):
    x, y = tab["problem.n"] / d, tab["problem.k"] / d
    sc = ax.scatter(x, y, c=tab[f"p_{lim}"], cmap="magma", vmin=0, vmax=1, marker="s", s=28,
                    edgecolors="0.5", linewidths=0.3)
    _psi_curve(ax, d, int(tab["problem.k"].max()))
    ax.set(xlabel="n / d", ylabel="k / d", title=title)
    ax.grid(False)
    return sc


def _row(axes, tab, d, label, summary):
    lims = [lim for lim in LIMITS if f"p_{lim}" in tab]
    maps = [lim for lim in ("weighted_l1", "adam_local", "lhalf_global") if lim in lims]
    for ax, lim in zip(axes[:2], maps[-2:] if "lhalf_global" in maps else maps[:2]):
        sc = _map(ax, tab, lim, d, f"{label}: {LIMITS[lim][0]}")
    plt.colorbar(sc, ax=axes[1], label="P(recovered)")
    ks = np.unique(tab["problem.k"])
    delta = {int(k): l1_statistical_dimension(d, int(k)) for k in ks}
    rel = tab["problem.n"] / np.array([delta[int(k)] for k in tab["problem.k"]])
    bnd = boundaries(tab, d)
    for j, k in enumerate(ks):
        m = tab["problem.k"] == k
        o = np.argsort(rel[m])
        for lim in lims:
            name, col, mk, ls = LIMITS[lim]
            p = tab[f"p_{lim}"][m][o]
            err = np.maximum(np.vstack([p - tab[f"p_{lim}_lo"][m][o], tab[f"p_{lim}_hi"][m][o] - p]), 0.0)
            axes[2].errorbar(rel[m][o], p, yerr=err, color=col, ls=ls, marker=mk, ms=2.5, lw=0.8, capsize=1.5,
                             alpha=0.35 + 0.65 * (j + 1) / len(ks), label=name if j == len(ks) - 1 else None)
            axes[4].plot(rel[m][o], np.maximum(tab[f"test_loss_{lim}"][m][o], FLOOR), color=col, ls=ls, marker=mk,
                         ms=2.5, lw=0.8, alpha=0.35 + 0.65 * (j + 1) / len(ks))
    axes[2].axvline(1.0, color="k", lw=0.6)
    axes[2].set(xlabel="n / $\\delta_1(d, k)$", ylabel="P(recovered), 95% Wilson",
                title=f"{label}: recovery along n (k = {', '.join(str(int(k)) for k in ks)})")
    axes[2].legend(fontsize=6, loc="lower right")
    for off, lim in enumerate(lims):
        name, col, mk, _ = LIMITS[lim]
        # a fit whose standard error is a quarter of delta_1 or more locates nothing: not drawn (in the JSON)
        rows = [r for r in bnd[lim] if r["ok"] and np.isfinite(r["se_over_delta"]) and r["se_over_delta"] < 0.25]
        if rows:
            axes[3].errorbar(np.array([r["k"] for r in rows]) / d * (1 + 0.03 * off),
                             [r["n50_over_delta"] for r in rows], yerr=[r["se_over_delta"] for r in rows],
                             color=col, marker=mk, ms=3, lw=0.8, capsize=2, label=name)
    axes[3].axhline(1.0, color="k", lw=0.8, label="$d\\,\\psi(k/d)$")
    axes[3].set(xscale="log", xlabel="k / d", ylabel="$n_{50} / \\delta_1(d, k)$",
                title=f"{label}: 50% boundary (logistic fit, $\\pm$1 s.e.)")
    axes[3].legend(fontsize=6)
    axes[4].axvline(1.0, color="k", lw=0.6)
    axes[4].set(yscale="log", xlabel="n / $\\delta_1(d, k)$",
                ylabel=f"mean test loss $\\frac{{1}}{{2}}\\|w-w^*\\|^2$ (floor {FLOOR:g})",
                title=f"{label}: mean test loss")
    summary[label] = {"d": d, "seeds": int(tab[f"n_{lims[0]}"].max()), "boundaries": bnd}


DISCRETE = (("sgd", 1.0, "tab:blue", "o", "-"), ("sgd", 0.1, "tab:blue", "o", ":"),
            ("adam", 1.0, "tab:red", "^", "-"), ("adam", 0.1, "tab:red", "^", ":"))


def discrete_runs(ctx, window: int) -> dict:
    """{(optimizer, lr factor, k, n, seed): (mean test loss of the last ``window`` records, recovered)}."""
    from diagsim.sweep.simjob import build_problem
    lrs = {}
    for job, _ in ctx.results("discrete", missing="none"):
        o = job.config["optimizer"]
        lrs[o["optimizer"]] = max(lrs.get(o["optimizer"], 0.0), float(o["lr"]))
    tol = ctx.spec.sweeps["discrete"].summary.get("recovery_tol", 0.1)
    out = {}
    for job, res in ctx.results("discrete", missing="none"):
        if res is None:
            continue
        cfg = job.config
        o, p = cfg["optimizer"], cfg["problem"]
        tl = np.asarray(res.records["test_loss"], dtype=float)[-window:]
        w_star = build_problem(p).w_star
        ok = ~res.diverged_mask
        rel = np.linalg.norm(res.w[ok] - w_star, axis=1) / np.linalg.norm(w_star)
        key = (o["optimizer"], round(float(o["lr"]) / lrs[o["optimizer"]], 6), int(p["k"]), int(p["n"]),
               int(p["seed"]))
        out[key] = (float(np.mean(np.nanmean(tl[:, ok], axis=0))) if ok.any() else np.nan,
                    bool(np.all(rel <= tol)) if ok.any() else False)
    return out, lrs


def _discrete_row(axes, ctx, limits_tab, d, summary):
    window = int(ctx.options.get("discrete_window", 10))
    runs, lrs = discrete_runs(ctx, window)
    ks = sorted({key[2] for key in runs})
    delta = {k: l1_statistical_dimension(d, k) for k in ks}
    cells = sorted({(key[2], key[3]) for key in runs})
    seeds = sorted({key[4] for key in runs})
    rows = []
    for j, k in enumerate(ks):
        alpha = 0.35 + 0.65 * (j + 1) / len(ks)
        ns = sorted(n for kk, n in cells if kk == k)
        x = np.array(ns) / delta[k]
        for opt, f, col, mk, ls in DISCRETE:
            lr = round(lrs.get(opt, np.nan) * f, 12)
            lab = f"{opt} lr {lr:g}"
            rec = [[runs[(opt, f, k, n, s)][1] for s in seeds if (opt, f, k, n, s) in runs] for n in ns]
            p = np.array([np.mean(r) if r else np.nan for r in rec])
            ci = np.array([wilson_interval(int(np.sum(r)), len(r)) for r in rec])
            axes[0].errorbar(x, p, yerr=np.maximum(np.vstack([p - ci[:, 0], ci[:, 1] - p]), 0), color=col, ls=ls,
                             marker=mk, ms=2.5, lw=0.8, capsize=1.5, alpha=alpha,
                             label=lab if j == len(ks) - 1 else None)
            tl = [[runs[(opt, f, k, n, s)][0] for s in seeds if (opt, f, k, n, s) in runs] for n in ns]
            axes[1].plot(x, [max(np.nanmean(t), FLOOR) if t else np.nan for t in tl], color=col, ls=ls, marker=mk,
                         ms=2.5, lw=0.8, alpha=alpha, label=lab if j == len(ks) - 1 else None)
            for n, r, t in zip(ns, rec, tl):
                rows.append({"optimizer": opt, "lr": lr, "k": k, "n": n, "runs": len(r),
                             "recovered": int(np.sum(r)), "mean_test_loss": float(np.nanmean(t)) if t else None})
        m = limits_tab["problem.k"] == k
        o = np.argsort(limits_tab["problem.n"][m])
        for lim, col in (("weighted_l1", "tab:blue"), ("adam_local", "tab:red")):
            name = LIMITS[lim][0]
            axes[1].plot(limits_tab["problem.n"][m][o] / delta[k],
                         np.maximum(limits_tab[f"test_loss_{lim}"][m][o], FLOOR), color=col,
                         ls="--", lw=1.4, alpha=0.3 * alpha, label=name + " (limit)" if j == len(ks) - 1 else None)
        for f, col, ls in ((1.0, "k", "-"), (0.1, "0.5", ":")):
            wins = [[runs[("adam", f, k, n, s)][0] < runs[("sgd", f, k, n, s)][0] for s in seeds
                     if ("adam", f, k, n, s) in runs and ("sgd", f, k, n, s) in runs] for n in ns]
            p = np.array([np.mean(wv) if wv else np.nan for wv in wins])
            ci = np.array([wilson_interval(int(np.sum(wv)), len(wv)) for wv in wins])
            axes[2].errorbar(x, p, yerr=np.maximum(np.vstack([p - ci[:, 0], ci[:, 1] - p]), 0), color=col, ls=ls,
                             marker="o", ms=2.5, lw=0.8, capsize=1.5, alpha=alpha,
                             label=("paper's lr" if f == 1.0 else "lr / 10") if j == len(ks) - 1 else None)
    for ax, f, what in ((axes[3], 1.0, "paper's lr"), (axes[4], 0.1, "lr / 10")):
        ratio = []
        for k, n in cells:
            r = [runs[("adam", f, k, n, s)][0] / runs[("sgd", f, k, n, s)][0] for s in seeds
                 if ("adam", f, k, n, s) in runs and ("sgd", f, k, n, s) in runs]
            ratio.append(np.nanmedian(r) if r else np.nan)
        lr = np.log10(np.array(ratio))
        lim = max(float(np.nanmax(np.abs(lr))) if np.isfinite(lr).any() else 1.0, 0.1)
        sc = ax.scatter([n / d for _, n in cells], [k / d for k, _ in cells], c=lr, cmap="RdBu_r", vmin=-lim,
                        vmax=lim, marker="s", s=28, edgecolors="0.5", linewidths=0.3)
        _psi_curve(ax, d, max(ks))
        ax.set(xlabel="n / d", ylabel="k / d", title=f"(d) median log10(Adam / SGD test loss), {what}")
        ax.grid(False)
        plt.colorbar(sc, ax=ax, label="< 0: Adam lower")
    steps = ctx.results("discrete")[0][0].config["simulate"]["steps"]
    axes[0].set(xlabel="n / $\\delta_1(d, k)$", ylabel="P(last iterate recovered), 95% Wilson",
                title=f"(d) discrete, d = {d}, {steps:.0e} steps, {len(seeds)} seeds")
    axes[1].set(yscale="log", xlabel="n / $\\delta_1(d, k)$",
                ylabel=f"test loss, mean of last {window} records", title="(d) discrete vs the limits")
    axes[2].axhline(0.5, color="k", lw=0.5)
    axes[2].set(xlabel="n / $\\delta_1(d, k)$", ylabel="P(Adam's test loss < SGD's), 95% Wilson", ylim=(-0.02, 1.02),
                title="(d) how often Adam ends lower")
    for ax in axes[:3]:
        ax.axvline(1.0, color="k", lw=0.6)
        ax.legend(fontsize=5.5, loc="best")
    summary["discrete"] = {"d": d, "steps": steps, "seeds": len(seeds), "window": window, "rows": rows}


FLOW_ROW = (("weighted_l1", LIMITS["weighted_l1"]), ("adam_local", LIMITS["adam_local"]),
            ("adam_slow_flow", ("Adam slow flow from GF", *FLOW[1:])))


def _flow_row(axes, ctx, summary):
    """(b) checked: Adam's slow flow against the reweighted-l1 surrogate, cell by cell and problem by problem."""
    tab = ctx.table("flow")
    d = int(ctx.results("flow")[0][0].config["problem"]["d"])
    rows = {}
    for ax, design in zip(axes[:2], ("gaussian", "rademacher")):
        m = tab["problem.design"] == design
        ks = np.unique(tab["problem.k"][m])
        for j, k in enumerate(ks):
            mk_ = m & (tab["problem.k"] == k)
            o = np.argsort(tab["problem.n"][mk_])
            x = tab["problem.n"][mk_][o] / l1_statistical_dimension(d, int(k))
            for lim, (name, col, mk, ls) in FLOW_ROW:
                p = tab[f"p_{lim}"][mk_][o]
                err = np.maximum(np.vstack([p - tab[f"p_{lim}_lo"][mk_][o], tab[f"p_{lim}_hi"][mk_][o] - p]), 0.0)
                ax.errorbar(x, p, yerr=err, color=col, ls=ls, marker=mk, ms=2.5, lw=0.8, capsize=1.5,
                            alpha=0.35 + 0.65 * (j + 1) / len(ks), label=name if j == len(ks) - 1 else None)
        ax.axvline(1.0, color="k", lw=0.6)
        ax.set(xlabel="n / $\\delta_1(d, k)$", ylabel="P(recovered), 95% Wilson", ylim=(-0.02, 1.02),
               title=f"(b) {design}, d = {d}: slow flow vs surrogate (k = {', '.join(str(int(k)) for k in ks)})")
        ax.legend(fontsize=6, loc="upper left")
    rel_loc, rel_flow, tl_loc, tl_flow, sec_loc, sec_flow, des = [], [], [], [], [], [], []
    for job, res in ctx.results("flow"):
        rel_loc += list(res["rel_error_adam_local"])
        rel_flow += list(res["rel_error_adam_slow_flow"])
        tl_loc += list(res["test_loss_adam_local"])
        tl_flow += list(res["test_loss_adam_slow_flow"])
        sec_loc += list(res["seconds_adam_local"])
        sec_flow += list(res["seconds_adam_slow_flow"])
        des += [job.config["problem"]["design"]] * len(res["seeds"])
    rel_loc, rel_flow = np.array(rel_loc), np.array(rel_flow)
    tl_loc, tl_flow = np.maximum(np.array(tl_loc), FLOOR), np.maximum(np.array(tl_flow), FLOOR)
    des = np.array(des)
    same = np.abs(rel_loc - rel_flow) <= 1e-6 * np.maximum(rel_flow, 1e-12) + 1e-9
    for design, col in (("gaussian", "C0"), ("rademacher", "C3")):
        m = des == design
        axes[2].scatter(rel_flow[m], rel_loc[m], s=8, color=col, alpha=0.6, label=design)
        axes[3].scatter(tl_flow[m], tl_loc[m], s=8, color=col, alpha=0.6, label=design)
        rows[design] = {"problems": int(m.sum()), "same_rel_error": int(same[m].sum()),
                        "flow_recovers_local_not": int(np.sum(m & (rel_flow <= 0.1) & (rel_loc > 0.1))),
                        "local_recovers_flow_not": int(np.sum(m & (rel_loc <= 0.1) & (rel_flow > 0.1)))}
    hi = float(np.nanmax(np.concatenate([rel_loc, rel_flow, [1.0]])))
    axes[2].plot([0, hi], [0, hi], color="k", lw=0.6)
    axes[2].set(xlabel="slow flow: $\\|w-w^*\\| / \\|w^*\\|$", ylabel="surrogate: $\\|w-w^*\\| / \\|w^*\\|$",
                title=f"(b) per problem: {int(same.sum())} of {same.size} at the same distance (1e-6)")
    lo = min(float(np.nanmin(tl_flow)), float(np.nanmin(tl_loc)))
    hi = max(float(np.nanmax(tl_flow)), float(np.nanmax(tl_loc)))
    axes[3].plot([lo, hi], [lo, hi], color="k", lw=0.6)
    axes[3].set(xscale="log", yscale="log", xlabel="slow flow: test loss", ylabel="surrogate: test loss",
                title=f"(b) test loss per problem (floor {FLOOR:g})")
    for ax in axes[2:4]:
        ax.legend(fontsize=6)
    axes[4].hist([np.log10(np.maximum(sec_flow, 1e-4)), np.log10(np.maximum(sec_loc, 1e-4))], bins=20,
                 color=[FLOW[1], LIMITS["adam_local"][1]], label=["slow flow", "surrogate"])
    axes[4].set(xlabel="log10 seconds per problem", ylabel="problems", title=f"(b) cost at d = {d}")
    axes[4].legend(fontsize=6)
    summary["flow vs surrogate"] = {"d": d, "by_design": rows, "seconds_flow": float(np.nansum(sec_flow)),
                                    "seconds_surrogate": float(np.nansum(sec_loc))}


def plot(ctx):
    rows = [("gauss", "Gaussian"), ("radem", "Rademacher"), ("small", "Rademacher, small d"),
            ("gauss1k", "Gaussian"), ("radem1k", "Rademacher")]
    fig, axes = plt.subplots(len(rows) + 2, 5, figsize=(19.0, 3.4 * (len(rows) + 2)))
    summary = {}
    for ax_row, (label, name) in zip(axes, rows):
        tab = ctx.table(label)
        cfg = ctx.results(label)[0][0].config
        d = int(cfg["problem"]["d"])
        _row(ax_row, tab, d, f"{name}, d = {d}", summary)
    radem = ctx.table("radem")
    _flow_row(axes[-2], ctx, summary)
    _discrete_row(axes[-1], ctx, radem, int(ctx.results("radem")[0][0].config["problem"]["d"]), summary)
    tol = ctx.spec.sweeps["gauss"].summary.get("recovery_tol", 0.1)
    fig.suptitle(f"implicit-bias limits: recovery ($\\|w-w^*\\| \\leq {tol:g}\\|w^*\\|$), "
                 f"{summary[next(iter(summary))]['seeds']} problem seeds per cell; uniform(-1, 1) teacher, "
                 "init u = v = 0.1 g" + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    ctx.save(fig)
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
