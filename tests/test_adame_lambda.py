"""Figure 9 (AdamE-lambda between SGD and Adam): the limits job's "adame-local" / "adame-global" against the
existing SGD (weighted l1 LP) and Adam (l_{1/2}) paths at lam = 0 and 1/2, the global minimizer against a
brute-force enumeration written here, the lam option's cache keys, and the quick figure against a direct run."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from quick_figure import quick_figure
from scipy.optimize import linprog

import diagsim
from diagsim.errors import DiagsimError
from diagsim.experiments.figures import repro_dir
from diagsim.optimizers import Adam, LabelNoise
from diagsim.predict import predict
from diagsim.sweep.limitjob import canonicalize, solve_limits

REPRO = repro_dir()
NAME = "fig9_adame_lambda"
ALL = ["weighted-l1", "adam-local", "lhalf-global", "adame-local", "adame-global"]
#: the quick problem of fig9_adame_lambda.toml ([sweeps.discrete] with its [quick] overrides)
QUICK_PROBLEM = dict(n=4, d=10, k=2, design="rademacher", teacher="uniform", init="gaussian", alpha=0.1)


def _problem(seed, design="gaussian", n=5, d=12, k=2):
    return diagsim.make_problem(n=n, d=d, k=k, design=design, teacher="uniform", init="gaussian", alpha=0.1,
                                seed=seed)


@pytest.mark.parametrize("seed,design", [(1, "gaussian"), (2, "gaussian"), (3, "rademacher")])
def test_lam_zero_is_sgd_lp(seed, design):
    """lam = 0: both AdamE limits are SGD's weighted l1 LP; its value also matches scipy's linprog here."""
    P = _problem(seed, design)
    out = solve_limits(P, ALL, lam=0.0)
    w_lp = out["weighted-l1"][0]
    np.testing.assert_allclose(out["adame-local"][0], w_lp, atol=1e-9)
    np.testing.assert_allclose(out["adame-global"][0], w_lp, atol=1e-9)
    # independent: min s.(p + q) s.t. Z (p - q) = y, p, q >= 0
    d = P.d
    ref = linprog(np.concatenate([P.s, P.s]), A_eq=np.hstack([P.Z, -P.Z]), b_eq=P.y, bounds=(0, None),
                  method="highs")
    assert ref.status == 0
    assert np.sum(P.s * np.abs(out["adame-global"][0])) == pytest.approx(ref.fun, rel=1e-9)
    assert d == out["adame-global"][0].size


@pytest.mark.parametrize("seed,design", [(1, "gaussian"), (2, "rademacher"), (4, "gaussian")])
def test_lam_half_is_adam(seed, design):
    """lam = 1/2: "adame-local" is "adam-local" and "adame-global" is "lhalf-global"."""
    P = _problem(seed, design)
    out = solve_limits(P, ALL, lam=0.5)
    np.testing.assert_allclose(out["adame-local"][0], out["adam-local"][0], atol=1e-9)
    np.testing.assert_allclose(out["adame-global"][0], out["lhalf-global"][0], atol=1e-9)


def _brute_force(P, e):
    """min sum_i (s_i |w_i|)^e over Z w = y by solving every n-subset of columns (basic solutions)."""
    best = np.inf
    for S in itertools.combinations(range(P.d), P.n):
        A = P.Z[:, S]
        if abs(np.linalg.det(A)) < 1e-10:
            continue
        w = np.zeros(P.d)
        w[list(S)] = np.linalg.solve(A, P.y)
        best = min(best, float(np.sum((P.s * np.abs(w)) ** e)))
    return best


@pytest.mark.parametrize("lam", [0.25, 0.625])
def test_global_against_enumeration_here(lam):
    """General lam: the global limit's objective sum (s_i |w_i|)^{1-lam} equals the brute-force minimum, and
    the local limit is an interpolator with an objective no smaller."""
    P = _problem(5, "gaussian", n=4, d=9)
    out = solve_limits(P, ["adame-local", "adame-global"], lam=lam)
    e = 1.0 - lam
    obj = {k: float(np.sum((P.s * np.abs(w)) ** e)) for k, (w, _) in out.items()}
    assert obj["adame-global"] == pytest.approx(_brute_force(P, e), rel=1e-9)
    np.testing.assert_allclose(P.Z @ out["adame-local"][0], P.y, atol=1e-9)
    assert obj["adame-local"] >= obj["adame-global"] * (1 - 1e-9)


def test_lam_option_and_cache_keys():
    """An existing config keeps its canonical form (hence its cache key); lam is required by and only by the
    AdamE limits."""
    base = {"problem": {"n": 5, "d": 12, "k": 2}, "limits": {"which": ["weighted-l1", "adam-local"]}}
    cfg = canonicalize(base)
    assert "lam" not in cfg["limits"]  # an existing config's key is unchanged
    assert set(cfg["limits"]["which"]) == {"weighted-l1", "adam-local"}
    assert canonicalize({"problem": base["problem"]})["limits"]["which"] == [
        "weighted-l1", "l1", "gradient-flow", "adam-local", "lhalf-global"]
    with pytest.raises(DiagsimError, match="need limits.lam"):
        canonicalize({**base, "limits": {"which": ["adame-local"]}})
    with pytest.raises(DiagsimError, match="used only by"):
        canonicalize({**base, "limits": {"which": ["weighted-l1"], "lam": 0.25}})
    with pytest.raises(DiagsimError):
        canonicalize({**base, "limits": {"which": ["adame-global"], "lam": 1.0}})
    assert canonicalize({**base, "limits": {"which": ["adame-global"], "lam": 0.25}})["limits"]["lam"] == 0.25


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    rep, js, out, tmp = quick_figure(NAME, tmp_path_factory, REPRO)
    return rep, js, out


def test_quick_renders(quick):
    rep, js, out = quick
    assert (out / f"{NAME}.png").stat().st_size > 10_000
    assert js["lams"] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75]
    assert len(js["discrete"]) == 7 * 2 * 2 and len(js["limits"]) == 7 * 2 and len(js["slow_flow"]) == 7 * 2


@pytest.mark.parametrize("lam,lr,seed", [(0.375, 0.05, 2), (0.0, 0.01, 1)])
def test_quick_end_point_is_a_direct_run(quick, lam, lr, seed):
    """A discrete end point in the JSON is diagsim.simulate's, and its N_eff and measure are recomputed here."""
    _, js, _ = quick
    row = next(r for r in js["discrete"] if r["lam"] == lam and r["lr"] == lr and r["seed"] == seed)
    P = diagsim.make_problem(**QUICK_PROBLEM, seed=seed)
    opt = Adam(lr=lr, lam=lam, beta1=0.9, beta2=0.95, eps=1e-6, bias_correction=False, noise=LabelNoise(0.5))
    res = diagsim.simulate(P, opt, steps=20_000, n_paths=1, seed=0, record=1000, progress=False)
    w = res.w[0]
    np.testing.assert_allclose(row["w"], w, rtol=1e-12, atol=1e-15)
    assert row["n_eff"] == pytest.approx(np.sum(np.abs(w)) ** 2 / np.sum(w * w), rel=1e-12)
    u, v = res.theta[0, :P.d], res.theta[0, P.d:]
    # diag H on "uu-vv" (Gauss-Newton): s_i (2u_i)^2 and s_i (2v_i)^2 (docs/theory.md §9.1)
    ref = np.sum((P.s * 4 * u * u) ** (1 - lam)) + np.sum((P.s * 4 * v * v) ** (1 - lam))
    assert row["measure"] == pytest.approx(ref, rel=1e-10)


def test_quick_limit_is_predict(quick):
    """A limit in the JSON is diagsim.predict's global "adame" prediction of the same problem."""
    _, js, _ = quick
    row = next(r for r in js["limits"] if r["lam"] == 0.25 and r["seed"] == 2)
    P = diagsim.make_problem(**QUICK_PROBLEM, seed=2)
    pred = predict(P, "adame", lam=0.25, method="global")
    np.testing.assert_allclose(row["adame_global"]["w"], pred.w, atol=1e-12)


def test_stored_arrays_of_an_existing_config_unchanged():
    """Without limits.lam a job stores what it stored before (no w arrays); with it, every limit's w."""
    from diagsim.sweep.limitjob import run
    old = run(canonicalize({"problem": {"n": 4, "d": 8, "k": 1, "seed": 3},
                            "limits": {"seeds": 2, "which": ["weighted-l1", "adam-local"]}}))
    assert sorted(old) == ["rel_error_adam_local", "rel_error_weighted_l1", "seconds_adam_local",
                           "seconds_weighted_l1", "seeds", "test_loss_adam_local", "test_loss_weighted_l1"]
    new = run(canonicalize({"problem": {"n": 4, "d": 8, "k": 1, "seed": 3},
                            "limits": {"seeds": 2, "which": ["weighted-l1", "adame-local"], "lam": 0.0}}))
    assert new["w_weighted_l1"].shape == (2, 8)
    np.testing.assert_allclose(new["w_adame_local"], new["w_weighted_l1"], atol=1e-9)
    np.testing.assert_allclose(new["test_loss_weighted_l1"], old["test_loss_weighted_l1"], rtol=0, atol=0)
