"""``predict``: the limit point an optimizer's implicit bias selects among the interpolators Z w = y.

The symbolic side (:mod:`diagsim.symbolic`) turns the optimizer's measure into a regularizer R(w) (the
measure minimized over each fibre {w(u, v) = w}); this module minimizes R over {Z w = y}:

======================================  ===========================================================
regularizer                             solver (``method`` string of the result)
======================================  ===========================================================
power law, e = 1 (SGD on "uu-vv")       LP (HiGHS): weighted basis pursuit, polished on its support
power law, e < 1 (Adam, AdamE-lambda)   global: all C(d, rank Z) supports (basic solutions);
                                        local: reweighted l1 from x0 (:mod:`.concave`)
power law, e > 1 (SGD on depth-3, ...)  convex: dual Newton (:mod:`.convex`)
block, decoupled, k = 1 ("uu-vv")       global: bi-objective LP, F at the Pareto-frontier vertices
block, symmetric ("uv", odd depth)      argmin of G = sum s_i |w_i|**k (as the power law above)
gradient flow (GD)                      Woodworth hyperbolic-entropy interpolator, dual Newton
======================================  ===========================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import DiagsimError, as_float_array, check_choice, check_int
from ..networks.diagonal.problem import Problem
from ..networks.model import family_of
from ..symbolic import MEASURES, block_regularizer, regularizer, symbolic_parametrization
from ..symbolic.expressions import u as U
from ..symbolic.expressions import v as V
from .concave import global_minimum, n_supports, reweighted_l1
from .convex import HyperbolicEntropy, PowerLaw, dual_newton
from .linear import System, pareto_vertices, reduce_system, weighted_l1
from .targets import Target, target_for

METHODS = ("auto", "global", "local")
DEFAULT_MAX_SUPPORTS = 1_000_000


@dataclass
class Prediction:
    """A predicted limit point.

    Attributes
    ----------
    w : (d,) the predicted end-to-end vector (Z w = y).
    support : indices with |w_i| > support_tol * max|w|.
    optimizer, measure : the optimizer and the measure (formula) it minimizes on Gamma.
    regularizer : the fibre-minimized regularizer R(w) that was minimized, as text.
    objective : R at ``w``.
    method : how ``w`` was obtained (e.g. "LP (HiGHS) ...", "global (support enumeration over ...)",
        "local (reweighted l1 ...)").
    is_global : whether ``w`` is a certified global minimizer of R.
    measures : fibre-minimized values at ``w`` of the measures "trace" (tr H), "adam" (tr diag(H)^{1/2}),
        "block" (sum_b sqrt(|b| tr H_bb)), "adame" (tr diag(H)^{1-lambda}, AdamE only) and, for gradient flow,
        "woodworth" (sum a_i**2 q(w_i / a_i**2)).
    theta : (2d,) a point [u, v] on Gamma with w(theta) = w where the optimizer's measure is minimal
        (for GD: the gradient-flow limit itself), or None.
    residual : max |Z w - y|.
    notes : remarks (fallbacks, non-uniqueness).
    details : solver statistics.
    """

    w: np.ndarray
    support: np.ndarray
    optimizer: str
    measure: str
    regularizer: str
    objective: float
    method: str
    is_global: bool
    measures: dict
    theta: np.ndarray | None
    residual: float
    parametrization: str
    notes: list = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serializable dict ("w" list of d floats, "support" list of ints, ...)."""
        return {"optimizer": self.optimizer, "parametrization": self.parametrization, "measure": self.measure,
                "regularizer": self.regularizer, "method": self.method, "global": self.is_global,
                "objective": _jsonable(self.objective),
                "measures": {k: _jsonable(x) for k, x in self.measures.items()},
                "support": [int(i) for i in self.support], "w": [float(x) for x in self.w],
                "theta": None if self.theta is None else [float(x) for x in self.theta],
                "residual": self.residual, "notes": list(self.notes), "details": self.details}


def _jsonable(x):
    x = float(x)
    return x if np.isfinite(x) else None


#: model family -> "module:function" predicting its limits, ``f(problem, target) -> prediction`` (imported when
#: first used); the diagonal network's predictions are this module's :func:`predict`
FAMILY_PREDICTORS = {"matrix": "diagsim.predict.matrix:predict_matrix"}


def _family_prediction(problem, optimizer, lam, method, x0, parametrization):
    import importlib

    fam = family_of(problem)
    if fam not in FAMILY_PREDICTORS:
        raise DiagsimError(f"no implicit-bias predictions for model family {fam!r}; known: "
                           f"diagonal, {', '.join(sorted(FAMILY_PREDICTORS))}")
    for name, given in (("method", method != "auto"), ("x0", x0 is not None),
                        ("parametrization", parametrization is not None)):
        if given:
            raise DiagsimError(f"{name} applies to the diagonal network's predictions only (model family {fam!r})")
    mod, fn = FAMILY_PREDICTORS[fam].split(":")
    return getattr(importlib.import_module(mod), fn)(problem, target_for(optimizer, lam))


def predict(problem: Problem, optimizer="sgd", *, lam=None, method: str = "auto", x0=None,
            parametrization=None, max_supports: int = DEFAULT_MAX_SUPPORTS,
            support_tol: float = 1e-9) -> Prediction:
    """Predict the limit point of ``optimizer`` on ``problem`` (docs/theory.md §9.6-9.7).

    Parameters
    ----------
    problem : the data Z (n, d), y (n,), s (d,) and, for gradient flow, the initialization.
    optimizer : "gd", "sgd", "adam", "rmsprop", "adame" (with ``lam``), "adam-mini", "adalayer", or a spec
        from :mod:`diagsim.optimizers` (see :mod:`diagsim.predict.targets`).
    lam : lambda for "adame" (and optionally "adam"/"rmsprop"), in [0, 1).
    method : for non-convex regularizers (e < 1): "global" (support enumeration; error when more than
        ``max_supports`` supports), "local" (reweighted l1 from ``x0``) or "auto" (global when tractable,
        else local with a note). Convex cases are always solved globally.
    x0 : (d,) start of the local method (default: the minimum-norm interpolator Z^+ y).
    parametrization : override the problem's parametrization: any spec accepted by
        :func:`diagsim.symbolic.symbolic_parametrization` (e.g. ``"u**3 - v**3"``).
    support_tol : relative threshold for ``Prediction.support``.

    A problem of another model family (e.g. ``make_matrix_problem``) goes to its predictor in
    :data:`FAMILY_PREDICTORS` (matrix: :func:`diagsim.predict.matrix.predict_matrix`, which returns a
    :class:`~diagsim.predict.matrix.MatrixPrediction`); ``method``, ``x0`` and ``parametrization`` are
    the diagonal network's options.
    """
    if family_of(problem) != "diagonal" and not isinstance(problem, Problem):
        return _family_prediction(problem, optimizer, lam, method, x0, parametrization)
    if not isinstance(problem, Problem):
        raise DiagsimError(f"problem must be a diagsim Problem (make_problem / load_problem); "
                           f"got {type(problem).__name__}")
    check_choice("method", method, METHODS)
    max_supports = check_int("max_supports", max_supports)
    target = target_for(optimizer, lam)
    P = symbolic_parametrization(parametrization if parametrization is not None else problem.param)
    if target.param is not None and P.name != target.param:
        raise DiagsimError(f"the prediction for {target.label} is derived for the {target.param!r} "
                           f"parametrization only; got {P.name!r}")
    system = reduce_system(problem.Z, problem.y)
    s = problem.s
    if x0 is not None:
        x0 = as_float_array("x0", x0, (problem.d,))
    notes: list[str] = [target.note] if target.note else []
    details: dict = {"rank": system.rank, "n": problem.n, "d": problem.d}

    if target.kind == "woodworth":
        w, objective, method_txt, theta, reg_txt = _woodworth(problem, P, system, details)
        is_global = True
        notes.append("gradient-flow limit from the problem's initialization (u = v = alpha g, "
                     "a_i = alpha |g_i|); "
                     "GD with a finite step only approximates it")
    elif target.kind == "separable":
        R = regularizer(P, target.measure, target.lam if target.measure == "adame" else None)
        wp, wn = R.weights(s)
        w, method_txt, is_global = _power_law(system, wp, wn, R.exponent, method, x0, max_supports, notes,
                                              details)
        objective = float(R.total(w, s))
        theta = R.fibre_point(w)
        reg_txt = R.describe()
    else:
        B = block_regularizer(P)
        reg_txt = B.describe()
        if B.kind == "symmetric":
            notes.append("the block regularizer is an increasing function of "
                         f"G = sum_i s_i |w_i|^{sp.sstr(B.kappa)}, "
                         "so its minimizer is that of G")
            w, method_txt, is_global = _power_law(system, s, s, B.kappa, method, x0, max_supports, notes,
                                                  details)
        elif B.kappa == 1:
            w, method_txt = _block_frontier(system, B, s, details)
            is_global = True
        else:
            raise DiagsimError(f"the block regularizer of {P} is a concave function of the non-linear "
                               "aggregates "
                               f"G_± = sum s (w^±)^{B.kappa}; its minimization is not implemented")
        objective = float(B(w, s))
        theta = B.fibre_point(w) if B.point_reg is not None else None
    support = np.flatnonzero(np.abs(w) > support_tol * max(float(np.max(np.abs(w), initial=0.0)), 1e-300))
    measures = _measures(P, w, s, target, notes)
    if target.kind == "woodworth":
        measures["woodworth"] = objective
    residual = float(np.max(np.abs(problem.Z @ w - problem.y), initial=0.0))
    label = MEASURES.get(target.measure, "gradient flow: sum_i a_i^2 q(w_i / a_i^2)")
    if target.measure == "adame":
        label = label.replace("lambda", f"{target.lam:g}")
    return Prediction(w, support, target.label, label, reg_txt, objective, method_txt, is_global, measures,
                      theta, residual, P.name, notes, details)


def _measures(P, w, s, target: Target, notes) -> dict:
    out = {}
    for key in ("trace", "adam"):
        out[key] = float(regularizer(P, key).total(w, s))
    if target.measure == "adame":
        out["adame"] = float(regularizer(P, "adame", target.lam).total(w, s))
    try:
        out["block"] = float(block_regularizer(P)(w, s))
    except DiagsimError as exc:
        notes.append(f"block measure not reported: {exc}")
    return out


def _power_law(system: System, wp, wn, e, method, x0, max_supports, notes, details):
    """Minimize sum_i c_sign,i |w_i|**e over Z w = y; returns (w, method text, is_global)."""
    e = sp.nsimplify(e)
    ef = float(e)
    r, d = system.Z.shape
    if e == 1:
        lp = weighted_l1(system, wp, wn)
        if method == "local":
            notes.append("the regularizer is convex (weighted l1): the LP solution is global")
        return lp.w, "LP (HiGHS): weighted basis pursuit, polished on its support", True
    if e > 1:
        sol = dual_newton(system, PowerLaw(np.asarray(wp, float), np.asarray(wn, float), ef))
        details["newton_iterations"] = sol["iterations"]
        if method == "local":
            notes.append(f"the regularizer is convex (power {sp.sstr(e)} > 1): the solution is global")
        return sol["w"], f"convex (dual Newton, power {sp.sstr(e)}; {sol['iterations']} iterations)", True
    count = n_supports(d, r)
    details["n_supports"] = count
    if method == "global" or (method == "auto" and count <= max_supports):
        res = global_minimum(system, wp, wn, ef, max_supports=max_supports)
        details.update(n_basic=res["n_basic"], n_minimizers=res["n_minimizers"])
        if res["n_minimizers"] > 1:
            notes.append(f"{res['n_minimizers']} distinct vertices attain the global minimum; "
                         "one is reported")
        return res["w"], f"global (support enumeration over C({d}, {r}) = {count} supports)", True
    if method == "auto":
        notes.append(f"global enumeration would visit C({d}, {r}) = {count:.3g} supports (> max_supports = "
                     f"{max_supports}); reporting a local minimizer (every basic solution is one)")
    start = "x0" if x0 is not None else "x0 = minimum-norm interpolator"
    if x0 is None:
        x0 = np.linalg.lstsq(system.Z, system.y, rcond=None)[0]
    res = reweighted_l1(system, wp, wn, ef, x0)
    details["iterations"] = res["iterations"]
    return res["w"], f"local (reweighted l1 from {start}; {res['iterations']} iterations)", False


def _block_frontier(system: System, B, s, details):
    pts = pareto_vertices(system, s)
    vals = [B(p["w"], s) for p in pts]
    j = int(np.argmin(vals))
    details["pareto_vertices"] = [{"G+": p["G"][0], "G-": p["G"][1], "value": v} for p, v in zip(pts, vals)]
    return pts[j]["w"], (f"global (bi-objective LP (HiGHS): block regularizer at the {len(pts)} "
                         "vertices of the "
                         "Pareto frontier of (G+, G-))")


def _woodworth(problem: Problem, P, system: System, details):
    ex = sp.expand(P.expr)
    if ex == sp.expand(U**2 - V**2):
        kind = "uu-vv"
    elif ex == sp.expand(U * V):
        kind = "uv"
    else:
        raise DiagsimError(f"the gradient-flow (Woodworth) limit is implemented for 'uu-vv' and 'uv' only; "
                           f"got {P}")
    a = problem.alpha * problem.init_direction()
    f = HyperbolicEntropy(a * a)
    sol = dual_newton(system, f)
    details["newton_iterations"] = sol["iterations"]
    w = sol["w"]
    zeta = sol["zeta"]
    uu, vv = a * np.exp(zeta / 2.0), a * np.exp(-zeta / 2.0)
    theta = np.concatenate([uu, vv]) if kind == "uu-vv" else np.concatenate([uu + vv, uu - vv])
    txt = (f"convex (dual Newton on the hyperbolic-entropy dual; {sol['iterations']} iterations, "
           f"max|Zw - y| = {sol['residual']:.2g})")
    return w, f.value(w), txt, theta, "sum_i a_i^2 q(w_i / a_i^2), q(z) = 2 - sqrt(4 + z^2) + z asinh(z/2)"
