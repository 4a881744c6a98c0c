"""Figure 12 (the three levels as lr -> 0, per adaptive optimizer): the figure covers every optimizer with an SDE and
a slow flow, verify's distance (now also between two ensembles) against plain NumPy, and the quick figure against
direct runs; the slow flow does not depend on lr at fixed C, and the SDE does not depend on beta1."""
from __future__ import annotations

import math

import numpy as np
import pytest
from quick_figure import quick_figure

import diagsim
from diagsim.experiments.figures import load_figure, repro_dir
from diagsim.optimizers import Adam, LabelNoise
from diagsim.optimizers.specs import OPTIMIZERS, from_config
from diagsim.sde.stepper import SDE_MODELS
from diagsim.slowflow.stepper import SLOW_FLOWS
from diagsim.sweep.runner import plan_sweep
from diagsim.verify.slow_limit import distance

REPRO = repro_dir()
NAME = "fig12_three_levels"
#: verify's slow-limit problem (diagsim/verify/slow_limit.py)
PROBLEM = dict(n=5, d=10, k=2, seed=2, alpha=0.5)


def _has(registry, cls) -> bool:
    try:
        spec = cls(lr=0.1, noise=LabelNoise(0.5))
    except Exception:  # noqa: BLE001 - needs other arguments: not one of the Adam family
        return False
    return spec in registry


def test_every_adaptive_optimizer_with_three_levels_is_drawn():
    """The figure's sweeps cover every optimizer class with an SDE and a slow flow except GD/SGD (non-adaptive),
    and AdamE-lambda (Adam with lam != 1/2)."""
    from diagsim.optimizers import GD, SGD
    want = {c for c in OPTIMIZERS.values() if c not in (GD, SGD) and _has(SDE_MODELS, c) and _has(SLOW_FLOWS, c)}
    spec = load_figure(NAME, root=REPRO)
    opts = [from_config(j.config["optimizer"]) for sw in spec.sweeps.values() for j in plan_sweep(sw, "unused").jobs]
    assert {type(o) for o in opts} == want
    assert {o.lam for o in opts if type(o) is Adam} == {0.5, 0.25}
    models = {j.config["simulate"]["model"] for sw in spec.sweeps.values() for j in plan_sweep(sw, "unused").jobs}
    assert models == {"discrete", "sde", "slow-flow"}


def test_distance_against_numpy():
    """verify's distance: to a point, and between two independent ensembles (both noise floors removed)."""
    g = np.random.default_rng(5)
    W, W2, ref = g.normal(0.3, 1.0, (400, 6)), g.normal(0.0, 2.0, (300, 6)), np.full(6, 0.1)
    m, m2 = W.mean(0), W2.mean(0)
    se2, se2b = W.var(0, ddof=1) / 400, W2.var(0, ddof=1) / 300
    d1, s1 = distance(W, ref, 2.0, 50, seed=1)
    assert d1 == pytest.approx(math.sqrt(np.sum((m - ref) ** 2) - np.sum(se2)) / 2.0, rel=1e-12)
    d2, s2 = distance(W, W2, 2.0, 50, seed=1)
    assert d2 == pytest.approx(math.sqrt(np.sum((m - m2) ** 2) - np.sum(se2) - np.sum(se2b)) / 2.0, rel=1e-12)
    assert 0 < s1 < d1 and 0 < s2 < d2


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    rep, js, out, tmp = quick_figure(NAME, tmp_path_factory, REPRO)
    return js, out


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_renders(quick):
    js, out = quick
    assert (out / f"{NAME}.png").stat().st_size > 10_000
    assert set(js) == {"adam", "rmsprop", "adame", "adam_mini", "adalayer"}


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_flow_is_lr_independent_and_sde_beta1_free(quick):
    """At fixed C = (1 - beta2)/lr^2 the slow flow is the same at every lr; the paper-variant SDE has no beta1, so
    RMSProp's SDE ensemble (same seeds) is Adam's."""
    js, _ = quick
    for r in js.values():
        assert r["flow_max_abs_diff_over_lr"] <= 1e-12
    assert js["adam"]["sde"]["D"] == js["rmsprop"]["sde"]["D"]
    assert js["adam"]["discrete"]["D"] != js["rmsprop"]["discrete"]["D"]


@pytest.mark.slow  # draws the quick figure (20-35 s); CI runs the slow suite
def test_quick_distance_is_a_direct_run(quick):
    """AdamE-1/4's discrete D at lr 0.04 recomputed from diagsim.simulate and the slow flow, in NumPy."""
    js, _ = quick
    r = js["adame"]
    P = diagsim.make_problem(**PROBLEM)
    opt = Adam(lr=0.04, beta1=0.9, beta2=0.9936, lam=0.25, eps=1e-8, v0=0.1, noise=LabelNoise(1.0))
    W = diagsim.simulate(P, opt, tau=1.0, n_paths=int(r["paths"]["discrete"]), seed=2, n_records=2, progress=False).w
    wt, w0 = np.array(r["w_flow_tau"]), np.array(r["w_flow_0"])
    flow = diagsim.simulate(P, opt, tau=1.0, n_paths=1, seed=2, n_records=2, model="slow-flow", progress=False,
                            model_options={"start": "gradient-flow", "v": "ode", "v0": 0.1, "eps": 1e-8,
                                           "dtau": 0.005}).w[0]
    np.testing.assert_allclose(flow, wt, atol=1e-12)
    m, se2 = W.mean(0), W.var(0, ddof=1) / W.shape[0]
    D = math.sqrt(max(np.sum((m - wt) ** 2) - np.sum(se2), 0.0)) / np.linalg.norm(wt - w0)
    assert r["discrete"]["D"][0] == pytest.approx(D, rel=1e-12)
