"""Lower an optimizer specification to the integer codes and float64 arrays the Numba kernel consumes.

Numba cannot dispatch on dataclasses inside compiled code, so each spec of :mod:`.specs` becomes

    opt      integer family code (OPT_*)
    noise    integer noise code (NOISE_*)
    fp       float64 hyperparameters, indexed by the F_* constants
    ip       int64 hyperparameters, indexed by the I_* constants
    keys     uint64 Philox keys (k0, k1) of the streams "label_noise", "minibatch", "sam"
    blocks   int64 (2d,) block id of every parameter (Adam-mini / Adalayer), block_size float64 (n_blocks,)

and is checked against the problem (block partition of length 2d, batch size <= n, m_chunks <= rows).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import rng
from ..errors import DiagsimError
from . import specs as S

# optimizer families
OPT_SGD, OPT_ADAM, OPT_ADAM_MINI, OPT_ADAGRAD, OPT_SAM, OPT_SAF, OPT_MESA = range(7)
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
    opt: int
    noise: int
    fp: np.ndarray
    ip: np.ndarray
    keys: np.ndarray
    blocks: np.ndarray
    block_size: np.ndarray
    state_names: tuple  # auxiliary state arrays besides "theta"


def default_blocks(d: int) -> np.ndarray:
    """The {u, v} partition: block 0 = u (first d parameters), block 1 = v."""
    return np.concatenate([np.zeros(d, np.int64), np.ones(d, np.int64)])


def check_blocks(blocks, dim: int) -> np.ndarray:
    """Validate a partition given as one block id per parameter: length 2d, ids 0..B-1 all used."""
    b = np.asarray(blocks)
    if b.ndim != 1 or b.shape[0] != dim:
        raise DiagsimError(f"blocks must give one block id per parameter (length 2d = {dim}), "
                           f"got length {b.shape[0] if b.ndim == 1 else b.shape}")
    b = b.astype(np.int64)
    nb = int(b.max()) + 1
    used = np.bincount(b, minlength=nb)
    if np.any(used == 0):
        missing = int(np.flatnonzero(used == 0)[0])
        raise DiagsimError(f"blocks must use the ids 0..{nb - 1} without gaps; block {missing} is empty")
    return b


def lower(problem, opt: S.Optimizer, seed: int) -> Lowered:
    """Codes and parameter arrays of ``opt`` on ``problem``, noise keyed by ``seed``."""
    if not isinstance(opt, S.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec (SGD(...), Adam(...), ...); got {opt!r}")
    fp = np.zeros(N_FP)
    ip = np.zeros(N_IP, np.int64)
    fp[F_LR] = opt.lr
    n, dim = problem.n, problem.dim
    blocks = np.zeros(0, np.int64)
    block_size = np.zeros(0)
    names: tuple = ()

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

    if isinstance(opt, S.Adam):  # Adam, RMSProp, AdamE-lambda, Adam-mini, Adalayer
        fp[F_BETA1], fp[F_BETA2], fp[F_EPS], fp[F_LAM] = opt.beta1, opt.beta2, opt.eps, opt.lam
        ip[I_BIAS] = int(opt.bias_correction)
        ip[I_SQRT] = int(opt.lam == 0.5)
        names = ("m", "v")
        if isinstance(opt, S.AdamMini):
            code = OPT_ADAM_MINI
            blocks = default_blocks(problem.d) if opt.blocks is None else check_blocks(opt.blocks, dim)
            block_size = np.bincount(blocks).astype(np.float64)
            ip[I_N_BLOCKS] = block_size.shape[0]
        else:
            code = OPT_ADAM
    elif isinstance(opt, S.AdaGrad):
        code = OPT_ADAGRAD
        fp[F_EPS], fp[F_LAM] = opt.eps, 0.5
        ip[I_SQRT] = 1
        names = ("v",)
    elif isinstance(opt, S.SAM):
        code = OPT_SAM
        fp[F_RHO], fp[F_ASAM_ETA], fp[F_FISHER_ETA] = opt.rho, opt.asam_eta, opt.fisher_eta
        fp[F_SPARSITY], fp[F_RENYI_ALPHA] = opt.sparsity, opt.alpha
        ip[I_VARIANT] = SAM_CODES[opt.variant]
        ip[I_M_CHUNKS] = opt.m_chunks
        ip[I_BLOCK] = 0 if opt.block == "u" else 1
        rows = ip[I_BATCH] if code_noise == NOISE_MINIBATCH else n
        if opt.variant == "msam" and opt.m_chunks > rows:
            raise DiagsimError(f"m_chunks must be <= the number of rows per step ({rows}); got {opt.m_chunks}")
    elif isinstance(opt, S.SAF):
        code = OPT_SAF
        fp[F_LAM_TRA] = opt.lam_tra
        ip[I_DELAY] = opt.delay
        names = ("residuals",)
    elif isinstance(opt, S.MESA):
        code = OPT_MESA
        fp[F_LAM_TRA], fp[F_BETA_EMA] = opt.lam_tra, opt.beta_ema
        names = ("ema",)
    elif isinstance(opt, (S.SGD, S.GD)):
        code = OPT_SGD
    else:  # pragma: no cover - every spec class is handled above
        raise DiagsimError(f"no discrete kernel for optimizer {opt.name!r}")

    keys = np.array([*rng.key_for(seed, "label_noise"), *rng.key_for(seed, "minibatch"),
                     *rng.key_for(seed, "sam")], dtype=np.uint64)
    return Lowered(code, code_noise, fp, ip, keys, blocks, block_size, names)
