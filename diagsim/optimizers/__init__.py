"""Discrete optimizers over path ensembles (docs/theory.md §5): specifications and the Numba stepper.

``make_stepper(problem, optimizer, seed=0)`` returns the :class:`~diagsim.engine.stepper.Stepper` that
:func:`diagsim.simulate` runs for ``model="discrete"``; importing this package compiles nothing. Every
public name of :mod:`.specs` (the noise models and every optimizer spec) is available from here.
"""
from .specs import *  # noqa: F403 - the specs module lists its public names in __all__
from .specs import __all__ as _SPECS

__all__ = [*_SPECS, "make_stepper"]


def make_stepper(problem, optimizer, **options):
    """The discrete stepper (see :func:`diagsim.optimizers.discrete.make_stepper`); imported lazily so
    that importing the specs compiles no kernel."""
    from .discrete import make_stepper as _make
    return _make(problem, optimizer, **options)
