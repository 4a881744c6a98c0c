"""The observables of a run on a non-diagonal model family (the diagonal family records with the compiled
:func:`diagsim.engine.recording.observe`).

For states theta (M, P) of a :class:`diagsim.networks.model.ModelProblem`, each (M,):

======================  =================================================================================
train_loss              ``problem.loss``: (1/2n) ||f(theta) - y||^2
test_loss               ``problem.test_loss`` (NaN where the family has none)
trace_h                 tr H = sum of ``problem.hessian_diag`` (exact, residual term included)
trace_sqrt_diag_h       sum_i sqrt(max(H_ii, 0))
trace_sqrt_diag_gn      sum_i sqrt(gn_diag_i): tr diag(GN)^{1/2}, Adam's measure as its slow flow sees it
<family's names>        ``problem.observables`` (e.g. l1 / support, nuclear norm, effective rank)
precond/<stat>          the stepper's ``preconditioner_stats``
======================  =================================================================================

Rows with a non-finite entry give NaN and are not passed to the model.
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError
from ..networks.model import family_of

#: what every model problem records (the family adds its own)
MODEL_OBSERVABLES = ("train_loss", "test_loss", "trace_h", "trace_sqrt_diag_h", "trace_sqrt_diag_gn")


def model_losses(problem, theta: np.ndarray) -> np.ndarray:
    """Training loss per path, NaN for rows with a non-finite entry, (M,)."""
    out = np.full(theta.shape[0], np.nan)
    fin = np.isfinite(theta).all(axis=1)
    if fin.any():
        out[fin] = problem.loss(theta[fin])
    return out


def observe_model(problem, theta: np.ndarray, *, extra: dict | None = None) -> dict[str, np.ndarray]:
    """The observables of the module doc for states ``theta`` (M, P); ``extra`` (name -> (M,)) is appended as
    ``precond/<name>``."""
    theta = np.asarray(theta, dtype=np.float64)
    M = theta.shape[0]
    out = {name: np.full(M, np.nan) for name in MODEL_OBSERVABLES}
    fin = np.isfinite(theta).all(axis=1)
    if fin.any():
        th = theta[fin]
        h = problem.hessian_diag(th)
        out["train_loss"][fin] = problem.loss(th)
        out["test_loss"][fin] = problem.test_loss(th)
        out["trace_h"][fin] = h.sum(axis=1)
        out["trace_sqrt_diag_h"][fin] = np.sqrt(np.maximum(h, 0.0)).sum(axis=1)
        out["trace_sqrt_diag_gn"][fin] = np.sqrt(np.maximum(problem.gn_diag(th), 0.0)).sum(axis=1)
        for name, val in problem.observables(th).items():
            if name in MODEL_OBSERVABLES or name.startswith("precond/"):
                raise DiagsimError(f"model family {family_of(problem)!r}: observable {name!r} clashes with a "
                                   "recorded name")
            out.setdefault(name, np.full(M, np.nan))[fin] = np.asarray(val, dtype=np.float64).reshape(-1)
    else:
        for name in problem.observables(problem.theta0(1)):
            out.setdefault(name, np.full(M, np.nan))
    for key, val in (extra or {}).items():
        out[f"precond/{key}"] = np.asarray(val, dtype=np.float64).reshape(M)
    return out
