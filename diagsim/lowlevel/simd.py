"""Explicit-SIMD micro-kernel for the products with Z over a group of paths (LLVM IR, via Numba).

LLVM's auto-vectorizer does not register-block across paths (NOTES.md §8), so the one loop that matters
is written here directly in LLVM IR, with vectors whose lanes are *paths*: a row of the output holds
``8 V`` paths in V = 1 or 2 vectors of 8 doubles, or 4 paths in one vector of 4 doubles:

    OUT[t, :] <- OUT[t, :] + sum_k A[k, t] * B[k, :]      t = 0..T-1, k = 0, 1, ..., K-1 (in that order)

with OUT (rows, L), B (K, L) (L = 4, 8 or 16 lanes) and A[k, t] = A_flat[a_off + k * lda + t]. Each lane's
entry is the sequence acc <- fmuladd(A[k, t], B[k, l], acc) for k in order: the operations of the per-path
loops in :mod:`diagsim.networks.diagonal.grouped` (``acc + a * b`` contracted), so every path's result is
bitwise that of the per-path kernels, whichever lane, lane width, group or tile it is computed in.
``llvm.fmuladd`` is fused exactly where the contracted scalar code is (FMA hardware), so the equality also
holds on a CPU without FMA.

The T x V accumulators stay in registers for the whole k loop; each step loads one row of B (V vectors)
and broadcasts T entries of A: the register-blocked inner kernel of a GEMM, with the summation order of
the per-path kernels. With V = 2 each broadcast feeds two FMAs, which halves the loads and the traffic of
A per path (benchmarks/NOTES.md §10). How many accumulators fit depends on the CPU's vector registers
(:data:`ACC_MAX`); the tiling changes no number, only the speed.

Callers guarantee the index ranges (no bounds checks): a_off + (K-1) * lda + T <= A.size,
K * L <= B.size, o_off + T * L <= OUT.size, all arrays C-contiguous float64.
"""
from __future__ import annotations

import os

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import jit

#: doubles per vector of the 8- and 16-lane kernels (one 512-bit register; two 256-bit ones on AVX2)
VEC = 8
#: doubles per vector of the 4-lane kernel (one 256-bit register), for chunks of exactly 4 paths
VEC4 = 4


def vector_registers() -> int:
    """32 with AVX-512 (zmm0-31, whose ymm halves are registers too), else 16 (AVX2: ymm0-15), judged from
    the features Numba compiles for (``NUMBA_CPU_FEATURES`` when set, else the host's)."""
    feats = os.environ.get("NUMBA_CPU_FEATURES", "")
    if not feats:
        try:
            import llvmlite.binding as ll
            feats = ll.get_host_cpu_features().flatten()
        except Exception:  # noqa: BLE001 - a host whose features cannot be read gets the smaller tiles
            return 16
    return 32 if "+avx512f" in feats.split(",") else 16


#: most accumulator vectors of 8 doubles in a tile: T x V <= 12 (12 zmm registers) leaves registers for a
#: row of B and the broadcasts with AVX-512; with 16 ymm registers (AVX2, where a vector of 8 doubles is two
#: of them) 12 spilled and T x V <= 6 takes 20-45 % less time (NOTES.md, "Paper scale"); 8 or more
#: registers of accumulators keep both FMA ports busy through the FMA latency
ACC_MAX = 12 if vector_registers() >= 32 else 6
#: most accumulator vectors of 4 doubles (one ymm register each) in a tile of the 4-lane kernel
ACC_MAX4 = 12
#: rows of B per k block (256 x 8 doubles = 16 KiB)
K_BLOCK = 256


def _emit_tile(builder, T, V, a_base, lda, b_data, b_off, K, o_base, vw):
    """Emit the loop of one tile (T rows of OUT, V vectors of ``vw`` doubles per row) at the builder's
    position; the builder ends in the block after the loop."""
    width = vw * V
    i32 = ir.IntType(32)
    i64 = ir.IntType(64)
    vec = ir.VectorType(ir.DoubleType(), vw)
    vptr = vec.as_pointer()

    def const(x):
        return ir.Constant(i64, x)

    fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             f"llvm.fmuladd.v{vw}f64")
    # accumulator (t, v) is OUT[t, vw v : vw v + vw]
    o_vecs = [builder.bitcast(builder.gep(o_base, [const(t * width + v * vw)]), vptr)
              for t in range(T) for v in range(V)]
    init = [builder.load(p, align=8) for p in o_vecs]
    undef = ir.Constant(vec, ir.Undefined)
    splat_mask = ir.Constant(ir.VectorType(i32, vw), [0] * vw)

    entry = builder.block
    loop = builder.append_basic_block(f"simd_tile{T}x{V}x{vw}.loop")
    done = builder.append_basic_block(f"simd_tile{T}x{V}x{vw}.done")
    builder.cbranch(builder.icmp_signed(">", K, const(0)), loop, done)

    builder.position_at_end(loop)
    k = builder.phi(i64)
    acc = [builder.phi(vec) for _ in range(T * V)]
    b_row = builder.gep(b_data, [builder.add(b_off, builder.mul(k, const(width)))])
    b = [builder.load(builder.bitcast(builder.gep(b_row, [const(v * vw)]), vptr), align=8) for v in range(V)]
    a_row = builder.gep(a_base, [builder.mul(k, lda)])
    new = []
    for t in range(T):
        a = builder.load(builder.gep(a_row, [const(t)]), align=8)
        a_vec = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)), undef, splat_mask)
        for v in range(V):
            new.append(builder.call(fmuladd, [a_vec, b[v], acc[t * V + v]]))
    k_next = builder.add(k, const(1))
    k.add_incoming(const(0), entry)
    k.add_incoming(k_next, loop)
    for j in range(T * V):
        acc[j].add_incoming(init[j], entry)
        acc[j].add_incoming(new[j], loop)
    builder.cbranch(builder.icmp_signed("<", k_next, K), loop, done)

    builder.position_at_end(done)
    result = [builder.phi(vec) for _ in range(T * V)]
    for j in range(T * V):
        result[j].add_incoming(init[j], entry)
        result[j].add_incoming(new[j], loop)
    for j in range(T * V):
        builder.store(result[j], o_vecs[j], align=8)


#: the tiles compiled: (T, V, vector width): T x V <= ACC_MAX vectors of 8 doubles, T <= ACC_MAX4 of 4
TILES = ([(t, v, VEC) for v in (1, 2) for t in range(1, ACC_MAX // v + 1)]
         + [(t, 1, VEC4) for t in range(1, ACC_MAX4 + 1)])


@intrinsic
def _tile(typingctx, T, A, a_off, lda, B, b_off, K, OUT, o_off):
    """One tile of T rows with B.shape[1] = 4, 8 or 16 lanes per row (:data:`TILES`): a switch over
    (T, width) to the loop emitted for it by :func:`_emit_tile`."""
    sig = types.void(T, A, a_off, lda, B, b_off, K, OUT, o_off)

    def codegen(context, builder, signature, args):
        T_, A_, a_off_, lda_, B_, b_off_, K_, OUT_, o_off_ = args
        tty, aty, a_off_ty, lda_ty, bty, b_off_ty, k_ty, oty, o_off_ty = signature.args
        i64 = ir.IntType(64)

        def as_i64(value, ty):
            return context.cast(builder, value, ty, types.int64)

        b_arr = context.make_array(bty)(context, builder, B_)
        width = builder.extract_value(b_arr.shape, 1)
        a_base = builder.gep(context.make_array(aty)(context, builder, A_).data, [as_i64(a_off_, a_off_ty)])
        o_base = builder.gep(context.make_array(oty)(context, builder, OUT_).data, [as_i64(o_off_, o_off_ty)])
        lda_, b_off_, K_ = as_i64(lda_, lda_ty), as_i64(b_off_, b_off_ty), as_i64(K_, k_ty)
        # key = T * 64 + width selects the tile; any other key traps (lanes_matmul never passes one: an
        # unexpected shape must stop the program, not leave OUT silently unchanged)
        key = builder.add(builder.mul(as_i64(T_, tty), ir.Constant(i64, 64)), width)
        end = builder.append_basic_block("simd_tile.end")
        unexpected = builder.append_basic_block("simd_tile.unexpected")
        switch = builder.switch(key, unexpected)
        for t, v, vw in TILES:
            case = builder.append_basic_block(f"simd_tile{t}x{v}x{vw}")
            switch.add_case(ir.Constant(i64, t * 64 + vw * v), case)
            builder.position_at_end(case)
            _emit_tile(builder, t, v, a_base, lda_, b_arr.data, b_off_, K_, o_base, vw)
            builder.branch(end)
        builder.position_at_end(unexpected)
        trap = builder.module.declare_intrinsic("llvm.trap", fnty=ir.FunctionType(ir.VoidType(), []))
        builder.call(trap, [])
        builder.unreachable()
        builder.position_at_end(end)
        return context.get_dummy_value()

    return sig, codegen


@jit(inline="always")
def lanes_matmul(A, lda, B, K, OUT, rows):
    """OUT[t, :] += sum_k A[k, t] B[k, :] for t < rows, k-ordered per entry; A (K, >= rows) with row
    stride lda, B (K, L) and OUT (rows, L) with L = 4, 8 or 16 lanes (paths). Rows are split into tiles of
    balanced sizes (a small remainder tile would be bound by the FMA latency); k runs in blocks of
    ``K_BLOCK`` so that a block of B stays in the L1 cache across the tiles."""
    width = B.shape[1]
    if width == VEC4:
        t_max = ACC_MAX4
    elif width == VEC or width == 2 * VEC:
        t_max = ACC_MAX * VEC // width
    else:
        raise ValueError("lanes_matmul: B must have 4, 8 or 16 lanes (columns)")
    q = (rows + t_max - 1) // t_max
    if q == 0:
        return
    base = rows // q
    extra = rows - base * q
    for k0 in range(0, K, K_BLOCK):
        kb = min(K_BLOCK, K - k0)
        t0 = 0
        for b in range(q):
            T = base + 1 if b < extra else base
            _tile(T, A, k0 * lda + t0, lda, B, k0 * width, kb, OUT, t0 * width)
            t0 += T
