"""Products with Z for a group of paths at once.

A thread advances a *group* of paths in lockstep, so that each element of Z loaded from the L2 cache
serves every path of the group. The arithmetic of each path is exactly that of the per-path kernels
:func:`diagsim.networks.diagonal.pathwise.forward` / :func:`diagsim.networks.diagonal.pathwise.pullback`:

    forward:  r = -y;  r += Z[:, i] * w_i   for i = 0, 1, ..., d-1   (in that order)
    pullback: gw = 0;  gw += Z[j, :] * c_j  for j = 0, 1, ..., n-1   (in that order)

Two implementations, chosen per chunk of paths (``_chunk``), compute every entry by these operations
in this order (contraction into FMAs, the one fastmath flag of :mod:`diagsim.lowlevel.jit`, fuses each
``acc + a*b``; no reassociation):

* the SIMD lanes kernel (:mod:`diagsim.lowlevel.simd`) for chunks of 4 to 16 paths: the paths of a chunk are
  transposed into the lanes of 8-double vectors (one or two per row; 4-double vectors for a chunk of exactly
  4 paths) and the products run as a register-blocked GEMM micro-kernel written in LLVM IR, each lane
  summing in the order above;
* the row loops for fewer than 4 paths: unrolled by 8 over the summation index, written as
  ``acc + a0*b0 + a1*b1 + ...`` (left to right, the same sequence of operations), vectorized over the
  other index, whose elements are independent.

Hence a path's result does not depend on the group it is in, on the group size, on threading, or on how
many paths run: bitwise (tests/test_optimizers.py, tests/test_sde_groups.py).

Shapes: Z (n, d), ZT (d, n) C-contiguous; W (G, d); R, C (G, n); GW (G, d); only the first ``ns`` rows
of the group arrays are used.
"""
from __future__ import annotations

import numpy as np

from ...lowlevel.jit import jit
from ...lowlevel.simd import VEC, VEC4, lanes_matmul
from .parametrization import UUVV, UV, phi

#: column tile of the pullback (doubles); 8 rows of Z x 512 columns = 32 KiB stay in L1 across the group
TILE = 512

#: paths are taken in chunks: 16 at a time on two vectors per row when at least WIDE_MIN remain, else 8 at
#: a time on one vector when at least LANES_MIN remain, 4 on one 4-double vector when exactly 4 remain, else
#: on the row loops (measured crossovers; 3 paths in 4 lanes were slower than the row loops, NOTES.md
#: "Paper scale")
WIDE_MIN = 12
LANES_MIN = 5


@jit(inline="always")
def _axpy8(g, z0, z1, z2, z3, z4, z5, z6, z7, c0, c1, c2, c3, c4, c5, c6, c7):
    for i in range(g.shape[0]):
        g[i] = (g[i] + z0[i] * c0 + z1[i] * c1 + z2[i] * c2 + z3[i] * c3
                + z4[i] * c4 + z5[i] * c5 + z6[i] * c6 + z7[i] * c7)


@jit(inline="always")
def _axpy1(g, z0, c0):
    for i in range(g.shape[0]):
        g[i] = g[i] + z0[i] * c0


@jit(inline="always")
def _pullback_rows(Z, C, s0, s1, GW):
    n = Z.shape[0]
    d = Z.shape[1]
    for i0 in range(0, d, TILE):
        i1 = min(i0 + TILE, d)
        for s in range(s0, s1):
            GW[s, i0:i1] = 0.0
        j = 0
        while j + 8 <= n:
            z0 = Z[j, i0:i1]
            z1 = Z[j + 1, i0:i1]
            z2 = Z[j + 2, i0:i1]
            z3 = Z[j + 3, i0:i1]
            z4 = Z[j + 4, i0:i1]
            z5 = Z[j + 5, i0:i1]
            z6 = Z[j + 6, i0:i1]
            z7 = Z[j + 7, i0:i1]
            for s in range(s0, s1):
                c = C[s]
                _axpy8(GW[s, i0:i1], z0, z1, z2, z3, z4, z5, z6, z7,
                       c[j], c[j + 1], c[j + 2], c[j + 3], c[j + 4], c[j + 5], c[j + 6], c[j + 7])
            j += 8
        while j < n:
            z0 = Z[j, i0:i1]
            for s in range(s0, s1):
                _axpy1(GW[s, i0:i1], z0, C[s, j])
            j += 1


@jit(inline="always")
def _to_lanes(X, s0, s1, XT):
    """XT[k, l] <- X[s0 + l, k] for l < s1 - s0, 0 for the other lanes of XT (4, 8 or 16)."""
    m = s1 - s0
    width = XT.shape[1]
    if m == 2 * VEC and width == 2 * VEC:  # constant trip counts: the lanes unroll, the stores vectorize
        for k in range(XT.shape[0]):
            for lane in range(2 * VEC):
                XT[k, lane] = X[s0 + lane, k]
    elif m == VEC and width == VEC:
        for k in range(XT.shape[0]):
            for lane in range(VEC):
                XT[k, lane] = X[s0 + lane, k]
    elif m == VEC4 and width == VEC4:
        for k in range(XT.shape[0]):
            for lane in range(VEC4):
                XT[k, lane] = X[s0 + lane, k]
    else:
        for k in range(XT.shape[0]):
            for lane in range(m):
                XT[k, lane] = X[s0 + lane, k]
            for lane in range(m, width):
                XT[k, lane] = 0.0


@jit(inline="always")
def _from_lanes_full(XT, s0, L, X):
    """X[s0 + l, k] <- XT[k, l] for all L (constant) lanes, in 8 x L blocks (8 contiguous stores per row)."""
    K = XT.shape[0]
    k = 0
    while k + 8 <= K:
        for lane in range(L):
            for kk in range(8):
                X[s0 + lane, k + kk] = XT[k + kk, lane]
        k += 8
    while k < K:
        for lane in range(L):
            X[s0 + lane, k] = XT[k, lane]
        k += 1


@jit(inline="always")
def _from_lanes(XT, s0, s1, X):
    """X[s0 + l, k] <- XT[k, l] for l < s1 - s0."""
    m = s1 - s0
    if m == 2 * VEC:
        _from_lanes_full(XT, s0, 2 * VEC, X)
    elif m == VEC:
        _from_lanes_full(XT, s0, VEC, X)
    elif m == VEC4:
        _from_lanes_full(XT, s0, VEC4, X)
    else:
        for k in range(XT.shape[0]):
            for lane in range(m):
                X[s0 + lane, k] = XT[k, lane]


@jit(inline="always")
def _chunk(ns, s0):
    """Lanes (16, 8, 4, or 0 for the row loops) and end of the chunk of paths that starts at s0."""
    m = ns - s0
    if m >= WIDE_MIN:
        return 2 * VEC, min(s0 + 2 * VEC, ns)
    if m >= LANES_MIN:
        return VEC, min(s0 + VEC, ns)
    if m == VEC4:
        return VEC4, ns
    return 0, ns


@jit(inline="always")
def _pullback_lanes(Z, C, s0, s1, GW, CT, GT):
    n = Z.shape[0]
    d = Z.shape[1]
    _to_lanes(C, s0, s1, CT)
    GT[:, :] = 0.0
    lanes_matmul(Z, d, CT, n, GT, d)
    _from_lanes(GT, s0, s1, GW)


@jit
def pullback_group(Z, C, ns, GW):
    """GW[s] <- Z^T C[s] for s < ns  (j-ordered sums; bitwise ``kernels.pullback(Z, C[s], 1, GW[s])``).

    Paths are taken in chunks of 16, 8 or 4 on the explicit-SIMD lanes kernel (``_chunk``); 1 to 3
    remaining paths run on the row loops. Both compute every entry by the same operations in
    the same order.
    """
    n = Z.shape[0]
    d = Z.shape[1]
    s0 = 0
    while s0 < ns:
        width, s1 = _chunk(ns, s0)
        if width > 0:
            _pullback_lanes(Z, C, s0, s1, GW, np.empty((n, width)), np.empty((d, width)))
        else:
            _pullback_rows(Z, C, s0, s1, GW)
        s0 = s1


@jit(inline="always")
def _forward_rows(ZT, y, W, s0, s1, R):
    d = ZT.shape[0]
    n = ZT.shape[1]
    for s in range(s0, s1):
        for j in range(n):
            R[s, j] = -y[j]
    i = 0
    while i + 8 <= d:
        a0 = ZT[i]
        a1 = ZT[i + 1]
        a2 = ZT[i + 2]
        a3 = ZT[i + 3]
        a4 = ZT[i + 4]
        a5 = ZT[i + 5]
        a6 = ZT[i + 6]
        a7 = ZT[i + 7]
        for s in range(s0, s1):
            w = W[s]
            _axpy8(R[s], a0, a1, a2, a3, a4, a5, a6, a7,
                   w[i], w[i + 1], w[i + 2], w[i + 3], w[i + 4], w[i + 5], w[i + 6], w[i + 7])
        i += 8
    while i < d:
        a0 = ZT[i]
        for s in range(s0, s1):
            _axpy1(R[s], a0, W[s, i])
        i += 1


@jit(inline="always")
def _forward_lanes(ZT, y, W, s0, s1, R, WT, RT):
    d = ZT.shape[0]
    n = ZT.shape[1]
    _to_lanes(W, s0, s1, WT)
    for j in range(n):
        for lane in range(RT.shape[1]):
            RT[j, lane] = -y[j]
    lanes_matmul(ZT, n, WT, d, RT, n)
    _from_lanes(RT, s0, s1, R)


@jit
def forward_group(ZT, y, W, ns, R, loss):
    """R[s] <- Z W[s] - y and loss[s] <- (1/2n) ||R[s]||^2 for s < ns (i-ordered sums; bitwise the
    residual and loss of ``kernels.forward``). Paths in chunks, as in :func:`pullback_group`."""
    d = ZT.shape[0]
    n = ZT.shape[1]
    s0 = 0
    while s0 < ns:
        width, s1 = _chunk(ns, s0)
        if width > 0:
            _forward_lanes(ZT, y, W, s0, s1, R, np.empty((d, width)), np.empty((n, width)))
        else:
            _forward_rows(ZT, y, W, s0, s1, R)
        s0 = s1
    _group_loss(R, ns, loss)


@jit(inline="always")
def _group_loss(R, ns, loss):
    n = R.shape[1]
    for s in range(ns):
        acc = 0.0
        for j in range(n):
            acc += R[s, j] * R[s, j]
        loss[s] = 0.5 * acc / n


@jit
def forward_group_rows(ZT, y, W, ns, R, loss):
    """:func:`forward_group` on the row loops alone (no SIMD lanes kernel, no allocation): the same
    numbers. The GPU compiles it where the CPU code calls :func:`forward_group` (:data:`DEVICE_TWINS`)."""
    _forward_rows(ZT, y, W, 0, ns, R)
    _group_loss(R, ns, loss)


@jit
def pullback_group_rows(Z, C, ns, GW):
    """:func:`pullback_group` on the row loops alone: the same numbers; the GPU's twin of it."""
    _pullback_rows(Z, C, 0, ns, GW)


#: CPU-only functions (the SIMD lanes kernel, scratch allocated inside) -> their device twins, which give
#: the same numbers; diagsim.cuda compiles a function that calls one of them with the twin instead
DEVICE_TWINS = {forward_group: forward_group_rows, pullback_group: pullback_group_rows}


@jit(inline="always")
def _w_of_impl(theta, code, depth, w, start, stride):
    d = w.shape[0]
    for i in range(start, d, stride):
        w[i] = phi(code, depth, theta[i], theta[d + i])


@jit
def w_of(theta, code, depth, w):
    """w <- w(theta) for one path (theta (2d,), w (d,)), by :func:`diagsim.networks.diagonal.parametrization.phi`.

    The loop is written once per common parametrization with its code a constant (phi then folds into
    straight-line, vectorizable arithmetic) and once generic; the arithmetic is the same in every branch.
    """
    if code == UUVV:
        _w_of_impl(theta, UUVV, 2, w, 0, 1)
    elif code == UV:
        _w_of_impl(theta, UV, 2, w, 0, 1)
    else:
        _w_of_impl(theta, code, depth, w, 0, 1)


# ------------------------------------------------------------------ one path, outputs split across lanes
# The GPU's warp-per-path kernels (diagsim.cuda) split a path's outputs across the 32 lanes of a warp:
# lane l computes the entries l, l + 32, ... Each entry is computed by the same operations, in the same
# order, as in the functions above, so a path's numbers do not depend on how its outputs are split.
@jit
def w_of_strided(theta, code, depth, w, start, stride):
    """The entries start, start + stride, ... of :func:`w_of`."""
    _w_of_impl(theta, code, depth, w, start, stride)


@jit
def forward_strided(ZT, y, w, r, start, stride):
    """r[j] <- (Z w - y)[j] for j = start, start + stride, ... (i-ordered sums: the residual of
    :func:`forward_group` entry by entry)."""
    d = ZT.shape[0]
    n = ZT.shape[1]
    for j in range(start, n, stride):
        acc = -y[j]
        for i in range(d):
            acc = acc + ZT[i, j] * w[i]
        r[j] = acc


@jit
def loss_of(r):
    """(1/2n) |r|^2, j-ordered (the loss of :func:`forward_group`)."""
    n = r.shape[0]
    acc = 0.0
    for j in range(n):
        acc += r[j] * r[j]
    return 0.5 * acc / n


@jit
def pullback_strided(Z, c, gw, start, stride):
    """gw[i] <- (Z^T c)[i] for i = start, start + stride, ... (j-ordered sums: :func:`pullback_group`
    entry by entry)."""
    n = Z.shape[0]
    d = Z.shape[1]
    for i in range(start, d, stride):
        acc = 0.0
        for j in range(n):
            acc = acc + Z[j, i] * c[j]
        gw[i] = acc


# ------------------------------------------------------------------ many paths, one tile of rows of Z
# The GPU's tile kernels (diagsim.cuda.tile_kernels) let a block of threads, one path each, stage a tile of
# consecutive rows of Z in shared memory (T[q * d + i] = Z[j0 + q, i]) and every thread use it for its own
# path. Each entry is computed by the same operations, in the same order, as in forward_strided /
# pullback_strided (the residual entry by entry within a tile; Z^T c accumulated over the tiles in row
# order), so a path's numbers do not depend on the tiling. Four independent entries at a time: each keeps
# its own sum, so the unrolling changes no number (it only reuses the loads of w or c).
@jit
def forward_tile(T, rows, j0, y, w, r):
    """r[j] <- (Z w - y)[j] for the rows j = j0, ..., j0 + rows - 1 of the tile T (i-ordered sums: the
    entries of :func:`forward_strided`)."""
    d = w.shape[0]
    q = 0
    while q + 4 <= rows:
        b0 = q * d
        b1 = b0 + d
        b2 = b1 + d
        b3 = b2 + d
        a0 = -y[j0 + q]
        a1 = -y[j0 + q + 1]
        a2 = -y[j0 + q + 2]
        a3 = -y[j0 + q + 3]
        for i in range(d):
            wi = w[i]
            a0 = a0 + T[b0 + i] * wi
            a1 = a1 + T[b1 + i] * wi
            a2 = a2 + T[b2 + i] * wi
            a3 = a3 + T[b3 + i] * wi
        r[j0 + q] = a0
        r[j0 + q + 1] = a1
        r[j0 + q + 2] = a2
        r[j0 + q + 3] = a3
        q += 4
    while q < rows:
        b0 = q * d
        a0 = -y[j0 + q]
        for i in range(d):
            a0 = a0 + T[b0 + i] * w[i]
        r[j0 + q] = a0
        q += 1


@jit
def pullback_tile(T, rows, j0, c, gw, first):
    """gw[i] <- gw[i] + sum_q T[q * d + i] c[j0 + q] over the tile's rows in order (gw taken as 0 when
    ``first``): over the tiles j0 = 0, R, 2R, ... this is :func:`pullback_strided` entry by entry."""
    d = gw.shape[0]
    i = 0
    while i + 4 <= d:
        if first:
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
        else:
            a0 = gw[i]
            a1 = gw[i + 1]
            a2 = gw[i + 2]
            a3 = gw[i + 3]
        for q in range(rows):
            cq = c[j0 + q]
            b = q * d + i
            a0 = a0 + T[b] * cq
            a1 = a1 + T[b + 1] * cq
            a2 = a2 + T[b + 2] * cq
            a3 = a3 + T[b + 3] * cq
        gw[i] = a0
        gw[i + 1] = a1
        gw[i + 2] = a2
        gw[i + 3] = a3
        i += 4
    while i < d:
        a0 = 0.0 if first else gw[i]
        for q in range(rows):
            a0 = a0 + T[q * d + i] * c[j0 + q]
        gw[i] = a0
        i += 1
