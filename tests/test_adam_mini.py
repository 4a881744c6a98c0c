"""Figure 11 (Adam-mini and Adalayer pick different solutions): the per-pair partition's prediction against a
brute-force minimum of its block measure written here, the instance rule of fig11_adam_mini.toml, and the quick
figure against direct runs and a plain NumPy distance; RMSProp's slow flow is Adam's; the momentum effect is O(lr)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from quick_figure import quick_figure

import diagsim
from diagsim.errors import DiagsimError
from diagsim.experiments.figures import repro_dir
from diagsim.optimizers import Adalayer, Adam, AdamMini, LabelNoise
from diagsim.predict import predict
from diagsim.verify.estimates import Z_SCORE

REPRO = repro_dir()
NAME = "fig11_adam_mini"
#: the quick problem family of fig11_adam_mini.toml
QUICK_PROBLEM = dict(n=4, d=10, k=2, design="rademacher", teacher="uniform", init="gaussian", alpha=0.1)
FULL_PROBLEM = dict(n=8, d=20, k=3, design="rademacher", teacher="uniform", init="gaussian", alpha=0.1)


def pairs(d):
    return tuple(list(range(d)) * 2)


def _pair_measure(Z, s, theta):
    """sum over blocks {u_i, v_i} of sqrt(|b| tr H_bb), H = J^T J / n the Gauss-Newton Hessian of "uu-vv" (which
    is H on Gamma, times the label-noise factor that does not move the minimizer), from J written out here."""
    d = Z.shape[1]
    u, v = theta[:d], theta[d:]
    J = np.hstack([Z * (2 * u), -Z * (2 * v)])
    h = np.sum(J * J, axis=0) / Z.shape[0]
    np.testing.assert_allclose(h[:d], 4 * s * u * u, rtol=1e-12)  # the problem's s is diag(Z^T Z)/n
    return float(np.sum(np.sqrt(2 * (h[:d] + h[d:]))))


def test_pair_partition_is_adams_limit():
    """Blocks {u_i, v_i}: the predicted limit is Adam's l_{1/2} minimizer, and it minimizes the pair measure over
    the basic solutions (brute force, at each fibre's point (sqrt w+, sqrt w-)); along a fibre the measure only
    grows away from that point."""
    P = diagsim.make_problem(n=3, d=8, k=2, teacher="uniform", seed=12)
    opt = AdamMini(lr=0.1, blocks=pairs(P.d), noise=LabelNoise(0.5))
    pred = predict(P, opt, method="global")
    np.testing.assert_allclose(pred.w, predict(P, "adam", method="global").w, atol=1e-12)
    assert any("sqrt(2)" in n for n in pred.notes)

    def fibre_point(w):
        return np.concatenate([np.sqrt(np.maximum(w, 0)), np.sqrt(np.maximum(-w, 0))])

    best = np.inf
    for S in itertools.combinations(range(P.d), P.n):
        A = P.Z[:, S]
        if abs(np.linalg.det(A)) < 1e-10:
            continue
        w = np.zeros(P.d)
        w[list(S)] = np.linalg.solve(A, P.y)
        best = min(best, _pair_measure(P.Z, P.s, fibre_point(w)))
    at_pred = _pair_measure(P.Z, P.s, fibre_point(pred.w))
    assert at_pred == pytest.approx(best, rel=1e-10)
    # the reported objective is Adam's regularizer 2 sum sqrt(s |w|) = pair measure / sqrt(2)
    assert pred.objective == pytest.approx(at_pred / np.sqrt(2), rel=1e-10)
    # off the fibre point: u^2 = w+ + t, v^2 = w- + t raises the measure for every t > 0
    for t in (1e-3, 0.1, 1.0):
        th = np.sqrt(fibre_point(pred.w) ** 2 + t)
        assert _pair_measure(P.Z, P.s, th) > at_pred


def test_pair_partition_refusals():
    P = diagsim.make_problem(n=3, d=5, k=1, seed=1)
    noise = LabelNoise(0.5)
    with pytest.raises(DiagsimError, match="'uu-vv' parametrization only"):
        predict(P, AdamMini(lr=0.1, blocks=pairs(5), noise=noise), parametrization="uv")
    with pytest.raises(DiagsimError, match="another partition"):  # pairs {u_i, v_j}, j != i
        predict(P, AdamMini(lr=0.1, blocks=tuple(range(5)) + (1, 0, 2, 3, 4), noise=noise))
    with pytest.raises(DiagsimError, match="another partition"):  # {u_0, v_0, u_1, v_1} is not a pair
        predict(P, AdamMini(lr=0.1, blocks=(0, 0, 2, 3, 4) * 2, noise=noise))
    with pytest.raises(DiagsimError, match="lam = 1/2"):
        predict(P, AdamMini(lr=0.1, lam=0.25, blocks=pairs(5), noise=noise))


def _patterns(P):
    from diagsim.predict import predict as pr
    sg = [np.sign(np.where(np.abs(w) > 1e-9 * np.max(np.abs(w)), w, 0.0))
          for w in (pr(P, "adam", method="global").w, pr(P, Adalayer(lr=0.1, noise=LabelNoise(0.5))).w)]
    return sg


def test_instances_have_different_predictions():
    """The rule of fig11_adam_mini.toml: seeds 1, 2, 4, 6 are the first four of 1, 2, ... whose l_{1/2} and block
    limits have different sign patterns (3 and 5 have the same)."""
    differ = [sd for sd in range(1, 7) if not np.array_equal(*_patterns(diagsim.make_problem(**FULL_PROBLEM,
                                                                                             seed=sd)))]
    assert differ == [1, 2, 4, 6]
    from diagsim.experiments.figures import load_figure
    spec = load_figure(NAME, root=REPRO)
    for label in ("adam", "rmsprop", "adalayer", "adam_mini"):
        assert [c["problem"]["seed"] for _, c in spec.sweeps[label].job_configs()] == [1, 2, 4, 6]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    rep, js, out, tmp = quick_figure(NAME, tmp_path_factory, REPRO)
    return rep, js, out


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_renders(quick):
    _, js, out = quick
    assert (out / f"{NAME}.png").stat().st_size > 10_000
    assert len(js["runs"]) == 4 * 2 * (4 + 1)  # 4 optimizers x 2 seeds x (4 paths + 1 flow)
    assert js["momentum"]["lr"] == [0.04, 0.02, 0.01]
    assert set(js["predictions"]["1"]) == {"lhalf", "lhalf_local", "block"}


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_end_point_is_a_direct_run(quick):
    """An Adam-mini (pairs) end point in the JSON is diagsim.simulate's; its test loss is recomputed here."""
    _, js, _ = quick
    row = next(r for r in js["runs"] if r["optimizer"] == "adam_mini" and r["kind"] == "discrete"
               and r["seed"] == 2 and r["path"] == 3)
    P = diagsim.make_problem(**QUICK_PROBLEM, seed=2)
    opt = AdamMini(lr=0.05, beta1=0.9, beta2=0.95, eps=1e-6, bias_correction=False, blocks=pairs(10),
                   noise=LabelNoise(0.5))
    res = diagsim.simulate(P, opt, steps=20_000, n_paths=4, seed=0, record=1000, progress=False)
    np.testing.assert_allclose(row["w"], res.w[3], rtol=1e-12, atol=1e-15)
    assert row["test_loss"] == pytest.approx(0.5 * np.sum((res.w[3] - P.w_star) ** 2), rel=1e-12)
    assert row["predicted"] == "lhalf"
    assert next(r for r in js["runs"] if r["optimizer"] == "adalayer")["predicted"] == "block"


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_rmsprop_slow_flow_is_adams(quick):
    """beta1 does not enter the slow flow (docs/theory.md §7.5, §8): RMSProp's flow ends where Adam's does."""
    _, js, _ = quick
    for sd in (1, 2):
        fa, fr = (next(r for r in js["runs"] if r["optimizer"] == o and r["kind"] == "slow-flow" and r["seed"] == sd)
                  for o in ("adam", "rmsprop"))
        np.testing.assert_allclose(fa["w"], fr["w"], rtol=0, atol=1e-14)
    assert js["momentum"]["flow_max_abs_diff_adam_rmsprop"] <= 1e-14  # v following its ODE: the same


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_momentum_distance_and_slope(quick):
    """The paired Adam - RMSProp distance at lr 0.04 recomputed in NumPy from direct runs; its fitted exponent is
    1 (the O(lr) momentum effect) within Z_SCORE standard errors."""
    _, js, _ = quick
    mom = js["momentum"]
    P = diagsim.make_problem(n=5, d=10, k=2, seed=2, alpha=0.5)
    W = []
    for beta1 in (0.9, 0.0):
        opt = Adam(lr=0.04, beta1=beta1, beta2=0.9936, eps=1e-8, v0=0.1, noise=LabelNoise(1.0))
        W.append(diagsim.simulate(P, opt, tau=1.0, n_paths=256, seed=2, n_records=2, progress=False).w)
    diff = W[0] - W[1]
    m = diff.mean(axis=0)
    se2 = diff.var(axis=0, ddof=1) / diff.shape[0]
    D = np.sqrt(max(np.sum(m * m) - np.sum(se2), 0.0))
    assert mom["adam_vs_rmsprop"]["D"][0] == pytest.approx(D, rel=1e-12)
    p, sp = mom["adam_vs_rmsprop"]["slope"], mom["adam_vs_rmsprop"]["slope_se"]
    assert abs(p - 1.0) <= Z_SCORE * sp, (p, sp)
