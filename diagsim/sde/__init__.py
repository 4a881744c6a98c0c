"""Continuous-time models of the optimizers (docs/theory.md §7), integrated by Euler–Maruyama over ensembles.

Modules, one job each (the diffrax separation): :mod:`~diagsim.sde.integrator` (the step rule, generic over
models), :mod:`~diagsim.sde.brownian` (the noise source), :mod:`~diagsim.sde.models` (drift and diffusion of
each optimizer's SDE), :mod:`~diagsim.sde.testproblems` (SDEs with known solutions),
:mod:`~diagsim.sde.stability` (step-size safety) and :mod:`~diagsim.sde.stepper` (the Stepper that
``simulate(..., model="sde")`` runs).
"""
from .brownian import BrownianPath as BrownianPath
from .brownian import increments as increments
from .integrator import integrate as integrate
from .models import SDEModel as SDEModel
from .models import adam_sde as adam_sde
from .models import gradient_flow as gradient_flow
from .models import sgd_label_noise as sgd_label_noise
from .stepper import SDEStepper as SDEStepper
from .stepper import make_stepper as make_stepper
from .stepper import model_for as model_for

__all__ = ["BrownianPath", "increments", "integrate", "SDEModel", "adam_sde", "gradient_flow",
           "sgd_label_noise", "SDEStepper", "make_stepper", "model_for"]
