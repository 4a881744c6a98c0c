"""Discrete optimizers over path ensembles (THEORY §3): specifications and Numba step kernels."""
from .specs import (GD, MESA, OPTIMIZERS, SAF, SAM, SGD, AdaGrad, Adalayer, Adam, AdamMini, LabelNoise,
                    Minibatch, NoNoise, Optimizer, RMSProp, from_config)

__all__ = ["GD", "SGD", "Adam", "RMSProp", "AdamMini", "Adalayer", "AdaGrad", "SAM", "SAF", "MESA",
           "LabelNoise", "Minibatch", "NoNoise", "Optimizer", "OPTIMIZERS", "from_config"]
