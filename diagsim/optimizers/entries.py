"""The discrete level's registry: for each optimizer spec, how the one Numba kernel runs it.

An entry (:class:`Discrete`) says

- ``update``: the update rule (a code of :mod:`.updates`);
- ``gradient``: how the step's gradient is formed before the update (the plain noisy gradient, or the
  SAM family's gradient at a perturbed point, or SAF/MESA's trajectory term: codes ``GRAD_*`` of
  :mod:`.lowering`, implemented in the kernel);
- ``pack(opt, problem, fp, ip)``: writes the hyperparameters into the kernel's float and integer arrays
  (indices ``F_*`` / ``I_*`` of :mod:`.lowering`) and returns the block partition when there is one;
- ``state``: the optimizer's state arrays besides theta (:class:`Slot`: name, which kernel argument
  holds it, its shape per path and its initial value);
- ``stats`` and ``hint``: the preconditioner statistics recorded during runs, and the hyperparameter
  named when a path diverges.

Entries are looked up through the spec's class hierarchy (:class:`diagsim.registry.SpecRegistry`), so a
subclass of a spec runs as its parent until it registers an entry of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import DiagsimError
from ..networks.diagonal.parametrization import check_blocks
from ..networks.model import is_diagonal, parameter_blocks
from ..registry import SpecRegistry
from . import specs as S
from . import updates as U
from .lowering import (
    F_ASAM_ETA,
    F_BETA1,
    F_BETA2,
    F_BETA_EMA,
    F_EPS,
    F_FISHER_ETA,
    F_LAM,
    F_LAM_TRA,
    F_RENYI_ALPHA,
    F_RHO,
    F_SPARSITY,
    GRAD_MESA,
    GRAD_PLAIN,
    GRAD_SAF,
    GRAD_SAM,
    I_BATCH,
    I_BIAS,
    I_BLOCK,
    I_DELAY,
    I_M_CHUNKS,
    I_N_BLOCKS,
    I_SQRT,
    I_VARIANT,
    SAM_CODES,
)

#: kernel arguments that hold a state slot: two (M, k) arrays and one (M, a, b) buffer
S1, S2, BUF = 1, 2, 3


@dataclass(frozen=True)
class Slot:
    """One state array besides theta: ``name`` (its key in the state, results and checkpoints), ``arg``
    (S1, S2 or BUF: the kernel argument that holds it) and ``init(problem, opt, theta, low)``, which
    returns its initial value for the start states ``theta`` (M, 2d): shape (M, ...)."""

    name: str
    arg: int
    init: Callable


@dataclass(frozen=True)
class Discrete:
    update: int
    gradient: int = GRAD_PLAIN
    pack: Callable | None = None
    state: tuple = ()
    stats: Callable | None = None
    hint: Callable | None = None


DISCRETE: SpecRegistry[Discrete] = SpecRegistry("the discrete level", "kernel entry")


# --------------------------------------------------------------------------- shared pieces
def _zeros(problem, opt, theta, low):
    return np.zeros_like(theta)


def _v0(problem, opt, theta, low):
    return np.full_like(theta, float(opt.v0))


def _v0_blocks(problem, opt, theta, low):
    return np.full((theta.shape[0], low.block_size.shape[0]), float(opt.v0))


def _theta_copy(problem, opt, theta, low):
    return theta.copy()


def _residual_ring(problem, opt, theta, low):
    # the diagonal family's own product (the numbers its runs have always started from); any other: residual()
    r = problem.w(theta) @ problem.Z.T - problem.y if is_diagonal(problem) else problem.residual(theta)
    return np.ascontiguousarray(np.repeat(r[:, None, :], opt.delay, axis=1))


def preconditioner(lam: float, eps: float, v: np.ndarray) -> np.ndarray:
    """The Adam family's preconditioner 1/(v^lam + eps) of a second moment v (``sqrt`` at lam = 1/2, as the
    update rule evaluates it; docs/theory.md §5.3); the caller chooses v (stored or bias-corrected)."""
    with np.errstate(all="ignore"):
        return 1.0 / ((np.sqrt(v) if lam == 0.5 else v ** lam) + eps)


def _preconditioner_stats(lam: float, eps: float, v: np.ndarray) -> dict:
    """Per path: mean/min/max of v and of 1/(v^lam + eps) (v without bias correction)."""
    pre = preconditioner(lam, eps, v)
    return {"v_mean": v.mean(axis=1), "v_min": v.min(axis=1), "v_max": v.max(axis=1),
            "precond_mean": pre.mean(axis=1), "precond_min": pre.min(axis=1), "precond_max": pre.max(axis=1)}


def _eps_hint(opt) -> str:
    return " (or eps=0 is too small)" if opt.eps == 0.0 else ""


# --------------------------------------------------------------------------- entries
DISCRETE.register(S.GD, Discrete(U.UPDATE_SGD))
DISCRETE.register(S.SGD, Discrete(U.UPDATE_SGD))


def _pack_adam(opt, problem, fp, ip):
    fp[F_BETA1], fp[F_BETA2], fp[F_EPS], fp[F_LAM] = opt.beta1, opt.beta2, opt.eps, opt.lam
    ip[I_BIAS] = int(opt.bias_correction)
    ip[I_SQRT] = int(opt.lam == 0.5)


DISCRETE.register(S.Adam, Discrete(  # and RMSProp, AdamE-lambda
    U.UPDATE_ADAM, pack=_pack_adam, state=(Slot("m", S1, _zeros), Slot("v", S2, _v0)),
    stats=lambda opt, st: _preconditioner_stats(opt.lam, opt.eps, st["v"]), hint=_eps_hint))


def _pack_adam_mini(opt, problem, fp, ip):
    _pack_adam(opt, problem, fp, ip)
    blocks = parameter_blocks(problem) if opt.blocks is None else check_blocks(opt.blocks, problem.dim)
    ip[I_N_BLOCKS] = int(blocks.max()) + 1
    return blocks


DISCRETE.register(S.AdamMini, Discrete(  # and Adalayer
    U.UPDATE_ADAM_MINI, pack=_pack_adam_mini, state=(Slot("m", S1, _zeros), Slot("v", S2, _v0_blocks)),
    stats=lambda opt, st: _preconditioner_stats(opt.lam, opt.eps, st["v"]), hint=_eps_hint))


def _pack_adagrad(opt, problem, fp, ip):
    fp[F_EPS], fp[F_LAM] = opt.eps, 0.5
    ip[I_SQRT] = 1


DISCRETE.register(S.AdaGrad, Discrete(
    U.UPDATE_ADAGRAD, pack=_pack_adagrad, state=(Slot("v", S2, _v0),),
    stats=lambda opt, st: _preconditioner_stats(0.5, opt.eps, st["v"]), hint=_eps_hint))


def _pack_lion(opt, problem, fp, ip):
    fp[F_BETA1], fp[F_BETA2] = opt.beta1, opt.beta2


DISCRETE.register(S.Lion, Discrete(U.UPDATE_LION, pack=_pack_lion, state=(Slot("m", S1, _zeros),)))
DISCRETE.register(S.SignSGD, Discrete(U.UPDATE_SIGN))


def _pack_sam(opt, problem, fp, ip):
    fp[F_RHO], fp[F_ASAM_ETA], fp[F_FISHER_ETA] = opt.rho, opt.asam_eta, opt.fisher_eta
    fp[F_SPARSITY], fp[F_RENYI_ALPHA] = opt.sparsity, opt.renyi_alpha
    ip[I_VARIANT] = SAM_CODES[opt.variant]
    ip[I_M_CHUNKS] = opt.m_chunks
    ip[I_BLOCK] = 0 if opt.block == "u" else 1
    rows = ip[I_BATCH] if isinstance(opt.noise, S.Minibatch) else problem.n
    if opt.variant == "msam" and opt.m_chunks > rows:
        raise DiagsimError(f"m_chunks must be <= the number of rows per step ({rows}); got {opt.m_chunks}")


DISCRETE.register(S.SAM, Discrete(U.UPDATE_SGD, GRAD_SAM, pack=_pack_sam,
                                  hint=lambda opt: f" (or rho={opt.rho:g})"))


def _pack_saf(opt, problem, fp, ip):
    fp[F_LAM_TRA] = opt.lam_tra
    ip[I_DELAY] = opt.delay


DISCRETE.register(S.SAF, Discrete(U.UPDATE_SGD, GRAD_SAF, pack=_pack_saf,
                                  state=(Slot("residuals", BUF, _residual_ring),),
                                  hint=lambda opt: f" (or lam_tra={opt.lam_tra:g})"))


def _pack_mesa(opt, problem, fp, ip):
    fp[F_LAM_TRA], fp[F_BETA_EMA] = opt.lam_tra, opt.beta_ema


DISCRETE.register(S.MESA, Discrete(U.UPDATE_SGD, GRAD_MESA, pack=_pack_mesa,
                                   state=(Slot("ema", S1, _theta_copy),),
                                   hint=lambda opt: f" (or lam_tra={opt.lam_tra:g})"))
