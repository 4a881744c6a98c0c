"""Figure 8: the SAM family on sparse regression with a diagonal network ("uu-vv").

Rows: the two init scales alpha. Columns: the end point's test loss 1/2 ||w - w*||^2, ||w||_1 and support
size (|w_i| > support_threshold) against rho for every method (GD, SAF and MESA have no rho: dashed
horizontal lines), and the test loss along the run against the number of gradient evaluations (in
full-batch gradients) at rho = cost_rho. Runs that diverged or did not reach the train loss
``converged_train_loss`` are drawn hollow, excluded from the verdicts, and counted.

The verdict on the ordering "1-SAM <= n-SAM <= GD" (for ||w||_1 and for the test loss, per alpha and rho)
follows the rule fixed in fig8_sam_family.toml; it and every number of the figure are written to
``fig8_sam_family.json`` next to it. Reads cached results only: compute them with
``diagsim figures --only fig8_sam_family [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

#: the methods in drawing order: label -> colour
COLORS = {
    "GD": "#000000", "SAF": "#7f7f7f", "MESA": "#bcbd22",
    "n-SAM": "#1f77b4", "USAM": "#aec7e8", "m-SAM": "#2ca02c", "1-SAM": "#d62728",
    "ASAM": "#ff7f0e", "Fisher-SAM": "#9467bd", "SSAM-F": "#8c564b", "SSAM-D": "#e377c2",
    "block SAM": "#17becf", "RSAM": "#98df8a",
}
NO_RHO = ("GD", "SAF", "MESA")
_VARIANT_LABELS = {"sam": "n-SAM", "usam": "USAM", "asam": "ASAM", "fisher": "Fisher-SAM", "ssam-f": "SSAM-F",
                   "ssam-d": "SSAM-D", "block": "block SAM", "rsam": "RSAM"}
FLOOR = 1e-12


def method_label(opt: dict, n: int) -> str:
    """The figure's name of an optimizer configuration (m-SAM with one row per chunk is 1-SAM)."""
    name = opt["optimizer"]
    if name != "sam":
        return {"gd": "GD", "saf": "SAF", "mesa": "MESA"}[name]
    if opt["variant"] == "msam":
        return "1-SAM" if opt["m_chunks"] == n else "m-SAM"
    return _VARIANT_LABELS[opt["variant"]]


def grad_evals_per_step(opt: dict) -> int:
    """Gradient evaluations of one step, in full-batch gradients (n per-example gradients).

    GD: one gradient at theta. SAF: one gradient of the loss plus the trajectory term, whose target
    outputs were stored at an earlier step (no gradient through them). MESA: the same, the target being
    the outputs of an EMA copy of theta (a forward pass, no gradient). Every SAM variant: one gradient at
    theta to form the perturbation eps and one at theta + eps; m-SAM does both per chunk, and its chunks
    partition the rows, so it also costs two full-batch gradients per step."""
    return 2 if opt["optimizer"] == "sam" else 1


def ordering_verdict(one, nsam, gd) -> str:
    """"holds" iff one <= nsam <= gd, "fails" otherwise, "n/a" if a run did not converge; each argument
    is a pair (value, converged)."""
    if not (one[1] and nsam[1] and gd[1]):
        return "n/a"
    return "holds" if one[0] <= nsam[0] <= gd[0] else "fails"


def collect(ctx) -> list:
    """One dict per run: the method, alpha, rho, the end point's numbers (mean over the paths that did not
    diverge), convergence, and the test loss along the run."""
    thr_loss = float(ctx.options["converged_train_loss"])
    thr_supp = float(ctx.options["support_threshold"])
    runs = []
    for label in ("base", "sam"):
        for job, res in ctx.results(label):
            cfg = job.config
            prob, opt = cfg["problem"], cfg["optimizer"]
            if res is None:  # a failed job (every path diverged: the sweep stores the error, not a result)
                runs.append({"method": method_label(opt, prob["n"]), "variant": opt.get("variant"),
                             "m_chunks": opt.get("m_chunks"), "alpha": prob["alpha"], "rho": opt.get("rho"),
                             "n_paths": cfg["simulate"]["n_paths"], "n_diverged": cfg["simulate"]["n_paths"],
                             "converged": False, "train_loss": None, "test_loss": None, "l1": None,
                             "support": None, "grad_evals_per_step": grad_evals_per_step(opt), "steps": None,
                             "test_loss_path": None})
                continue
            ok = ~res.diverged_mask
            w = res.w[ok]
            train = np.asarray(res.final_observables["train_loss"])[ok]
            test = np.asarray(res.final_observables["test_loss"])[ok]
            converged = bool(ok.all() and np.all(train <= thr_loss))
            traj = np.asarray(res.records["test_loss"], dtype=float)
            runs.append({
                "method": method_label(opt, prob["n"]), "variant": opt.get("variant"),
                "m_chunks": opt.get("m_chunks"), "alpha": prob["alpha"], "rho": opt.get("rho"),
                "n_paths": int(res.n_paths), "n_diverged": int((~ok).sum()), "converged": converged,
                "train_loss": float(train.mean()) if train.size else None,
                "test_loss": float(test.mean()) if test.size else None,
                "l1": float(np.abs(w).sum(axis=1).mean()) if w.size else None,
                "support": float((np.abs(w) > thr_supp).sum(axis=1).mean()) if w.size else None,
                "grad_evals_per_step": grad_evals_per_step(opt),
                "steps": res.steps.tolist(),
                "test_loss_path": np.nanmean(traj, axis=1).tolist() if ok.any() else None,
            })
    return runs


def verdicts(runs) -> list:
    """Per (alpha, rho) and quantity: the three values and the verdict of the ordering."""
    def find(method, alpha, rho=None):
        for r in runs:
            if r["method"] == method and r["alpha"] == alpha and (rho is None or r["rho"] == rho):
                return r
        raise KeyError((method, alpha, rho))
    out = []
    alphas = sorted({r["alpha"] for r in runs})
    rhos = sorted({r["rho"] for r in runs if r["rho"] is not None})
    for a in alphas:
        gd = find("GD", a)
        for rho in rhos:
            one, ns = find("1-SAM", a, rho), find("n-SAM", a, rho)
            for q in ("l1", "test_loss"):
                out.append({"alpha": a, "rho": rho, "quantity": q, "1-SAM": one[q], "n-SAM": ns[q], "GD": gd[q],
                            "verdict": ordering_verdict((one[q], one["converged"]), (ns[q], ns["converged"]),
                                                        (gd[q], gd["converged"]))})
    return out


def _panel_vs_rho(ax, runs, alpha, key):
    rhos = sorted({r["rho"] for r in runs if r["rho"] is not None})
    for m, col in COLORS.items():
        rs = [r for r in runs if r["method"] == m and r["alpha"] == alpha]
        if m in NO_RHO:
            r = rs[0]
            if r[key] is not None:
                ax.axhline(max(r[key], FLOOR) if key == "test_loss" else r[key], color=col, ls="--", lw=1,
                           label=m + ("" if r["converged"] else " (not conv.)"))
            continue
        rs = sorted(rs, key=lambda r: r["rho"])
        x = np.array([r["rho"] for r in rs])
        y = np.array([np.nan if r[key] is None else r[key] for r in rs], dtype=float)
        if key == "test_loss":
            y = np.maximum(y, FLOOR)
        conv = np.array([r["converged"] for r in rs])
        ax.plot(x, y, "-", color=col, lw=1, label=m)
        ax.plot(x[conv], y[conv], "o", color=col, ms=3)
        ax.plot(x[~conv], y[~conv], "o", mfc="none", color=col, ms=4)
    ax.set_xscale("log")
    ax.set_xticks(rhos)
    ax.set_xticklabels([f"{r:g}" for r in rhos], fontsize=6)
    ax.minorticks_off()


def plot(ctx):
    runs = collect(ctx)
    ver = verdicts(runs)
    alphas = sorted({r["alpha"] for r in runs})
    cost_rho = float(ctx.options["cost_rho"])
    fig, axes = plt.subplots(len(alphas), 4, figsize=(13.5, 3.0 * len(alphas)), squeeze=False)
    for i, a in enumerate(alphas):
        _panel_vs_rho(axes[i, 0], runs, a, "test_loss")
        axes[i, 0].set(yscale="log", ylabel=f"alpha = {a:g}\ntest loss", xlabel="rho")
        _panel_vs_rho(axes[i, 1], runs, a, "l1")
        axes[i, 1].set(ylabel="$\\|w\\|_1$", xlabel="rho")
        _panel_vs_rho(axes[i, 2], runs, a, "support")
        axes[i, 2].set(ylabel=f"support size (|w_i| > {ctx.options['support_threshold']:g})", xlabel="rho")
        ax = axes[i, 3]
        for r in runs:
            if r["alpha"] != a or (r["rho"] is not None and r["rho"] != cost_rho) or r["test_loss_path"] is None:
                continue
            x = np.asarray(r["steps"], dtype=float) * r["grad_evals_per_step"]
            y = np.maximum(np.asarray(r["test_loss_path"], dtype=float), FLOOR)
            keep = x > 0
            ax.plot(x[keep], y[keep], "--" if r["method"] in NO_RHO else "-", color=COLORS[r["method"]], lw=1)
        ax.set(xscale="log", yscale="log", xlabel="gradient evaluations (full batch)", ylabel="test loss",
               title=f"rho = {cost_rho:g} (GD, SAF, MESA: 1 per step; SAM family: 2)", )
        ax.title.set_fontsize(7)
    for ax in axes[:, 0]:
        ax.title.set_fontsize(8)
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=7, fontsize=7, frameon=False)
    n_bad = sum(not r["converged"] for r in runs)
    n_div = sum(r["n_diverged"] > 0 for r in runs)
    first = ctx.results("base")[0][0].config
    p, s = first["problem"], first["simulate"]
    fig.suptitle(f"n = {p['n']}, d = {p['d']}, k = {p['k']}, {p['parametrization']}, lr = "
                 f"{first['optimizer']['lr']:g}, {s['steps']:,} steps, no noise; hollow: not converged "
                 f"({n_bad} of {len(runs)} runs, {n_div} with a diverged path)" + (" [quick]" if ctx.quick else ""),
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    ctx.save(fig)
    counts = {v: sum(x["verdict"] == v for x in ver) for v in ("holds", "fails", "n/a")}
    summary = {"figure": ctx.spec.name, "quick": ctx.quick, "options": ctx.options,
               "problem": p, "lr": first["optimizer"]["lr"], "steps": s["steps"],
               "grad_evals_per_step": {m: (1 if m in NO_RHO else 2) for m in COLORS},
               "n_runs": len(runs), "n_not_converged": n_bad, "n_with_diverged_path": n_div,
               "not_converged": [{k: r[k] for k in ("method", "alpha", "rho", "train_loss", "n_diverged")}
                                 for r in runs if not r["converged"]],
               "verdicts": ver, "verdict_counts": counts,
               "claim_supported": counts["fails"] == 0 and counts["holds"] > 0,
               "runs": runs}
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
