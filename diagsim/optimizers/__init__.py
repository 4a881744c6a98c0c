"""Discrete optimizers over path ensembles (docs/theory.md §5): specifications and the Numba stepper.

``make_stepper(problem, optimizer, seed=0)`` returns the :class:`~diagsim.stepper.Stepper` that
:func:`diagsim.simulate` runs for ``model="discrete"``; importing this package compiles nothing.
"""
from .specs import (GD, MESA, OPTIMIZERS, SAF, SAM, SGD, AdaGrad, Adalayer, Adam, AdamMini, LabelNoise,
                    Minibatch, NoNoise, Optimizer, RMSProp, from_config)

__all__ = ["GD", "SGD", "Adam", "RMSProp", "AdamMini", "Adalayer", "AdaGrad", "SAM", "SAF", "MESA",
           "LabelNoise", "Minibatch", "NoNoise", "Optimizer", "OPTIMIZERS", "from_config", "make_stepper"]


def make_stepper(problem, optimizer, **options):
    """The discrete stepper (see :func:`diagsim.optimizers.discrete.make_stepper`); imported lazily so
    that importing the specs compiles no kernel."""
    from .discrete import make_stepper as _make
    return _make(problem, optimizer, **options)
