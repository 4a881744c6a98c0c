"""Figure 10 (beta2 = 1 - C lr^p): the "precond" job against a plain-NumPy Adam loop fed the same label noise
(its recorded drifts and cosines, which need the step's gradient g and the applied v), its configuration
checks, the boundary estimate, and the quick figure against a direct run of the job."""
from __future__ import annotations

import numpy as np
import pytest
from quick_figure import quick_figure

from diagsim.errors import DiagsimError
from diagsim.experiments.figures import repro_dir
from diagsim.lowlevel import rng
from diagsim.networks.diagonal.problem import make_problem
from diagsim.sweep import plan_sweep
from diagsim.sweep.precondjob import canonicalize, run, summarize

REPRO = repro_dir()
NAME = "fig10_beta2_scaling"
SMALL = {"n": 6, "d": 10, "k": 2, "seed": 4}


def _cfg(bias=True, lr=0.02, steps=200, **pc):
    return canonicalize({"problem": SMALL,
                         "optimizer": {"optimizer": "adam", "lr": lr, "beta2": 0.99, "bias_correction": bias,
                                       "label_noise": 0.5},
                         "precond": {"steps": steps, "every": 7, "start": 30, "seed": 3, "n_paths": 2, **pc}})


def _numpy_reference(cfg, perturb=0.0):
    """Plain NumPy: Adam on "uu-vv" (docs/theory.md §5.3), Rademacher label noise from the rng's stream,
    E[g*g | theta] = grad L^2 + (delta^2 / n^2) sum_j J_ji^2 written out from J = Z diag(dw/dtheta); the
    recorded series at the job's record steps, per path. ``perturb``: start from theta0 (1 + perturb)
    instead (to measure how a rounding-sized difference grows along the run)."""
    P = make_problem(**cfg["problem"])
    o, pc = cfg["optimizer"], cfg["precond"]
    b1, b2, eps, lr, bias = o["beta1"], o["beta2"], o["eps"], o["lr"], o["bias_correction"]
    delta = o["noise"]["delta"]
    Z, y, n, d = P.Z, P.y, P.n, P.d
    act = np.concatenate([np.flatnonzero(P.w_star > 0), d + np.flatnonzero(P.w_star < 0)])
    ks = list(range(pc["start"], pc["steps"], pc["every"]))
    out = {name: np.zeros((len(ks), pc["n_paths"])) for name in
           ("drift", "corr_g", "corr_g2", "drift_active", "corr_g_active", "corr_g2_active", "train_loss")}
    s_all = []
    cos = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))  # noqa: E731
    for path in range(pc["n_paths"]):
        th = P.theta0(1)[0] * (1.0 + perturb)
        m = np.zeros(2 * d)
        v = np.zeros(2 * d)
        s_path = []
        for k in range(pc["steps"]):
            u, vv = th[:d], th[d:]
            J = np.hstack([Z * (2 * u), Z * (-2 * vv)])  # J_ji = Z_ji dw_i / d theta
            r = Z @ (u * u - vv * vv) - y
            xi = rng.signs(pc["seed"], "label_noise", [path], range(k, k + 1), n, delta)[0, 0]
            g = J.T @ (r - xi) / n
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            mh, vh = (m / (1 - b1 ** (k + 1)), v / (1 - b2 ** (k + 1))) if bias else (m, v)
            if k in ks:
                i = ks.index(k)
                grad = J.T @ r / n
                target = grad ** 2 + delta ** 2 / n ** 2 * np.sum(J * J, axis=0)
                s = 1 / (np.sqrt(vh) + eps)
                s_ref = 1 / (np.sqrt(target) + eps)
                for suf, j in (("", slice(None)), ("_active", act)):
                    out["drift" + suf][i, path] = np.linalg.norm((s - s_ref)[j]) / np.linalg.norm(s_ref[j])
                    out["corr_g" + suf][i, path] = cos((s - s_ref)[j], g[j])
                    out["corr_g2" + suf][i, path] = cos((s - s_ref)[j], (g * g - target)[j])
                out["train_loss"][i, path] = r @ r / (2 * n)
                s_path.append(s)
            th = th - lr * mh / (np.sqrt(vh) + eps)
        s_all.append(np.array(s_path))
        out.setdefault("theta", []).append(th)
        out.setdefault("v", []).append(v)
    out["s_mean"] = np.array([s.mean(axis=0) for s in s_all])
    out["s_var"] = np.array([s.var(axis=0) for s in s_all])
    return out


def _assert_as_reference(got, cfg, names):
    """got[name] == the NumPy loop's to a tolerance derived from the run's own sensitivity: the two
    implementations round differently (BLAS vs the kernel's sums), about 1e-16 relative per step; the
    difference that a relative 1e-15 change of theta0 makes by the end of the same reference run, times 100
    (200 steps of 1e-16 injected along the way are at most 20 such changes), bounds what rounding can do."""
    ref = _numpy_reference(cfg)
    pert = _numpy_reference(cfg, perturb=1e-15)
    for name in names:
        r, q = np.asarray(ref[name]), np.asarray(pert[name])
        tol = 100 * np.max(np.abs(r - q)) + 1e-14 * max(1.0, np.max(np.abs(r)))
        np.testing.assert_allclose(got[name], r, rtol=0, atol=tol, err_msg=name)
    return ref


@pytest.mark.parametrize("bias", [True, False])
def test_job_matches_numpy_adam(bias):
    """200 steps, 2 paths, 25 records: every recorded series, the window mean / variance of s, and the final
    theta and v equal the NumPy loop's (tolerance: :func:`_assert_as_reference`)."""
    cfg = _cfg(bias=bias)
    got = run(cfg)
    assert got["record_steps"].tolist() == list(range(30, 200, 7))
    ref = _assert_as_reference(got, cfg, ("theta", "v", "drift", "corr_g", "corr_g2", "drift_active",
                                          "corr_g_active", "corr_g2_active", "train_loss", "s_mean", "s_var"))
    assert not got["diverged"].any()
    assert got["active"].tolist() == sorted(got["active"].tolist()) and got["active"].size == SMALL["k"]
    row = summarize(got, {}, cfg)
    assert row["drift_active_mean"] == pytest.approx(np.mean(ref["drift_active"]), rel=1e-6)
    assert row["beta2"] == 0.99 and row["n_diverged"] == 0


def test_rmsprop_beta1_zero():
    """beta1 = 0 (RMSProp, no bias correction): the job's recovery g = (m_{k+1} - beta1 m_k) / (1 - beta1) is
    then m_{k+1} itself; the series agree with the NumPy loop as above."""
    cfg = canonicalize({"problem": SMALL, "optimizer": {"optimizer": "rmsprop", "lr": 0.02, "beta2": 0.99,
                                                        "label_noise": 0.5},
                        "precond": {"steps": 120, "every": 7, "start": 30, "seed": 3, "n_paths": 2}})
    _assert_as_reference(run(cfg), cfg, ("corr_g", "corr_g_active", "drift", "v"))


def test_beta2_exponent_and_errors():
    """beta2 = 1 - 0.1 (lr / 0.1)^p: 0.999 at lr 0.01, p 2; 0.9 at lr 0.1 for any p; bad input is one line."""
    base = {"problem": SMALL, "optimizer": {"optimizer": "adam", "lr": 0.01, "label_noise": 0.5}}
    cfg = canonicalize({**base, "precond": {"steps": 10, "beta2_exponent": 2}})
    assert cfg["optimizer"]["beta2"] == pytest.approx(0.999, abs=1e-15)
    assert cfg["precond"]["start"] == 5 and cfg["precond"]["every"] == 100
    cfg = canonicalize({**base, "optimizer": {**base["optimizer"], "lr": 0.1},
                        "precond": {"steps": 10, "beta2_exponent": 3.5}})
    assert cfg["optimizer"]["beta2"] == pytest.approx(0.9, abs=1e-15)
    assert canonicalize({**base, "precond": {"steps": 10}})["optimizer"]["beta2"] == 0.95  # the spec's default
    bad = [
        ({**base, "optimizer": {**base["optimizer"], "beta2": 0.9}, "precond": {"steps": 10, "beta2_exponent": 2}},
         "both set beta2"),
        ({**base, "optimizer": {"optimizer": "sgd", "lr": 0.01, "label_noise": 0.5}, "precond": {"steps": 10}},
         "Adam-family"),
        ({**base, "optimizer": {"optimizer": "adam-mini", "lr": 0.01, "label_noise": 0.5}, "precond": {"steps": 10}},
         "Adam-family"),
        ({**base, "optimizer": {"optimizer": "adam", "lr": 0.01, "noise": {"kind": "none"}}, "precond": {"steps": 10}},
         "label noise"),
        ({**base, "precond": {}}, "precond.steps is required"),
        ({**base, "precond": {"steps": 10, "start": 10}}, "precond.start"),
        ({**base, "precond": {"steps": 10, "window": 3}}, "unknown precond option"),
        ({**base, "precond": {"steps": 10, "beta2_exponent": -1}}, "beta2_exponent"),
        ({**base, "precond": {"steps": 10}, "simulate": {}}, "unknown section"),
    ]
    for c, match in bad:
        with pytest.raises(DiagsimError, match=match):
            canonicalize(c)


def _script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("fig10", REPRO / f"{NAME}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_boundary_and_slope():
    """The verdict rule of the TOML on made-up slopes, and the slope fit against numpy.polyfit."""
    f = _script()
    ps = [1.0, 1.5, 2.0, 2.5, 3.0]
    se = [0.01] * 5
    b = [2.0 - p for p in ps]  # zero at p = 2, but b(2) = 0 is within 2 s.e.
    out = f.boundary(ps, [1.0, 0.5, 0.1, -0.4, -1.0], se)
    assert out["p_star"] == pytest.approx(2.0 + 0.5 * 0.1 / 0.5) and out["verdict"] == "holds"
    assert f.boundary(ps, b, se)["verdict"] == "not significant"
    assert f.boundary(ps, [1.0, -0.5, -1.0, -1.0, -1.0], se)["verdict"] == "fails"   # p* = 1.33
    assert f.boundary(ps, [1.0] * 5, se) == {"p_star": None, "verdict": "not significant", "bracket": None,
                                             "separated_by_2se": False}
    x = np.log10([1e-3, 2e-3, 5e-3, 1e-2])
    y = np.array([0.1, 0.35, 0.2, 0.9])
    slope, s = f.slope_fit(x, y)
    assert slope == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-12)
    _, cov = np.polyfit(x, y, 1, cov="unscaled")
    res = y - np.polyval(np.polyfit(x, y, 1), x)
    assert s == pytest.approx(np.sqrt(cov[0, 0] * (res @ res) / (x.size - 2)), rel=1e-10)


def test_figure_config_plans_the_full_grid():
    """13 values of p x 10 learning rates at full size, beta2 = 0.9 at lr = 0.1 for every p."""
    from diagsim.experiments.figures import load_figure
    jobs = plan_sweep(load_figure(NAME, root=REPRO).sweeps["runs"], "unused").jobs
    assert len(jobs) == 130
    top = [j.config for j in jobs if j.config["optimizer"]["lr"] == 0.1]
    assert len(top) == 13 and all(c["optimizer"]["beta2"] == pytest.approx(0.9, abs=1e-15) for c in top)
    assert all(j.config["precond"]["steps"] == 1_000_000 for j in jobs)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    rep, js, out, tmp = quick_figure(NAME, tmp_path_factory, REPRO)
    return rep, js, out


def test_quick_renders(quick):
    rep, js, out = quick
    assert (out / f"{NAME}.png").stat().st_size > 10_000
    assert js["ps"] == [1.0, 2.0, 3.0] and js["lrs"] == pytest.approx([1e-3, 1e-2, 1e-1], rel=1e-12)
    assert len(js["runs"]) == 9 and all(r["diverged"] == 0 for r in js["runs"])
    assert js["boundary"]["verdict"] in ("holds", "fails", "not significant")


def test_quick_run_is_a_direct_job_and_the_slopes_are_recomputed(quick):
    """A run's numbers in the JSON are the job's window means; the slopes are least squares over them."""
    _, js, _ = quick
    row = next(r for r in js["runs"] if r["p"] == 2.0 and r["lr"] == pytest.approx(0.01))
    cfg = canonicalize({"problem": {"n": 50, "d": 100, "k": 5, "seed": 1},
                        "optimizer": {"optimizer": "adam", "lr": row["lr"], "bias_correction": True,
                                      "label_noise": 0.5},
                        "precond": {"steps": 20_000, "beta2_exponent": 2.0}})
    res = run(cfg)
    assert res["beta2"] == pytest.approx(0.999, abs=1e-15) and row["beta2"] == res["beta2"]
    assert row["drift_active"] == pytest.approx(float(np.mean(res["drift_active"])), rel=1e-12)
    assert row["corr_g2_active"] == pytest.approx(float(np.mean(res["corr_g2_active"])), rel=1e-12)
    for s in js["slopes"]:
        d = [r["drift_active"] for lr in js["fit_lrs"] for r in js["runs"] if r["p"] == s["p"] and r["lr"] == lr]
        assert s["slope"] == pytest.approx(np.polyfit(np.log10(js["fit_lrs"]), np.log10(d), 1)[0], rel=1e-9)
