"""Figure 13: deep matrix factorization (matrix sensing) with label noise, SGD vs Adam vs GD at depth 2 and 3.

The paper's second experiment: on a low-rank matrix sensing problem, does Adam end at a different, worse
generalizing W than SGD? SGD's slow flow decreases tr H = tr GN, whose minimum over the factorizations of W is,
at depth 2, twice the weighted nuclear norm ||M_2^{1/2} W M_1^{1/2}||_* (docs/theory.md §13.4); its predicted
limit is diagsim.predict's "sgd" on the matrix family (cvxpy). Depth 3 has no closed-form prediction: the SGD
slow flow (docs/theory.md §8.2) from the gradient-flow limit is drawn instead, against the equivalent number of
SGD steps tau / lr^2. Adam's measure tr diag(H)^{1/2} depends on the factors' coordinates (no prediction).

One row per depth. Panels: (a) test loss ||W - W*||_F^2 vs step; (b) the effective rank of W; (c) the nuclear
norm ||W||_*; (d) the singular values of W at the end. Means over the problem seeds (each seed faint in (a)).
The verdict per depth follows the config's rule: paired differences D = final test loss(Adam) - (SGD) over the
problem seeds, "Adam worse" if mean D > 2 s.e., "Adam better" if mean D < -2 s.e., else "not significant".
Numbers go to ``<out>/fig13_matrix_factorization.json``.

Reads cached results only: compute them with ``diagsim figures --only fig13_matrix_factorization [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

#: test losses below this are drawn at it
FLOOR = 1e-12
#: sweep label -> (legend name, colour)
OPTS = {"gd": ("GD (no noise)", "C2"), "sgd": ("SGD + label noise", "C0"), "adam": ("Adam + label noise", "C1")}
#: the verdict's threshold, in standard errors of the paired difference (fixed in the config's header)
N_SE = 2.0


def _sv(records, i=-1) -> np.ndarray:
    """The recorded singular values sv1..svK of path 0 at record i."""
    K = len([k for k in records if k.startswith("sv") and k[2:].isdigit()])
    return np.array([float(records[f"sv{k + 1}"][i, 0]) for k in range(K)])


def run_rows(ctx, label, window) -> list:
    """One row per run of a discrete sweep: depth, seed, curves and end-point numbers (path 0)."""
    rows = []
    for job, res in ctx.results(label):
        cfg, rec = job.config, res.records
        rows.append({"depth": int(cfg["problem"]["depth"]), "seed": int(cfg["problem"]["seed"]),
                     "steps": np.asarray(res.steps, dtype=np.float64),
                     "curves": {q: np.asarray(rec[q][:, 0], dtype=np.float64)
                                for q in ("test_loss", "effective_rank", "nuclear_norm")},
                     "diverged": int(res.diverged_mask.sum()),
                     "test_loss": float(np.mean(rec["test_loss"][-window:, 0])),
                     "test_loss_last": float(rec["test_loss"][-1, 0]),
                     "train_loss_last": float(rec["train_loss"][-1, 0]),
                     "effective_rank": float(rec["effective_rank"][-1, 0]),
                     "nuclear_norm": float(rec["nuclear_norm"][-1, 0]),
                     "trace_h": float(rec["trace_h"][-1, 0]),
                     "trace_sqrt_diag_h": float(rec["trace_sqrt_diag_h"][-1, 0]),
                     "sv": _sv(rec)})
    return rows


def flow_rows(ctx) -> list:
    """The SGD slow flow's runs: curves against the equivalent SGD step tau / lr^2, and their end points."""
    rows = []
    for job, res in ctx.results("flow"):
        cfg, rec = job.config, res.records
        lr = float(cfg["optimizer"]["lr"])
        tau = np.asarray(res.steps, dtype=np.float64) * float(res.config["stepper"]["dtau"])
        rows.append({"depth": int(cfg["problem"]["depth"]), "seed": int(cfg["problem"]["seed"]), "lr": lr,
                     "tau_end": float(tau[-1]), "steps": tau / lr ** 2,
                     "curves": {q: np.asarray(rec[q][:, 0], dtype=np.float64)
                                for q in ("test_loss", "effective_rank", "nuclear_norm")},
                     "test_loss": float(rec["test_loss"][-1, 0]),
                     "effective_rank": float(rec["effective_rank"][-1, 0]),
                     "nuclear_norm": float(rec["nuclear_norm"][-1, 0]),
                     "trace_h": float(rec["trace_h"][-1, 0]), "sv": _sv(rec)})
    return rows


def prediction_rows(ctx) -> list:
    """diagsim.predict's SGD limit (weighted nuclear norm, cvxpy) on every depth-2 problem of the SGD sweep."""
    from diagsim.predict import predict
    from diagsim.sweep.simjob import build_problem
    rows = []
    for job, _ in ctx.results("sgd"):
        p = job.config["problem"]
        if int(p["depth"]) != 2:
            continue
        P = build_problem(p)
        pr = predict(P, "sgd")
        E = pr.W - P.W_star
        rows.append({"depth": 2, "seed": int(p["seed"]), "status": pr.status,
                     "test_loss": float(np.sum(E * E)), "nuclear_norm": float(pr.nuclear_norm),
                     "rank": int(pr.rank), "trace_gn": float(pr.trace_gn),
                     "effective_rank": float(_effective_rank(pr.singular_values)),
                     "sv": np.asarray(pr.singular_values, dtype=np.float64)})
    return rows


def _effective_rank(sv) -> float:
    from diagsim.networks.matrix.problem import effective_rank
    return float(effective_rank(np.asarray(sv, dtype=np.float64)[None, :])[0])


def verdict(a, b) -> dict:
    """Paired comparison of final test losses a (Adam) and b (SGD) over the same problem seeds."""
    D = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    m = float(np.mean(D))
    se = float(np.std(D, ddof=1) / np.sqrt(D.size)) if D.size > 1 else np.nan
    word = ("Adam worse" if m > N_SE * se else "Adam better" if m < -N_SE * se else "not significant")
    return {"mean_diff": m, "se": se, "n": int(D.size), "diffs": D.tolist(), "verdict": word}


def _by_seed(rows, depth):
    return sorted((r for r in rows if r["depth"] == depth), key=lambda r: r["seed"])


def _mean(rows, q):
    return float(np.mean([r[q] for r in rows])) if rows else np.nan


def plot(ctx):
    window = int(ctx.options.get("window", 5))
    runs = {label: run_rows(ctx, label, window) for label in OPTS}
    flows = flow_rows(ctx)
    preds = prediction_rows(ctx)
    depths = sorted({r["depth"] for r in runs["sgd"]})
    fig, axes = plt.subplots(len(depths), 4, figsize=(17.0, 3.6 * len(depths)), squeeze=False)
    summary = {"window": window, "n_se": N_SE, "by_depth": []}
    for ax_row, depth in zip(axes, depths):
        entry = {"depth": depth}
        for label, (name, col) in OPTS.items():
            rows = _by_seed(runs[label], depth)
            x = rows[0]["steps"]
            keep = x > 0
            for ax, q in zip(ax_row[:3], ("test_loss", "effective_rank", "nuclear_norm")):
                Y = np.array([r["curves"][q] for r in rows])
                if q == "test_loss":
                    for y in Y:
                        ax.plot(x[keep], np.maximum(y[keep], FLOOR), color=col, lw=0.5, alpha=0.25)
                ax.plot(x[keep], np.maximum(Y.mean(axis=0)[keep], FLOOR) if q == "test_loss" else
                        Y.mean(axis=0)[keep], color=col, lw=1.3, label=name)
            sv = np.mean([r["sv"] for r in rows], axis=0)
            ax_row[3].plot(np.arange(1, sv.size + 1), sv, color=col, marker="o", ms=4, lw=1.2, label=name)
            entry[label] = {"seeds": [r["seed"] for r in rows], "diverged": int(sum(r["diverged"] for r in rows)),
                            **{q: _mean(rows, q) for q in ("test_loss", "test_loss_last", "train_loss_last",
                                                           "effective_rank", "nuclear_norm", "trace_h",
                                                           "trace_sqrt_diag_h")},
                            "sv": sv.tolist(),
                            "runs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()
                                      if k not in ("steps", "curves")} for r in rows]}
        frows = _by_seed(flows, depth)
        if frows:
            x = frows[0]["steps"]
            keep = x > 0
            lab = f"SGD slow flow from GF (x = $\\tau$/lr$^2$, $\\tau$ \u2264 {frows[0]['tau_end']:g})"
            for ax, q in zip(ax_row[:3], ("test_loss", "effective_rank", "nuclear_norm")):
                y = np.mean([r["curves"][q] for r in frows], axis=0)
                ax.plot(x[keep], np.maximum(y[keep], FLOOR) if q == "test_loss" else y[keep], color="C5", ls=":",
                        lw=1.5, label=lab)
            sv = np.mean([r["sv"] for r in frows], axis=0)
            ax_row[3].plot(np.arange(1, sv.size + 1), sv, color="C5", ls=":", marker="v", ms=4, lw=1.2,
                           label="SGD slow flow, end")
            entry["sgd_slow_flow"] = {"tau": frows[0]["tau_end"],
                                      **{q: _mean(frows, q) for q in ("test_loss", "effective_rank", "nuclear_norm",
                                                                      "trace_h")},
                                      "sv": sv.tolist(),
                                      "runs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                                for k, v in r.items() if k not in ("steps", "curves")}
                                               for r in frows]}
        prows = _by_seed(preds, depth)
        if prows:
            lab = "SGD predicted limit (weighted nuclear norm)"
            for ax, q in zip(ax_row[:3], ("test_loss", "effective_rank", "nuclear_norm")):
                v = _mean(prows, q)
                ax.axhline(max(v, FLOOR) if q == "test_loss" else v, color="k", ls="--", lw=0.9, label=lab)
            sv = np.mean([r["sv"] for r in prows], axis=0)
            ax_row[3].plot(np.arange(1, sv.size + 1), sv, color="k", ls="--", marker="D", ms=3, lw=0.9, label=lab)
            entry["sgd_prediction"] = {**{q: _mean(prows, q) for q in ("test_loss", "effective_rank", "nuclear_norm",
                                                                         "trace_gn")},
                                       "sv": sv.tolist(),
                                       "runs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                                 for k, v in r.items()} for r in prows]}
            pred_note = "dashed: SGD's predicted limit"
        else:
            pred_note = "no SGD prediction at depth 3;\ndotted: its slow flow"
        seeds_a = [r["seed"] for r in _by_seed(runs["adam"], depth)]
        assert seeds_a == [r["seed"] for r in _by_seed(runs["sgd"], depth)]
        entry["adam_vs_sgd"] = verdict([r["test_loss"] for r in _by_seed(runs["adam"], depth)],
                                       [r["test_loss"] for r in _by_seed(runs["sgd"], depth)])
        v = entry["adam_vs_sgd"]
        ax_row[0].set(xscale="log", yscale="log", xlabel="step", ylabel="$\\|W - W^*\\|_F^2$",
                      title=f"depth {depth}: (a) test loss\nAdam - SGD = {v['mean_diff']:.2g} \u00b1 {v['se']:.2g} "
                            f"({v['verdict']})")
        ax_row[1].set(xscale="log", xlabel="step", ylabel="effective rank", title=f"(b) effective rank ({pred_note})")
        ax_row[2].set(xscale="log", xlabel="step", ylabel="$\\|W\\|_*$", title="(c) nuclear norm")
        ax_row[3].set(yscale="log", xlabel="k", ylabel="$\\sigma_k(W)$ (mean over seeds)",
                      title="(d) singular values at the end")
        for ax in ax_row:
            ax.legend(fontsize=6)
            ax.title.set_fontsize(8)
        summary["by_depth"].append(entry)
    p = ctx.results("sgd")[0][0].config["problem"]
    o = {label: ctx.results(label)[0][0].config for label in OPTS}
    steps = int(o["sgd"]["simulate"]["steps"])
    nseeds = len({r["seed"] for r in runs["sgd"]})
    fig.suptitle(f"Matrix sensing {p['m1']}x{p['m2']}, rank {p['rank']}, n = {p['n']}, init {p['alpha']:g}, "
                 f"{nseeds} problem seeds, {steps:.0e} steps; lr GD/SGD {o['sgd']['optimizer']['lr']:g}, "
                 f"Adam {o['adam']['optimizer']['lr']:g}, label noise {o['sgd']['optimizer']['noise']['delta']:g}"
                 + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    summary["problem"] = {k: v for k, v in p.items() if k not in ("depth", "seed")}
    summary["optimizers"] = {label: c["optimizer"] for label, c in o.items()}
    summary["steps"] = steps
    ctx.save(fig)
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
