"""Tile kernels: a block of threads, one path each, shares the rows of Z through shared memory.

The thread-per-path kernels (:mod:`.thread_kernels`) read all of Z from global memory (at best the L2
cache) once per path and step; the warp-per-path kernels (:mod:`.warp_kernels`) spread one path over 32
lanes, which stops paying once there are enough paths to fill the GPU. For large ensembles (thousands of
paths and more) the products with Z dominate: 2 n d multiply-adds per path and step against n d numbers
of Z. Here a block of ``paths_per_block`` threads advances that many paths; the block stages a *tile* of
consecutive rows of Z in shared memory (all of Z, once per launch, when it fits: ``n d`` doubles at most
``tile_doubles``; otherwise one tile after the other, twice per step) and every thread uses the tile for
its own path. Z is read from global memory once per tile of paths instead of once per path, and all
threads of a warp read the same shared address at the same time (a broadcast, no bank conflicts).

Every entry is computed by one thread with the CPU's operations in the CPU's order
(:func:`diagsim.networks.diagonal.grouped.forward_tile` / :func:`~diagsim.networks.diagonal.grouped.pullback_tile`,
the entries of the ``*_strided`` functions; see docs/guide/gpu.md), so a path's numbers do not depend
on the layout: bitwise the CPU's under the CUDA simulator.

The per-path vectors (x, w, r, xi, Z^T xi) live in global scratch stored *by column*, (length, M): thread
p reads entry i of its vector at ``[i, p]``, next to thread p + 1's, so a warp's reads are coalesced. A
launch copies the paths' rows of X into these columns at its start and back at its end.

Covered: the label-noise SGD SDE and gradient flow with one Brownian sub-step per step (the SDE of the
large-ensemble benchmark). Barriers are ``cuda.syncthreads()`` reached by every thread of a block,
including those past the last path and those of stopped paths, which only skip the arithmetic.
"""
from __future__ import annotations

import math

import numpy as np

from . import _lazy
from .steppers import TILE_DOUBLES, TILE_PATHS  # per block: paths (threads), doubles of Z in shared memory

cuda = _lazy.cuda()


_CACHE: dict = {}


def tile_rows(n: int, d: int, tile_doubles: int = TILE_DOUBLES) -> int:
    """Rows of Z per tile (0 when one row does not fit: the tile layout does not apply)."""
    return min(n, tile_doubles // d) if d > 0 else 0


def tile_grid(M: int, paths_per_block: int = TILE_PATHS) -> tuple[int, int]:
    """Launch configuration of a tile kernel for M paths."""
    return (M + paths_per_block - 1) // paths_per_block, paths_per_block


def em_label_noise_tile_kernel(paths_per_block: int = TILE_PATHS, tile_doubles: int = TILE_DOUBLES):
    """EM for dtheta = -grad L dt + a J^T dB (label-noise SGD SDE; a = 0: gradient flow), one thread per
    path and ``paths_per_block`` paths per block sharing tiles of Z (launch :func:`tile_grid`).

    The step of :func:`.warp_kernels.em_label_noise_kernel` (and of the CPU's group step), per thread:
    increment, w, residual (tile by tile), loss (a path whose loss is not finite stops, unchanged),
    xi += beta dt, Z^T xi (tile by tile), x += J^T xi.
    """
    key = ("em-tile", int(paths_per_block), int(tile_doubles))
    if key in _CACHE:
        return _CACHE[key]
    from ..lowlevel import rng
    from ..networks.diagonal.grouped import forward_tile, loss_of, pullback_tile, w_of_strided
    from ..sde.models import jt_step_strided, label_noise_xi_strided

    normals_d = _lazy.device(rng.fill_normals_strided)
    w_d = _lazy.device(w_of_strided)
    fwd_d = _lazy.device(forward_tile)
    loss_d = _lazy.device(loss_of)
    xi_d = _lazy.device(label_noise_xi_strided)
    pull_d = _lazy.device(pullback_tile)
    jt_d = _lazy.device(jt_step_strided)
    P = int(paths_per_block)
    S = int(tile_doubles)

    @cuda.jit(device=True)
    def stage(T, Z, j0, nr, tid):
        """Copy rows j0 .. j0 + nr - 1 of Z into the shared tile T (row-major), the block's threads
        striding over the entries; the caller synchronizes."""
        d = Z.shape[1]
        for idx in range(tid, nr * d, P):
            T[idx] = Z[j0 + idx // d, idx - (idx // d) * d]

    @cuda.jit
    def kernel(X, paths, active, step0, n_steps, dt, noise_scale, k0, k1, Z, y, code, depth,
               XT, WT, RT, XIT, GZT):
        T = cuda.shared.array(S, np.float64)
        tid = cuda.threadIdx.x
        p = cuda.blockIdx.x * P + tid
        M = X.shape[0]
        n = Z.shape[0]
        d = Z.shape[1]
        rows = min(n, S // d)
        resident = rows == n
        live = False
        if p < M:
            live = active[p]
        started = live
        q = min(p, M - 1)  # threads past the last path take part in the staging only
        x = XT[:, q]
        w = WT[:, q]
        r = RT[:, q]
        xi = XIT[:, q]
        gz = GZT[:, q]
        if live:
            for i in range(X.shape[1]):
                x[i] = X[p, i]
        inv_n = 1.0 / n
        pid = paths[q]
        if resident:  # all of Z, once
            stage(T, Z, 0, n, tid)
            cuda.syncthreads()
        for k in range(step0, step0 + n_steps):
            if live:
                if noise_scale != 0.0:
                    normals_d(k0, k1, pid, k, xi, noise_scale, 0, 1)
                else:
                    for j in range(n):
                        xi[j] = 0.0
                w_d(x, code, depth, w, 0, 1)
            for j0 in range(0, n, rows):
                nr = min(rows, n - j0)
                if not resident:
                    cuda.syncthreads()
                    stage(T, Z, j0, nr, tid)
                    cuda.syncthreads()
                if live:
                    fwd_d(T, nr, j0, y, w, r)
            if live:
                L = loss_d(r)
                if not math.isfinite(L):
                    active[p] = False
                    live = False
                else:
                    xi_d(r, xi, inv_n, dt, 0, 1)
            for j0 in range(0, n, rows):
                nr = min(rows, n - j0)
                if not resident:
                    cuda.syncthreads()
                    stage(T, Z, j0, nr, tid)
                    cuda.syncthreads()
                if live:
                    pull_d(T, nr, j0, xi, gz, j0 == 0)
            if live:
                jt_d(x, code, depth, gz, dt, 0, 1)
        if started:
            for i in range(X.shape[1]):
                X[p, i] = x[i]

    _CACHE[key] = kernel
    return kernel
