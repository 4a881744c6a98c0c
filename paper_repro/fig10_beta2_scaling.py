"""Figure 10: why 1 - beta2 = Theta(lr^2). Discrete Adam with label noise at beta2 = 1 - C lr^p, C = 0.1^(1-p),
over a grid of (lr, p): how far the preconditioner s = 1/(sqrt(vh) + eps) that the steps apply is from the
quasi-static one at the current point, s_ref = 1/(sqrt(E[g*g | theta]) + eps) (docs/theory.md §7.5, §8.4),
recorded every 100 steps over the second half of each run (the "precond" job, diagsim/sweep/precondjob.py).

The theory: on the slow clock tau = lr^2 k, v relaxes towards E[g*g] at the rate C_tau = (1 - beta2) / lr^2
= 10 (lr / 0.1)^(p - 2). As lr -> 0 this rate grows without bound for p < 2 (v is quasi-static: it follows
c diag H at the current point and the drift from s_ref vanishes), stays fixed at p = 2 (v is a state of its
own, the "ode" mode of the slow flow) and vanishes for p > 2 (v freezes over any fixed slow time). The
per-step noise of v, relative size ~ sqrt(1 - beta2), vanishes for every p.

Panels: (a) log10 of the mean drift ||s - s_ref|| / ||s_ref|| over the active parameters (u_i for w*_i > 0,
v_i for w*_i < 0) over (lr, p), with p = 2 and the line (1 - beta2) * (window length) = 1 beyond which v
(bias-corrected) still averages over the start of the run; (b) the same over all 2d parameters (the issue's
definition); (c) the active drift against lr, one line per p; (d), (e) the mean cosine of s - s_ref with the
step's gradient g and with g*g - E[g*g | theta] (active parameters); (f) the slope b(p) of log10 drift against
log10 lr over the smallest lrs, with the estimated boundary p* (the verdict, fixed in the TOML before the
full run). Numbers go to ``<out>/fig10_beta2_scaling.json``.

Reads cached results only: compute them with ``diagsim figures --only fig10_beta2_scaling [--quick]``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

SERIES = ("drift", "drift_active", "corr_g", "corr_g_active", "corr_g2", "corr_g2_active", "train_loss")
P_THEORY = 2.0


def run_rows(ctx) -> list:
    """One row per (lr, p): its configuration and the window means of the recorded series."""
    rows = []
    for job, res in ctx.results("runs"):
        cfg = job.config
        pc = cfg["precond"]
        row = {"lr": float(cfg["optimizer"]["lr"]), "p": float(pc["beta2_exponent"]),
               "beta2": float(res["beta2"]), "one_minus_beta2": 1.0 - float(res["beta2"]),
               "steps": int(pc["steps"]), "window": [int(res["record_steps"][0]), int(res["record_steps"][-1])],
               "n_records": int(np.asarray(res["record_steps"]).size),
               "diverged": int(np.sum(res["diverged"])), "elapsed_s": float(res["elapsed_s"])}
        for name in SERIES:
            a = np.asarray(res[name], dtype=np.float64)
            ok = np.isfinite(a)
            row[name] = float(np.mean(a[ok])) if ok.any() else np.nan
        tl = np.asarray(res["train_loss"], dtype=np.float64)[:, 0]
        half = tl.size // 2
        row["train_loss_first_half"] = float(np.nanmean(tl[:half])) if half else np.nan
        row["train_loss_second_half"] = float(np.nanmean(tl[half:]))
        rows.append(row)
    return rows


def slope_fit(x, y):
    """Least-squares slope of y on x and its standard error (NaN s.e. with fewer than 3 points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return np.nan, np.nan
    X = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    if x.size < 3:
        return float(coef[1]), np.nan
    res = y - X @ coef
    s2 = float(res @ res) / (x.size - 2)
    return float(coef[1]), float(np.sqrt(s2 / np.sum((x - x.mean()) ** 2)))


def boundary(ps, b, se) -> dict:
    """The first zero crossing p* of b(p) from positive to non-positive (linear interpolation) and the
    verdict of the TOML: holds if |p* - 2| <= 0.25, fails otherwise, not significant without a crossing or
    when b on either side of it is within 2 standard errors of 0."""
    for i in range(len(ps) - 1):
        if b[i] > 0 >= b[i + 1]:
            p_star = ps[i] + (ps[i + 1] - ps[i]) * b[i] / (b[i] - b[i + 1])
            weak = not (b[i] > 2 * se[i] and b[i + 1] < -2 * se[i + 1])
            if weak:
                verdict = "not significant"
            else:
                verdict = "holds" if abs(p_star - P_THEORY) <= 0.25 else "fails"
            return {"p_star": float(p_star), "verdict": verdict, "bracket": [ps[i], ps[i + 1]],
                    "separated_by_2se": not weak}
    return {"p_star": None, "verdict": "not significant", "bracket": None, "separated_by_2se": False}


def _grid(rows, lrs, ps, key):
    A = np.full((len(ps), len(lrs)), np.nan)
    for r in rows:
        A[ps.index(r["p"]), lrs.index(r["lr"])] = r[key]
    return A


def _heat(ax, fig, lrs, ps, A, label, cmap="viridis", vmin=None, vmax=None):
    x = np.log10(lrs)
    dx = (x[1] - x[0]) / 2 if len(x) > 1 else 0.5
    dp = (ps[1] - ps[0]) / 2 if len(ps) > 1 else 0.5
    im = ax.imshow(A, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   extent=(x[0] - dx, x[-1] + dx, ps[0] - dp, ps[-1] + dp))
    fig.colorbar(im, ax=ax, label=label)
    ax.axhline(P_THEORY, color="w", lw=1.5, ls="--")
    ax.axhline(P_THEORY, color="k", lw=0.6, ls="--", label="p = 2 (theory)")
    ax.set(xlabel="log10 lr", ylabel="p  (1 - beta2 = 0.1 (lr / 0.1)^p)")


def _memory_line(ax, lrs, window):
    """p at which (1 - beta2) * window = 1: 0.1 (lr / 0.1)^p = 1 / window."""
    lr = np.logspace(np.log10(lrs[0]), np.log10(min(lrs[-1], 0.099)), 50)
    p = np.log(10.0 / window) / np.log(lr / 0.1)
    ax.plot(np.log10(lr), p, color="C3", lw=1.2, label="(1 - beta2) x window = 1")


def plot(ctx):
    rows = run_rows(ctx)
    lrs = sorted({r["lr"] for r in rows})
    ps = sorted({r["p"] for r in rows})
    n_fit = min(int(ctx.options.get("fit_lrs", 5)), len(lrs))
    window = rows[0]["steps"] - rows[0]["window"][0]
    fig, axes = plt.subplots(2, 3, figsize=(16.0, 8.4))
    a = axes.ravel()
    D = _grid(rows, lrs, ps, "drift_active")
    with np.errstate(divide="ignore"):
        _heat(a[0], fig, lrs, ps, np.log10(D), "log10 mean drift (active parameters)")
        _heat(a[1], fig, lrs, ps, np.log10(_grid(rows, lrs, ps, "drift")), "log10 mean drift (all 2d parameters)")
    for ax in a[:2]:
        _memory_line(ax, lrs, window)
        ax.set_ylim(ps[0] - 0.125, ps[-1] + 0.125)
    a[0].set_title("(a) ||s - s_ref|| / ||s_ref||, active parameters")
    a[1].set_title("(b) the same over all parameters")
    cm = plt.get_cmap("coolwarm")
    slopes, ses = [], []
    for j, p in enumerate(ps):
        col = cm(j / max(len(ps) - 1, 1))
        a[2].plot(lrs, D[j], color=col, marker="o", ms=3, lw=1.0, label=f"p = {p:g}")
        b, se = slope_fit(np.log10(lrs[:n_fit]), np.log10(D[j, :n_fit]))
        slopes.append(b)
        ses.append(se)
    a[2].set(xscale="log", yscale="log", xlabel="lr", ylabel="mean drift (active parameters)",
             title=f"(c) drift vs lr (slope fitted over the {n_fit} smallest lr)")
    a[2].legend(fontsize=6, ncol=2)
    lim = max(float(np.nanmax(np.abs(_grid(rows, lrs, ps, "corr_g_active")))), 1e-12)
    _heat(a[3], fig, lrs, ps, _grid(rows, lrs, ps, "corr_g_active"), "mean cosine", cmap="coolwarm", vmin=-lim,
          vmax=lim)
    a[3].set_title("(d) cos(s - s_ref, g), active parameters")
    lim2 = max(float(np.nanmax(np.abs(_grid(rows, lrs, ps, "corr_g2_active")))), 1e-12)
    _heat(a[4], fig, lrs, ps, _grid(rows, lrs, ps, "corr_g2_active"), "mean cosine", cmap="coolwarm", vmin=-lim2,
          vmax=lim2)
    a[4].set_title("(e) cos(s - s_ref, g*g - E[g*g | theta]), active parameters")
    slopes, ses = np.array(slopes), np.array(ses)
    verdict = boundary(ps, slopes, np.nan_to_num(ses, nan=np.inf))
    a[5].errorbar(ps, slopes, yerr=2 * np.nan_to_num(ses), color="C0", marker="o", ms=4, lw=1.0, capsize=2,
                  label="fitted slope +- 2 s.e.")
    a[5].axhline(0.0, color="k", lw=0.6)
    a[5].axvline(P_THEORY, color="k", lw=0.6, ls="--", label="p = 2 (theory)")
    if verdict["p_star"] is not None:
        a[5].axvline(verdict["p_star"], color="C3", lw=1.0, label=f"p* = {verdict['p_star']:.2f}")
    a[5].set(xlabel="p", ylabel="d log10 drift / d log10 lr",
             title=f"(f) slope vs p: boundary {verdict['verdict']}")
    a[5].legend(fontsize=7)
    r0 = rows[0]
    fig.suptitle(f"Adam, beta2 = 1 - 0.1 (lr/0.1)^p, label noise, {r0['steps']:.0e} steps, records every "
                 f"{(r0['window'][1] - r0['window'][0]) // max(r0['n_records'] - 1, 1)} steps over the second half"
                 + (" [quick]" if ctx.quick else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    summary = {"lrs": lrs, "ps": ps, "fit_lrs": lrs[:n_fit], "window_steps": window,
               "slopes": [{"p": p, "slope": float(b), "se": float(s)} for p, b, s in zip(ps, slopes, ses)],
               "boundary": verdict, "runs": rows}
    ctx.save(fig)
    ctx.save_json(summary)


if __name__ == "__main__":
    from diagsim.experiments.figures import script_main
    sys.exit(script_main(__file__))
