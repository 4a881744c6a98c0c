"""diagsim: implicit bias of optimizers on diagonal linear networks, at three levels.

Public API (imported lazily, so ``import diagsim`` does not compile any kernel):

    make_problem, load_problem, Problem          problems of the diagonal network (diagsim.networks.diagonal)
    make_matrix_problem, load_matrix_problem     deep matrix factorization problems (diagsim.networks.matrix)
    simulate, resume, load_result, Result        runs at model="discrete" | "sde" | "slow-flow" (diagsim.engine)
    simulate_many                                many discrete runs in one GPU launch (diagsim.engine.batched)
    optimizers                                   optimizer specifications (SGD, Adam, Lion, SAM family, ...)
    sde, slowflow                                continuous-time models
    measures                                     sharpness measures
    symbolic, predict                            SymPy implicit-bias predictions and predicted limits
    verify                                       the theorem checks and claims behind ``diagsim verify``
    sweep                                        parameter sweeps (serial, process pool, Dask)

The package's layers: ``networks`` (model families: problem, parametrization, exact derivatives, kernels),
``engine`` (the run driver, results, recording), ``lowlevel`` (Numba options, SIMD, random numbers),
the levels ``optimizers`` / ``sde`` / ``slowflow`` / ``predict``, and on top ``experiments``, ``sweep``,
``cli``, ``cuda`` and ``bench``.
"""
from __future__ import annotations

import importlib

from ._version import __version__
from .errors import DiagsimError, DivergenceError

_LAZY = {
    "make_problem": ("networks.diagonal.problem", "make_problem"),
    "load_problem": ("networks.diagonal.problem", "load_problem"),
    "Problem": ("networks.diagonal.problem", "Problem"),
    "make_matrix_problem": ("networks.matrix", "make_matrix_problem"),
    "load_matrix_problem": ("networks.matrix", "load_matrix_problem"),
    "simulate": ("engine.driver", "simulate"),
    "simulate_many": ("engine.batched", "simulate_many"),
    "resume": ("engine.driver", "resume"),
    "load_result": ("engine.result", "load_result"),
    "Result": ("engine.result", "Result"),
}
_SUBMODULES = {"networks", "engine", "lowlevel", "measures", "optimizers", "sde", "slowflow", "symbolic",
               "predict", "verify", "sweep", "experiments", "cuda", "bench", "cli"}

__all__ = ["__version__", "DiagsimError", "DivergenceError", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'diagsim' has no attribute {name!r}")
