"""Euler–Maruyama convergence orders on SDEs with known solutions, on shared Brownian paths.

For each refinement h = 2^-4 ... 2^-8 (5 levels) every level integrates the *same* Brownian paths (the
increments of the base grid, summed). The error statistic at each level is compared with its exact
expectation (closed forms for Euler–Maruyama's moments, :mod:`diagsim.sde.testproblems`), so two things are
asserted:

1. the measured log-log slope agrees with the slope of the exact expected errors within 4 bootstrap
   standard errors (resampling paths): the simulation is statistically what Euler–Maruyama must give;
2. the exact expected slope over this grid lies within 0.1 of the theoretical order: the grid is in the
   asymptotic regime. Orders: weak 1; strong 1/2 for GBM (multiplicative noise), strong 1 for OU
   (additive noise, where Euler–Maruyama coincides with Milstein).

References are computed here in NumPy from ``diagsim.lowlevel.rng`` normals of the "brownian" stream (exact GBM
solution from B_T; for OU, Euler–Maruyama on the base grid, whose own moments are exact too).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from diagsim.lowlevel import rng
from diagsim.sde import testproblems as tp
from diagsim.sde.brownian import BrownianPath
from diagsim.sde.convergence import bootstrap_slope, log_slope, rms
from diagsim.sde.integrator import integrate

T = 1.0
LEVELS = np.arange(4, 9)
HS = T / 2.0 ** LEVELS


def simulate_levels(model, x0, hs, h_base, M, seed):
    """X_T at every h, shape (len(hs), M), all on the Brownian paths of (seed, h_base)."""
    out = []
    for h in hs:
        X = np.full((M, 1), float(x0))
        act = np.ones(M, bool)
        integrate(model.drift, model.diffusion, model.args, X, paths=np.arange(M), active=act, step0=0,
                  n_steps=int(round(T / h)), dt=h, n_noise=1, n_work=0, amplitude=model.amplitude,
                  brownian=BrownianPath(seed, h_base))
        assert act.all()
        out.append(X[:, 0])
    return np.array(out)


def base_increments(seed, M, h_base):
    """(M, T/h_base) Brownian increments of the base grid, straight from the generator."""
    return rng.normals(seed, "brownian", np.arange(M), int(round(T / h_base)), 1)[:, :, 0] * math.sqrt(h_base)


def check_order(measured, se, expected, order, label):
    print(f"{label}: measured slope {measured:.4f} +- {se:.4f} (bootstrap), "
          f"exact expectation {expected:.4f}, theory {order}")
    assert abs(measured - expected) <= 4 * se, (measured, expected, se)
    assert abs(expected - order) <= 0.1, (expected, order)


@functools.lru_cache(maxsize=4)
def gbm_case(mu, sigma, M, seed):
    model = tp.geometric_brownian_motion(mu, sigma)
    X = simulate_levels(model, 1.0, HS, HS[-1], M, seed)
    XT = tp.gbm_exact(1.0, mu, sigma, T, base_increments(seed, M, HS[-1]).sum(axis=1))
    ex = [tp.gbm_em_moments(1.0, mu, sigma, T, h) for h in HS]
    return X, XT, ex


@functools.lru_cache(maxsize=2)
def ou_case(M, seed, rate=1.0, sigma=1.0, x0=1.0, base_level=10):
    h0 = T / 2.0 ** base_level
    model = tp.ornstein_uhlenbeck(rate, sigma)
    X = simulate_levels(model, x0, HS, h0, M, seed)
    dB = base_increments(seed, M, h0)
    R = np.full(M, x0)
    for i in range(dB.shape[1]):  # Euler–Maruyama on the base grid, in NumPy
        R = R - rate * R * h0 + sigma * dB[:, i]
    ex = [tp.ou_em_moments(x0, rate, sigma, T, h, h0) for h in HS]
    return X, R, ex


def _gbm_strong(M, seed):
    X, XT, ex = gbm_case(0.5, 1.0, M, seed)
    d = X - XT
    p, se = bootstrap_slope(HS, lambda i: rms(d[:, i], axis=1), M)
    check_order(p, se, log_slope(HS, [math.sqrt(e["mse"]) for e in ex]), 0.5, "GBM strong")


def _gbm_weak(M, seed):
    X, XT, ex = gbm_case(1.0, 0.3, M, seed)
    d = X ** 2 - XT ** 2  # E d = E X_h^2 - E X_T^2: the weak error of phi(x) = x^2, estimated path by path
    p, se = bootstrap_slope(HS, lambda i: d[:, i].mean(axis=1), M)
    check_order(p, se, log_slope(HS, [e["second"] - e["exact_second"] for e in ex]), 1.0, "GBM weak")


def _ou_strong(M, seed):
    X, R, ex = ou_case(M, seed)
    d = X - R
    p, se = bootstrap_slope(HS, lambda i: rms(d[:, i], axis=1), M)
    check_order(p, se, log_slope(HS, [math.sqrt(e["mse_vs_base"]) for e in ex]), 1.0, "OU strong (additive)")


def _ou_weak(M, seed):
    X, R, ex = ou_case(M, seed)
    # E[X_h^2 - R^2] + (E R^2 - E X_T^2) = E X_h^2 - E X_T^2 (the second term is exact)
    corr = ex[0]["base_second"] - ex[0]["exact_second"]
    d = X ** 2 - R ** 2
    p, se = bootstrap_slope(HS, lambda i: d[:, i].mean(axis=1) + corr, M)
    check_order(p, se, log_slope(HS, [e["second"] - e["exact_second"] for e in ex]), 1.0, "OU weak")


@pytest.mark.parametrize("case", [_gbm_strong, _gbm_weak, _ou_strong, _ou_weak],
                         ids=["gbm-strong", "gbm-weak", "ou-strong", "ou-weak"])
def test_em_orders_fast(case):
    case(2048 if case in (_ou_strong, _ou_weak) else 4096, 0)


@pytest.mark.slow
@pytest.mark.parametrize("case", [_gbm_strong, _gbm_weak, _ou_strong, _ou_weak],
                         ids=["gbm-strong", "gbm-weak", "ou-strong", "ou-weak"])
@pytest.mark.parametrize("seed", [1, 2])
def test_em_orders_many_paths(case, seed):
    case(65536, seed)


def test_expected_error_formulas_against_plain_recursions():
    """The closed forms used above agree with direct moment recursions of Euler–Maruyama."""
    mu, sigma, h = 0.7, 0.4, 1 / 32
    m1, m2 = 1.0, 1.0
    for _ in range(32):
        m1, m2 = m1 * (1 + mu * h), m2 * ((1 + mu * h) ** 2 + sigma ** 2 * h)
    e = tp.gbm_em_moments(1.0, mu, sigma, T, h)
    assert math.isclose(e["mean"], m1, rel_tol=1e-13) and math.isclose(e["second"], m2, rel_tol=1e-13)
    rate, sig, x0 = 1.3, 0.8, 0.5
    mean, var = x0, 0.0
    for _ in range(32):
        mean, var = mean * (1 - rate * h), var * (1 - rate * h) ** 2 + sig ** 2 * h
    e = tp.ou_em_moments(x0, rate, sig, T, h, h / 4)
    assert math.isclose(e["mean"], mean, rel_tol=1e-13)
    assert math.isclose(e["second"], mean ** 2 + var, rel_tol=1e-12)
