"""Figure 9: AdamE-lambda between SGD (lam = 0) and Adam (lam = 1/2), on one small sparse-regression problem.

The predicted limit of AdamE-lambda minimizes the weighted l_{1-lam} regularizer over the interpolators
(docs/theory.md §9.1-9.2, §9.6): the global minimizer by support enumeration ("global") and the local one
that reweighted l1 reaches from the gradient-flow limit ("local"), both from the limits job's
"adame-global" / "adame-local". The discrete AdamE-lambda runs use label noise at two learning rates.

Panels: (a) test loss 1/2 ||w - w*||^2 vs lam (mean over problem seeds, each seed faint); (b) the effective support
N_eff = ||w||_1^2 / ||w||_2^2 vs lam, for the discrete runs at Phi(theta) (the gradient-flow limit of the last
iterate, the point on the manifold of interpolators the slow-flow theory follows, computed to first order in the
residual by the Newton retraction) and, dotted, at the last iterate; (c) the measure tr diag(H)^{1-lam} at Phi(last
iterate) against its value at the predicted global limit (the fibre minimum R(w) of docs/theory.md §9.2); (d) the
same ratio vs lam. Panels (a), (b), (d) also show where AdamE-lambda's slow flow (docs/theory.md §8), started at
the gradient-flow limit, stops (the limits job's "adam-slow-flow"). Numbers, including every discrete end point, go
to ``<out>/fig9_adame_lambda.json``.

Reads cached results only: compute them with ``diagsim figures --only fig9_adame_lambda [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

#: test losses below this are drawn at it (exact recovery gives ~1e-30)
FLOOR = 1e-10
LIMITS = {"adame_global": ("predicted, global", "C4", "D", "-"),
          "adame_local": ("predicted, local (from GF)", "C3", "^", "--")}
LR_STYLE = ("C0", "C2")


def n_eff(w) -> float:
    """||w||_1^2 / ||w||_2^2 (NaN for w = 0 or a NaN vector)."""
    w = np.asarray(w, dtype=np.float64)
    q = float(np.sum(w * w))
    return float(np.sum(np.abs(w)) ** 2 / q) if q > 0 else np.nan


def _problems(ctx, label):
    """(config, lam, regularizer R, seed, problem P, index j, stored arrays) for every problem of a limits
    sweep with ``limits.lam``."""
    from diagsim.networks.diagonal.problem import make_problem
    from diagsim.symbolic import regularizer, symbolic_parametrization
    S = symbolic_parametrization("uu-vv")
    for job, res in ctx.results(label):
        cfg = job.config
        lam = float(cfg["limits"]["lam"])
        R = regularizer(S, "adame", lam)
        for j, sd in enumerate(np.asarray(res["seeds"])):
            yield cfg, lam, R, int(sd), make_problem(**{**cfg["problem"], "seed": int(sd)}), j, res


def _end_point(R, P, w) -> dict:
    """N_eff and the measure (R's value) of an end point w (NaN measure for a NaN vector)."""
    return {"n_eff": n_eff(w), "measure": float(R.total(w, P.s)) if np.all(np.isfinite(w)) else np.nan}


def limit_rows(ctx) -> list:
    """One row per (lam, problem seed, limit) of the limits sweep."""
    rows = []
    for _, lam, R, sd, P, j, res in _problems(ctx, "limits"):
        row = {"lam": lam, "seed": sd,
               "test_loss_weighted_l1": float(res["test_loss_weighted_l1"][j]),
               "test_loss_adam_local": float(res["test_loss_adam_local"][j]),
               "test_loss_lhalf_global": float(res["test_loss_lhalf_global"][j])}
        for lim in LIMITS:
            w = np.asarray(res[f"w_{lim}"][j], dtype=np.float64)
            row[lim] = {"test_loss": float(res[f"test_loss_{lim}"][j]), **_end_point(R, P, w), "w": w.tolist()}
        rows.append(row)
    return rows


def flow_rows(ctx) -> list:
    """One row per (lam, problem seed) of the slow-flow sweep: the flow's end and the local limit's w."""
    rows = []
    for cfg, lam, R, sd, P, j, res in _problems(ctx, "flow"):
        w = np.asarray(res["w_adam_slow_flow"][j], dtype=np.float64)
        rows.append({"lam": lam, "seed": sd, "lr": float(cfg["optimizer"]["lr"]),
                     "test_loss": float(res["test_loss_adam_slow_flow"][j]), **_end_point(R, P, w),
                     "max_abs_diff_to_local": float(np.max(np.abs(w - res["w_adame_local"][j]))),
                     "seconds": float(res["seconds_adam_slow_flow"][j]), "w": w.tolist()})
    return rows


def discrete_rows(ctx, window: int) -> list:
    """One row per discrete run: its configuration, end point and the quantities drawn."""
    from diagsim.measures.spectral import trace_diag_pow
    from diagsim.networks.diagonal.manifold import retract
    from diagsim.sweep.simjob import build_problem
    rows = []
    for job, res in ctx.results("discrete"):
        cfg = job.config
        o, p = cfg["optimizer"], cfg["problem"]
        P = build_problem(p)
        ok = ~res.diverged_mask
        tl = np.asarray(res.records["test_loss"], dtype=np.float64)[-window:]
        lam = float(o["lam"])
        # Phi(theta), the point of the manifold of interpolators that gradient flow from the last iterate reaches
        # (what the slow-flow theory tracks; the last iterate is off the manifold by the step noise), to first
        # order in the residual: the Newton / Gauss-Newton retraction theta - J^T (J J^T)^-1 r, iterated. Exact
        # gradient flow agrees with it to second order but converges slowly from some end points (1.5 min for
        # one of them), so the figure uses the retraction (the README gives the measured difference).
        phi = retract(P, res.theta[:1]) if ok[0] else None
        rows.append({"lam": lam, "lr": float(o["lr"]), "seed": int(p["seed"]),
                     "steps": int(cfg["simulate"]["steps"]), "noise_seed": int(cfg["simulate"]["seed"]),
                     "diverged": int((~ok).sum()),
                     "test_loss_window": float(np.mean(tl[:, ok])) if ok.any() else np.nan,
                     "test_loss_last": float(P.test_loss_w(res.w[0])) if ok[0] else np.nan,
                     "train_loss_last": float(np.asarray(res.records["train_loss"])[-1, 0]),
                     "n_eff": n_eff(res.w[0]) if ok[0] else np.nan,
                     "measure": float(trace_diag_pow(P, res.theta[:1], lam=lam)[0]) if ok[0] else np.nan,
                     "n_eff_phi": n_eff(P.w(phi)[0]) if ok[0] else np.nan,
                     "measure_phi": float(trace_diag_pow(P, phi, lam=lam)[0]) if ok[0] else np.nan,
                     "test_loss_phi": float(P.test_loss_w(P.w(phi)[0])) if ok[0] else np.nan,
                     "w": res.w[0].tolist()})
    return rows


def _mean_by_lam(rows, lams, get):
    out = []
    for lam in lams:
        v = [get(r) for r in rows if r["lam"] == lam]
        v = [x for x in v if x is not None and np.isfinite(x)]
        out.append(float(np.mean(v)) if v else np.nan)
    return np.array(out)


def plot(ctx):
    window = int(ctx.options.get("discrete_window", 10))
    lim_rows = limit_rows(ctx)
    dis_rows = discrete_rows(ctx, window)
    fl_rows = flow_rows(ctx)
    lams = sorted({r["lam"] for r in lim_rows})
    lrs = sorted({r["lr"] for r in dis_rows}, reverse=True)
    seeds = sorted({r["seed"] for r in lim_rows})
    fig, axes = plt.subplots(1, 4, figsize=(17.0, 3.8))
    summary = {"lams": lams, "lrs": lrs, "problem_seeds": seeds, "window": window, "by_lam": []}
    for lim, (name, col, mk, ls) in LIMITS.items():
        for q, ax in (("test_loss", axes[0]), ("n_eff", axes[1])):
            for sd in seeds:
                ax.plot(lams, [max(r[lim][q], FLOOR) if q == "test_loss" else r[lim][q]
                               for lam in lams for r in lim_rows if r["lam"] == lam and r["seed"] == sd],
                        color=col, ls=ls, lw=0.5, alpha=0.25)
            m = _mean_by_lam(lim_rows, lams, lambda r: r[lim][q])
            ax.plot(lams, np.maximum(m, FLOOR) if q == "test_loss" else m, color=col, ls=ls, marker=mk, ms=4,
                    lw=1.2, label=name)
    glob = {(r["lam"], r["seed"]): r["adame_global"] for r in lim_rows}
    flow_lab = f"slow flow from GF (lr {fl_rows[0]['lr']:g})"
    axes[0].plot(lams, np.maximum(_mean_by_lam(fl_rows, lams, lambda r: r["test_loss"]), FLOOR), color="C5", ls=":",
                 marker="v", ms=4, lw=1.2, label=flow_lab)
    axes[1].plot(lams, _mean_by_lam(fl_rows, lams, lambda r: r["n_eff"]), color="C5", ls=":", marker="v", ms=4,
                 lw=1.2, label=flow_lab)
    axes[3].plot(lams, _mean_by_lam(fl_rows, lams, lambda r: r["measure"] / glob[(r["lam"], r["seed"])]["measure"]),
                 color="C5", ls=":", marker="v", ms=4, lw=1.2, label=flow_lab)
    for lr, col in zip(lrs, LR_STYLE):
        sub = [r for r in dis_rows if r["lr"] == lr]
        lab = f"AdamE discrete, lr {lr:g}"
        axes[0].plot(lams, np.maximum(_mean_by_lam(sub, lams, lambda r: r["test_loss_window"]), FLOOR), color=col,
                     marker="o", ms=4, lw=1.2, label=lab)
        axes[1].plot(lams, _mean_by_lam(sub, lams, lambda r: r["n_eff_phi"]), color=col, marker="o", ms=4, lw=1.2,
                     label=lab + " at $\\Phi(\\theta)$")
        axes[1].plot(lams, _mean_by_lam(sub, lams, lambda r: r["n_eff"]), color=col, ls=":", lw=0.8,
                     label=lab + ", last iterate")
        x = [glob[(r["lam"], r["seed"])]["measure"] for r in sub]
        y = [r["measure_phi"] for r in sub]
        sc = axes[2].scatter(x, y, c=[r["lam"] for r in sub], cmap="viridis", vmin=0, vmax=max(lams),
                             marker="o" if col == LR_STYLE[0] else "s", s=18, edgecolors=col, linewidths=0.6,
                             label=lab)
        axes[3].plot(lams, _mean_by_lam(sub, lams,
                                        lambda r: r["measure_phi"] / glob[(r["lam"], r["seed"])]["measure"]),
                     color=col, marker="o", ms=4, lw=1.2, label=lab + " at $\\Phi(\\theta)$")
    plt.colorbar(sc, ax=axes[2], label="$\\lambda$")
    lo = min(axes[2].get_xlim()[0], axes[2].get_ylim()[0])
    hi = max(axes[2].get_xlim()[1], axes[2].get_ylim()[1])
    axes[2].plot([lo, hi], [lo, hi], color="k", lw=0.6)
    loc_ratio = _mean_by_lam(lim_rows, lams, lambda r: r["adame_local"]["measure"] / r["adame_global"]["measure"])
    axes[3].plot(lams, loc_ratio, color=LIMITS["adame_local"][1], ls="--", marker="^", ms=4, lw=1.2,
                 label="predicted, local")
    axes[3].axhline(1.0, color="k", lw=0.6)
    for ax in axes[:2]:
        for x in (0.0, 0.5):
            ax.axvline(x, color="0.6", lw=0.5)
    d = int(ctx.results("limits")[0][0].config["problem"]["d"])
    steps = dis_rows[0]["steps"]
    axes[0].set(yscale="log", xlabel="$\\lambda$", ylabel=f"test loss (discrete: mean of last {window} records)",
                title="(a) test loss ($\\lambda$ = 0: SGD, 1/2: Adam)")
    axes[1].set(xlabel="$\\lambda$", ylabel="$N_{eff} = \\|w\\|_1^2 / \\|w\\|_2^2$", title="(b) effective support")
    axes[2].set(xlabel="$\\mathrm{tr\\,diag}(H)^{1-\\lambda}$ at the predicted global limit (fibre minimum)",
                ylabel="at $\\Phi$(discrete last iterate)", title="(c) the measure, run by run")
    axes[3].set(xlabel="$\\lambda$", ylabel="ratio to the global limit's value (mean over seeds)",
                title="(d) measure / its value at the global limit")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.suptitle(f"AdamE-$\\lambda$ on one problem family (d = {d}, {len(seeds)} problem seeds, {steps:.0e} steps, "
                 "label noise 0.5)" + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    for lam in lams:
        entry = {"lam": lam}
        for lim in LIMITS:
            entry[lim] = {q: float(_mean_by_lam([r for r in lim_rows if r["lam"] == lam], [lam],
                                                lambda r, q=q, lim=lim: r[lim][q])[0])
                          for q in ("test_loss", "n_eff", "measure")}
        for lr in lrs:
            sub = [r for r in dis_rows if r["lr"] == lr and r["lam"] == lam]
            entry[f"discrete_lr_{lr:g}"] = {
                q: float(_mean_by_lam(sub, [lam], lambda r, q=q: r[q])[0])
                for q in ("test_loss_window", "test_loss_last", "n_eff", "measure", "n_eff_phi", "measure_phi",
                          "test_loss_phi")}
            entry[f"discrete_lr_{lr:g}"]["measure_ratio_to_global"] = float(_mean_by_lam(
                sub, [lam], lambda r: r["measure_phi"] / glob[(r["lam"], r["seed"])]["measure"])[0])
            entry[f"discrete_lr_{lr:g}"]["diverged"] = int(sum(r["diverged"] for r in sub))
        sub = [r for r in fl_rows if r["lam"] == lam]
        entry["slow_flow"] = {q: float(_mean_by_lam(sub, [lam], lambda r, q=q: r[q])[0])
                              for q in ("test_loss", "n_eff", "measure")}
        entry["slow_flow"]["at_local_limit"] = int(sum(r["max_abs_diff_to_local"] <= 1e-6 for r in sub))
        summary["by_lam"].append(entry)
    summary["limits"] = lim_rows
    summary["discrete"] = dis_rows
    summary["slow_flow"] = fl_rows
    ctx.save(fig)
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
