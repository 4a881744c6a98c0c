"""The Numba kernel that advances an ensemble of paths of any discrete optimizer (docs/theory.md §4-5).

One compiled kernel serves every optimizer: the family, noise model and SAM variant are integer codes
(see :mod:`.lowering`). Layout of the work:

* ``prange`` over *groups* of consecutive paths is the outer loop; the step loop runs inside, so a
  path's state stays in cache for the whole chunk of steps. The products with Z of a group run in
  lockstep (:mod:`diagsim.networks.diagonal.grouped`), the rest per path. Each path is computed by one
  thread in a fixed order and its arithmetic does not depend on the group, so serial and parallel runs are
  bitwise equal, a path replayed alone reproduces itself and adding paths changes nothing.
* All randomness comes from :mod:`diagsim.lowlevel.rng`, addressed by (key, global path id, step, index).

One step k of a path (theta_k -> theta_{k+1}):

1. Noise (:func:`draw_noise`): label noise xi (Rademacher ±delta or delta N(0, 1); rows weighted 1/n), or
   a minibatch (B rows without replacement, weighted 1/B; xi = 0), or none.
2. The noisy gradient (:func:`noisy_gradient_group`, the one gradient every optimizer uses):
   ``r = Z w(theta_k) - y``, the clean loss ``L_k = |r|^2 / 2n`` and ``g = J^T c`` with
   ``c_j = a_j (r_j - xi_j [+ 2 lam_tra (r_j - rhat_j)])``; for SAF/MESA ``rhat`` is the residual of the
   stored / EMA model, so ``r - rhat = f - fhat``.
3. If ``L_k`` is not finite or exceeds ``limit[path]`` the path stops here: ``active = False``,
   ``div_step = k``, ``div_loss = L_k``, and theta stays theta_k.
4. The SAM family forms the perturbation (:func:`perturbation`) and evaluates the gradient at
   theta + eps with the *same* noise; then the optimizer's update rule (:mod:`.updates`); MESA's EMA
   copy follows theta.
"""
from __future__ import annotations

import math

import numpy as np

from ..lowlevel.jit import jit, pjit, prange
from ..lowlevel.rng import fill_normals, fill_signs, fill_uniforms
from ..networks.diagonal import pathwise as K
from ..networks.diagonal.grouped import forward_group, pullback_group, w_of
from .lowering import (
    F_ASAM_ETA,
    F_BETA_EMA,
    F_DELTA,
    F_FISHER_ETA,
    F_LAM_TRA,
    F_RENYI_ALPHA,
    F_RHO,
    F_SPARSITY,
    GRAD_MESA,
    GRAD_SAF,
    GRAD_SAM,
    I_BATCH,
    I_BLOCK,
    I_DELAY,
    I_M_CHUNKS,
    I_N_BLOCKS,
    I_VARIANT,
    NOISE_GAUSSIAN,
    NOISE_MINIBATCH,
    NOISE_RADEMACHER,
    V_ASAM,
    V_BLOCK,
    V_FISHER,
    V_MSAM,
    V_RSAM,
    V_SAM,
    V_SSAM_D,
    V_SSAM_F,
    V_USAM,
)
from .updates import apply_update


# --------------------------------------------------------------------------- noise and gradient
@jit
def draw_noise(noise, keys, delta, batch, path, step, xi, wrow, perm, ubuf):
    """Noise of one (path, step); returns the number of rows R used by the step.

    Fills xi (n,) (label noise; 0 otherwise), wrow (n,) row weights a_j and perm (n,) whose first R
    entries are the rows used, in order.

    Minibatch sampling (stream "minibatch"): uniforms u_0..u_{B-1} of (path, step); a partial
    Fisher-Yates shuffle of 0..n-1: for i < B swap perm[i] and perm[i + floor(u_i (n - i))]. The batch is
    perm[:B] (B distinct rows, every B-subset equally likely), each weighted 1/B.
    """
    n = xi.shape[0]
    for j in range(n):
        perm[j] = j
        xi[j] = 0.0
    if noise == NOISE_MINIBATCH:
        u = ubuf[:batch]
        fill_uniforms(keys[2], keys[3], path, step, u)
        for i in range(batch):
            j = i + int(u[i] * (n - i))
            if j > n - 1:
                j = n - 1
            t = perm[i]
            perm[i] = perm[j]
            perm[j] = t
        for j in range(n):
            wrow[j] = 0.0
        wb = 1.0 / batch
        for i in range(batch):
            wrow[perm[i]] = wb
        return batch
    wn = 1.0 / n
    for j in range(n):
        wrow[j] = wn
    if noise == NOISE_RADEMACHER:
        fill_signs(keys[0], keys[1], path, step, xi, delta)
    elif noise == NOISE_GAUSSIAN:
        fill_normals(keys[0], keys[1], path, step, xi, delta)
    return n


@jit
def coefficients(r, xi, wrow, two_lam, rhat, c):
    """c_j = a_j ((r_j - xi_j) + 2 lam_tra (r_j - rhat_j))   (the second term only if two_lam != 0)."""
    n = r.shape[0]
    if two_lam == 0.0:
        for j in range(n):
            c[j] = wrow[j] * (r[j] - xi[j])
    else:
        for j in range(n):
            c[j] = wrow[j] * ((r[j] - xi[j]) + two_lam * (r[j] - rhat[j]))


@jit
def noisy_gradient_group(code, depth, Z, ZT, y, TH, rows, ns, XI, WROW, two_lam, RHAT, W, R, LOSS, C, GW, GR):
    """The one noisy gradient of every optimizer, for a group of paths in lockstep.

    For s < ns and theta_s = TH[rows[s]]: W[s] = w(theta_s), R[s] = Z W[s] - y, LOSS[s] = |R[s]|^2 / 2n
    (the clean loss), C[s] = a (r - xi [+ 2 lam_tra (r - rhat)]) (:func:`coefficients`; RHAT is read only
    if two_lam != 0), GW[s] = Z^T C[s] and GR[s] = J(theta_s)^T C[s] (:func:`diagsim.networks.diagonal.pathwise.chain`).
    """
    for s in range(ns):
        w_of(TH[rows[s]], code, depth, W[s])
    forward_group(ZT, y, W, ns, R, LOSS)
    for s in range(ns):
        coefficients(R[s], XI[s], WROW[s], two_lam, RHAT[s], C[s])
    pullback_group(Z, C, ns, GW)
    for s in range(ns):
        K.chain(TH[rows[s]], code, depth, GW[s], GR[s])


# --------------------------------------------------------------------------- SAM family
@jit
def stable_argsort(key, order, tmp):
    """order <- the indices sorting ``key`` ascending, ties by index (bottom-up merge sort; int64 arrays
    ``order`` and ``tmp`` of len(key)). Written out because np.argsort(kind="mergesort") costs more
    compile time than the whole of it."""
    n = key.shape[0]
    for i in range(n):
        order[i] = i
    src = order
    dst = tmp
    width = 1
    flips = 0
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            t = lo
            while i < mid and j < hi:
                if key[src[j]] < key[src[i]]:
                    dst[t] = src[j]
                    j += 1
                else:
                    dst[t] = src[i]
                    i += 1
                t += 1
            while i < mid:
                dst[t] = src[i]
                i += 1
                t += 1
            while j < hi:
                dst[t] = src[j]
                j += 1
                t += 1
        src, dst = dst, src
        flips += 1
        width *= 2
    if flips % 2 == 1:
        for i in range(n):
            order[i] = tmp[i]


@jit
def perturbation(variant, fp, ip, keys, path, step, theta, g, out, ubuf, score, order, otmp):
    """out <- theta + eps(theta, g) for the SAM variants other than m-SAM (see specs.SAM). Scratch (the
    caller's, so that the GPU kernel can use this function): ubuf (>= 2d,), score (2d,), order and otmp
    (2d,) int64.

    Normalizations with a zero norm give eps = 0. SSAM-F zeroes the floor(sparsity * 2d) coordinates
    with the smallest g_i^2 (ties: lower index first); SSAM-D keeps coordinate i iff u_i >= sparsity,
    u_i the uniforms of stream "sam" at (path, step); "block" perturbs one block by rho g_b / |g_b|.
    """
    dim = g.shape[0]
    d = dim // 2
    rho = fp[F_RHO]
    nrm2 = 0.0
    for i in range(dim):
        nrm2 += g[i] * g[i]
    for i in range(dim):
        out[i] = theta[i]
    if variant == V_USAM:
        for i in range(dim):
            out[i] = theta[i] + rho * g[i]
    elif variant == V_SAM:
        if nrm2 > 0.0:
            sc = rho / math.sqrt(nrm2)
            for i in range(dim):
                out[i] = theta[i] + sc * g[i]
    elif variant == V_ASAM:
        eta = fp[F_ASAM_ETA]
        tg2 = 0.0
        for i in range(dim):
            tg = (abs(theta[i]) + eta) * g[i]
            tg2 += tg * tg
        if tg2 > 0.0:
            sc = rho / math.sqrt(tg2)
            for i in range(dim):
                t = abs(theta[i]) + eta
                out[i] = theta[i] + sc * (t * t * g[i])
    elif variant == V_FISHER:
        feta = fp[F_FISHER_ETA]
        q = 0.0
        for i in range(dim):
            q += g[i] * g[i] / (1.0 + feta * g[i] * g[i])
        if q > 0.0:
            sc = rho / math.sqrt(q)
            for i in range(dim):
                out[i] = theta[i] + sc * (g[i] / (1.0 + feta * g[i] * g[i]))
    elif variant == V_SSAM_F or variant == V_SSAM_D:
        keep = ubuf[:dim]
        if variant == V_SSAM_F:
            for i in range(dim):
                score[i] = g[i] * g[i]
                keep[i] = 1.0
            stable_argsort(score, order, otmp)
            nz = int(fp[F_SPARSITY] * dim)
            for t in range(nz):
                keep[order[t]] = 0.0
        else:
            fill_uniforms(keys[4], keys[5], path, step, keep)
            sp = fp[F_SPARSITY]
            for i in range(dim):
                keep[i] = 1.0 if keep[i] >= sp else 0.0
        if nrm2 > 0.0:
            sc = rho / math.sqrt(nrm2)
            for i in range(dim):
                if keep[i] != 0.0:
                    out[i] = theta[i] + sc * g[i]
    elif variant == V_BLOCK:
        lo = d * ip[I_BLOCK]
        nb2 = 0.0
        for i in range(lo, lo + d):
            nb2 += g[i] * g[i]
        if nb2 > 0.0:
            sc = rho / math.sqrt(nb2)
            for i in range(lo, lo + d):
                out[i] = theta[i] + sc * g[i]
    elif variant == V_RSAM:
        if nrm2 > 0.0:
            alpha = fp[F_RENYI_ALPHA]
            sa = 0.0
            for i in range(dim):
                sa += (g[i] * g[i]) ** alpha
            sign = 1.0 if alpha < 1.0 else -1.0
            rho_eff = sign * rho * sa / nrm2 ** (alpha + 1.0)
            for i in range(dim):
                out[i] = theta[i] - rho_eff * g[i]


@jit
def msam_gradient(code, depth, Z, y, fp, m_chunks, theta, r, xi, perm, n_rows, gout, gw, gc, th_c, w_c):
    """m-SAM / 1-SAM gradient of one path: the rows perm[:n_rows] are split into ``m_chunks`` contiguous
    chunks c (rows perm[c R / m : (c+1) R / m]); chunk c is perturbed by eps_c = rho g_c / |g_c| with g_c
    its own mean noisy gradient, and gout = sum_c (|c| / R) grad L_c(theta + eps_c), L_c the mean
    (noisy) loss of chunk c."""
    d = Z.shape[1]
    dim = 2 * d
    rho = fp[F_RHO]
    for i in range(dim):
        gout[i] = 0.0
    for c in range(m_chunks):
        lo = c * n_rows // m_chunks
        hi = (c + 1) * n_rows // m_chunks
        size = hi - lo
        for i in range(d):
            gw[i] = 0.0
        for t in range(lo, hi):
            j = perm[t]
            cj = (r[j] - xi[j]) / size
            row = Z[j]
            for i in range(d):
                gw[i] += row[i] * cj
        K.chain(theta, code, depth, gw, gc)
        nrm2 = 0.0
        for i in range(dim):
            nrm2 += gc[i] * gc[i]
        sc = rho / math.sqrt(nrm2) if nrm2 > 0.0 else 0.0
        for i in range(dim):
            th_c[i] = theta[i] + sc * gc[i]
        w_of(th_c, code, depth, w_c)
        for i in range(d):
            gw[i] = 0.0
        for t in range(lo, hi):
            j = perm[t]
            row = Z[j]
            acc = 0.0
            for i in range(d):
                acc += row[i] * w_c[i]
            cj = ((acc - y[j]) - xi[j]) / size
            for i in range(d):
                gw[i] += row[i] * cj
        K.chain(th_c, code, depth, gw, gc)
        wt = size / n_rows
        for i in range(dim):
            gout[i] += wt * gc[i]


@jit
def ema_update_strided(ema, theta, beta_ema, start, stride):
    """MESA's EMA copy follows theta: ema <- beta_ema ema + (1 - beta_ema) theta on the entries start,
    start + stride, ... (the CPU kernel uses 0, 1; the GPU's lanes their own)."""
    a = 1.0 - beta_ema
    for i in range(start, theta.shape[0], stride):
        ema[i] = beta_ema * ema[i] + a * theta[i]


# --------------------------------------------------------------------------- the step loop
@jit
def advance_group(p0, p1, gradient, update, noise, fp, ip, keys, blocks, bsize, code, depth, Z, ZT, y,
                  theta, s1, s2, buf, paths, step0, n_steps, active, limit, div_step, div_loss):
    """Advance paths p0..p1-1 (one group, one thread) from step0 by n_steps steps."""
    n = Z.shape[0]
    d = Z.shape[1]
    dim = 2 * d
    G = p1 - p0
    W = np.empty((G, d))
    R = np.empty((G, n))
    R2 = np.empty((G, n))
    C = np.empty((G, n))
    GW = np.empty((G, d))
    GR = np.empty((G, dim))
    TH = np.empty((G, dim))
    LOSS = np.empty(G)
    LOSS2 = np.empty(G)
    XI = np.zeros((G, n))
    WROW = np.empty((G, n))
    PERM = np.empty((G, n), np.int64)
    NROWS = np.empty(G, np.int64)
    idx = np.empty(G, np.int64)
    live = np.empty(G, np.bool_)
    slot = np.arange(G)
    ubuf = np.empty(max(n, dim))
    sums = np.empty(max(ip[I_N_BLOCKS], 1))
    tmp_d = np.empty(d)
    tmp_d2 = np.empty(d)
    tmp_dim = np.empty(dim)
    tmp_dim2 = np.empty(dim)
    order = np.empty(dim, np.int64)
    otmp = np.empty(dim, np.int64)
    delta = fp[F_DELTA]
    batch = ip[I_BATCH]
    variant = ip[I_VARIANT]
    two_lam = 2.0 * fp[F_LAM_TRA] if (gradient == GRAD_SAF or gradient == GRAD_MESA) else 0.0
    delay = ip[I_DELAY]
    beta_ema = fp[F_BETA_EMA]

    for k in range(step0, step0 + n_steps):
        ns = 0
        for p in range(p0, p1):
            if active[p]:
                idx[ns] = p
                ns += 1
        if ns == 0:
            break
        # 1. noise of (path, step)
        for s in range(ns):
            NROWS[s] = draw_noise(noise, keys, delta, batch, paths[idx[s]], k, XI[s], WROW[s], PERM[s], ubuf)
        # 2. reference residuals of SAF (stored) / MESA (the EMA model, slot s1)
        if gradient == GRAD_MESA:
            for s in range(ns):
                w_of(s1[idx[s]], code, depth, W[s])
            forward_group(ZT, y, W, ns, R2, LOSS2)
        elif gradient == GRAD_SAF:
            for s in range(ns):
                R2[s, :] = buf[idx[s], k % delay]
        # 3. the noisy gradient at theta_k, with its residual and clean loss
        noisy_gradient_group(code, depth, Z, ZT, y, theta, idx, ns, XI, WROW, two_lam, R2, W, R, LOSS, C, GW, GR)
        if gradient == GRAD_SAF:
            for s in range(ns):
                buf[idx[s], k % delay] = R[s]
        # 4. divergence: a path whose loss at theta_k is not finite or above its limit stops at theta_k
        n_live = 0
        for s in range(ns):
            p = idx[s]
            L = LOSS[s]
            live[s] = np.isfinite(L) and L <= limit[p]
            if live[s]:
                n_live += 1
            else:
                active[p] = False
                div_step[p] = k
                div_loss[p] = L
        if n_live == 0:
            continue
        # 5. the SAM family replaces the gradient by the one at theta + eps (same noise)
        if gradient == GRAD_SAM:
            if variant == V_MSAM:
                for s in range(ns):
                    if live[s]:
                        p = idx[s]
                        msam_gradient(code, depth, Z, y, fp, ip[I_M_CHUNKS], theta[p], R[s], XI[s], PERM[s],
                                      NROWS[s], GR[s], tmp_d, tmp_dim, tmp_dim2, tmp_d2)
            else:
                for s in range(ns):
                    p = idx[s]
                    if live[s]:
                        perturbation(variant, fp, ip, keys, paths[p], k, theta[p], GR[s], TH[s], ubuf, tmp_dim,
                                     order, otmp)
                    else:
                        TH[s, :] = theta[p]
                noisy_gradient_group(code, depth, Z, ZT, y, TH, slot, ns, XI, WROW, 0.0, R2, W, R, LOSS2, C, GW,
                                     GR)
        # 6. the update rule (.updates)
        for s in range(ns):
            if live[s]:
                p = idx[s]
                apply_update(update, theta[p], s1[p], s2[p], GR[s], fp, ip, blocks, bsize, sums, k)
        # 7. MESA's EMA copy follows the new theta
        if gradient == GRAD_MESA:
            for s in range(ns):
                if live[s]:
                    ema_update_strided(s1[idx[s]], theta[idx[s]], beta_ema, 0, 1)


@pjit
def advance_kernel(gradient, update, noise, fp, ip, keys, blocks, bsize, code, depth, Z, ZT, y, theta, s1, s2,
                   buf, paths, step0, n_steps, active, limit, div_step, div_loss, group):
    """Advance every active path (rows of theta, s1, s2, buf) by n_steps steps from step0.

    theta (M, 2d); s1, s2 (M, k) the optimizer's state slots (Adam: m, v; v per block for Adam-mini;
    AdaGrad: v in s2; MESA: the EMA copy in s1), (M, 0) when unused; buf (M, delay, n) the SAF residual
    ring buffer, else (M, 0, 0). paths (M,) global path ids; active (M,) bool; limit (M,) divergence
    thresholds; div_step (M,) int64 / div_loss (M,) are written for paths that diverge. ``group`` paths per
    thread task (any value gives the same numbers).
    """
    M = theta.shape[0]
    ng = (M + group - 1) // group
    for q in prange(ng):
        p0 = q * group
        p1 = min(p0 + group, M)
        advance_group(p0, p1, gradient, update, noise, fp, ip, keys, blocks, bsize, code, depth, Z, ZT, y,
                      theta, s1, s2, buf, paths, step0, n_steps, active, limit, div_step, div_loss)
