"""The model interface every level uses: what a model family must provide so that the discrete optimizers,
the SDE, the slow flows, the recorders and the measures can run on it without knowing its form.

A *model problem* is a regression problem with a parametrized predictor and the square loss

    L(theta) = (1/2n) ||f(theta) - y||^2,      theta in R^P (flat), f(theta) in R^n,

and everything below is *batched over an ensemble of paths*: a state array has shape (M, P) (a single
(P,) state is promoted to (1, P)) and every result has a leading M axis. J = df/dtheta (n x P) is never
required in full; the levels use only its products.

==========================  ===============  ===========================================================
member                      shape            meaning
==========================  ===============  ===========================================================
family                      str              the family's registered name ("diagonal", "matrix", ...)
n, dim                      int              number of samples n, number of parameters P
y                           (n,)             clean labels
theta0(n_paths)             (M, P)           initial states (identical rows)
check_theta(theta)          (M, P)           validated float64 copy/view; a one-line error otherwise
predict(theta)              (M, n)           f(theta)
residual(theta)             (M, n)           r = f(theta) - y
loss(theta)                 (M,)             (1/2n) ||r||^2
gradient(theta)             (M, P)           J^T r / n
jvp(theta, v)               (M, n)           J v, for v of shape (M, P)
vjp(theta, x)               (M, P)           J^T x, for x of shape (M, n)
gn_diag(theta)              (M, P)           (1/n) diag(J^T J), the Gauss-Newton diagonal
gn_diag_vjp(theta, c)       (M, P)           grad_theta sum_i c_i gn_diag(theta)_i for c of shape (M, P)
                                             (c held fixed): the gradients of tr GN (c = 1),
                                             tr diag(GN)^{1/2} (c = 1/(2 sqrt(gn_diag))) and of
                                             tr diag(GN)^{1-lam} that the slow flows need
hvp(theta, v)               (M, P)           H v, H the exact Hessian of L (residual term included)
hessian_diag(theta)         (M, P)           diag H (exact)
hessian(theta)              (M, P, P)        H (small P only; a one-line error above the family's limit)
test_loss(theta)            (M,)             the family's test loss (NaN where it has none)
observables(theta)          dict of (M,)     family-specific records (e.g. l1 / support, nuclear norm)
describe()                  dict             JSON-able description (sizes, seeds, how it was made)
data_arrays()               dict of arrays   every array the results depend on (hashed for caches and
                                             checkpoints)
parameter_blocks()          (P,) int64       OPTIONAL: the default partition of Adam-mini / Adalayer
                                             (block ids 0..B-1); without it, one block of all P
==========================  ===============  ===========================================================

Label noise (docs/theory.md) enters only through these products: the noisy gradient of a step is
``gradient(theta) - vjp(theta, xi) / n`` with xi the step's label-noise vector, and its covariance is
(delta^2 / n^2) J^T J, whose diagonal is ``(delta^2 / n) * gn_diag(theta)``.

Families register here (:func:`register_family`) with a maker (keyword arguments -> problem) and a loader
(``.npz`` path -> problem); :func:`family` finds them by name with a one-line error for an unknown one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import DiagsimError


@runtime_checkable
class ModelProblem(Protocol):
    """See the module docstring for the meaning and shapes of every member."""

    family: str

    @property
    def n(self) -> int: ...

    @property
    def dim(self) -> int: ...

    y: np.ndarray

    def theta0(self, n_paths: int = 1) -> np.ndarray: ...

    def check_theta(self, theta, name: str = "theta") -> np.ndarray: ...

    def predict(self, theta: np.ndarray) -> np.ndarray: ...

    def residual(self, theta: np.ndarray) -> np.ndarray: ...

    def loss(self, theta: np.ndarray) -> np.ndarray: ...

    def gradient(self, theta: np.ndarray) -> np.ndarray: ...

    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray: ...

    def vjp(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray: ...

    def gn_diag(self, theta: np.ndarray) -> np.ndarray: ...

    def gn_diag_vjp(self, theta: np.ndarray, c: np.ndarray) -> np.ndarray: ...

    def hvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray: ...

    def hessian_diag(self, theta: np.ndarray) -> np.ndarray: ...

    def hessian(self, theta: np.ndarray) -> np.ndarray: ...

    def test_loss(self, theta: np.ndarray) -> np.ndarray: ...

    def observables(self, theta: np.ndarray) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict: ...

    def data_arrays(self) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class Family:
    """A registered model family: ``make(**kwargs)`` builds a problem, ``load(path, **kwargs)`` reads one."""

    name: str
    make: Callable[..., Any]
    load: Callable[..., Any]
    doc: str = ""


_FAMILIES: dict[str, Family] = {}


def register_family(name: str, make: Callable[..., Any], load: Callable[..., Any], doc: str = "") -> Family:
    """Record a model family under ``name`` (one registration per family, next to its code)."""
    fam = Family(name, make, load, doc)
    _FAMILIES[name] = fam
    return fam


def family_names() -> list[str]:
    _load_builtin()
    return sorted(_FAMILIES)


def family(name: str) -> Family:
    """The registered family ``name``; an unknown name is a one-line error listing the known ones."""
    _load_builtin()
    if name not in _FAMILIES:
        raise DiagsimError(f"unknown model family {name!r}; known: {', '.join(sorted(_FAMILIES)) or 'none'}")
    return _FAMILIES[name]


#: modules that register the built-in families when imported (imported lazily, on first lookup)
BUILTIN_FAMILY_MODULES: tuple[str, ...] = ("diagsim.networks.diagonal.problem", "diagsim.networks.matrix")


def _load_builtin() -> None:
    import importlib

    for mod in BUILTIN_FAMILY_MODULES:
        importlib.import_module(mod)


def family_of(problem) -> str:
    """The family name of a problem object (``problem.family``), "diagonal" for the diagonal Problem."""
    return getattr(problem, "family", "diagonal")


def parameter_blocks(problem) -> np.ndarray:
    """The default block partition of ``problem`` (its optional ``parameter_blocks()``; else one block of all
    ``dim`` parameters), int64 (P,)."""
    get = getattr(problem, "parameter_blocks", None)
    if callable(get):
        return np.asarray(get(), dtype=np.int64)
    return np.zeros(problem.dim, np.int64)


_DIAGONAL_PROBLEM: list = []  # the diagonal Problem class, imported on first use (that module imports this one)


def is_diagonal(problem) -> bool:
    """Whether ``problem`` is the diagonal family's Problem (which the fast Numba paths run)."""
    if not _DIAGONAL_PROBLEM:
        from .diagonal.problem import Problem
        _DIAGONAL_PROBLEM.append(Problem)
    return isinstance(problem, _DIAGONAL_PROBLEM[0])
