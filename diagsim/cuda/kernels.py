"""CUDA kernels: one thread per path, each running the CPU kernels' per-path step functions.

* :func:`em_kernel` — Euler–Maruyama for any :class:`diagsim.sde.models.SDEModel` (drift, diffusion),
  the step of :func:`diagsim.sde.integrator.em_kernel` line for line for a group of one path (the model
  functions take (1, .) row views): increment (Philox "brownian"), drift, b dt, xi += beta dt,
  diffusion, x += b.
* :func:`discrete_kernel` — SGD / Adam with label noise (and GD), the step of
  :func:`diagsim.optimizers._kernel.advance_group` for one path: w, residual and loss (divergence check),
  label noise, coefficients, pullback, chain rule, update.

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


def discrete_kernel():
    """The discrete SGD / Adam kernel (label noise or none), built once."""
    if "discrete" in _CACHE:
        return _CACHE["discrete"]
    from .. import kernels as K
    from ..optimizers import _kernel as OK
    from ..optimizers._linalg import forward_group, pullback_group, w_of
    from ..optimizers.lowering import F_DELTA, F_LR, I_BATCH, OPT_ADAM

    w_of_d = _lazy.device(w_of)
    forward_d = _lazy.device(forward_group)
    pullback_d = _lazy.device(pullback_group)
    noise_d = _lazy.device(OK.draw_noise)
    coef_d = _lazy.device(OK.coefficients)
    chain_d = _lazy.device(K.chain)
    sgd_d = _lazy.device(OK.update_sgd)
    adam_d = _lazy.device(OK.update_adam)

    @cuda.jit
    def kernel(opt, noise, fp, ip, keys, code, depth, Z, ZT, y, theta, m, v, paths, step0, n_steps, active,
               limit, div_step, div_loss, W, R, LOSS, XI, WROW, PERM, C, GW, GR, UBUF):
        p = cuda.grid(1)
        if p >= theta.shape[0]:
            return
        if not active[p]:
            return
        lr = fp[F_LR]
        delta = fp[F_DELTA]
        batch = ip[I_BATCH]
        th = theta[p]
        Wp = W[p:p + 1]
        Rp = R[p:p + 1]
        Lp = LOSS[p:p + 1]
        Cp = C[p:p + 1]
        GWp = GW[p:p + 1]
        for k in range(step0, step0 + n_steps):
            w_of_d(th, code, depth, Wp[0])
            forward_d(ZT, y, Wp, 1, Rp, Lp)
            L = Lp[0]
            if not math.isfinite(L) or L > limit[p]:
                active[p] = False
                div_step[p] = k
                div_loss[p] = L
                break
            noise_d(noise, keys, delta, batch, paths[p], k, XI[p], WROW[p], PERM[p], UBUF[p])
            coef_d(Rp[0], XI[p], WROW[p], 0.0, Rp[0], Cp[0])
            pullback_d(Z, Cp, 1, GWp)
            chain_d(th, code, depth, GWp[0], GR[p])
            if opt == OPT_ADAM:
                adam_d(th, m[p], v[p], GR[p], fp, ip, k)
            else:
                sgd_d(th, GR[p], lr)

    _CACHE["discrete"] = kernel
    return kernel


def noise_kernel():
    """out[p, s, :] <- rng.fill_normals (kind 0) or rng.fill_signs (kind 1) of (paths[p], step0 + s)."""
    if "noise" in _CACHE:
        return _CACHE["noise"]
    from .. import rng

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
