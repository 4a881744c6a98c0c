"""Predicted limit points: minimize the fibre-minimized regularizer of an optimizer over {Z w = y}.

Public API: :func:`predict` -> :class:`Prediction`; :func:`target_for` (optimizer -> measure); the solvers
:func:`reduce_system`, :func:`weighted_l1`, :func:`pareto_vertices`, :func:`global_minimum`,
:func:`reweighted_l1`, :func:`dual_newton` with :class:`HyperbolicEntropy` / :class:`PowerLaw`, and
:func:`woodworth` (the gradient-flow interpolator for explicit scales a); the matrix family's
:func:`predict_matrix` -> :class:`MatrixPrediction` (reached through :func:`predict`) and
:func:`weighted_nuclear_norm`.
"""
from .concave import global_minimum, n_supports, reweighted_l1
from .convex import HyperbolicEntropy, PowerLaw, dual_newton, q_woodworth
from .core import DEFAULT_MAX_SUPPORTS, METHODS, Prediction, predict
from .linear import System, pareto_vertices, reduce_system, weighted_l1
from .matrix import MatrixPrediction, predict_matrix, weighted_nuclear_norm
from .targets import NAMES, Target, target_for


def woodworth(Z, y, a):
    """argmin_{Z w = y} sum_i a_i**2 q(w_i / a_i**2), shape (d,).

    The gradient-flow limit of "uu-vv" from u = v = a (Woodworth et al. 2020)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    return dual_newton(reduce_system(Z, y), HyperbolicEntropy(a * a))["w"]


__all__ = ["predict", "Prediction", "target_for", "Target", "NAMES", "METHODS", "DEFAULT_MAX_SUPPORTS",
           "reduce_system", "System", "weighted_l1", "pareto_vertices", "global_minimum", "n_supports",
           "reweighted_l1", "dual_newton", "HyperbolicEntropy", "PowerLaw", "q_woodworth", "woodworth",
           "MatrixPrediction", "predict_matrix", "weighted_nuclear_norm"]
