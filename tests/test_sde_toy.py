"""The 2-D toy oracle of docs/theory.md §8.8 for the preconditioned label-noise drift, built as a tiny SDE.

L = (1/2) h(y) x^2, h = 1 + y^2, noise only in x with variance c h, fixed preconditioner S = diag(s_x, s_y):
averaging the fast x gives dy/dtau = -(c/4) s_x s_y h'(y), so y(tau) = y0 exp(-(c/2) s_x s_y tau);
with c = 0.5, lr = 0.01, s = (2, 3), tau = 0.2, y0 = 1: y = e^{-0.3} = 0.7408 (docs/theory.md §8.8: 0.741).

The Euler–Maruyama ensemble mean at finite lr and dt differs from the slow flow by a deterministic
O(lr) + O(dt) bias (x starts at 0 and needs time ~1/(2 s_x h) to equilibrate; Euler's stationary variance
is off by a factor 1/(1 - s_x h dt/2)). That bias is predicted here independently by the Gaussian moment
closure of the *discrete* scheme (E x^2 recursion, y treated as deterministic: exact up to O(Var y)
terms), so the simulation is checked against that prediction with a standard-error tolerance, and the
prediction against the oracle.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from diagsim.sde import testproblems as tp
from diagsim.sde.brownian import BrownianPath
from diagsim.sde.convergence import log_slope
from diagsim.sde.integrator import integrate

C, S, TAU, Y0 = 0.5, (2.0, 3.0), 0.2, 1.0


def test_slow_flow_solution_of_the_toy():
    """dy/dtau = -(c/4) s_x s_y h'(y), integrated, equals the closed form and 0.741 (docs/theory.md §8.8)."""
    sol = solve_ivp(lambda _t, y: -(C / 4) * S[0] * S[1] * 2 * y, (0, TAU), [Y0], rtol=1e-12, atol=1e-14)
    y = sol.y[0, -1]
    assert math.isclose(y, tp.toy2d_slow_flow(Y0, C, S, TAU), rel_tol=1e-9)
    assert abs(y - 0.741) < 5e-4


def moment_closure(lr, dt):
    """E y after tau / lr time units of the Euler–Maruyama scheme, from the E x^2 recursion."""
    y, m2 = Y0, 0.0
    for _ in range(int(round(TAU / lr / dt))):
        h = 1 + y * y
        y, m2 = y - S[1] * y * m2 * dt, (1 - S[0] * h * dt) ** 2 * m2 + S[0] ** 2 * C * h * lr * dt
    return y


def simulate(lr, dt, M, seed=0):
    m = tp.toy2d(C, lr, S)
    X = np.zeros((M, 2))
    X[:, 1] = Y0
    act = np.ones(M, bool)
    integrate(m.drift, m.diffusion, m.args, X, paths=np.arange(M), active=act, step0=0,
              n_steps=int(round(TAU / lr / dt)), dt=dt, n_noise=1, n_work=0, amplitude=m.amplitude,
              brownian=BrownianPath(seed, dt))
    assert act.all()
    y = X[:, 1]
    return y.mean(), y.std(ddof=1) / math.sqrt(M)


def check(lr, dt, M):
    mean, se = simulate(lr, dt, M)
    pred = moment_closure(lr, dt)
    oracle = float(tp.toy2d_slow_flow(Y0, C, S, TAU))
    print(f"lr={lr} dt={dt} M={M}: mean y = {mean:.5f} +- {se:.5f}; closure {pred:.5f}; oracle {oracle:.5f}")
    assert abs(mean - pred) <= 4 * se
    assert abs(mean - oracle) <= 4 * se + abs(pred - oracle)
    return mean - oracle, se


def test_toy_sde_ensemble_matches_the_preconditioned_drift():
    check(0.01, 0.005, 1000)


@pytest.mark.slow
def test_toy_sde_bias_vanishes_like_lr():
    lrs = [0.02, 0.01, 0.005]
    errs = [check(lr, lr / 4, 4000)[0] for lr in lrs]
    assert all(abs(e) < 0.01 for e in errs)
    preds = [moment_closure(lr, lr / 4) - float(tp.toy2d_slow_flow(Y0, C, S, TAU)) for lr in lrs]
    assert abs(log_slope(lrs, preds) - 1) < 0.15   # the predicted bias is O(lr)
