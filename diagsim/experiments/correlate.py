"""Rank correlation of sharpness with the test loss over a population of trained networks.

The population is a sweep of ``"population"`` jobs (:mod:`diagsim.sweep.popjob`: one network each,
trained to a target loss on a shared problem, with every sharpness measure at its end point).
:func:`summarize_population` excludes (and counts) the networks that did not converge, computes Kendall's
tau of every measure with the test loss with paired bootstrap intervals over networks
(:func:`diagsim.measures.kendall_bootstrap`), tau within each optimizer group, and the verdicts of the
two published claims tested here (docs/theory.md §10.7):

- Hide & Seek (da Silva, Dangel, Oore 2025): tau = -0.68 (adaptive sharpness), -0.83 (geodesic, inv
  metric), -0.86 (geodesic, mix metric) for 50 diagonal networks. diagsim's closest measures are
  ``worst_adaptive`` (adaptive worst-case sharpness), ``geodesic_inv`` and ``geodesic_mix`` (same
  radius: the adaptive ball of ``rho_adaptive``). Their sign convention is not stated, so a value is
  "consistent" when our interval contains the published tau or its negative. The ordering claim
  (geodesic ranks better than adaptive) is tested as |tau_geodesic| - |tau_adaptive| > 0 on paired resamples.
- Rényi sharpness (Zhang et al. 2025) ranks better than the other measures: |tau_renyi| - |tau_other| > 0
  for every other measure, on paired resamples (``renyi``: order 2, all parameters).

Verdicts: "holds" (every paired 95 % interval above 0), "fails" (some interval below 0), "not
significant" (otherwise).
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError, check_int, check_interval
from ..measures.correlation import kendall_bootstrap, kendall_tau, paired_interval, verdict

#: the published values (Hide & Seek) and diagsim's closest measure for each
PAPER_TAU = {"worst_adaptive": ("adaptive (Hide & Seek)", -0.68),
             "geodesic_inv": ("geodesic inv (Hide & Seek)", -0.83),
             "geodesic_mix": ("geodesic mix (Hide & Seek)", -0.86)}
RENYI = "renyi"
ANALYSIS_DEFAULTS = {"n_resamples": 2000, "conf": 0.95, "bootstrap_seed": 0}


def check_analysis_options(options: dict) -> dict:
    """Validate the analysis options (n_resamples, conf, bootstrap_seed); one-line errors name the key."""
    unknown = sorted(set(options) - set(ANALYSIS_DEFAULTS))
    if unknown:
        raise DiagsimError(f"unknown option {unknown[0]!r}; allowed: {', '.join(ANALYSIS_DEFAULTS)}")
    o = {**ANALYSIS_DEFAULTS, **options}
    conf = check_interval("conf", o["conf"], 0.0, 1.0)
    if conf <= 0:
        raise DiagsimError(f"conf must lie in (0, 1), got {o['conf']!r}")
    return {"n_resamples": check_int("n_resamples", o["n_resamples"], minimum=100), "conf": conf,
            "bootstrap_seed": check_int("bootstrap_seed", o["bootstrap_seed"], minimum=0)}


def optimizer_group(optimizer_config: dict) -> str:
    """The group of a network: the optimizer's name, + its noise kind when it has one ("sgd+label")."""
    kind = optimizer_config.get("noise", {}).get("kind", "none")
    return optimizer_config["optimizer"] + ("" if kind == "none" else f"+{kind}")


def population_rows(pairs) -> list[dict]:
    """One row per job of a population sweep from ``[(job, result)]`` (``load_results``): the network's
    group, alpha, lr, seed, converged / diverged, steps, test loss and {measure: value}. A job whose result
    is None (it failed with a recorded error) counts as not converged."""
    rows = []
    for job, res in pairs:
        cfg = job.config
        if res is None:     # a failed job: counted as not converged
            rows.append({"group": optimizer_group(cfg["optimizer"]), "alpha": cfg["problem"]["alpha"],
                         "lr": cfg["optimizer"]["lr"], "seed": cfg["train"]["seed"], "converged": False,
                         "diverged": False, "failed": True, "steps": -1, "test_loss": float("nan"), "measures": {}})
            continue
        rows.append({"group": optimizer_group(cfg["optimizer"]), "alpha": cfg["problem"]["alpha"],
                     "lr": cfg["optimizer"]["lr"], "seed": cfg["train"]["seed"],
                     "converged": bool(res["converged"]), "diverged": bool(res["diverged"]), "failed": False,
                     "steps": int(res["steps"]), "test_loss": float(res["test_loss"]),
                     "measures": {k[len("measure_"):]: float(v) for k, v in res.items() if k.startswith("measure_")}})
    return rows


def summarize_population(rows: list[dict], *, n_resamples: int = 2000, conf: float = 0.95,
                         bootstrap_seed: int = 0) -> dict:
    """Counts, tau with bootstrap intervals, tau per optimizer group, and the claims' verdicts (module doc).

    ``rows`` as from :func:`population_rows`. Networks that did not converge are excluded and counted
    (``n_excluded``, ``excluded``: their group, alpha, lr, seed and why). A measure that is not finite at
    some converged network is left out of the table and listed in ``dropped_measures``.
    """
    opts = check_analysis_options({"n_resamples": n_resamples, "conf": conf, "bootstrap_seed": bootstrap_seed})
    ok = [r for r in rows if r["converged"]]
    excluded = [{k: r[k] for k in ("group", "alpha", "lr", "seed", "steps")}
                | {"why": "failed" if r.get("failed") else "diverged" if r["diverged"] else "step cap"}
                for r in rows if not r["converged"]]
    out = {"n_jobs": len(rows), "n_converged": len(ok), "n_excluded": len(excluded), "excluded": excluded,
           "n_diverged": sum(r["diverged"] for r in rows), **opts}
    if len(ok) < 3:
        raise DiagsimError(f"only {len(ok)} of {len(rows)} networks converged: too few for a rank correlation")
    names = list(ok[0]["measures"])
    test = np.array([r["test_loss"] for r in ok])
    cols, dropped = {}, []
    for name in names:
        v = np.array([r["measures"].get(name, np.nan) for r in ok])
        (cols.__setitem__(name, v) if np.all(np.isfinite(v)) else dropped.append(name))
    out["dropped_measures"] = dropped
    bs = kendall_bootstrap(cols, test, n_resamples=opts["n_resamples"], conf=opts["conf"],
                           seed=opts["bootstrap_seed"])
    out["tau"] = {n: {"tau": bs["tau"][n], "lo": bs["lo"][n], "hi": bs["hi"][n],
                      "p_value": _p_value(cols[n], test)} for n in cols}
    groups = sorted({r["group"] for r in ok})
    out["groups"] = {}
    for g in groups:
        sel = np.array([r["group"] == g for r in ok])
        out["groups"][g] = {"n": int(sel.sum()),
                            "tau": {n: (_tau(cols[n][sel], test[sel]) if sel.sum() >= 3 else float("nan"))
                                    for n in cols}}
    ranked = sorted((n for n in cols if np.isfinite(bs["tau"][n])), key=lambda n: -abs(bs["tau"][n]))
    out["best"], out["worst"] = (ranked[0], ranked[-1]) if ranked else (None, None)
    out["claims"] = _claims(bs, cols, opts["conf"])
    return out


def _tau(a, b) -> float:
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return kendall_tau(a, b)[0]


def _p_value(a, b) -> float:
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return kendall_tau(a, b)[1]


def _claims(bs: dict, cols: dict, conf: float) -> dict:
    claims = {}
    hs = {}
    for name, (label, paper) in PAPER_TAU.items():
        if name not in cols:
            hs[name] = {"label": label, "paper": paper, "verdict": "not computed"}
            continue
        lo, hi = bs["lo"][name], bs["hi"][name]
        hs[name] = {"label": label, "paper": paper, "tau": bs["tau"][name], "lo": lo, "hi": hi,
                    "magnitude": "consistent" if (lo <= paper <= hi or lo <= -paper <= hi) else "differs"}
    for geo in ("geodesic_inv", "geodesic_mix"):
        if geo in cols and "worst_adaptive" in cols:
            lo, hi = paired_interval(bs["samples"][geo], bs["samples"]["worst_adaptive"], conf=conf)
            hs[f"{geo}_beats_adaptive"] = {"diff_lo": lo, "diff_hi": hi, "verdict": verdict(lo, hi)}
    claims["hide_and_seek"] = hs
    if RENYI in cols:
        diffs = {n: paired_interval(bs["samples"][RENYI], bs["samples"][n], conf=conf)
                 for n in cols if n != RENYI and np.isfinite(bs["tau"][n])}
        if any(hi < 0 for _, hi in diffs.values()):
            v = "fails"
        elif diffs and all(lo > 0 for lo, _ in diffs.values()):
            v = "holds"
        else:
            v = "not significant"
        claims["renyi_strongest"] = {"verdict": v, "diff": {n: {"lo": lo, "hi": hi} for n, (lo, hi) in diffs.items()}}
    return claims


#: the measures of Figure 7's sensitivity panel (the published ones, Rényi, and two spectral references)
SENSITIVITY_MEASURES = ("worst_adaptive", "geodesic_inv", "geodesic_mix", "renyi", "trace", "lambda_max")


def population_taus(rows: list[dict], names=SENSITIVITY_MEASURES, *, n_resamples: int = 2000, conf: float = 0.95,
                    bootstrap_seed: int = 0) -> dict:
    """Counts and Kendall's tau (with paired bootstrap intervals) of the measures ``names`` only.

    The lighter sibling of :func:`summarize_population` for comparing populations: the same exclusion of
    networks that did not converge and the same bootstrap (:func:`diagsim.measures.kendall_bootstrap`),
    no group taus, no verdicts. Every measure of ``names`` must be finite at every converged network.
    """
    opts = check_analysis_options({"n_resamples": n_resamples, "conf": conf, "bootstrap_seed": bootstrap_seed})
    ok = [r for r in rows if r["converged"]]
    if len(ok) < 3:
        raise DiagsimError(f"only {len(ok)} of {len(rows)} networks converged: too few for a rank correlation")
    cols = {}
    for name in names:
        v = np.array([r["measures"].get(name, np.nan) for r in ok], dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise DiagsimError(f"measure {name!r} is missing or not finite at some converged network")
        cols[name] = v
    bs = kendall_bootstrap(cols, np.array([r["test_loss"] for r in ok], dtype=np.float64),
                           n_resamples=opts["n_resamples"], conf=opts["conf"], seed=opts["bootstrap_seed"])
    return {"n_jobs": len(rows), "n_converged": len(ok), "n_excluded": len(rows) - len(ok), **opts,
            "tau": {n: {"tau": bs["tau"][n], "lo": bs["lo"][n], "hi": bs["hi"][n]} for n in names}}
