"""The phase diagram of Figure 5: Wilson intervals, the logistic 50 % point, the l1 statistical dimension
against Monte Carlo, the "limits" job kind, the LP boundary against n = d psi(k/d) for Gaussian designs
(docs/theory.md §9.8), and the quick figure.

Every statistical tolerance is Z_SCORE = 4 standard errors of the estimated quantity; the boundary test adds
the issue's acceptance criterion ("within a few percent": 5 %) for the finite-d offset of the theorem.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from diagsim.errors import DiagsimError
from diagsim.networks.diagonal.problem import make_problem
from diagsim.sweep.limitjob import canonicalize, run, solve_limits, summarize
from diagsim.verify.estimates import Z_SCORE, logistic_transition, wilson_interval
from diagsim.verify.sparse_regression import l1_statistical_dimension

REPRO = Path(__file__).resolve().parents[1] / "paper_repro"


# --------------------------------------------------------------------------- Wilson intervals
def test_wilson_interval_matches_scipy_and_closed_form():
    from scipy.stats import binomtest
    for x, n in [(0, 5), (3, 10), (10, 10), (17, 20), (1, 1), (250, 1000)]:
        for conf in (0.9, 0.95):
            ref = binomtest(x, n).proportion_ci(confidence_level=conf, method="wilson")
            lo, hi = wilson_interval(x, n, conf)
            assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    # x = 0: lower bound 0, upper bound z^2 / (n + z^2)
    z = 1.959963984540054
    lo, hi = wilson_interval(np.array([0, 0]), np.array([4, 20]))
    np.testing.assert_allclose(lo, 0.0, atol=1e-15)
    np.testing.assert_allclose(hi, z * z / (np.array([4, 20]) + z * z), rtol=1e-12)
    lo, hi = wilson_interval(0, 0)
    assert (lo, hi) == (0.0, 1.0)
    for bad in [(3, 2), (-1, 4)]:
        with pytest.raises(DiagsimError, match="successes"):
            wilson_interval(*bad)
    with pytest.raises(DiagsimError, match="conf"):
        wilson_interval(1, 2, 1.0)


# --------------------------------------------------------------------------- logistic 50 % point
def test_logistic_transition_recovers_a_known_curve():
    rng = np.random.default_rng(np.random.SeedSequence(11))
    x = np.linspace(10.0, 30.0, 9)
    x50, slope, m = 19.3, 0.45, 200
    k = rng.binomial(m, 1.0 / (1.0 + np.exp(-slope * (x - x50))))
    fit = logistic_transition(x, k, np.full(x.size, m))
    assert fit["ok"] and not fit["separated"]
    assert abs(fit["x50"] - x50) <= Z_SCORE * fit["se"]
    assert 0.0 < fit["se"] < 0.5
    assert abs(fit["slope"] - slope) < 0.5 * slope


def test_logistic_transition_separated_and_no_crossing():
    fit = logistic_transition([1, 2, 3, 4], [0, 0, 5, 5], [5, 5, 5, 5])
    assert fit["separated"] and fit["x50"] == 2.5 and fit["se"] == 0.25
    assert not logistic_transition([1, 2, 3], [0, 0, 0], [5, 5, 5])["ok"]
    assert not logistic_transition([1, 2, 3], [5, 5, 5], [5, 5, 5])["ok"]


# --------------------------------------------------------------------------- psi against Monte Carlo
@pytest.mark.parametrize("d,k", [(200, 6), (100, 20)])
def test_statistical_dimension_against_monte_carlo(d, k):
    """inf_t k (1 + t^2) + (d - k) E(|g| - t)_+^2 with the expectation by Monte Carlo (no Q-function)."""
    rng = np.random.default_rng(np.random.SeedSequence(d * 1000 + k))
    g = np.abs(rng.standard_normal(200_000))
    ts = np.linspace(0.0, 4.0, 401)
    means = np.array([np.mean(np.maximum(g - t, 0.0) ** 2) for t in ts])
    vals = k * (1 + ts**2) + (d - k) * means
    j = int(np.argmin(vals))
    se = (d - k) * np.std(np.maximum(g - ts[j], 0.0) ** 2) / math.sqrt(g.size)
    grid_err = 2 * k * ts[j] * (ts[1] - ts[0])   # a coarse bound on the t-grid error at the minimum
    assert abs(vals[j] - l1_statistical_dimension(d, k)) <= Z_SCORE * se + grid_err


# --------------------------------------------------------------------------- the limits job
def test_limits_job_config_errors():
    base = {"problem": {"n": 5, "d": 10, "k": 1}}
    for limits, msg in [({"which": ["sgd"]}, "unknown limit"), ({"which": "l1"}, "non-empty list"),
                        ({"seeds": 0}, "seeds"), ({"foo": 1}, "unknown limits option"),
                        ({"adam_flow": {"dt": 1}}, "adam_flow")]:
        with pytest.raises(DiagsimError, match=msg) as exc:
            canonicalize({**base, "limits": limits})
        assert "\n" not in str(exc.value)
    with pytest.raises(DiagsimError, match="section"):
        canonicalize({**base, "simulate": {}})
    cfg = canonicalize(base)
    assert cfg["limits"]["seeds"] == 20 and "adam-slow-flow" not in cfg["limits"]["which"]
    assert cfg["optimizer"]["lr"] == 0.1 and cfg["optimizer"]["beta2"] == 0.95


def test_limits_are_w_star_when_the_interpolator_is_unique():
    P = make_problem(8, 8, 3, design="gaussian", teacher="uniform", seed=3)
    for name, (w, _sec) in solve_limits(P, ["weighted-l1", "l1", "gradient-flow", "adam-local",
                                           "lhalf-global"]).items():
        np.testing.assert_allclose(w, P.w_star, atol=1e-8, err_msg=name)


def test_limits_global_below_local_and_summary():
    cfg = canonicalize({"problem": {"n": 5, "d": 12, "k": 2, "design": "rademacher", "teacher": "uniform",
                                    "seed": 4},
                        "limits": {"seeds": 6, "which": ["weighted-l1", "adam-local", "lhalf-global"]}})
    for sd in range(4, 10):
        P = make_problem(5, 12, 2, design="rademacher", teacher="uniform", seed=sd)
        res = solve_limits(P, ["adam-local", "lhalf-global"])
        val = {k: float(np.sum(np.sqrt(P.s * np.abs(w)))) for k, (w, _) in res.items()}
        assert val["lhalf-global"] <= val["adam-local"] * (1 + 1e-9)
        for w, _ in res.values():
            np.testing.assert_allclose(P.Z @ w, P.y, atol=1e-8)
    obj = run(cfg)
    np.testing.assert_array_equal(obj["seeds"], np.arange(4, 10))
    s = summarize(obj, {"recovery_tol": 0.1}, cfg)
    for k in ("weighted_l1", "adam_local", "lhalf_global"):
        assert s[f"n_{k}"] == 6 and s[f"p_{k}"] == s[f"rec_{k}"] / 6
        assert s[f"p_{k}_lo"] <= s[f"p_{k}"] <= s[f"p_{k}_hi"]
    big = canonicalize({"problem": {"n": 20, "d": 200, "k": 2}, "limits": {"seeds": 1, "which": ["lhalf-global"]}})
    assert np.isnan(run(big)["rel_error_lhalf_global"]).all()   # C(200, 20) supports: not enumerated


@pytest.mark.slow
def test_adam_slow_flow_ends_at_an_interpolator():
    P = make_problem(4, 8, 1, design="gaussian", teacher="uniform", seed=2)
    res = solve_limits(P, ["adam-slow-flow", "lhalf-global"], adam_flow={"tau": 20.0, "dtau": 0.05,
                                                                         "zero_tol": 1e-5, "kappa": 0.2,
                                                                         "tol": 1e-6})
    w = res["adam-slow-flow"][0]
    np.testing.assert_allclose(P.Z @ w, P.y, atol=1e-6)
    val = lambda v: float(np.sum(np.sqrt(P.s * np.abs(v))))  # noqa: E731
    assert val(res["lhalf-global"][0]) <= val(w) * (1 + 1e-9)


# --------------------------------------------------------------------------- LP boundary vs d psi(k/d)
def _lp_boundary(d, k, seeds, mults=(0.7, 0.85, 1.0, 1.15, 1.3), which="l1"):
    delta = l1_statistical_dimension(d, k)
    ns = sorted({round(m * delta) for m in mults})
    rec = []
    for n in ns:
        cfg = canonicalize({"problem": {"n": n, "d": d, "k": k, "design": "gaussian", "teacher": "uniform",
                                        "seed": 1000 * n}, "limits": {"seeds": seeds, "which": [which]}})
        rec.append(summarize(run(cfg), {}, cfg)[f"rec_{which.replace('-', '_')}"])
    return delta, logistic_transition(ns, rec, [seeds] * len(ns))


def _check_boundary(d, k, seeds, which="l1"):
    delta, fit = _lp_boundary(d, k, seeds, which=which)
    assert fit["ok"], fit
    # the required accuracy (within 5 % of d psi) plus 4 standard errors of the fitted 50 % point
    assert abs(fit["x50"] - delta) <= 0.05 * delta + Z_SCORE * fit["se"], (fit, delta)


def test_lp_boundary_gaussian_small():
    _check_boundary(60, 3, 40)


@pytest.mark.slow
@pytest.mark.parametrize("d,k", [(200, 6), (1000, 20)])
def test_lp_boundary_gaussian_full(d, k):
    for which in ("l1", "weighted-l1"):
        _check_boundary(d, k, 40, which)


# --------------------------------------------------------------------------- the quick figure
def test_quick_figure_renders_and_recovery_rises_along_n(tmp_path):
    from diagsim.experiments.figures import FigureContext, load_figure, make_figure
    rep = make_figure("fig5_adam_phase", quick=True, cache_dir=tmp_path / "c", out_dir=tmp_path / "o", root=REPRO,
                      progress=False)
    assert sorted(p.name for p in rep.files) == ["fig5_adam_phase.json", "fig5_adam_phase.pdf",
                                                 "fig5_adam_phase.png"]
    ctx = FigureContext(load_figure("fig5_adam_phase", quick=True, root=REPRO), tmp_path / "c", tmp_path)
    tab = ctx.table("gauss")
    assert set(tab["status"]) == {"ok"}
    # the LP fails at the fewest samples of each k and succeeds at the most: pooled over k (4 seeds per cell
    # in quick mode), the Wilson intervals of the two ends separate
    ends = {"fewest": [0, 0], "most": [0, 0]}
    for k in np.unique(tab["problem.k"]):
        m = np.flatnonzero(tab["problem.k"] == k)
        for end, j in (("fewest", m[np.argmin(tab["problem.n"][m])]), ("most", m[np.argmax(tab["problem.n"][m])])):
            ends[end][0] += int(tab["rec_weighted_l1"][j])
            ends[end][1] += int(tab["n_weighted_l1"][j])
    lo_few, hi_few = wilson_interval(*ends["fewest"])
    lo_most, hi_most = wilson_interval(*ends["most"])
    assert hi_few < lo_most, ends
    summary = json.loads((tmp_path / "o" / "fig5_adam_phase.json").read_text())
    assert set(summary) == {"Gaussian, d = 40", "Rademacher, d = 40", "Rademacher, small d, d = 10",
                            "Gaussian, d = 60", "Rademacher, d = 60", "discrete", "flow vs surrogate"}
    assert "lhalf_global" in summary["Rademacher, small d, d = 10"]["boundaries"]
    # panel (d): every (optimizer, lr, cell) has its 2 seeds, and a row's score is what a direct
    # simulate() of the same runs gives (mean test loss of the last `discrete_window` records)
    rows = summary["discrete"]["rows"]
    assert len(rows) == 4 * 4 and all(r["runs"] == 2 for r in rows)
    row = next(r for r in rows if r["optimizer"] == "adam" and r["lr"] == 0.01 and r["k"] == 4 and r["n"] == 21)
    from diagsim import make_problem, simulate
    from diagsim.optimizers.specs import from_config
    from diagsim.sweep.simjob import canonical_optimizer
    opt = from_config(canonical_optimizer({"optimizer": "adam", "lr": 0.01, "label_noise": 0.5}))
    direct = []
    for seed in (1, 2):
        P = make_problem(n=21, d=40, k=4, design="rademacher", teacher="uniform", init="gaussian", alpha=0.1,
                         seed=seed)
        res = simulate(P, opt, steps=20_000, n_paths=1, seed=0, record=1000, progress=False)
        direct.append(np.mean(res.records["test_loss"][-summary["discrete"]["window"]:]))
    assert row["mean_test_loss"] == pytest.approx(np.mean(direct), rel=1e-12)
