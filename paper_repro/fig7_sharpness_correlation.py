"""Figure 7: Kendall's tau between every sharpness measure and the test loss over a population of diagonal
networks trained on one sparse-regression problem to a training loss of 1e-5 (one row per parametrization,
"uu-vv" and "uv").

(a) tau per measure with its paired percentile-bootstrap 95 % interval over networks; the published values
of Hide & Seek are drawn (diamonds) beside diagsim's closest measures: adaptive -> ``worst_adaptive``,
geodesic inv -> ``geodesic_inv``, geodesic mix -> ``geodesic_mix``. (b) tau within each optimizer group.
(c) the test loss against the measure with the largest |tau| and the one with the smallest, by group.
Networks that did not converge are excluded; their number is in the row's title and in the JSON.

A second page, ``fig7_sharpness_correlation_sensitivity``, shows how tau moves with the choices the paper
leaves open (the sweeps ``<parametrization>_<setting>`` of the TOML, fixed there before any tau was
computed): for each measure of ``diagsim.experiments.correlate.SENSITIVITY_MEASURES`` and each
parametrization, tau with its bootstrap interval per setting (the base population; n = 10 and 30; the
adaptive radius x0.5 and x2; only the middle init scales), with the published values as horizontal marks.

The numbers are written to ``fig7_sharpness_correlation.json`` next to the figure. Reads cached results
only: compute them with ``diagsim figures --only fig7_sharpness_correlation [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

PARAMS = (("uuvv", "uu-vv"), ("uv", "uv"))
#: the sensitivity settings: the suffix of their sweep label ("" = the base population), in drawing order
SETTINGS = ("", "_n10", "_n30", "_rho_half", "_rho_double", "_mid_alpha")
GROUP_COLORS = {"gd": "#1f77b4", "sgd+label": "#ff7f0e", "sgd+minibatch": "#2ca02c", "adam": "#d62728",
                "sam": "#9467bd"}


def analyze(ctx):
    """{parametrization label: summarize_population(...)} plus the rows, from the cache."""
    from diagsim.experiments.correlate import check_analysis_options, population_rows, summarize_population
    opts = check_analysis_options(dict(ctx.options))
    out = {}
    for label, name in PARAMS:
        rows = population_rows(ctx.results(label))
        out[name] = (summarize_population(rows, **opts), rows)
    return out


def _bars(ax, s):
    from diagsim.experiments.correlate import PAPER_TAU
    names = list(s["tau"])
    x = np.arange(len(names))
    tau = np.array([s["tau"][n]["tau"] for n in names])
    lo = np.array([s["tau"][n]["lo"] for n in names])
    hi = np.array([s["tau"][n]["hi"] for n in names])
    ax.bar(x, tau, color="#7f7f7f", width=0.7, label="diagsim")
    ax.errorbar(x, tau, yerr=[tau - lo, hi - tau], fmt="none", ecolor="k", lw=0.8, capsize=2)
    first = True
    for i, n in enumerate(names):
        if n in PAPER_TAU:
            ax.plot(i + 0.42, PAPER_TAU[n][1], "D", color="#d62728", ms=5,
                    label="Hide & Seek (published)" if first else None)
            first = False
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, names, rotation=75, fontsize=7)
    ax.set(ylim=(-1.05, 1.05), ylabel="Kendall $\\tau$ (measure, test loss)")
    ax.legend(fontsize=7, loc="lower left")


def _groups(ax, s):
    names = list(s["tau"])
    groups = list(s["groups"])
    M = np.array([[s["groups"][g]["tau"][n] for n in names] for g in groups])
    im = ax.imshow(M, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(np.arange(len(names)), names, rotation=75, fontsize=7)
    ax.set_yticks(np.arange(len(groups)), [f"{g} ({s['groups'][g]['n']})" for g in groups], fontsize=7)
    return im


def _scatter(ax, s, rows, which):
    ok = [r for r in rows if r["converged"]]
    name = s[which]
    for g in sorted({r["group"] for r in ok}):
        rr = [r for r in ok if r["group"] == g]
        ax.scatter([r["measures"][name] for r in rr], [r["test_loss"] for r in rr], s=10,
                   color=GROUP_COLORS.get(g, "k"), label=g)
    t = s["tau"][name]
    ax.set(yscale="log", xlabel=name, ylabel="test loss",
           title=f"{which}: {name}, $\\tau$ = {t['tau']:.2f} [{t['lo']:.2f}, {t['hi']:.2f}]")
    ax.title.set_fontsize(8)


def plot(ctx):
    res = analyze(ctx)
    fig, axes = plt.subplots(2, 4, figsize=(15, 7.6), gridspec_kw={"width_ratios": [1.5, 1.5, 1, 1]})
    for row, (name, (s, rows)) in zip(axes, res.items()):
        _bars(row[0], s)
        row[0].set_title(f"{name}: {s['n_converged']} networks converged, {s['n_excluded']} excluded",
                         fontsize=9)
        im = _groups(row[1], s)
        row[1].set_title("$\\tau$ within each optimizer group (n)", fontsize=9)
        fig.colorbar(im, ax=row[1], fraction=0.05, pad=0.02)
        _scatter(row[2], s, rows, "best")
        _scatter(row[3], s, rows, "worst")
        row[2].legend(fontsize=6)
    s0 = next(iter(res.values()))[0]
    job = ctx.results("uuvv")[0][0].config
    p = job["problem"]
    fig.suptitle(f"{ctx.spec.title}\nd = {p['d']}, n = {p['n']}, k = {p['k']}, train loss $\\leq$ "
                 f"{job['train']['target_loss']:g}; bootstrap: {s0['n_resamples']} resamples, "
                 f"{100 * s0['conf']:g} % intervals" + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.2, top=0.88, hspace=0.75, wspace=0.35)
    ctx.save(fig)
    sens = analyze_sensitivity(ctx)
    plot_sensitivity(ctx, sens)
    summary = {"figure": ctx.spec.name, "quick": ctx.quick, "problem": p, "train": job["train"],
               "measures": job["measures"], "populations": {name: s for name, (s, _) in res.items()},
               "sensitivity": sens}
    ctx.save_json(summary)


def _setting_label(suffix, pairs):
    """A short label from the sweep's own job configs (so it is right at both sizes)."""
    cfg = pairs[0][0].config
    if suffix == "":
        return f"base (n = {cfg['problem']['n']})"
    if suffix.startswith("_n"):
        return f"n = {cfg['problem']['n']}"
    if suffix.startswith("_rho"):
        return f"rho_adaptive = {cfg['measures']['rho_adaptive']:g}"
    alphas = sorted({job.config["problem"]["alpha"] for job, _ in pairs})
    return "alpha in {" + ", ".join(f"{a:g}" for a in alphas) + "}"


def analyze_sensitivity(ctx):
    """{parametrization: {sweep label: population_taus(...) + the setting in words}} from the cache."""
    from diagsim.experiments.correlate import check_analysis_options, population_rows, population_taus
    opts = check_analysis_options(dict(ctx.options))
    out = {}
    for label, name in PARAMS:
        out[name] = {}
        for suffix in SETTINGS:
            pairs = ctx.results(label + suffix)
            out[name][label + suffix] = {"setting": _setting_label(suffix, pairs),
                                         **population_taus(population_rows(pairs), **opts)}
    return out


def plot_sensitivity(ctx, sens):
    """One panel per (parametrization, measure): tau and its interval per setting, published values marked."""
    from diagsim.experiments.correlate import PAPER_TAU, SENSITIVITY_MEASURES
    fig, axes = plt.subplots(len(sens), len(SENSITIVITY_MEASURES), figsize=(16, 8.4), sharey=True, squeeze=False)
    for row, (pname, settings) in zip(axes, sens.items()):
        labels = list(settings)
        x = np.arange(len(labels))
        for ax, m in zip(row, SENSITIVITY_MEASURES):
            t = np.array([settings[s]["tau"][m]["tau"] for s in labels])
            lo = np.array([settings[s]["tau"][m]["lo"] for s in labels])
            hi = np.array([settings[s]["tau"][m]["hi"] for s in labels])
            ax.errorbar(x, t, yerr=[t - lo, hi - t], fmt="o", color="k", ms=4, capsize=2, lw=0.9)
            ax.axhline(0, color="k", lw=0.5)
            if m in PAPER_TAU:
                ax.axhline(PAPER_TAU[m][1], color="#d62728", lw=1.0, ls="--", label="published")
                ax.axhline(-PAPER_TAU[m][1], color="#d62728", lw=0.8, ls=":", label="its negative")
                ax.legend(fontsize=6, loc="upper right")
            ax.set_xticks(x, [f"{settings[s]['setting']} ({settings[s]['n_converged']})" for s in labels],
                          rotation=60, fontsize=7, ha="right")
            ax.set_title(f"{pname}: {m}", fontsize=9)
            ax.set_ylim(-1.05, 1.05)
        row[0].set_ylabel("Kendall $\\tau$ (measure, test loss)")
    s0 = next(iter(next(iter(sens.values())).values()))
    fig.suptitle("Figure 7, sensitivity: $\\tau$ and its bootstrap interval when one protocol choice changes "
                 f"({s0['n_resamples']} resamples, {100 * s0['conf']:g} % intervals; converged networks of each "
                 "setting in parentheses)" + (" [quick]" if ctx.quick else ""), fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.91, hspace=1.0, wspace=0.12)
    ctx.save(fig, stem=f"{ctx.spec.name}_sensitivity")


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
