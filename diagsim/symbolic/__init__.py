"""Symbolic (SymPy) implicit-bias predictions for elementwise parametrizations (docs/theory.md §9).

Given w = w(u, v) per coordinate (built in: "uu-vv", "uv", "depth-D"; or any SymPy expression / string in u,
v), this package derives

* the measures on the manifold of minimizers: diag H, tr H, tr diag(H)^{1/2}, tr diag(H)^{1-lambda} and the
  Adam-mini / Adalayer block measure (:mod:`.measures`);
* the fibre-minimized regularizers R(w) = min over {w(u, v) = w} of each measure, in closed form
  (:mod:`.regularizers`, using the exact 1-D fibre minimization of :mod:`.fibre`).

Derived expressions become NumPy functions through cached :func:`sympy.lambdify` (``measure_values``,
``diag_hessian_values``, ``Regularizer.__call__``).
"""
from .expressions import SymbolicParametrization, W, d, lam, s, symbolic_parametrization, u, v, w
from .fibre import FibreMinimum, Term, unit_fibre_minimum
from .measures import MEASURES, block_summands, diag_hessian, diag_hessian_values, measure_summand, measure_values
from .regularizers import BlockRegularizer, G_abs, G_neg, G_pos, Regularizer, block_regularizer, regularizer

__all__ = ["SymbolicParametrization", "symbolic_parametrization", "u", "v", "s", "w", "W", "lam", "d",
           "diag_hessian", "block_summands", "measure_summand", "measure_values", "diag_hessian_values",
           "MEASURES", "Regularizer", "BlockRegularizer", "regularizer", "block_regularizer",
           "G_pos", "G_neg", "G_abs", "Term", "FibreMinimum", "unit_fibre_minimum"]
