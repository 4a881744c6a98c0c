"""The contract between the run driver (:mod:`diagsim.engine.driver`) and the three levels of dynamics.

A *stepper* advances an ensemble of paths in place. The driver owns recording, checkpoints, progress,
divergence handling and saving; a stepper only knows its dynamics. Discrete optimizers
(:mod:`diagsim.optimizers`), SDE models (:mod:`diagsim.sde`) and slow flows (:mod:`diagsim.slowflow`)
all implement this protocol, so that ``simulate(..., model=...)`` returns the same result object for
each level.

State: a dict of float64 arrays whose first axis is the path; ``state["theta"]`` has shape
(n_paths, 2d). Optional auxiliary arrays ("m", "v", "ema", ...) follow the same convention and are
saved in checkpoints and results.

Step counter: integer ``k`` = number of steps taken. Time of step k: ``t = k * dt`` on the SDE's clock
(t = lr * k for a discrete optimizer), ``tau = lr * t`` (= lr**2 * k).

Factory: each level exposes ``make_stepper(problem, optimizer, *, seed, t_end, **model_options)``: the
run's noise seed, the horizon on the t clock when the run was given one in t or tau (else None; a level
whose step is chosen automatically may fit it to the horizon), and the level's own options, which are
its other keyword-only parameters (the driver lists them in its error for an unknown option).

Optional methods (the driver uses them when present, see :func:`diagsim.engine.driver.simulate`):

* ``advance_checked(state, paths, step0, n_steps, active, limit, div_step, div_loss)``: as ``advance``,
  and a path whose loss at step k is non-finite or exceeds ``limit[p]`` stops at step k with
  ``active[p] = False``, ``div_step[p] = k``, ``div_loss[p]`` = that loss. Without it the driver checks
  the loss itself at the end of every chunk of steps (so the reported step is the chunk's end).
* ``observe(state, support_threshold) -> dict``, ``sync(state)``, ``check_divergence(state, k, active, limit,
  div_step, div_loss)``: a stepper that keeps the ensemble on a device (:mod:`diagsim.cuda.steppers`)
  computes the records and the divergence check there, and brings the host's copy of ``state`` up to date
  only when the driver needs it (a checkpoint, the result, a callback).
* ``divergence_hint() -> str``: which hyperparameter is likely too large, e.g.
  ``"lr=0.5 is likely too large"`` (default: built from ``lr``).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Stepper(Protocol):
    #: "discrete", "sde" or "slow-flow"
    level: str
    #: time increment per step on the t-clock (lr for discrete optimizers, dt for SDEs, dtau / lr for flows)
    dt: float
    #: the optimizer's learning rate (sets tau = lr * t)
    lr: float

    def init_state(self, theta0: np.ndarray) -> dict[str, np.ndarray]:
        """Initial state for theta0 of shape (n_paths, 2d)."""

    def advance(self, state: dict[str, np.ndarray], paths: np.ndarray, step0: int, n_steps: int,
                active: np.ndarray) -> None:
        """Advance every path with ``active[p]`` from step ``step0`` to ``step0 + n_steps`` in place.

        ``paths[p]`` is the global id of row p (the random stream is addressed by it, so a run on a
        subset of paths reproduces those paths exactly). A path whose state becomes non-finite must
        stop there and be marked ``active[p] = False`` (the driver reports it).
        """

    def config(self) -> dict:
        """JSON-serializable description of the dynamics and its hyperparameters."""

    def preconditioner_stats(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-path statistics of the preconditioner (empty dict if there is none): name -> (n_paths,)."""


def divergence_hint(stepper) -> str:
    """The stepper's ``divergence_hint()`` if it has one, else ``"lr=... is likely too large"``."""
    fn = getattr(stepper, "divergence_hint", None)
    if callable(fn):
        return str(fn())
    return f"lr={float(stepper.lr):g} is likely too large"
