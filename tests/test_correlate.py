"""Sharpness vs generalization over a population of networks (Figure 7): the "population" job (training to a
target loss, stopping at the first check below it, exclusion of networks that do not get there), the
bootstrap intervals of Kendall's tau against independent references, the claims' verdicts, config errors,
the quick figure and its sensitivity page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from diagsim.errors import DiagsimError
from diagsim.experiments.correlate import check_analysis_options, population_rows, summarize_population
from diagsim.measures import kendall_bootstrap, paired_interval
from diagsim.sweep.popjob import canonicalize, run

REPRO = Path(__file__).resolve().parents[1] / "paper_repro"
SMALL = {"problem": {"n": 8, "d": 20, "k": 2, "seed": 3, "alpha": 0.1},
         "optimizer": {"optimizer": "gd", "lr": 0.05, "noise": {"kind": "none"}},
         "train": {"max_steps": 20_000, "check_every": 50},
         "measures": {"names": ["trace", "lambda_max", "geodesic_mix"]}}


def _cfg(**over):
    cfg = {k: dict(v) for k, v in SMALL.items()}
    for sec, vals in over.items():
        cfg[sec] = {**cfg.get(sec, {}), **vals}
    return canonicalize(cfg)


# --------------------------------------------------------------------------- the population job
def test_training_stops_at_the_first_check_below_the_target():
    """Replaying plain GD (diagsim.simulate, no callback) to the stopping step gives the stored state, and
    one check earlier the loss was still above the target."""
    import diagsim
    from diagsim.optimizers.specs import from_config
    cfg = _cfg()
    out = run(cfg)
    assert bool(out["converged"]) and not bool(out["diverged"])
    step = int(out["steps"])
    assert step > 0 and step % 50 == 0
    P = diagsim.make_problem(**cfg["problem"])
    import dataclasses
    theta0 = dataclasses.replace(P, seed=cfg["train"]["seed"]).theta0(1)
    gd = from_config(cfg["optimizer"])
    at = diagsim.simulate(P, gd, steps=step, theta0=theta0, progress=False).final["theta"][0]
    before = diagsim.simulate(P, gd, steps=step - 50, theta0=theta0, progress=False).final["theta"][0]
    np.testing.assert_array_equal(at, out["theta"])
    assert P.train_loss_w(P.w(at)) <= 1e-5 < P.train_loss_w(P.w(before))
    assert out["test_loss"] == pytest.approx(0.5 * np.sum((P.w(at) - P.w_star) ** 2), rel=1e-12)
    from diagsim.measures import evaluate
    ref = evaluate(P, at, ["trace", "lambda_max", "geodesic_mix"])
    for name, v in ref.items():
        assert out[f"measure_{name}"] == pytest.approx(v[0], rel=1e-12)


def test_a_network_that_does_not_converge_is_excluded_and_counted():
    """A step cap far too small: the job says 'not converged', its measures are NaN, and the population
    summary leaves it out of every tau and counts it."""
    import diagsim
    capped = run(_cfg(train={"max_steps": 100}))
    P = diagsim.make_problem(**_cfg()["problem"])
    assert not bool(capped["converged"]) and int(capped["steps"]) == 100
    assert P.train_loss_w(capped["w"]) > 1e-5            # the reason, from the stored state
    assert all(np.isnan(v) for k, v in capped.items() if k.startswith("measure_"))

    class J:   # the (job, result) pairs of a sweep, as load_results gives them
        def __init__(self, cfg):
            self.config = cfg
    pairs = [(J(_cfg(problem={"alpha": a})), run(_cfg(problem={"alpha": a}))) for a in (0.05, 0.1, 0.3, 0.6)]
    pairs.append((J(_cfg(train={"max_steps": 100})), capped))
    s = summarize_population(population_rows(pairs), n_resamples=200)
    assert (s["n_jobs"], s["n_converged"], s["n_excluded"]) == (5, 4, 1)
    assert s["excluded"] == [{"group": "gd", "alpha": 0.1, "lr": 0.05, "seed": 0, "steps": 100, "why": "step cap"}]
    test = [r["test_loss"] for _, r in pairs[:4]]
    for name in ("trace", "lambda_max", "geodesic_mix"):
        ref = stats.kendalltau([r[f"measure_{name}"] for _, r in pairs[:4]], test).statistic
        assert s["tau"][name]["tau"] == pytest.approx(ref, abs=1e-12)


# --------------------------------------------------------------------------- bootstrap
def _population(P=40, seed=5):
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    test = rng.lognormal(size=P)
    return {"good": np.log(test) + 0.5 * rng.standard_normal(P), "noise": rng.standard_normal(P)}, test


def test_bootstrap_matches_a_plain_numpy_resampling():
    """The documented resampling written out independently: same seed, same draws, same percentiles."""
    meas, test = _population()
    B, P = 500, test.size
    got = kendall_bootstrap(meas, test, n_resamples=B, conf=0.9, seed=7)
    rng = np.random.default_rng(np.random.SeedSequence(7))
    idx = rng.integers(0, P, size=(B, P))
    for name, a in meas.items():
        taus = np.array([stats.kendalltau(a[i], test[i]).statistic for i in idx])
        np.testing.assert_allclose(got["samples"][name], taus, rtol=0, atol=1e-14)
        assert got["lo"][name] == pytest.approx(np.percentile(taus, 5), abs=1e-14)
        assert got["hi"][name] == pytest.approx(np.percentile(taus, 95), abs=1e-14)
        assert got["tau"][name] == pytest.approx(stats.kendalltau(a, test).statistic, abs=1e-14)


def test_bootstrap_interval_agrees_with_scipy_bootstrap():
    """scipy.stats.bootstrap (paired, percentile) draws other resamples: the endpoints agree to Monte
    Carlo accuracy (2000 resamples each: a few hundredths)."""
    meas, test = _population(P=50, seed=9)
    got = kendall_bootstrap(meas, test, n_resamples=2000, seed=1)
    for name, a in meas.items():
        ref = stats.bootstrap((a, test), lambda x, y: stats.kendalltau(x, y).statistic, paired=True,
                              vectorized=False, n_resamples=2000, method="percentile",
                              random_state=np.random.default_rng(2)).confidence_interval
        assert got["lo"][name] == pytest.approx(ref.low, abs=0.05)
        assert got["hi"][name] == pytest.approx(ref.high, abs=0.05)


def test_monotone_measure_has_tau_one_and_a_degenerate_interval():
    rng = np.random.default_rng(np.random.SeedSequence(3))
    test = rng.lognormal(size=30)
    got = kendall_bootstrap({"up": np.exp(test), "down": -test ** 3}, test, n_resamples=300, seed=0)
    # every resample ranks the same way (ties from repeated nets are shared by both variables): tau-b is 1
    # up to rounding in every resample
    for name, sign in (("up", 1.0), ("down", -1.0)):
        assert got["tau"][name] == sign
        assert got["lo"][name] == pytest.approx(sign, abs=1e-12) and got["hi"][name] == pytest.approx(sign, abs=1e-12)
        assert np.all(np.abs(got["samples"][name] - sign) < 1e-12)


def test_claims_verdicts_on_a_known_population():
    """A measure equal to the test loss up to small noise beats a random 'renyi' on paired resamples:
    the Rényi claim fails; the paired interval of |tau| differences is the percentile of the differences."""
    meas, test = _population(P=60)
    cols = {"renyi": meas["noise"], "trace": meas["good"]}
    rows = [{"group": "gd", "alpha": 0.1, "lr": 0.1, "seed": i, "converged": True, "diverged": False, "steps": 1,
             "test_loss": float(t), "measures": {k: float(v[i]) for k, v in cols.items()}}
            for i, t in enumerate(test)]
    s = summarize_population(rows, n_resamples=500)
    assert s["claims"]["renyi_strongest"]["verdict"] == "fails"
    assert s["best"] == "trace" and s["worst"] == "renyi"
    bs = kendall_bootstrap(cols, test, n_resamples=500)
    d = np.abs(bs["samples"]["renyi"]) - np.abs(bs["samples"]["trace"])
    assert paired_interval(bs["samples"]["renyi"], bs["samples"]["trace"]) == pytest.approx(
        tuple(np.percentile(d, (2.5, 97.5))), abs=1e-14)
    assert s["claims"]["hide_and_seek"]["geodesic_mix"]["verdict"] == "not computed"


# --------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("over,key", [
    ({"tran": {}}, "tran"),
    ({"train": {"max_step": 10}}, "max_step"),
    ({"train": {"target_loss": -1.0}}, "train.target_loss"),
    ({"train": {"max_steps": 0}}, "train.max_steps"),
    ({"train": {"seed": -2}}, "train.seed"),
    ({"measures": {"names": ["trace", "sharpest"]}}, "measures.names"),
    ({"measures": {"radius": 0.1}}, "radius"),
    ({"measures": {"rho": -0.1, "names": "all"}}, "measures.rho"),
    ({"problem": {"parametrization": "depth-3"}}, "problem.parametrization"),
    ({"problem": {"alpha": 0.0}}, "problem.alpha"),
    ({"problem": {"k": 0}}, "problem.k"),
    ({"optimizer": {"lr": -1.0}}, "lr"),
])
def test_config_errors_name_the_key(over, key):
    cfg = {k: dict(v) for k, v in SMALL.items()}
    for sec, vals in over.items():
        cfg[sec] = {**cfg.get(sec, {}), **vals}
    with pytest.raises(DiagsimError, match=key) as exc:
        canonicalize(cfg)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("opts,key", [({"n_resamples": 10}, "n_resamples"), ({"conf": 1.5}, "conf"),
                                      ({"bootstrap_seed": -1}, "bootstrap_seed"), ({"resamples": 5}, "resamples")])
def test_analysis_option_errors_name_the_key(opts, key):
    with pytest.raises(DiagsimError, match=key):
        check_analysis_options(opts)


def test_a_bad_figure_config_fails_before_any_job_runs(tmp_path):
    from diagsim.experiments.figures import make_figure
    bad = (REPRO / "fig7_sharpness_correlation.toml").read_text().replace("target_loss = 1e-5", "target_loss = -1e-5")
    (tmp_path / "fig7_sharpness_correlation.toml").write_text(bad)    # its [sweeps.uv] includes this file
    (tmp_path / "fig7_sharpness_correlation.py").write_text((REPRO / "fig7_sharpness_correlation.py").read_text())
    with pytest.raises(DiagsimError, match="train.target_loss"):
        make_figure("fig7_sharpness_correlation", quick=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "out",
                    root=tmp_path, progress=False)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


# --------------------------------------------------------------------------- the quick figure
@pytest.fixture(scope="module")
def quick_figure(tmp_path_factory):
    """The quick figure made once for the tests below: (folder with cache/ and out/, the FigureReport)."""
    from diagsim.experiments.figures import make_figure
    tmp_path = tmp_path_factory.mktemp("fig7quick")
    rep = make_figure("fig7_sharpness_correlation", quick=True, cache_dir=tmp_path / "cache",
                      out_dir=tmp_path / "out", root=REPRO, progress=False)
    return tmp_path, rep


def _replot(ctx, spec):
    """Run the figure script's plot() again, keeping the figures instead of writing them."""
    from diagsim.experiments.figures import _load_script, _use_style
    _use_style(REPRO)
    ctx.save = lambda fig, stem=None: ctx.figures.append(fig)
    _load_script(spec.script_path).plot(ctx)
    return ctx.figures


def test_quick_figure_renders_and_its_numbers_are_the_cached_networks(quick_figure):
    from diagsim.experiments.figures import FigureContext, load_figure
    tmp_path, rep = quick_figure
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"fig7_sharpness_correlation.{x}" for x in ("json", "pdf", "png")] + [
        f"fig7_sharpness_correlation_sensitivity.{x}" for x in ("pdf", "png")]
    # 2 parametrizations x (base, n twice, radius twice: 20 networks each, + the mid-alpha subset: cached)
    assert (rep.computed, rep.cached) == (2 * 5 * 20, 2 * 10)
    summary = json.loads((tmp_path / "out" / "fig7_sharpness_correlation.json").read_text())
    spec = load_figure("fig7_sharpness_correlation", quick=True, root=REPRO)
    ctx = FigureContext(spec, tmp_path / "cache", tmp_path)
    for label, pname in (("uuvv", "uu-vv"), ("uv", "uv")):
        s = summary["populations"][pname]
        pairs = ctx.results(label)
        target = pairs[0][0].config["train"]["target_loss"]
        # converged <=> the stored state's clean training loss is below the target (recomputed here)
        from diagsim.sweep.simjob import build_problem
        P = build_problem(pairs[0][0].config["problem"])
        ok = [r for _, r in pairs if np.all(np.isfinite(r["w"])) and P.train_loss_w(r["w"]) <= target]
        assert s["n_jobs"] == len(pairs) == 20
        assert s["n_converged"] == len(ok) and s["n_excluded"] == 20 - len(ok)
        test = [0.5 * np.sum((r["w"] - P.w_star) ** 2) for r in ok]
        for name, t in s["tau"].items():
            ref = stats.kendalltau([r[f"measure_{name}"] for r in ok], test).statistic
            assert t["tau"] == pytest.approx(ref, abs=1e-12), name
    # the bars drawn are those taus, in the JSON's order, one row per parametrization
    import matplotlib.pyplot as plt
    fig, sens_fig = _replot(ctx, spec)
    plt.close(sens_fig)
    for ax, pname in zip((fig.axes[0], fig.axes[4]), ("uu-vv", "uv")):
        s = summary["populations"][pname]
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_allclose(heights, [t["tau"] for t in s["tau"].values()], atol=1e-12)
        assert ax.get_title().startswith(f"{pname}: {s['n_converged']} networks converged, {s['n_excluded']}")
    plt.close(fig)


# --------------------------------------------------------------------------- the sensitivity panel
SENS = ("worst_adaptive", "geodesic_inv", "geodesic_mix", "renyi", "trace", "lambda_max")


def _scipy_taus(pairs):
    """Converged networks (recomputed from the stored w), their exact test loss, and scipy's tau-b of the
    panel's measures: an independent reference for the figure's numbers."""
    from diagsim.sweep.simjob import build_problem
    P = build_problem(pairs[0][0].config["problem"])
    target = pairs[0][0].config["train"]["target_loss"]
    ok = [r for _, r in pairs if r is not None and np.all(np.isfinite(r["w"])) and P.train_loss_w(r["w"]) <= target]
    test = np.array([0.5 * np.sum((r["w"] - P.w_star) ** 2) for r in ok])
    return ok, test, {m: stats.kendalltau([r[f"measure_{m}"] for r in ok], test).statistic for m in SENS}


def test_quick_sensitivity_panel_renders_the_taus_of_every_setting(quick_figure):
    """Every dot of the sensitivity page is scipy's tau of that setting's cached networks, and the
    whiskers contain it; the published values are drawn as horizontal lines on their three measures."""
    import matplotlib.pyplot as plt

    from diagsim.experiments.figures import FigureContext, load_figure
    tmp_path, _ = quick_figure
    spec = load_figure("fig7_sharpness_correlation", quick=True, root=REPRO)
    ctx = FigureContext(spec, tmp_path / "cache", tmp_path)
    fig, sens_fig = _replot(ctx, spec)
    plt.close(fig)
    axes = sens_fig.axes
    assert len(axes) == 2 * len(SENS)
    suffixes = ("", "_n10", "_n30", "_rho_half", "_rho_double", "_mid_alpha")
    published = {"worst_adaptive": -0.68, "geodesic_inv": -0.83, "geodesic_mix": -0.86}   # Hide & Seek
    for r, label in enumerate(("uuvv", "uv")):
        ref = [_scipy_taus(ctx.results(label + suf))[2] for suf in suffixes]
        for c, m in enumerate(SENS):
            ax = axes[r * len(SENS) + c]
            line = ax.lines[0]                     # the dots of errorbar()
            np.testing.assert_allclose(line.get_xdata(), np.arange(len(suffixes)))
            np.testing.assert_allclose(line.get_ydata(), [t[m] for t in ref], atol=1e-12)
            (segs,) = [col.get_segments() for col in ax.collections]
            for seg, t in zip(segs, ref):
                assert seg[:, 1].min() - 1e-12 <= t[m] <= seg[:, 1].max() + 1e-12
            marks = sorted(ln.get_ydata()[0] for ln in ax.lines[1:] if ln.get_color() == "#d62728")
            assert marks == (sorted([published[m], -published[m]]) if m in published else [])
    plt.close(sens_fig)


def test_one_sensitivity_setting_recomputed_from_the_cached_networks(quick_figure):
    """uv with the adaptive radius x2: tau by scipy from the cached networks, and the interval by the
    documented resampling written out with numpy; the same networks as the base population (the radius
    changes only the radius-dependent measures)."""
    from diagsim.experiments.figures import FigureContext, load_figure
    tmp_path, _ = quick_figure
    spec = load_figure("fig7_sharpness_correlation", quick=True, root=REPRO)
    ctx = FigureContext(spec, tmp_path / "cache", tmp_path)
    summary = json.loads((tmp_path / "out" / "fig7_sharpness_correlation.json").read_text())
    pairs = ctx.results("uv_rho_double")
    assert {job.config["measures"]["rho_adaptive"] for job, _ in pairs} == {0.2}
    s = summary["sensitivity"]["uv"]["uv_rho_double"]
    assert s["setting"] == "rho_adaptive = 0.2"
    ok, test, ref = _scipy_taus(pairs)
    assert (s["n_jobs"], s["n_converged"]) == (len(pairs), len(ok))
    B = s["n_resamples"]
    idx = np.random.default_rng(np.random.SeedSequence(0)).integers(0, len(ok), size=(B, len(ok)))
    for m in SENS:
        assert s["tau"][m]["tau"] == pytest.approx(ref[m], abs=1e-12), m
        a = np.array([r[f"measure_{m}"] for r in ok])
        taus = np.array([stats.kendalltau(a[i], test[i]).statistic for i in idx])
        taus = taus[np.isfinite(taus)]
        assert s["tau"][m]["lo"] == pytest.approx(np.percentile(taus, 2.5), abs=1e-12), m
        assert s["tau"][m]["hi"] == pytest.approx(np.percentile(taus, 97.5), abs=1e-12), m
    base = ctx.results("uv")
    for (_, r2), (_, r1) in zip(pairs, base):
        np.testing.assert_array_equal(r2["theta"], r1["theta"])
        for m in ("trace", "renyi", "lambda_max"):
            assert r2[f"measure_{m}"] == r1[f"measure_{m}"] or not bool(r1["converged"])
    conv = [(r2, r1) for (_, r2), (_, r1) in zip(pairs, base) if bool(r1["converged"])]
    assert all(r2["measure_geodesic_mix"] != r1["measure_geodesic_mix"] for r2, r1 in conv)


def test_the_mid_alpha_setting_reuses_the_base_population(tmp_path):
    """With only the base population ("uv") in the cache, the mid-alpha setting computes no job."""
    from diagsim.experiments.figures import load_figure
    from diagsim.sweep import plan_sweep, run_sweep
    spec = load_figure("fig7_sharpness_correlation", quick=True, root=REPRO)
    first = run_sweep(spec.sweeps["uv"], tmp_path, progress=False)
    assert first.computed == 20
    rep = run_sweep(spec.sweeps["uv_mid_alpha"], tmp_path, progress=False)
    assert (rep.computed, rep.cached, rep.total) == (0, 10, 10)
    keys = {j.key for j in plan_sweep(spec.sweeps["uv"], tmp_path).jobs}
    mid = plan_sweep(spec.sweeps["uv_mid_alpha"], tmp_path).jobs
    assert {j.key for j in mid} <= keys and {j.config["problem"]["alpha"] for j in mid} == {0.05}


# --------------------------------------------------------------------------- diagsim correlate
def test_cli_correlate_prints_and_writes_the_population_taus(quick_figure, tmp_path, capsys):
    """Over every population sweep of the figure's config (the quick figure's cache: nothing to train)."""
    from diagsim.cli.main import main
    from diagsim.experiments.figures import load_figure
    from diagsim.sweep import load_results
    from diagsim.sweep.simjob import build_problem
    cache = quick_figure[0] / "cache"
    rc = main(["correlate", "--config", str(REPRO / "fig7_sharpness_correlation.toml"), "--quick", "--cache",
               str(cache), "--resamples", "200", "--json", str(tmp_path / "c.json"), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads((tmp_path / "c.json").read_text())
    spec = load_figure(REPRO / "fig7_sharpness_correlation.toml", quick=True)
    assert set(got) == {p + suf for p in ("uuvv", "uv")
                        for suf in ("", "_n10", "_n30", "_rho_half", "_rho_double", "_mid_alpha")}
    for label, s in got.items():
        assert s["n_resamples"] == 200
        pairs = load_results(spec.sweeps[label], cache)
        P = build_problem(pairs[0][0].config["problem"])
        ok = [r for _, r in pairs if np.all(np.isfinite(r["w"])) and P.train_loss_w(r["w"]) <= 1e-5]
        assert f"{label}: {len(ok)} of {len(pairs)} networks converged" in out
        test = [0.5 * np.sum((r["w"] - P.w_star) ** 2) for r in ok]
        ref = stats.kendalltau([r["measure_trace"] for r in ok], test).statistic
        assert s["tau"]["trace"]["tau"] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("args,msg", [
    (["--resamples", "10"], "n_resamples"),
    (["--conf", "0"], "conf"),
    (["--backend", "threads"], "backend"),
])
def test_cli_correlate_errors_are_one_line_and_before_any_work(tmp_path, capsys, args, msg):
    from diagsim.cli.main import main
    rc = main(["correlate", "--config", str(REPRO / "fig7_sharpness_correlation.toml"), "--quick",
               "--cache", str(tmp_path / "cache"), *args])
    _, err = capsys.readouterr()
    assert rc == 2 and msg in err and err.count("\n") == 1
    assert not any((tmp_path / "cache").rglob("*.npz"))


def test_cli_correlate_needs_population_jobs(tmp_path, capsys):
    from diagsim.cli.main import main
    (tmp_path / "s.toml").write_text('[sweep]\njob = "simulate"\n[base.problem]\nn = 4\nd = 8\nk = 1\n'
                                     '[base.optimizer]\noptimizer = "sgd"\nlr = 0.01\n[base.simulate]\nsteps = 10\n'
                                     '[grid]\n"problem.seed" = [1, 2]\n')
    rc = main(["correlate", "--config", str(tmp_path / "s.toml"), "--cache", str(tmp_path / "cache")])
    _, err = capsys.readouterr()
    assert rc == 2 and 'job = "population"' in err
