"""Brownian increments (same path at every refinement) and the integrator's reproducibility contract."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import stats

from diagsim.errors import DiagsimError
from diagsim.lowlevel import rng
from diagsim.sde import testproblems as tp
from diagsim.sde.brownian import BrownianPath, increments
from diagsim.sde.integrator import integrate


def pairwise_tree(fine: np.ndarray, levels: int) -> np.ndarray:
    """Sum consecutive pairs ``levels`` times along axis 1 (NumPy, independent of the kernel)."""
    x = fine
    for _ in range(levels):
        x = x[:, 0::2] + x[:, 1::2]
    return x


@pytest.mark.parametrize("n", [1, 3, 4])
def test_base_grid_is_the_generator(n):
    dtb = 0.01
    got = increments(5, [0, 7], 6, n, dtb)
    want = rng.normals(5, "brownian", [0, 7], 6, n, scale=math.sqrt(dtb))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("j", [1, 2, 3, 5])
def test_coarse_increments_are_exact_sums_of_fine(j):
    dtb, n, steps = 1e-3, 3, 4
    sub = 2 ** j
    fine = rng.normals(11, "brownian", [2, 9], steps * sub, n, scale=math.sqrt(dtb))
    coarse = increments(11, [2, 9], steps, n, dtb * sub, dtb)
    np.testing.assert_array_equal(coarse, pairwise_tree(fine, j))
    # and level j is exactly the sum of two increments of level j - 1
    finer = increments(11, [2, 9], 2 * steps, n, dtb * sub / 2, dtb)
    np.testing.assert_array_equal(coarse, finer[:, 0::2] + finer[:, 1::2])


def test_increments_are_normal_with_variance_dt():
    dt = 0.04
    x = increments(3, np.arange(200), 50, 2, dt, dt / 8).ravel() / math.sqrt(dt)
    assert stats.kstest(x, "norm").pvalue > 1e-3


def test_dt_must_be_a_power_of_two_multiple():
    bp = BrownianPath(0, 0.01)
    assert bp.substeps(0.08) == 8
    for bad in (0.03, 0.005, 0.0):
        with pytest.raises(DiagsimError):
            bp.substeps(bad)
    with pytest.raises(DiagsimError, match="seed"):
        BrownianPath(-1, 0.1)


def _run(model, X0, paths, step0, n_steps, dt, dt_base, seed=0, active=None):
    X = np.array(X0, dtype=float, order="C")
    act = np.ones(len(paths), bool) if active is None else active
    integrate(model.drift, model.diffusion, model.args, X, paths=np.asarray(paths, dtype=np.int64),
              active=act, step0=step0, n_steps=n_steps, dt=dt, n_noise=model.n_noise, n_work=model.n_work,
              amplitude=model.amplitude, brownian=BrownianPath(seed, dt_base))
    return X, act


def test_paths_replay_alone_and_chunks_resume_bitwise():
    m = tp.geometric_brownian_motion(0.3, 0.8, dim=3)
    X0 = np.ones((16, 3))
    full, _ = _run(m, X0, np.arange(16), 0, 40, 0.02, 0.005)
    alone, _ = _run(m, X0[[5, 11]], [5, 11], 0, 40, 0.02, 0.005)
    np.testing.assert_array_equal(alone, full[[5, 11]])
    a, _ = _run(m, X0, np.arange(16), 0, 15, 0.02, 0.005)
    b, _ = _run(m, a, np.arange(16), 15, 25, 0.02, 0.005)
    np.testing.assert_array_equal(b, full)


def test_serial_equals_parallel_bitwise():
    m = tp.geometric_brownian_motion(0.3, 0.8, dim=2)
    X0 = np.ones((33, 2))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial, _ = _run(m, X0, np.arange(33), 0, 30, 0.01, 0.01)
    finally:
        numba.set_num_threads(before)
    parallel, _ = _run(m, X0, np.arange(33), 0, 30, 0.01, 0.01)
    np.testing.assert_array_equal(serial, parallel)


def test_one_step_is_euler_maruyama():
    """X1 = X0 + b dt + sigma dB for GBM, with dB the (coarse) increment of the path."""
    mu, sig, dt = 0.3, 0.8, 0.04
    m = tp.geometric_brownian_motion(mu, sig, dim=2)
    X0 = np.array([[1.0, 2.0], [0.5, -1.0]])
    X1, _ = _run(m, X0, [0, 1], 3, 1, dt, dt / 4)
    dB = increments(0, [0, 1], range(3, 4), 2, dt, dt / 4)[:, 0]
    np.testing.assert_allclose(X1, X0 + mu * X0 * dt + sig * X0 * dB, rtol=1e-15, atol=1e-15)


def test_diverging_path_is_stopped_and_others_go_on():
    m = tp.ornstein_uhlenbeck(-2000.0, 0.0)   # x <- x (1 + 2000 dt): overflows unless x = 0
    X, act = _run(m, np.array([[1.0], [0.0]]), [0, 1], 0, 200, 0.5, 0.5)
    assert not act[0] and act[1]
    assert not np.isfinite(X[0, 0]) and X[1, 0] == 0.0
    X2, act2 = _run(m, np.array([[1.0], [0.0]]), [0, 1], 0, 5, 0.5, 0.5, active=np.array([False, True]))
    assert X2[0, 0] == 1.0 and act2.tolist() == [False, True]   # inactive rows are not touched
