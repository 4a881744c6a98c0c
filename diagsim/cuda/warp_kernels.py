"""Warp-per-path CUDA kernels: one block of 32 threads (one warp) advances one path.

The thread-per-path kernels of :mod:`.thread_kernels` run any model but leave a GPU mostly idle below tens of
thousands of paths: each thread does a whole path's products alone, one dependent operation after the
other. Here the 32 lanes of a warp split a path's *outputs*: lane l computes the entries l, l + 32, ...
of w, of r = Z w - y and of Z^T c, the chain rule and the update. Every entry is computed by the same
operations in the same order as on the CPU (the ``*_strided`` functions are the CPU kernels' loops with
a start and a stride; see :mod:`diagsim.networks.diagonal.grouped`), so the split changes no number: under the
CUDA simulator a path is bitwise the CPU's, on a device it differs only where the device compiler
contracts differently.

Covered: the label-noise SGD SDE and gradient flow (``diagsim.sde``, models "sgd-label-noise" /
"gradient-flow", one Brownian sub-step per step), and the discrete optimizers whose gradient is the plain
noisy gradient or SAF's / MESA's and whose update rule is element-wise (:func:`discrete_kernel`, which
also builds the one-thread-per-path layout that runs every discrete optimizer).
Barriers are ``cuda.syncthreads()`` of the one-warp block: every lane of a block follows the same control
flow (the divergence test reads the loss, which every lane computes from the same residual).
"""
from __future__ import annotations

import math

from . import _lazy

cuda = _lazy.cuda()

#: lanes per path of the layouts that spread a path over threads: a warp, or a whole block (few long
#: paths: d in the thousands and a handful of paths, where one warp per path leaves the GPU idle)
LAYOUT_LANES = {"warp": 32, "block": 256}
LANES = LAYOUT_LANES["warp"]

_CACHE: dict = {}


def em_label_noise_kernel(lanes: int = LANES):
    """EM for dtheta = -grad L dt + a J^T dB (label-noise SGD SDE; a = 0: gradient flow), ``lanes`` threads
    per path (launch ``[M, lanes]``)."""
    key = ("em", lanes)
    if key in _CACHE:
        return _CACHE[key]
    from ..lowlevel import rng
    from ..networks.diagonal.grouped import forward_strided, loss_of, pullback_strided, w_of_strided
    from ..sde.models import jt_step_strided, label_noise_xi_strided

    normals_d = _lazy.device(rng.fill_normals_strided)
    w_d = _lazy.device(w_of_strided)
    fwd_d = _lazy.device(forward_strided)
    loss_d = _lazy.device(loss_of)
    xi_d = _lazy.device(label_noise_xi_strided)
    pull_d = _lazy.device(pullback_strided)
    jt_d = _lazy.device(jt_step_strided)

    @cuda.jit
    def kernel(X, paths, active, step0, n_steps, dt, noise_scale, k0, k1, Z, ZT, y, code, depth,
               W, R, XI, GZ):
        p = cuda.blockIdx.x
        lane = cuda.threadIdx.x
        if p >= X.shape[0]:
            return
        if not active[p]:
            return
        x = X[p]
        w = W[p]
        r = R[p]
        xi = XI[p]
        gz = GZ[p]
        n = Z.shape[0]
        inv_n = 1.0 / n
        pid = paths[p]
        for k in range(step0, step0 + n_steps):
            if noise_scale != 0.0:
                normals_d(k0, k1, pid, k, xi, noise_scale, lane, lanes)
            else:
                for j in range(lane, n, lanes):
                    xi[j] = 0.0
            w_d(x, code, depth, w, lane, lanes)
            cuda.syncthreads()
            fwd_d(ZT, y, w, r, lane, lanes)
            cuda.syncthreads()
            L = loss_d(r)
            if not math.isfinite(L):
                if lane == 0:
                    active[p] = False
                break
            xi_d(r, xi, inv_n, dt, lane, lanes)
            cuda.syncthreads()
            pull_d(Z, xi, gz, lane, lanes)
            jt_d(x, code, depth, gz, dt, lane, lanes)  # entries i, d + i: gz[i] is this lane's own
            cuda.syncthreads()

    _CACHE[key] = kernel
    return kernel


def discrete_kernel(lanes: int = LANES):
    """Every discrete optimizer, ``lanes`` threads per path: the step of
    :func:`diagsim.optimizers.step_loop.advance_group` for a group of one path, with the same per-entry
    functions.

    The data and the optimizer's parameters are stacked by job, ``ZS`` (G, n, d), ``ZTS`` (G, d, n), ``YS``
    (G, n), ``FP`` / ``IP`` / ``KEYS`` (G, .), and path p runs job ``job[p]``: the jobs of a sweep or a phase
    diagram that share d and the optimizer family run in one launch (:mod:`diagsim.engine.batched`; G = 1
    for a single run). Job g has ``NS[g]`` samples; its data are padded with zero rows to the largest n of
    the launch, and the path works on views of its job's first ``NS[g]`` rows of Z, y and of its per-sample
    scratch (residual, noise, row weights, rows of the minibatch), so every mean over samples, every noise
    draw and every sum runs over the job's own n entries in index order, as the job alone: the padding is
    never read.

    ``lanes`` > 1: one warp (32) or one block (256) per path (launch ``[M, lanes]``) for the optimizers
    whose gradient is the plain noisy gradient or SAF's / MESA's and whose update rule is element-wise;
    ``lanes`` = 1: one thread per path (launch ``[ceil(M / 128), 128]``; no barriers are compiled in),
    every optimizer (the SAM family's perturbations and Adam-mini's block update run on one thread). Every
    entry is computed by one lane with the CPU's operations in the CPU's order (sums over i or j in index
    order), so the layouts give the same numbers.
    """
    key = ("discrete", lanes)
    if key in _CACHE:
        return _CACHE[key]
    from ..networks.diagonal import pathwise as K
    from ..networks.diagonal.grouped import forward_strided, loss_of, pullback_strided, w_of_strided
    from ..optimizers import step_loop as OK
    from ..optimizers import updates as OU
    from ..optimizers.lowering import (
        F_BETA_EMA,
        F_DELTA,
        F_LAM_TRA,
        GRAD_MESA,
        GRAD_SAF,
        GRAD_SAM,
        I_BATCH,
        I_DELAY,
        I_M_CHUNKS,
        I_VARIANT,
        V_MSAM,
    )

    w_d = _lazy.device(w_of_strided)
    fwd_d = _lazy.device(forward_strided)
    loss_d = _lazy.device(loss_of)
    noise_d = _lazy.device(OK.draw_noise)
    coef_d = _lazy.device(OK.coefficients)
    pull_d = _lazy.device(pullback_strided)
    chain_d = _lazy.device(K.chain_strided)
    elementwise_d = _lazy.device(OU.apply_elementwise)
    update_d = _lazy.device(OU.apply_update)
    perturb_d = _lazy.device(OK.perturbation)
    msam_d = _lazy.device(OK.msam_gradient)
    ema_d = _lazy.device(OK.ema_update_strided)
    SHARED = lanes > 1

    @cuda.jit
    def kernel(gradient, update, noise, FP, IP, KEYS, blocks, bsize, code, depth, NS, ZS, ZTS, YS, job, theta, s1, s2,
               buf, paths, step0, n_steps, active, limit, div_step, div_loss,
               W, R, R2, XI, WROW, PERM, C, GW, GR, TH, UBUF, SUMS, TD1, TD2, TM1, TM2, ORD, OTMP):
        g = cuda.grid(1)
        p = g // lanes
        lane = g - p * lanes
        if p >= theta.shape[0]:
            return
        if not active[p]:
            return
        # the job of this path: its problem's data and its optimizer's parameters (one launch, many jobs);
        # views of the job's own nj samples (the rows past nj pad a smaller job to the launch's largest n)
        jb = job[p]
        fp = FP[jb]
        ip = IP[jb]
        keys = KEYS[jb]
        nj = NS[jb]
        Z = ZS[jb, :nj]
        ZT = ZTS[jb, :, :nj]
        y = YS[jb, :nj]
        delta = fp[F_DELTA]
        batch = ip[I_BATCH]
        variant = ip[I_VARIANT]
        delay = ip[I_DELAY]
        beta_ema = fp[F_BETA_EMA]
        two_lam = 2.0 * fp[F_LAM_TRA] if (gradient == GRAD_SAF or gradient == GRAD_MESA) else 0.0
        th = theta[p]
        w = W[p]
        r = R[p, :nj]
        rhat = R2[p, :nj]
        c = C[p, :nj]
        xi = XI[p, :nj]
        wrow = WROW[p, :nj]
        perm = PERM[p, :nj]
        gw = GW[p]
        gr = GR[p]
        n = nj
        for k in range(step0, step0 + n_steps):
            # the reference residual of SAF (stored delay steps ago) or MESA (of the EMA model, slot s1)
            if gradient == GRAD_SAF:
                rhat = buf[p, k % delay, :nj]
            elif gradient == GRAD_MESA:
                w_d(s1[p], code, depth, w, lane, lanes)
                if SHARED:
                    cuda.syncthreads()
                fwd_d(ZT, y, w, rhat, lane, lanes)
                if SHARED:
                    cuda.syncthreads()
            w_d(th, code, depth, w, lane, lanes)
            if SHARED:
                cuda.syncthreads()
            fwd_d(ZT, y, w, r, lane, lanes)
            if SHARED:
                cuda.syncthreads()
            L = loss_d(r)
            if not math.isfinite(L) or L > limit[p]:
                if lane == 0:
                    active[p] = False
                    div_step[p] = k
                    div_loss[p] = L
                break
            n_rows = n
            if lane == 0:  # n entries of noise and coefficients: one lane
                n_rows = noise_d(noise, keys, delta, batch, paths[p], k, xi, wrow, perm, UBUF[p])
                coef_d(r, xi, wrow, two_lam, rhat, c)
            if SHARED:
                cuda.syncthreads()
            if gradient == GRAD_SAF:  # this step's residual goes into the slot just read
                for j in range(lane, n, lanes):
                    buf[p, k % delay, j] = r[j]
            pull_d(Z, c, gw, lane, lanes)
            chain_d(th, code, depth, gw, gr, lane, lanes)  # entries i, d + i: gw[i] is this lane's own
            if SHARED:
                cuda.syncthreads()
            if gradient == GRAD_SAM:  # one thread per path: the gradient at theta + eps, the same noise
                if variant == V_MSAM:
                    msam_d(code, depth, Z, y, fp, ip[I_M_CHUNKS], th, r, xi, perm, n_rows, gr, TD1[p],
                           TM1[p], TM2[p], TD2[p])
                else:
                    tp = TH[p]
                    perturb_d(variant, fp, ip, keys, paths[p], k, th, gr, tp, UBUF[p], TM1[p], ORD[p], OTMP[p])
                    w_d(tp, code, depth, w, 0, 1)
                    fwd_d(ZT, y, w, r, 0, 1)
                    coef_d(r, xi, wrow, 0.0, r, c)
                    pull_d(Z, c, gw, 0, 1)
                    chain_d(tp, code, depth, gw, gr, 0, 1)
            if SHARED:
                elementwise_d(update, th, s1[p], s2[p], gr, fp, ip, k, lane, lanes)
                cuda.syncthreads()
            else:
                update_d(update, th, s1[p], s2[p], gr, fp, ip, blocks, bsize, SUMS[p], k)
            if gradient == GRAD_MESA:  # the EMA copy follows the new theta
                ema_d(s1[p], th, beta_ema, lane, lanes)
                if SHARED:
                    cuda.syncthreads()

    _CACHE[key] = kernel
    return kernel


def runs_on_warps(gradient: int, update: int) -> bool:
    """Whether the warp-per-path layout covers an optimizer (else one thread per path runs it)."""
    from ..optimizers.lowering import GRAD_SAM
    from ..optimizers.updates import ELEMENTWISE
    return gradient != GRAD_SAM and update in ELEMENTWISE
