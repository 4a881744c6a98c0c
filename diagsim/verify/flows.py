"""Helpers shared by the slow-flow checks: integrate a slow flow and keep its trajectory."""
from __future__ import annotations

import numpy as np

from ..slowflow import make_stepper
from .base import numba_threads


def flow_trajectory(problem, optimizer, taus, *, dtau: float, theta0=None, **options):
    """theta(tau) of the slow flow of ``optimizer`` at the slow times ``taus`` (increasing, multiples of dtau).

    ``options`` go to :func:`diagsim.slowflow.make_stepper` (start, v, v0, eps, kappa, zero_tol, ...).
    Returns (taus (T,), thetas (T, 2d), stepper). Runs with one Numba thread (one path, many small calls).
    """
    with numba_threads(1):
        st = make_stepper(problem, optimizer, dtau=dtau, **options)
        th0 = problem.theta0(1) if theta0 is None else np.asarray(theta0, dtype=np.float64).reshape(1, -1)
        state = st.init_state(th0)
        active = np.ones(1, bool)
        paths = np.zeros(1, np.int64)
        taus = np.asarray(taus, dtype=np.float64)
        steps = np.rint(taus / dtau).astype(np.int64)
        out = np.empty((taus.size, problem.dim))
        k = 0
        for j, target in enumerate(steps):
            if target > k:
                st.advance(state, paths, k, int(target - k), active)
                k = int(target)
            out[j] = state["theta"][0]
    if not active[0] or not np.all(np.isfinite(out)):
        raise RuntimeError(f"the slow flow ({st.flow.name}) stopped: non-finite state")
    return taus, out, st
