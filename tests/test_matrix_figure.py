"""Figure 13 (deep matrix factorization, SGD vs Adam vs GD): SGD's slow flow on a depth-2 sensing problem
reaches the depth-2 prediction (the weighted nuclear norm program of docs/theory.md §13.4, solved by cvxpy), tr H
stays above its lower bound 2 ||M_2^{1/2} W M_1^{1/2}||_* along the way and decreases to it; the quick figure's
numbers are the cached runs', its verdict is the paired rule recomputed here, and its prediction is predict's."""
from __future__ import annotations

import numpy as np
import pytest
from quick_figure import quick_figure

import diagsim
from diagsim.experiments.figures import FigureContext, load_figure, repro_dir
from diagsim.optimizers import GD, SGD, LabelNoise
from diagsim.predict import predict
from diagsim.predict.matrix import weighted_nuclear_norm

pytest.importorskip("cvxpy")

REPRO = repro_dir()
NAME = "fig13_matrix_factorization"
#: the small problem of the slow-flow check (n = 3 rank (m1 + m2))
SMALL = dict(m1=5, m2=5, rank=1, n=15, alpha=0.1)


def _gd_end(P):
    """A point on Gamma: GD (lr 0.05) from the problem's small init, 10^4 steps (train loss ~1e-20 here)."""
    res = diagsim.simulate(P, GD(lr=0.05), steps=10_000, n_records=2, progress=False)
    assert res.records["train_loss"][-1, 0] < 1e-12
    return res.theta


@pytest.mark.parametrize("seed", [1, 2])
def test_sgd_slow_flow_reaches_the_depth2_prediction(seed):
    """From a GD end point, SGD's label-noise slow flow (tau = 400) ends at the cvxpy prediction.

    Tolerances: Clarabel solves to a duality gap of 1e-9 (CLARABEL_OPTIONS), and the flow, which contracts
    exponentially near its end (a smoke run: |W - W_pred|_max 4e-5 at tau = 100, 7e-10 at tau = 400), is
    retracted onto Gamma to 1e-12. tr H is a smooth function with a minimum at the limit, so its error is of
    second order in the distance plus the solver's gap: 1e-7 relative holds both with margin; the distance
    allows 1e-6, three orders above the solver's tolerance and far below the 1.5e-2 still left at tau = 25."""
    P = diagsim.make_matrix_problem(**SMALL, seed=seed)
    pred = predict(P, "sgd")
    assert pred.status == "optimal" and pred.rank == 1
    th = _gd_end(P)
    opt = SGD(lr=0.05, noise=LabelNoise(1.0))
    res = diagsim.simulate(P, opt, tau=400.0, model="slow-flow", theta0=th, n_records=9,
                           model_options={"start": "given", "dtau": 1.0}, progress=False)
    assert res.config["stepper"]["start_used"] == "given"
    W = P.end_to_end(res.theta)[0]
    assert np.max(np.abs(W - pred.W)) < 1e-6
    tr = res.records["trace_h"][:, 0]
    assert tr[-1] == pytest.approx(pred.trace_gn, rel=1e-7)
    # the theorem of §13.4: at every theta, tr GN >= 2 ||M_2^{1/2} W M_1^{1/2}||_* (rounding only), and on Gamma
    # the latter is >= its minimum over the interpolators, which weak duality bounds below by the dual objective
    # nu^T y (certified up to ||G||_2 - 1, of the order of the solver's tolerance 1e-9); the flow's tr H
    # decreases monotonically to that bound (a slow flow of tr H on Gamma: non-increasing up to rounding)
    assert tr[-1] >= 2 * weighted_nuclear_norm(P, W) * (1 - 1e-12)
    assert np.all(np.diff(tr) <= 1e-12 * tr[0])
    lower = 2 * pred.details["dual_objective"]
    assert np.all(tr >= lower * (1 - 1e-9))
    assert tr[-1] - lower < 1e-7 * lower
    assert tr[0] - tr[-1] > 1e-2 * tr[0]   # the flow did move: the GD end point is not the limit


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    rep, js, out, tmp = quick_figure(NAME, tmp_path_factory, REPRO)
    spec = load_figure(NAME, quick=True, root=REPRO)
    ctx = FigureContext(spec, tmp / "cache", tmp / "out")
    return rep, js, out, ctx


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_renders(quick):
    rep, js, out, _ = quick
    assert rep.computed == 3 * 4 + 2 and (out / f"{NAME}.png").stat().st_size > 10_000
    assert [e["depth"] for e in js["by_depth"]] == [2, 3]
    assert "sgd_prediction" in js["by_depth"][0] and "sgd_prediction" not in js["by_depth"][1]
    assert "sgd_slow_flow" in js["by_depth"][0]


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_verdict_is_the_paired_rule_on_the_cached_runs(quick):
    """Final test loss = mean of the last `window` records of the cached run; the verdict is the config's rule
    (mean paired difference against 2 standard errors), recomputed here with plain NumPy."""
    _, js, _, ctx = quick
    window = js["window"]
    final = {}
    for label in ("sgd", "adam"):
        for job, res in ctx.results(label):
            p = job.config["problem"]
            final[(label, p["depth"], p["seed"])] = float(np.mean(res.records["test_loss"][-window:, 0]))
    for e in js["by_depth"]:
        seeds = sorted(s for (lab, d, s) in final if lab == "sgd" and d == e["depth"])
        D = np.array([final[("adam", e["depth"], s)] - final[("sgd", e["depth"], s)] for s in seeds])
        v = e["adam_vs_sgd"]
        assert v["mean_diff"] == pytest.approx(D.mean(), rel=1e-12)
        se = np.sqrt(np.sum((D - D.mean()) ** 2) / (len(D) - 1) / len(D))
        assert v["se"] == pytest.approx(se, rel=1e-12)
        want = "Adam worse" if D.mean() > 2 * se else "Adam better" if D.mean() < -2 * se else "not significant"
        assert v["verdict"] == want


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_prediction_and_end_point_are_direct(quick):
    """The JSON's depth-2 prediction is predict's on the same problem; an SGD end point is simulate's."""
    _, js, _, _ = quick
    prob = {k: v for k, v in js["problem"].items() if k != "family"}
    P = diagsim.make_matrix_problem(**prob, depth=2, seed=2)
    pred = predict(P, "sgd")
    row = next(r for r in js["by_depth"][0]["sgd_prediction"]["runs"] if r["seed"] == 2)
    assert row["nuclear_norm"] == pytest.approx(np.linalg.svd(pred.W, compute_uv=False).sum(), rel=1e-9)
    assert row["test_loss"] == pytest.approx(np.sum((pred.W - P.W_star) ** 2), rel=1e-9, abs=1e-15)
    res = diagsim.simulate(P, SGD(lr=0.05, noise=LabelNoise(0.5)), steps=10_000, n_paths=1, seed=0, record=200,
                           progress=False)
    run = next(r for r in js["by_depth"][0]["sgd"]["runs"] if r["seed"] == 2)
    sv = np.linalg.svd(P.end_to_end(res.theta)[0], compute_uv=False)
    np.testing.assert_allclose(run["sv"], sv, rtol=1e-12, atol=1e-15)
    assert run["nuclear_norm"] == pytest.approx(sv.sum(), rel=1e-12)
