"""Helpers shared by the slow-flow checks: integrate a slow flow and keep its trajectory."""
from __future__ import annotations

import numpy as np

from ..slowflow import make_stepper
from .base import numba_threads


class FlowRunner:
    """One path of the slow flow of ``optimizer`` (:func:`diagsim.slowflow.make_stepper` with ``options``),
    advanced on demand to increasing slow times (multiples of ``dtau``). Runs with one Numba thread."""

    def __init__(self, problem, optimizer, *, dtau: float, theta0=None, **options):
        self.problem = problem
        self.dtau = float(dtau)
        with numba_threads(1):
            self.stepper = make_stepper(problem, optimizer, dtau=dtau, **options)
            th0 = problem.theta0(1) if theta0 is None else np.asarray(theta0, dtype=np.float64).reshape(1, -1)
            self.state = self.stepper.init_state(th0)
        self.active = np.ones(1, bool)
        self.k = 0

    @property
    def theta(self) -> np.ndarray:
        return self.state["theta"][0].copy()

    @property
    def tau(self) -> float:
        return self.k * self.dtau

    def advance_to(self, tau: float) -> np.ndarray:
        """theta (2d,) at slow time ``tau`` (>= the current one)."""
        target = int(np.rint(tau / self.dtau))
        if target > self.k:
            with numba_threads(1):
                self.stepper.advance(self.state, np.zeros(1, np.int64), self.k, target - self.k, self.active)
            self.k = target
        th = self.theta
        if not self.active[0] or not np.all(np.isfinite(th)):
            raise RuntimeError(f"the slow flow ({self.stepper.flow.name}) stopped: non-finite state at "
                               f"tau <= {tau:g}")
        return th


def flow_trajectory(problem, optimizer, taus, *, dtau: float, theta0=None, **options):
    """theta(tau) of the slow flow at the slow times ``taus`` (increasing, multiples of dtau).

    Returns (taus (T,), thetas (T, 2d), stepper)."""
    run = FlowRunner(problem, optimizer, dtau=dtau, theta0=theta0, **options)
    taus = np.asarray(taus, dtype=np.float64)
    out = np.array([run.advance_to(t) for t in taus])
    return taus, out, run.stepper
