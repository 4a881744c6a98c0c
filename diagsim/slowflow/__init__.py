"""Slow flows on the manifold of minimizers (docs/theory.md §8): the implicit regularization at tau = lr^2 k.

:mod:`~diagsim.slowflow.flows` defines the vector fields (SGD's -(c/4) P grad tr H and the adaptive
semi-gradient flows) and their Lyapunov functions; :mod:`~diagsim.slowflow.stepper` integrates them
(explicit Euler in tau + Newton retraction) as the Stepper that ``simulate(..., model="slow-flow")`` runs.
"""
from .flows import SlowFlow as SlowFlow
from .stepper import SlowFlowStepper as SlowFlowStepper
from .stepper import flow_for as flow_for
from .stepper import gradient_flow_limit as gradient_flow_limit
from .stepper import make_stepper as make_stepper

__all__ = ["SlowFlow", "SlowFlowStepper", "flow_for", "gradient_flow_limit", "make_stepper"]
