"""What a benchmark contestant is: something that integrates the reference SDE for an ensemble.

A contestant has a ``name``, a ``kind`` ("diagsim", "baseline" or "peer"), ``available()`` (``None`` when it
can run, else the reason it is skipped, e.g. a missing optional package) and ``prepare(cfg, M, seed)``,
which does every allocation and conversion up front and returns ``run(n_steps) -> theta`` : a callable that
integrates all M paths from theta0 for ``n_steps`` Euler-Maruyama steps of size ``cfg.dt`` and returns the
final states as a float64 NumPy array of shape (M, 2d). Each call restarts from theta0; the runner times
calls of ``run`` (the first, short one includes compilation).
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Protocol

import numpy as np

from .problems import SDEBench

RunFn = Callable[[int], np.ndarray]


class Contestant(Protocol):
    name: str
    kind: str
    #: one line: method, noise object, threading
    description: str

    def available(self) -> str | None:
        """``None`` if the contestant can run here, else why it is skipped."""

    def prepare(self, cfg: SDEBench, M: int, seed: int) -> RunFn:
        """Set up an ensemble of M paths; return ``run(n_steps) -> theta (M, 2d)``."""


def missing(*modules: str) -> str | None:
    """The reason a contestant is skipped when one of ``modules`` is not installed (else ``None``)."""
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        return (f"not installed: {', '.join(absent)} (pip install 'diagsim[peers]'; torch: "
                f"pip install torch==2.13.0 for the CPU build)")
    return None
