"""Figure 11: Adam-mini and Adalayer pick different solutions; RMSProp against Adam.

On "uu-vv" the block measure sum_b sqrt(|b| tr H_bb) of Adalayer (blocks {u}, {v}) has the fibre minimum
2 sqrt(d) (sqrt(G+) + sqrt(G-)), which favours interpolators of one sign; Adam-mini with the per-coordinate-pair
blocks {u_i, v_i} minimizes Adam's weighted l_{1/2} (docs/theory.md §9.4-9.5). Each optimizer's predicted limit is
:func:`diagsim.predict.predict` of its own spec (global minimizers), computed here (a few seconds); beside them the
local l_{1/2} minimizer that reweighted l1 reaches from the gradient-flow limit (where slow flows tend to stop).

Panels: (a) every discrete end point and slow-flow end, by its relative distance to the l_{1/2} limit (x) and to
the block limit (y); (b) test loss 1/2 ||w - w*||^2 per problem seed: the three limits, the discrete runs
and the slow flows; (c) how many runs (and flows) have each limit's sign pattern; (d) the momentum effect: the
distance of the Adam (beta1 0.9) and RMSProp (beta1 0) ensemble means from each other and from the slow flow at a
fixed slow time, against lr, with fitted slopes (verify's slow-limit estimators, diagsim/verify/slow_limit.py).
Numbers go to ``<out>/fig11_adam_mini.json``.

Reads cached results only: compute them with ``diagsim figures --only fig11_adam_mini [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

#: sweep label -> (legend label, colour, marker)
OPTS = {"adam": ("Adam ($\\beta_1$ 0.9)", "C0", "o"), "rmsprop": ("RMSProp ($\\beta_1$ 0)", "C1", "s"),
        "adalayer": ("Adalayer {u}, {v}", "C2", "^"), "adam_mini": ("Adam-mini {u$_i$, v$_i$}", "C3", "v")}
#: the predicted limits: key -> (label, colour, line style); "lhalf_local" is the local l_{1/2} minimizer that
#: reweighted l1 reaches from the gradient-flow limit (the limits job's "adam-local" surrogate)
LIMITS = {"lhalf": ("weighted $\\ell_{1/2}$, global (Adam, RMSProp, Adam-mini pairs)", "k", "-"),
          "lhalf_local": ("weighted $\\ell_{1/2}$, local from GF", "C4", "--"),
          "block": ("block, global (Adalayer)", "0.55", ":")}
#: a slow flow "ends at" a limit when max |w_flow - w_limit| <= this
AT_TOL = 1e-6
FLOOR = 1e-10


def sign_pattern(w, rel: float) -> np.ndarray:
    """sign(w_i), with |w_i| <= rel max|w| counted as 0."""
    w = np.asarray(w, dtype=np.float64)
    return np.where(np.abs(w) > rel * np.max(np.abs(w)), np.sign(w), 0.0).astype(int)


def predictions(problem) -> dict:
    """The global l_{1/2} (Adam) and block (Adalayer) limits of a problem, and the local l_{1/2} one from the
    gradient-flow limit."""
    from diagsim.predict import predict
    gf = predict(problem, "gd").w
    return {"lhalf": predict(problem, "adam", method="global"),
            "lhalf_local": predict(problem, "adam", method="local", x0=gf),
            "block": predict(problem, "adalayer")}


def limit_of(opt_cfg) -> str:
    """Which of LIMITS an optimizer configuration is predicted to reach (diagsim.predict's target)."""
    from diagsim.optimizers.specs import from_config
    from diagsim.predict import target_for
    return "block" if target_for(from_config(opt_cfg)).measure == "block" else "lhalf"


def _end_row(P, preds, w, rel) -> dict:
    w = np.asarray(w, dtype=np.float64)
    ok = bool(np.all(np.isfinite(w)))
    row = {"test_loss": float(P.test_loss_w(w)) if ok else np.nan, "w": w.tolist()}
    for k, pr in preds.items():
        row[f"dist_{k}"] = float(np.linalg.norm(w - pr.w) / np.linalg.norm(pr.w)) if ok else np.nan
        row[f"pattern_{k}"] = bool(ok and np.array_equal(sign_pattern(w, rel), sign_pattern(pr.w, rel)))
        row[f"at_{k}"] = bool(ok and np.max(np.abs(w - pr.w)) <= AT_TOL)
    return row


def end_rows(ctx, rel) -> tuple[list, dict]:
    """One row per discrete path and per slow flow; and the predictions per problem seed."""
    from diagsim.sweep.simjob import build_problem
    rows, preds = [], {}
    for opt in OPTS:
        for kind, label in (("discrete", opt), ("slow-flow", f"flow_{opt}")):
            for job, res in ctx.results(label):
                cfg = job.config
                sd = int(cfg["problem"]["seed"])
                P = build_problem(cfg["problem"])
                if sd not in preds:
                    preds[sd] = (P, predictions(P))
                target = limit_of(cfg["optimizer"])
                for p in range(res.w.shape[0]):
                    w = res.w[p] if not res.diverged_mask[p] else np.full(P.d, np.nan)
                    rows.append({"optimizer": opt, "kind": kind, "seed": sd, "path": p, "predicted": target,
                                 **_end_row(P, preds[sd][1], w, rel)})
    return rows, preds


def momentum(ctx, n_boot: int) -> dict:
    """Adam vs RMSProp ensembles (paired paths) and each vs the slow flow at tau, against lr."""
    from diagsim.verify.estimates import parametric_slope
    from diagsim.verify.slow_limit import distance
    flows = ctx.results("mom_flow")  # Adam's and RMSProp's slow flows: the same flow (beta1 does not enter it)
    flow = flows[0][1].w[0]
    ra, rr = ctx.results("mom_adam"), ctx.results("mom_rmsprop")
    out = {"lr": [], "tau": float(ra[0][0].config["simulate"]["tau"]), "paths": int(ra[0][1].w.shape[0]),
           "w_flow": flow.tolist(), "diverged": [],
           "flow_max_abs_diff_adam_rmsprop": float(np.max(np.abs(flows[0][1].w[0] - flows[1][1].w[0])))}
    D = {"adam_vs_rmsprop": ([], []), "adam_vs_flow": ([], []), "rmsprop_vs_flow": ([], [])}
    for (ja, a), (jr, r) in zip(ra, rr):
        lr = float(ja.config["optimizer"]["lr"])
        if lr != float(jr.config["optimizer"]["lr"]):
            raise RuntimeError("mom_adam and mom_rmsprop must have the same lr grid")
        ok = ~(a.diverged_mask | r.diverged_mask)
        Wa, Wr = a.w[ok], r.w[ok]
        out["lr"].append(lr)
        out["diverged"].append(int((~ok).sum()))
        for key, (W, ref) in {"adam_vs_rmsprop": (Wa - Wr, np.zeros_like(flow)), "adam_vs_flow": (Wa, flow),
                              "rmsprop_vs_flow": (Wr, flow)}.items():
            d, se = distance(W, ref, 1.0, n_boot, seed=0)
            D[key][0].append(d)
            D[key][1].append(se)
    for key, (d, se) in D.items():
        p, sp = parametric_slope(out["lr"], d, se, seed=0)
        out[key] = {"D": d, "D_se": se, "slope": p, "slope_se": sp}
    return out


def _frac(rows, **match) -> tuple[int, int]:
    sub = [r for r in rows if all(r[k] == v for k, v in match.items() if not k.startswith("pattern"))]
    key = next(k for k in match if k.startswith("pattern"))
    return sum(r[key] for r in sub), len(sub)


def plot(ctx):
    rel = float(ctx.options.get("support_rel", 0.1))
    n_boot = int(ctx.options.get("n_boot", 200))
    rows, preds = end_rows(ctx, rel)
    mom = momentum(ctx, n_boot)
    seeds = sorted(preds)
    fig, axes = plt.subplots(1, 4, figsize=(18.0, 4.0))
    # (a) distances to the two limits
    ax = axes[0]
    for opt, (lab, col, mk) in OPTS.items():
        dis = [r for r in rows if r["optimizer"] == opt and r["kind"] == "discrete"]
        fl = [r for r in rows if r["optimizer"] == opt and r["kind"] == "slow-flow"]
        ax.scatter([r["dist_lhalf"] for r in dis], [r["dist_block"] for r in dis], color=col, marker=mk, s=14,
                   alpha=0.6, label=f"{lab}, discrete")
        ax.scatter([r["dist_lhalf"] for r in fl], [r["dist_block"] for r in fl], facecolors="none", edgecolors=col,
                   marker="*", s=120, linewidths=1.2, label=f"{lab}, slow flow")
    lo, hi = 1e-3, 3.0
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.6)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="$\\|w - w_{\\ell_{1/2}}\\| / \\|w_{\\ell_{1/2}}\\|$",
           ylabel="$\\|w - w_{block}\\| / \\|w_{block}\\|$",
           title="(a) end points: nearer which predicted limit?")
    ax.legend(fontsize=5.5, ncol=2)
    # (b) test loss per seed
    ax = axes[1]
    for i, sd in enumerate(seeds):
        P, pr = preds[sd]
        for k, (lab, col, ls) in LIMITS.items():
            ax.hlines(max(P.test_loss_w(pr[k].w), FLOOR), i - 0.4, i + 0.4, color=col, lw=2.5, ls=ls,
                      label=f"predicted: {lab}" if i == 0 else None)
        for j, (opt, (_, col, mk)) in enumerate(OPTS.items()):
            x = i - 0.3 + 0.2 * j
            dis = [max(r["test_loss"], FLOOR) for r in rows if r["optimizer"] == opt and r["seed"] == sd
                   and r["kind"] == "discrete"]
            fl = [max(r["test_loss"], FLOOR) for r in rows if r["optimizer"] == opt and r["seed"] == sd
                  and r["kind"] == "slow-flow"]
            ax.scatter([x] * len(dis), dis, color=col, marker=mk, s=12, alpha=0.7)
            ax.scatter([x] * len(fl), fl, facecolors="none", edgecolors=col, marker="*", s=110, linewidths=1.2)
    ax.set(yscale="log", xticks=range(len(seeds)), xticklabels=[str(s) for s in seeds], xlabel="problem seed",
           ylabel="test loss $\\frac{1}{2}\\|w - w^*\\|^2$", title="(b) test loss: predicted (lines), runs, flows (*)")
    ax.legend(fontsize=6)
    # (c) sign patterns
    ax = axes[2]
    summary = {"support_rel": rel, "problem_seeds": seeds, "by_optimizer": {}}
    for j, opt in enumerate(OPTS):
        entry = {}
        for q, (k, (klab, kcol, _)) in enumerate(LIMITS.items()):
            m, n = _frac(rows, optimizer=opt, kind="discrete", **{f"pattern_{k}": True})
            fm, fn = _frac(rows, optimizer=opt, kind="slow-flow", **{f"pattern_{k}": True})
            entry[f"discrete_pattern_{k}"] = [m, n]
            entry[f"flow_pattern_{k}"] = [fm, fn]
            entry[f"flow_at_{k}"] = sum(r[f"at_{k}"] for r in rows if r["optimizer"] == opt
                                        and r["kind"] == "slow-flow")
            x = j + 0.27 * (q - 1)
            ax.bar(x, m / n if n else np.nan, width=0.26, color=kcol, alpha=0.8,
                   label=f"{klab} pattern" if j == 0 else None)
            ax.text(x, (m / n if n else 0) + 0.02, f"{m}/{n}\nflow\n{fm}/{fn}", ha="center", fontsize=5)
        dis = [r for r in rows if r["optimizer"] == opt and r["kind"] == "discrete"]
        entry["predicted"] = dis[0]["predicted"] if dis else None
        entry["discrete_test_loss_mean"] = float(np.nanmean([r["test_loss"] for r in dis])) if dis else np.nan
        entry["discrete_diverged"] = int(sum(not np.isfinite(r["test_loss"]) for r in dis))
        summary["by_optimizer"][opt] = entry
    ax.set(xticks=range(len(OPTS)), xticklabels=[v[0] for v in OPTS.values()], ylim=(0, 1.25),
           ylabel="fraction of discrete runs", title="(c) runs with each limit's sign pattern")
    ax.tick_params(axis="x", labelsize=6)
    ax.legend(fontsize=6, loc="upper left")
    # (d) momentum
    ax = axes[3]
    from diagsim.verify import plotting
    styles = {"adam_vs_rmsprop": "|mean Adam - mean RMSProp| (paired)", "adam_vs_flow": "|mean Adam - flow|",
              "rmsprop_vs_flow": "|mean RMSProp - flow|"}
    for key, lab in styles.items():
        plotting.loglog_fit(ax, mom["lr"], mom[key]["D"], mom[key]["D_se"], slope=mom[key]["slope"],
                            label=f"{lab}, SE {mom[key]['slope_se']:.2f}")
    ax.set(xlabel="lr ($1-\\beta_2 = 4\\,$lr$^2$)", ylabel=f"distance of ensemble means at $\\tau$ = {mom['tau']:g}",
           title=f"(d) momentum: Adam vs RMSProp ({mom['paths']} paths)")
    ax.legend(fontsize=6)
    ax.xaxis.set_minor_formatter(NullFormatter())
    d = len(rows[0]["w"])
    steps = int(ctx.results("adam")[0][0].config["simulate"]["steps"])
    fig.suptitle(f"Adam-mini and Adalayer on d = {d} ({len(seeds)} problem seeds, {steps:.0e} steps, lr 0.05, "
                 "label noise 0.5); momentum on verify's slow-limit problem" + (" [quick]" if ctx.quick else ""),
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    summary["predictions"] = {str(sd): {k: {"w": pr.w.tolist(), "test_loss": float(P.test_loss_w(pr.w)),
                                            "pattern": sign_pattern(pr.w, rel).tolist(),
                                            "objective": float(pr.objective)} for k, pr in p.items()}
                              for sd, (P, p) in preds.items()}
    flow_w = {(r["optimizer"], r["seed"]): np.asarray(r["w"]) for r in rows if r["kind"] == "slow-flow"}
    summary["flow_max_abs_diff_to_adam"] = {o: {str(sd): float(np.max(np.abs(flow_w[(o, sd)] - flow_w[("adam", sd)])))
                                               for sd in seeds} for o in OPTS if o != "adam"}
    summary["runs"] = rows
    summary["momentum"] = mom
    ctx.save(fig)
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
