"""The checks behind ``diagsim verify``, end to end: theorems, which gate, and claims, which are reported.

Each check compares a simulation with a statement and returns rows of :class:`CheckResult`: the measured
number, the predicted or claimed one, the tolerance and how it was derived (standard errors, a fitted slope's
confidence interval, an explicit model of a discretization bias), and the verdict. A *theorem* check tests
what the theory proves (PASS/FAIL; a failure fails the command); a *claim* check tests a paper's empirical
statement on instances fixed in advance (HOLDS / FAILS / NOT SIGNIFICANT by :func:`claim_verdict`, reported
with its regime, never changing the exit status). See docs/verify.md.

==  =======================  =======  ======================================================================
#   name                     kind     what
==  =======================  =======  ======================================================================
1   em-orders                theorem  Euler–Maruyama strong and weak orders (OU, GBM)
2   weak-error               theorem  discrete SGD and Adam vs their SDEs: weak error proportional to lr
3   slow-limit               theorem  discrete and SDE ensembles vs the slow flow at fixed tau as lr -> 0
4   flow-limits              theorem  slow-flow limits vs the symbolic predictions (LP, l_1/2, block)
5   flow-measures            theorem  measures non-increasing along the flows; delta-invariance
6   extinction               theorem  off-support coordinates: finite-time (Adam) vs exponential (SGD)
7   woodworth                theorem  gradient flow from small initialization -> the Woodworth interpolator
8   sparse-regression        claim    d >= 200: Adam (label noise) generalizes better, sparser than SGD
==  =======================  =======  ======================================================================

Public API: :func:`run_checks`, :data:`REGISTRY`, :class:`Check`, :class:`CheckResult`, :func:`resolve`,
:func:`claim_verdict`, :func:`gate_failures`.
"""
from __future__ import annotations

import importlib

from .base import (
    CLAIM_RULE,
    CLAIM_VERDICTS,
    REGISTRY,
    Check,
    CheckContext,
    CheckResult,
    claim_verdict,
    compare,
    gate_failures,
    register,
    resolve,
    run_checks,
)

#: the check modules, in number order
MODULES = ("em_orders", "weak_error", "slow_limit", "flow_limits", "flow_measures", "extinction", "woodworth",
           "sparse_regression")


def _load_all() -> None:
    """Import every check module (each registers its checks)."""
    for mod in MODULES:
        importlib.import_module(f".{mod}", __name__)


__all__ = ["run_checks", "REGISTRY", "Check", "CheckContext", "CheckResult", "compare", "register", "resolve",
           "claim_verdict", "gate_failures", "CLAIM_RULE", "CLAIM_VERDICTS"]
