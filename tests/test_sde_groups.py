"""The grouped Euler–Maruyama integrator: a path's numbers do not depend on its group (bitwise).

The integrator advances up to ``group`` paths in lockstep (sharing the loads of Z); the model functions
act on a group. Invariances checked here, each bitwise: the group size (1, 3, 4, 8, 16), threading (the
serial kernel against the parallel one; groups of 8 and 16 run the SIMD lanes kernel), running a path alone,
and paths that blow up mid-group (the step is redone for the survivors, the stopped path keeps the state at
which its health went non-finite).
The per-path arithmetic itself is checked against a NumPy Euler–Maruyama step in test_sde_models.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from diagsim import make_problem
from diagsim.optimizers import SGD, AdamMini, LabelNoise
from diagsim.sde import integrator as I
from diagsim.sde import make_stepper
from diagsim.sde import testproblems as TP
from diagsim.sde.brownian import BrownianPath

P = make_problem(12, 30, 3, seed=2)
M = 11


def _run(model, brownian, dt, X0, active, group, paths=None, serial=None):
    X = np.ascontiguousarray(X0.copy())
    act = active.copy()
    paths = np.arange(X.shape[0], dtype=np.int64) if paths is None else paths
    if serial is None:
        I.integrate(model.drift, model.diffusion, model.args, X, paths=paths, active=act, step0=2, n_steps=40,
                    dt=dt, n_noise=model.n_noise, n_work=model.n_work, amplitude=model.amplitude,
                    brownian=brownian, group=group)
    else:
        kern = I.em_kernel_serial if serial else I.em_kernel
        kern(model.drift, model.diffusion, X, paths, act, 2, 40, dt, brownian.substeps(dt),
             model.amplitude * np.sqrt(brownian.dt_base), *brownian.key, model.n_noise, model.n_work, group,
             model.args)
    return X, act


def _cases():
    # dt large enough that some of the scaled starts blow up (mixed groups), some not
    sgd = make_stepper(P, SGD(lr=0.05, noise=LabelNoise(0.5)), seed=7, dt=0.4, dt_base=0.1,
                       check_stability=False)
    mini = make_stepper(P, AdamMini(lr=0.05, beta2=0.99, eps=1e-3, noise=LabelNoise(0.5)), seed=7, dt=2.0,
                        v0=1e-3, check_stability=False)
    out = []
    for st in (sgd, mini):
        th0 = P.theta0(M) * np.linspace(0.5, 6.0, M)[:, None]
        out.append((st.model.name, st.model, st.brownian, st.dt, st.model.pack(st.init_state(th0)).copy()))
    ou = TP.ornstein_uhlenbeck(1.0, 0.5, 3)
    out.append(("ou", ou, BrownianPath(3, 0.01), 0.02, np.full((M, 3), 0.7)))
    return out


@pytest.mark.parametrize("case", range(3))
def test_results_do_not_depend_on_group_threads_or_company(case):
    name, model, bp, dt, X0 = _cases()[case]
    active = np.ones(M, bool)
    active[2] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref, act = _run(model, bp, dt, X0, active, group=1)
        if name == "sgd-label-noise":
            assert 0 < (~act).sum() - 1 < M - 1, "the case must mix paths that blow up and paths that do not"
        for group in (3, 4, 8, 16):
            for serial in (None, True, False):
                X, a = _run(model, bp, dt, X0, active, group, serial=serial)
                np.testing.assert_array_equal(a, act)
                np.testing.assert_array_equal(X, ref)
        assert np.array_equal(X0[2], ref[2])  # inactive rows are untouched
        for p in range(M):  # every path alone (its global id addresses its noise)
            X, a = _run(model, bp, dt, X0[p:p + 1], active[p:p + 1], 4, paths=np.array([p]))
            assert a[0] == act[p]
            np.testing.assert_array_equal(X[0], ref[p])
