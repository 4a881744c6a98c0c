"""Deep matrix factorization: matrix sensing and completion (docs/theory.md §13).

Public API: :func:`make_matrix_problem`, :func:`load_matrix_problem`, :class:`MatrixProblem` (a
:class:`diagsim.networks.model.ModelProblem` of family "matrix"), :func:`effective_rank`. Importing this
module registers the family "matrix".
"""
from .problem import (
    HESSIAN_MAX_DIM,
    MatrixProblem,
    effective_rank,
    is_matrix_data,
    load_matrix_problem,
    make_matrix_problem,
    make_target,
)

__all__ = ["MatrixProblem", "make_matrix_problem", "load_matrix_problem", "effective_rank", "make_target",
           "is_matrix_data", "HESSIAN_MAX_DIM"]
