"""Sharpness measures of diagonal linear networks (docs/theory.md §10), batched over states theta (M, 2d).

Every measure is a function ``f(problem, theta, *, <options>, ctx=None) -> np.ndarray`` of shape (M,).
:data:`MEASURES` maps a name to that function; :func:`evaluate` computes several at once, sharing the
n x n Gram matrices and their spectra through one :class:`~._context.Context`.

=========================  ==================================================  ==========================
name                       definition                                          options (default)
=========================  ==================================================  ==========================
lambda_max                 lambda_max(H)                                       hessian ("gn")
trace                      tr H                                                hessian ("gn")
trace_diag_sqrt            tr diag(H)^{1/2} (Adam)
trace_diag_pow             tr diag(H)^{1-lam} (AdamE-lam)                      lam (0.25)
block_trace_sqrt           sum_b sqrt(|b| tr H_bb), b = u, v (Adam-mini)
log_pdet                   log pseudo-determinant of H on Gamma                rtol (1e-12)
fisher_rao                 <theta, F theta>, F = J^T J / n
renyi, renyi_u, renyi_v    -H_alpha of the spectrum (all / u-block / v-block)  order (2)
average                    E_{N(0, rho^2 I)} L(theta+delta) - L, exact         rho (0.05)
average_adaptive           same with delta = |theta| eps                       rho_adaptive (0.1)
worst_quadratic            max_{|delta|<=rho} quadratic model, exact           rho (0.05)
worst_adaptive_quadratic   same in the adaptive ball |delta/theta| <= rho      rho_adaptive (0.1)
geodesic_mix               Hide & Seek, mix metric, exact                      rho_adaptive (0.1)
geodesic_inv               Hide & Seek, inv metric (ascent)                    rho_adaptive, n_random, steps
worst                      max_{|delta|<=rho} L(theta+delta) - L (ascent)      rho, n_random (0), steps (100)
worst_adaptive             adaptive worst case (ascent)                        rho_adaptive, n_random, steps
=========================  ==================================================  ==========================

Spectral measures are of the Gauss-Newton matrix (1/n) J^T J, which is H on the manifold of minimizers
Gamma (r = 0); see each docstring. ``evaluate(names=None)`` computes :data:`DEFAULT_MEASURES`: every
measure except the three computed by iterative ascent (:data:`ITERATIVE`: worst, worst_adaptive,
geodesic_inv), which cost a few Newton steps with an n x n Gram product each per path and start
(together several times the rest on 1,000 states at d = 1000, n = 50; see benchmarks/bench_measures.py);
``names="all"`` adds them. geodesic_* are skipped for "depth-D", where they are undefined. ``seed``
fixes the random restarts (``n_random``, default 0) of the ascent-based ones.

Other model families (:mod:`diagsim.networks.model`, e.g. "matrix"): the measures of :data:`GENERIC`
(lambda_max, trace, trace_diag_sqrt, trace_diag_pow, log_pdet, fisher_rao, renyi with block "all") are
computed from the interface alone; ``evaluate(names=None)`` computes those, and naming another one is a
one-line error.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import DiagsimError
from ..networks.diagonal.problem import Problem
from ..networks.model import family_of
from ._context import Context, ModelContext, make_context
from .correlation import kendall_bootstrap, kendall_table, kendall_tau, paired_interval
from .geodesics import geodesic, geodesic_inv, geodesic_mix
from .perturbation import (
    average,
    average_adaptive,
    average_mc,
    average_theory,
    worst,
    worst_adaptive,
    worst_adaptive_quadratic,
    worst_quadratic,
)
from .renyi_entropy import renyi, renyi_entropy_of_spectrum, renyi_u, renyi_v
from .spectral import block_trace_sqrt, fisher_rao, lambda_max, log_pdet, trace, trace_diag_pow, trace_diag_sqrt

#: name -> measure function ``f(problem, theta, **options)`` -> (M,)
MEASURES = {
    "lambda_max": lambda_max,
    "trace": trace,
    "trace_diag_sqrt": trace_diag_sqrt,
    "trace_diag_pow": trace_diag_pow,
    "block_trace_sqrt": block_trace_sqrt,
    "log_pdet": log_pdet,
    "fisher_rao": fisher_rao,
    "renyi": renyi,
    "renyi_u": renyi_u,
    "renyi_v": renyi_v,
    "average": average,
    "average_adaptive": average_adaptive,
    "worst_quadratic": worst_quadratic,
    "worst_adaptive_quadratic": worst_adaptive_quadratic,
    "geodesic_mix": geodesic_mix,
    "geodesic_inv": geodesic_inv,
    "worst": worst,
    "worst_adaptive": worst_adaptive,
}

#: measures that use the adaptive radius: evaluate()'s option ``rho_adaptive`` is their ``rho``
ADAPTIVE_RADIUS = frozenset({"average_adaptive", "worst_adaptive_quadratic", "worst_adaptive", "geodesic_mix",
                             "geodesic_inv"})
#: measures computed by iterative ascent (lower bounds; the slow part of evaluate)
ITERATIVE = frozenset({"worst", "worst_adaptive", "geodesic_inv"})
#: measures defined only for some parametrizations (name -> allowed parametrization codes)
_ONLY = {"geodesic_mix": (0, 1), "geodesic_inv": (0, 1)}

#: measures computed from the model interface alone (diagsim.networks.model), so defined for every model
#: family; the others need the diagonal network's structure (u / v blocks, w, the structured Hessian)
GENERIC = frozenset({"lambda_max", "trace", "trace_diag_sqrt", "trace_diag_pow", "log_pdet", "fisher_rao",
                     "renyi"})

#: what evaluate(names=None) computes: everything but the ascent-based measures
DEFAULT_MEASURES = tuple(n for n in MEASURES if n not in ITERATIVE)


def applicable(name: str, problem: Problem) -> bool:
    """Whether measure ``name`` is defined for the problem (its model family and parametrization)."""
    if family_of(problem) != "diagonal":
        return name in GENERIC
    allowed = _ONLY.get(name)
    return allowed is None or problem.param.code in allowed


def resolve_names(names, problem: Problem | None = None) -> list[str]:
    """Validate measure names (a list or a comma-separated string; None = :data:`DEFAULT_MEASURES`, "all" =
    every measure, both restricted to those defined for ``problem``). Unknown names raise a one-line
    DiagsimError listing the allowed ones."""
    if names is None or (isinstance(names, str) and names.strip() == "all"):
        pool = DEFAULT_MEASURES if names is None else tuple(MEASURES)
        return [n for n in pool if problem is None or applicable(n, problem)]
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    names = list(names)
    if not names:
        raise DiagsimError(f"measures must name at least one of: {', '.join(MEASURES)} (or 'all')")
    for n in names:
        if n not in MEASURES:
            raise DiagsimError(f"measure must be one of {', '.join(MEASURES)} (or 'all'); got {n!r}")
        if problem is not None and not applicable(n, problem):
            fam = family_of(problem)
            if fam != "diagonal":
                raise DiagsimError(f"measure {n!r} needs the diagonal network's structure; for model family "
                                   f"{fam!r} use one of {', '.join(m for m in MEASURES if m in GENERIC)}")
            raise DiagsimError(f"measure {n!r} is not defined for parametrization {problem.param.name!r}")
    return list(dict.fromkeys(names))


def _options_of(name: str) -> set[str]:
    params = inspect.signature(MEASURES[name]).parameters
    own = {p for p, v in params.items()
           if v.kind == v.KEYWORD_ONLY and p not in ("ctx", "return_perturbation")}
    if name in ADAPTIVE_RADIUS and "rho" in own:
        own = (own - {"rho"}) | {"rho_adaptive"}
    return own


def measure_options(names=None) -> dict[str, set[str]]:
    """{measure name: the evaluate() options it reads} for the given (default: all) measures."""
    return {n: _options_of(n) for n in resolve_names(names)}


def evaluate(problem: Problem, theta, names=None, **opts) -> dict[str, np.ndarray]:
    """Evaluate sharpness measures at states ``theta`` ((M, 2d) or (2d,)).

    Parameters
    ----------
    names : list of measure names or a comma-separated string; None = :data:`DEFAULT_MEASURES`, "all" =
        every measure (in both cases only those defined for the problem's parametrization).
    **opts : options routed to the measures that take them: ``rho`` (Euclidean radius / standard
        deviation), ``rho_adaptive`` (radius of the adaptive and geodesic measures), ``lam``, ``order``,
        ``hessian``, ``rtol``, ``eta``, ``n_random``, ``steps``, ``seed``. An option that no selected measure
        takes raises DiagsimError.

    Returns
    -------
    dict name -> array of shape (M,), in the order of ``names``.
    """
    names = resolve_names(names, problem)
    ctx = make_context(problem, theta)
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}
    for name in names:
        own = _options_of(name)
        kwargs = {}
        for key in own & opts.keys():
            kwargs["rho" if key == "rho_adaptive" else key] = opts[key]
            used.add(key)
        out[name] = np.asarray(MEASURES[name](problem, ctx.theta, ctx=ctx, **kwargs), dtype=np.float64)
    unused = set(opts) - used
    if unused:
        allowed = sorted(set().union(*(_options_of(n) for n in names)))
        raise DiagsimError(f"option {sorted(unused)[0]!r} is not used by the selected measures; "
                           f"allowed: {', '.join(allowed)}")
    return out


__all__ = [
    "MEASURES", "DEFAULT_MEASURES", "ITERATIVE", "ADAPTIVE_RADIUS", "evaluate", "resolve_names", "applicable",
    "measure_options", "Context", "ModelContext", "GENERIC",
    "lambda_max", "trace", "trace_diag_sqrt", "trace_diag_pow", "block_trace_sqrt", "log_pdet", "fisher_rao",
    "renyi", "renyi_u", "renyi_v", "renyi_entropy_of_spectrum",
    "average", "average_adaptive", "average_mc", "average_theory", "worst_quadratic",
    "worst_adaptive_quadratic", "worst", "worst_adaptive", "geodesic", "geodesic_inv", "geodesic_mix",
    "kendall_tau", "kendall_table", "kendall_bootstrap", "paired_interval",
]
