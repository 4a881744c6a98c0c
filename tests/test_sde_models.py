"""Each SDE model's Euler–Maruyama step against a plain-NumPy implementation of its equation.

The NumPy side writes the drift and diffusion from docs/theory.md §7 directly (w, J, grad L by hand for each
parametrization) and is fed the same Brownian increments (``diagsim.sde.increments``, itself checked
bit for bit against the generator in test_sde_brownian.py).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from diagsim.lowlevel import rng
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import SGD, Adalayer, Adam, AdamMini, LabelNoise, RMSProp
from diagsim.sde import increments, make_stepper


def np_parts(param, theta, Z, y):
    """(grad L, wu, wv) in NumPy for one parametrization; theta (M, 2d)."""
    d = Z.shape[1]
    u, v = theta[:, :d], theta[:, d:]
    if param == "uu-vv":
        w, wu, wv = u * u - v * v, 2 * u, -2 * v
    elif param == "uv":
        w, wu, wv = u * v, v, u
    else:  # depth-3
        w, wu, wv = u ** 3 - v ** 3, 3 * u ** 2, -3 * v ** 2
    r = w @ Z.T - y
    gw = r @ Z / Z.shape[0]
    return np.concatenate([wu * gw, wv * gw], axis=1), wu, wv


def np_jt(Z, wu, wv, x):
    g = x @ Z
    return np.concatenate([wu * g, wv * g], axis=1)


def perturbed_start(P, M, seed=1):
    g = np.random.default_rng(seed)
    return P.theta0(M) * (1 + 0.5 * g.random((M, P.dim))) + 0.05 * g.standard_normal((M, P.dim))


@pytest.mark.parametrize("param", ["uu-vv", "uv", "depth-3"])
def test_sgd_label_noise_step(param):
    P = make_problem(7, 9, 2, parametrization=param, init="gaussian", alpha=0.3, seed=3)
    lr, delta, dt = 0.05, 0.7, 0.02
    st = make_stepper(P, SGD(lr=lr, noise=LabelNoise(delta)), dt=dt, dt_base=dt / 4, seed=4)
    th0 = perturbed_start(P, 3)
    state = st.init_state(th0)
    paths = np.array([0, 5, 2])
    st.advance(state, paths, 7, 1, np.ones(3, bool))
    dB = increments(4, paths, range(7, 8), P.n, dt, dt / 4)[:, 0]
    g, wu, wv = np_parts(param, th0, P.Z, P.y)
    want = th0 - g * dt + math.sqrt(lr) * delta / P.n * np_jt(P.Z, wu, wv, dB)
    np.testing.assert_allclose(state["theta"], want, rtol=1e-12, atol=1e-14)


def test_gradient_flow_step_for_gd_and_noiseless_sgd():
    from diagsim.optimizers import GD, NoNoise
    P = make_problem(6, 8, 2, init="gaussian", alpha=0.3, seed=1)
    th0 = perturbed_start(P, 2)
    g, _, _ = np_parts("uu-vv", th0, P.Z, P.y)
    for opt in (GD(lr=0.1), SGD(lr=0.1, noise=NoNoise())):
        st = make_stepper(P, opt, dt=0.05)
        assert st.model.name == "gradient-flow" and st.model.amplitude == 0.0
        s = st.init_state(th0)
        st.advance(s, np.arange(2), 0, 1, np.ones(2, bool))
        np.testing.assert_allclose(s["theta"], th0 - 0.05 * g, rtol=1e-13, atol=1e-15)


def np_adam_step(P, th, v, m, dB, *, lr, delta, dt, beta2, eps, lam, blocks=None, c1=0.0):
    g, wu, wv = np_parts(P.param.name, th, P.Z, P.y)
    C = (1 - beta2) / lr ** 2
    a = math.sqrt(lr) * delta / P.n
    c = delta ** 2 / P.n
    target = np.concatenate([c * P.s * wu ** 2, c * P.s * wv ** 2], axis=1) + g * g
    if blocks is None:
        S = 1.0 / (v ** lam + eps)
        v1 = v + C * lr * (target - v) * dt
    else:
        nb = blocks.max() + 1
        S = 1.0 / (v[:, blocks] ** lam + eps)
        means = np.stack([target[:, blocks == b].mean(axis=1) for b in range(nb)], axis=1)
        v1 = v + C * lr * (means - v) * dt
    noise = a * np_jt(P.Z, wu, wv, dB)
    if c1 == 0.0:
        return th - S * g * dt + S * noise, v1, None
    return th - S * m * dt, v1, m + c1 * (g - m) * dt + c1 * noise


@pytest.mark.parametrize("kind", ["adam", "adamE", "rmsprop", "adam-mini", "adalayer-custom", "momentum",
                                  "uv"])
def test_adam_sde_step(kind):
    param = "uv" if kind == "uv" else "uu-vv"
    P = make_problem(7, 9, 2, parametrization=param, init="gaussian", alpha=0.3, seed=2)
    lr, delta, dt = 0.05, 0.6, 0.01
    kw = dict(lr=lr, noise=LabelNoise(delta), beta2=0.99, eps=1e-3, v0=0.2)
    blocks = None
    variant = "paper"
    if kind == "adamE":
        opt = Adam(lam=0.3, **kw)
    elif kind == "rmsprop":
        opt = RMSProp(**kw)
    elif kind == "adam-mini":
        opt = AdamMini(**kw)
        blocks = np.repeat([0, 1], P.d)
    elif kind == "adalayer-custom":
        blocks = np.arange(2 * P.d) % 3
        opt = Adalayer(blocks=tuple(int(b) for b in blocks), **kw)
    else:
        opt = Adam(**kw)
        variant = "momentum" if kind == "momentum" else "paper"
    st = make_stepper(P, opt, dt=dt, dt_base=dt / 2, seed=9, variant=variant)
    M = 3
    th0 = perturbed_start(P, M)
    state = st.init_state(th0)
    g = np.random.default_rng(5)
    state["v"][...] = 0.05 + g.random(state["v"].shape)          # a generic v
    if "m" in state:
        state["m"][...] = 0.1 * g.standard_normal(state["m"].shape)
    v0, m0 = state["v"].copy(), state.get("m", np.zeros(0)).copy()
    paths = np.arange(M) + 10
    st.advance(state, paths, 3, 1, np.ones(M, bool))
    dB = increments(9, paths, range(3, 4), P.n, dt, dt / 2)[:, 0]
    c1 = (1 - opt.beta1) / lr if variant == "momentum" else 0.0
    want_th, want_v, want_m = np_adam_step(P, th0, v0, m0, dB, lr=lr, delta=delta, dt=dt, beta2=0.99,
                                           eps=1e-3, lam=opt.lam, blocks=blocks, c1=c1)
    np.testing.assert_allclose(state["theta"], want_th, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["v"], want_v, rtol=1e-12, atol=1e-15)
    if want_m is not None:
        np.testing.assert_allclose(state["m"], want_m, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("param", ["uu-vv", "uv"])
def test_gaussian_label_noise_sgd_is_euler_maruyama_at_dt_equal_lr(param):
    """SGD with N(0, delta^2) label noise xi_k = delta N_k is exactly the EM scheme of the SGD SDE with
    dt = lr and dB_k = sqrt(lr) N_k (the same normals): a plain-NumPy SGD loop reproduces the SDE."""
    P = make_problem(6, 10, 2, parametrization=param, init="gaussian", alpha=0.3, seed=4)
    lr, delta, K, M = 0.05, 0.8, 60, 4
    st = make_stepper(P, SGD(lr=lr, noise=LabelNoise(delta, "gaussian")), dt=lr, seed=2)
    s = st.init_state(P.theta0(M))
    st.advance(s, np.arange(M), 0, K, np.ones(M, bool))
    N = rng.normals(2, "brownian", np.arange(M), K, P.n)
    th = P.theta0(M)
    for k in range(K):
        g, wu, wv = np_parts(param, th, P.Z, P.y)
        th = th - lr * (g - np_jt(P.Z, wu, wv, delta * N[:, k]) / P.n)
    np.testing.assert_allclose(s["theta"], th, rtol=1e-10, atol=1e-13)
