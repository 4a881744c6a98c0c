"""diagsim: implicit bias of optimizers on diagonal linear networks, at three levels.

Public API (imported lazily, so ``import diagsim`` does not compile any kernel):

    make_problem, load_problem, Problem          problems (diagsim.problem)
    simulate, load_result, Result                runs at model="discrete" | "sde" | "slow-flow"
    optimizers                                   optimizer specifications (SGD, Adam, SAM family, ...)
    sde, slowflow                                continuous-time models
    derivatives, measures                        exact derivatives and sharpness measures
    symbolic, predict                            SymPy implicit-bias predictions and predicted limits
    verify                                       the theorem checks behind ``diagsim verify``
"""
from __future__ import annotations

import importlib

from ._version import __version__
from .errors import DiagsimError, DivergenceError

_LAZY = {
    "make_problem": ("problem", "make_problem"),
    "load_problem": ("problem", "load_problem"),
    "Problem": ("problem", "Problem"),
    "simulate": ("simulate", "simulate"),
    "resume": ("simulate", "resume"),
    "load_result": ("result", "load_result"),
    "Result": ("result", "Result"),
}
_SUBMODULES = {"derivatives", "measures", "optimizers", "sde", "slowflow", "symbolic", "predict", "verify",
               "rng", "problem", "parametrization", "kernels", "simulate", "result", "sweep", "cuda",
               "bench", "figures"}

__all__ = ["__version__", "DiagsimError", "DivergenceError", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'diagsim' has no attribute {name!r}")
