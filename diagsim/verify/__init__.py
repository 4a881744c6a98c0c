"""The theorem checks behind ``diagsim verify``, end to end.

Each check compares a simulation with what the theory (docs/theory.md §7-11) predicts and returns rows of
:class:`CheckResult`: the measured number, the predicted one, the tolerance and how it was derived (standard
errors, a fitted slope's confidence interval, an explicit model of a discretization bias), and the verdict.

==  =======================  ==============================================================================
#   name                     what
==  =======================  ==============================================================================
1   em-orders                Euler–Maruyama strong and weak orders (OU, GBM)
2   weak-error               discrete SGD and Adam vs their SDEs: weak error proportional to lr
3   slow-limit               discrete and SDE ensembles vs the slow flow at fixed tau as lr -> 0; 2-D toy
4   flow-limits              slow-flow limits vs the symbolic predictions (LP, l_1/2, l_{1-lam}, block)
5   flow-measures            measures non-increasing along the flows; delta-invariance of Adam's flow
6   extinction               off-support coordinates: finite-time (Adam) vs exponential (SGD) decay
7   woodworth                gradient flow from small initialization -> the Woodworth interpolator
8   sparse-regression        d >= 200: Adam (label noise) generalizes better and is sparser than SGD
==  =======================  ==============================================================================

Public API: :func:`run_checks`, :data:`REGISTRY`, :class:`Check`, :class:`CheckResult`, :func:`resolve`.
"""
from __future__ import annotations

import importlib

from .base import REGISTRY, Check, CheckContext, CheckResult, compare, register, resolve, run_checks

#: the check modules, in the order of the table above
MODULES = ("em_orders", "weak_error", "slow_limit", "flow_limits", "flow_measures", "extinction", "woodworth",
           "sparse_regression")


def _load_all() -> None:
    """Import every check module (each registers its checks); modules not written yet are skipped."""
    for mod in MODULES:
        try:
            importlib.import_module(f".{mod}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise


__all__ = ["run_checks", "REGISTRY", "Check", "CheckContext", "CheckResult", "compare", "register", "resolve"]
