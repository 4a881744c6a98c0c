"""CUDA kernels: one thread per path, each running the CPU kernels' per-path step functions.

* :func:`em_kernel` — Euler–Maruyama for any :class:`diagsim.sde.models.SDEModel` (drift, diffusion),
  the step of :func:`diagsim.sde.integrator.em_kernel` line for line for a group of one path (the model
  functions take (1, .) row views): increment (Philox "brownian"), drift, b dt, xi += beta dt,
  diffusion, x += b.
* :func:`observe_kernel` — the recorded observables of every path (:func:`diagsim.engine.recording.observe_row`,
  the function the CPU records with), so that a run on the GPU records without copying its states back.
* :func:`check_kernel` — the driver's end-of-chunk divergence check for steppers that do not check every
  step (the SDEs), on the device.
* the discrete optimizers' kernels (both layouts) are in :mod:`.warp_kernels`.

Per-path scratch lives in global memory (rows of arrays allocated by the host). Kernels are built on
first use (numba.cuda is imported only then) and cached per model functions.
"""
from __future__ import annotations

import math

from . import _lazy

#: numba.cuda, through the lazy module (this module is imported only when a kernel is needed). A module
#: global, so that the CUDA simulator can swap in its fake module while a kernel runs.
cuda = _lazy.cuda()

_CACHE: dict = {}


def em_kernel(drift, diffusion):
    """The EM kernel for one model's (drift, diffusion) pair (built once, cached)."""
    key = ("em", drift, diffusion)
    if key in _CACHE:
        return _CACHE[key]
    from ..sde.brownian import increment as _increment
    from ..sde.integrator import add_rows, scale_drift

    inc = _lazy.device(_increment)
    scale_drift_d = _lazy.device(scale_drift)
    add_rows_d = _lazy.device(add_rows)
    drift_d = _lazy.device(drift)
    diff_d = _lazy.device(diffusion)

    @cuda.jit
    def kernel(X, paths, active, step0, n_steps, dt, sub, noise_scale, k0, k1,
               Z, ZT, y, s, fpar, ipar, B, BETA, XI, STACK, WORK, HEALTH):
        p = cuda.grid(1)
        if p >= X.shape[0]:
            return
        if not active[p]:
            return
        args = (Z, ZT, y, s, fpar, ipar)
        # a group of one path: rows p of the (M, .) arrays, as (1, .) views
        x = X[p:p + 1]
        b = B[p:p + 1]
        beta = BETA[p:p + 1]
        xi = XI[p:p + 1]
        health = HEALTH[p:p + 1]
        stack = STACK[p]
        work = WORK[p]
        n_noise = XI.shape[1]
        pid = paths[p]
        if noise_scale == 0.0:
            for j in range(n_noise):
                xi[0, j] = 0.0
        for k in range(step0, step0 + n_steps):
            t = k * dt
            if noise_scale != 0.0:
                inc(k0, k1, pid, k, sub, noise_scale, xi[0], stack)
            drift_d(x, 1, t, args, work, b, beta, health)
            if not math.isfinite(health[0]):
                active[p] = False
                break
            scale_drift_d(b, beta, xi, 1, dt)
            diff_d(x, 1, t, args, work, xi, b)
            add_rows_d(x, b, 1)
            if noise_scale == 0.0:
                for j in range(n_noise):
                    xi[0, j] = 0.0

    _CACHE[key] = kernel
    return kernel


def noise_kernel():
    """out[p, s, :] <- rng.fill_normals (kind 0) or rng.fill_signs (kind 1) of (paths[p], step0 + s)."""
    if "noise" in _CACHE:
        return _CACHE["noise"]
    from ..lowlevel import rng

    normals_d = _lazy.device(rng.fill_normals)
    signs_d = _lazy.device(rng.fill_signs)

    @cuda.jit
    def kernel(kind, k0, k1, paths, step0, scale, out):
        p = cuda.grid(1)
        if p >= out.shape[0]:
            return
        for s in range(out.shape[1]):
            if kind == 0:
                normals_d(k0, k1, paths[p], step0 + s, out[p, s], scale)
            else:
                signs_d(k0, k1, paths[p], step0 + s, out[p, s], scale)

    _CACHE["noise"] = kernel
    return kernel


def observe_kernel():
    """out[p] <- observe_row(theta[p]) for every row (scratch rows per path)."""
    if "observe" in _CACHE:
        return _CACHE["observe"]
    from ..engine.recording import observe_row

    observe_d = _lazy.device(observe_row)

    @cuda.jit
    def kernel(theta, code, depth, Z, ZT, y, s, rs, w_star, Zt, yt, test_kind, threshold, W, R, GW, DIAG, out):
        p = cuda.grid(1)
        if p >= theta.shape[0]:
            return
        observe_d(theta[p], code, depth, Z, ZT, y, s, rs, w_star, Zt, yt, test_kind, threshold, W[p], R[p], GW[p],
                  DIAG[p], out[p])

    _CACHE["observe"] = kernel
    return kernel


def check_kernel():
    """The driver's end-of-chunk divergence check at step k (see diagsim.engine.driver): a path's loss is
    NaN when its state is not finite; an active path whose loss is not finite or above its limit stops,
    and so does a path the stepper stopped without saying when; both get div_step = k, div_loss = loss."""
    if "check" in _CACHE:
        return _CACHE["check"]
    from ..networks.diagonal.grouped import forward_strided, loss_of, w_of_strided

    w_d = _lazy.device(w_of_strided)
    fwd_d = _lazy.device(forward_strided)
    loss_d = _lazy.device(loss_of)

    @cuda.jit
    def kernel(theta, code, depth, ZT, y, limit, active, div_step, div_loss, k, W, R):
        p = cuda.grid(1)
        if p >= theta.shape[0]:
            return
        stopped = (not active[p]) and div_step[p] < 0
        if not (active[p] or stopped):
            return
        th = theta[p]
        L = math.nan
        finite = True
        for i in range(th.shape[0]):
            if not math.isfinite(th[i]):
                finite = False
        if finite:
            w_d(th, code, depth, W[p], 0, 1)
            fwd_d(ZT, y, W[p], R[p], 0, 1)
            L = loss_d(R[p])
        if stopped or not math.isfinite(L) or L > limit[p]:
            active[p] = False
            div_step[p] = k
            div_loss[p] = L

    _CACHE["check"] = kernel
    return kernel
