"""Lower an optimizer specification to the integer codes and float64 arrays the Numba kernel consumes.

Numba cannot dispatch on dataclasses inside compiled code, so each spec of :mod:`.specs` becomes

    gradient integer code of how the step's gradient is formed (GRAD_*)
    update   integer code of the update rule (:mod:`.updates`)
    noise    integer noise code (NOISE_*)
    fp       float64 hyperparameters, indexed by the F_* constants
    ip       int64 hyperparameters, indexed by the I_* constants
    keys     uint64 Philox keys (k0, k1) of the streams "label_noise", "minibatch", "sam"
    blocks   int64 (2d,) block id of every parameter (Adam-mini / Adalayer), block_size float64 (n_blocks,)
    slots    the optimizer's state arrays besides theta (:class:`.entries.Slot`)

What each optimizer puts where is its entry in the discrete registry (:mod:`.registry`); the noise is
lowered here for all of them. Everything is checked against the problem (block partition of length 2d,
batch size <= n, m_chunks <= rows).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DiagsimError
from ..lowlevel import rng
from . import specs as S

# how the step's gradient is formed: the plain noisy gradient, the SAM family's gradient at theta + eps,
# SAF's and MESA's trajectory term against stored / EMA outputs
GRAD_PLAIN, GRAD_SAM, GRAD_SAF, GRAD_MESA = range(4)
# noise models
NOISE_NONE, NOISE_RADEMACHER, NOISE_GAUSSIAN, NOISE_MINIBATCH = range(4)
# SAM variants, in the order of specs.SAM_VARIANTS
SAM_CODES = {name: i for i, name in enumerate(S.SAM_VARIANTS)}
V_SAM, V_USAM, V_MSAM, V_ASAM, V_FISHER, V_SSAM_F, V_SSAM_D, V_BLOCK, V_RSAM = range(9)
assert tuple(SAM_CODES.values()) == (V_SAM, V_USAM, V_MSAM, V_ASAM, V_FISHER, V_SSAM_F, V_SSAM_D,
                                     V_BLOCK, V_RSAM)

# float parameters
(F_LR, F_BETA1, F_BETA2, F_EPS, F_LAM, F_RHO, F_ASAM_ETA, F_FISHER_ETA, F_SPARSITY, F_RENYI_ALPHA,
 F_LAM_TRA, F_BETA_EMA, F_DELTA) = range(13)
N_FP = 13
# integer parameters
I_VARIANT, I_M_CHUNKS, I_BLOCK, I_DELAY, I_BATCH, I_BIAS, I_N_BLOCKS, I_SQRT = range(8)
N_IP = 8


@dataclass(frozen=True)
class Lowered:
    gradient: int
    update: int
    noise: int
    fp: np.ndarray
    ip: np.ndarray
    keys: np.ndarray
    blocks: np.ndarray
    block_size: np.ndarray
    slots: tuple  # the optimizer's state arrays besides "theta" (registry.Slot)

    @property
    def state_names(self) -> tuple:
        return tuple(s.name for s in self.slots)


def lower(problem, opt: S.Optimizer, seed: int) -> Lowered:
    """Codes and parameter arrays of ``opt`` on ``problem``, noise keyed by ``seed``."""
    from .entries import DISCRETE
    if not isinstance(opt, S.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec (SGD(...), Adam(...), ...); got {opt!r}")
    entry = DISCRETE.lookup(opt)
    fp = np.zeros(N_FP)
    ip = np.zeros(N_IP, np.int64)
    fp[F_LR] = opt.lr
    n = problem.n
    noise = opt.noise
    if isinstance(noise, S.LabelNoise):
        code_noise = NOISE_RADEMACHER if noise.dist == "rademacher" else NOISE_GAUSSIAN
        fp[F_DELTA] = noise.delta
    elif isinstance(noise, S.Minibatch):
        code_noise = NOISE_MINIBATCH
        if noise.batch_size > n:
            raise DiagsimError(f"batch_size must be <= n = {n} (rows are drawn without replacement); "
                               f"got {noise.batch_size}")
        ip[I_BATCH] = noise.batch_size
    else:
        code_noise = NOISE_NONE
    blocks = entry.pack(opt, problem, fp, ip) if entry.pack is not None else None
    if blocks is None:
        blocks, block_size = np.zeros(0, np.int64), np.zeros(0)
    else:
        block_size = np.bincount(blocks).astype(np.float64)
    keys = np.array([*rng.key_for(seed, "label_noise"), *rng.key_for(seed, "minibatch"),
                     *rng.key_for(seed, "sam")], dtype=np.uint64)
    return Lowered(entry.gradient, entry.update, code_noise, fp, ip, keys, blocks, block_size, entry.state)
