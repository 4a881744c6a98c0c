"""The SDE Stepper: optimizer -> model mapping, errors, dt="auto", the stability warning, the protocol."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from diagsim.errors import DiagsimError
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import (
    GD,
    MESA,
    SAF,
    SAM,
    SGD,
    AdaGrad,
    Adalayer,
    Adam,
    AdamMini,
    LabelNoise,
    Minibatch,
    NoNoise,
    RMSProp,
)
from diagsim.sde import make_stepper
from diagsim.sde.stability import lambda_max, teacher_point

P = make_problem(8, 12, 2, teacher="ones", init="constant", alpha=0.2, seed=1, support=range(2))
LN = LabelNoise(0.5)


@pytest.mark.parametrize("opt,variant,name,keys", [
    (GD(lr=0.1), "paper", "gradient-flow", ["theta"]),
    (SGD(lr=0.1, noise=NoNoise()), "paper", "gradient-flow", ["theta"]),
    (SGD(lr=0.1, noise=LN), "paper", "sgd-label-noise", ["theta"]),
    (SGD(lr=0.1, noise=LabelNoise(0.5, "gaussian")), "paper", "sgd-label-noise", ["theta"]),
    (Adam(lr=0.1, noise=LN, v0=0.1), "paper", "adam-sde", ["theta", "v"]),
    (Adam(lr=0.1, noise=LN, lam=0.25, v0=0.1), "paper", "adam-sde", ["theta", "v"]),
    (RMSProp(lr=0.1, noise=LN, v0=0.1), "paper", "adam-sde", ["theta", "v"]),
    (AdamMini(lr=0.1, noise=LN, v0=0.1), "paper", "adam-sde", ["theta", "v"]),
    (Adalayer(lr=0.1, noise=LN, v0=0.1), "paper", "adam-sde", ["theta", "v"]),
    (Adam(lr=0.1, noise=LN, v0=0.1), "momentum", "adam-momentum-sde", ["theta", "m", "v"]),
])
def test_optimizer_to_model(opt, variant, name, keys):
    st = make_stepper(P, opt, dt=0.01, variant=variant, check_stability=False)
    assert st.level == "sde" and st.model.name == name and st.lr == opt.lr and st.dt == 0.01
    s = st.init_state(P.theta0(3))
    assert sorted(s) == sorted(keys)
    if isinstance(opt, AdamMini):
        assert s["v"].shape == (3, 2)
    act = np.ones(3, bool)
    st.advance(s, np.arange(3), 0, 5, act)
    assert act.all() and all(np.isfinite(s[k]).all() for k in keys)
    cfg = st.config()
    json.dumps(cfg)
    assert cfg["level"] == "sde" and cfg["model"] == name and cfg["optimizer"]["optimizer"] == opt.name
    stats = st.preconditioner_stats(s)
    assert (stats == {}) == ("v" not in keys)
    if stats:
        assert stats["precond_mean"].shape == (3,)


@pytest.mark.parametrize("opt,match", [
    (SAM(lr=0.1), "has no continuous model .* for optimizer 'sam'; "
                  "it covers gd, sgd, adam, rmsprop, adam-mini, adalayer"),
    (AdaGrad(lr=0.1), "has no continuous model .* for optimizer 'adagrad'"),
    (SAF(lr=0.1), "no continuous model"),
    (MESA(lr=0.1), "no continuous model"),
    (SGD(lr=0.1, noise=Minibatch(2)), "minibatch"),
    (Adam(lr=0.1, bias_correction=True), "bias_correction"),
])
def test_no_continuous_model(opt, match):
    with pytest.raises(DiagsimError, match=match):
        make_stepper(P, opt)


def test_bad_options():
    with pytest.raises(DiagsimError, match="variant"):
        make_stepper(P, Adam(lr=0.1), variant="nope")
    with pytest.raises(DiagsimError, match="variant"):
        make_stepper(P, SGD(lr=0.1), variant="momentum")
    with pytest.raises(DiagsimError, match="dt"):
        make_stepper(P, SGD(lr=0.1), dt="fast")
    with pytest.raises(DiagsimError, match="power of two"):
        make_stepper(P, SGD(lr=0.1), dt=0.03, dt_base=0.01)
    with pytest.raises(DiagsimError, match="dt"):
        make_stepper(P, SGD(lr=0.1), dt=-1.0)


def test_lambda_max_matches_dense_hessian():
    from diagsim.networks.diagonal.derivatives import hessian
    th = P.theta0(1)[0] * 3 + 0.1
    want = np.abs(np.linalg.eigvalsh(hessian(P, th[None])[0])).max()
    assert np.isclose(lambda_max(P, th), want, rtol=1e-6)
    S = np.linspace(0.5, 2.0, P.dim)
    H = hessian(P, th[None])[0]
    want_s = np.abs(np.linalg.eigvalsh(np.sqrt(S)[:, None] * H * np.sqrt(S)[None, :])).max()
    assert np.isclose(lambda_max(P, th, S), want_s, rtol=1e-6)


def test_auto_dt_is_a_power_of_two_fraction_of_lr_and_stable():
    lr = 0.5
    st = make_stepper(P, SGD(lr=lr, noise=LN))
    j = np.log2(lr / st.dt)
    assert j == int(j) and j >= 1
    rate = max(lambda_max(P, P.theta0(1)[0]), lambda_max(P, teacher_point(P)))
    assert st.dt * rate <= 0.25 < 2 * st.dt * rate
    assert make_stepper(P, SGD(lr=1e-3, noise=LN)).dt == 1e-3   # small lr: one SDE step per optimizer step


def test_stability_warning_when_dt_lambda_approaches_two():
    rate = lambda_max(P, teacher_point(P))
    st = make_stepper(P, GD(lr=1.0), dt=1.5 / rate)
    th = np.tile(teacher_point(P), (2, 1))
    s = st.init_state(th)
    with pytest.warns(RuntimeWarning, match="stability|unstable"):
        st.advance(s, np.arange(2), 0, 1, np.ones(2, bool))
    ok = make_stepper(P, GD(lr=1.0), dt=0.25 / rate)
    s = ok.init_state(th)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok.advance(s, np.arange(2), 0, 1, np.ones(2, bool))


def test_adam_with_v0_zero_warns_and_v0_target_fixes_it():
    st = make_stepper(P, Adam(lr=0.1, noise=LN, v0=0.0), dt=0.01)
    s = st.init_state(P.theta0(1))
    with pytest.warns(RuntimeWarning, match="v0"):
        st.advance(s, np.arange(1), 0, 1, np.ones(1, bool))
    st = make_stepper(P, Adam(lr=0.1, noise=LN, v0=0.0), v0="target")
    s = st.init_state(P.theta0(2))
    from diagsim.networks.diagonal.derivatives import gradient
    g = gradient(P, P.theta0(2))
    assert np.all(s["v"] >= g * g) and st.config()["v0"] == "target"


def test_active_mask_and_subsets_of_paths():
    st = make_stepper(P, SGD(lr=0.05, noise=LN), dt=0.05, seed=3)
    s = st.init_state(P.theta0(4))
    act = np.array([True, False, True, True])
    st.advance(s, np.arange(4), 0, 20, act)
    assert np.array_equal(s["theta"][1], P.theta0(1)[0])
    s2 = st.init_state(P.theta0(1))
    st.advance(s2, np.array([2]), 0, 20, np.ones(1, bool))
    np.testing.assert_array_equal(s2["theta"][0], s["theta"][2])
