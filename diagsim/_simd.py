"""Explicit-SIMD micro-kernel for the products with Z over a group of paths (LLVM IR, via Numba).

LLVM's auto-vectorizer does not register-block across paths (NOTES.md §8), so the one loop that matters
is written here directly in LLVM IR, with vectors of 8 doubles whose lanes are 8 *paths*; a row of the
output holds ``8 V`` paths (V = 1 or 2 vectors):

    OUT[t, :] <- OUT[t, :] + sum_k A[k, t] * B[k, :]      t = 0..T-1, k = 0, 1, ..., K-1 (in that order)

with OUT (rows, 8 V), B (K, 8 V) and A[k, t] = A_flat[a_off + k * lda + t]. Each lane's entry is the
sequence acc <- fmuladd(A[k, t], B[k, l], acc) for k in order: the operations of the per-path loops in
:mod:`diagsim.optimizers._linalg` (``acc + a * b`` contracted), so every path's result is bitwise that of
the per-path kernels, whichever lane, group or tile it is computed in. ``llvm.fmuladd`` is fused exactly
where the contracted scalar code is (FMA hardware), so the equality also holds on a CPU without FMA.

The T x V accumulators stay in registers for the whole k loop; each step loads one row of B (V vectors)
and broadcasts T entries of A: the register-blocked inner kernel of a GEMM, with the summation order of
the per-path kernels. With V = 2 each broadcast feeds two FMAs, which halves the loads and the traffic of
A per path (benchmarks/NOTES.md §8).

Callers guarantee the index ranges (no bounds checks): a_off + (K-1) * lda + T <= A.size,
K * 8 V <= B.size, o_off + T * 8 V <= OUT.size, all arrays C-contiguous float64.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

#: doubles per vector (one 512-bit register; two 256-bit ones on AVX2)
VEC = 8
#: most accumulator vectors of a tile: T x V <= 12 leaves registers for a row of B and the broadcasts;
#: 8 or more keep both FMA ports busy through the FMA latency
ACC_MAX = 12
#: rows of B per k block (256 x 8 doubles = 16 KiB)
K_BLOCK = 256


def _make_tile(T: int, V: int):
    width = VEC * V

    @intrinsic
    def tile(typingctx, A, a_off, lda, B, b_off, K, OUT, o_off):
        sig = types.void(A, a_off, lda, B, b_off, K, OUT, o_off)

        def codegen(context, builder, signature, args):
            A_, a_off_, lda_, B_, b_off_, K_, OUT_, o_off_ = args
            aty, a_off_ty, lda_ty, bty, b_off_ty, k_ty, oty, o_off_ty = signature.args
            i32 = ir.IntType(32)
            i64 = ir.IntType(64)
            vec = ir.VectorType(ir.DoubleType(), VEC)
            vptr = vec.as_pointer()

            def const(x):
                return ir.Constant(i64, x)

            a_data = context.make_array(aty)(context, builder, A_).data
            b_data = context.make_array(bty)(context, builder, B_).data
            o_data = context.make_array(oty)(context, builder, OUT_).data
            a_off_ = context.cast(builder, a_off_, a_off_ty, types.int64)
            lda_ = context.cast(builder, lda_, lda_ty, types.int64)
            K_ = context.cast(builder, K_, k_ty, types.int64)
            b_off_ = context.cast(builder, b_off_, b_off_ty, types.int64)
            o_off_ = context.cast(builder, o_off_, o_off_ty, types.int64)
            fmuladd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fmuladd.v8f64")
            a_base = builder.gep(a_data, [a_off_])
            o_base = builder.gep(o_data, [o_off_])
            # accumulator (t, v) is OUT[t, 8v : 8v + 8]
            o_vecs = [builder.bitcast(builder.gep(o_base, [const(t * width + v * VEC)]), vptr)
                      for t in range(T) for v in range(V)]
            init = [builder.load(p, align=8) for p in o_vecs]
            undef = ir.Constant(vec, ir.Undefined)
            splat_mask = ir.Constant(ir.VectorType(i32, VEC), [0] * VEC)

            entry = builder.block
            loop = builder.append_basic_block("simd_tile.loop")
            done = builder.append_basic_block("simd_tile.done")
            builder.cbranch(builder.icmp_signed(">", K_, const(0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(i64)
            acc = [builder.phi(vec) for _ in range(T * V)]
            b_row = builder.gep(b_data, [builder.add(b_off_, builder.mul(k, const(width)))])
            b = [builder.load(builder.bitcast(builder.gep(b_row, [const(v * VEC)]), vptr), align=8)
                 for v in range(V)]
            a_row = builder.gep(a_base, [builder.mul(k, lda_)])
            new = []
            for t in range(T):
                a = builder.load(builder.gep(a_row, [const(t)]), align=8)
                a_vec = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)), undef,
                                               splat_mask)
                for v in range(V):
                    new.append(builder.call(fmuladd, [a_vec, b[v], acc[t * V + v]]))
            k_next = builder.add(k, const(1))
            k.add_incoming(const(0), entry)
            k.add_incoming(k_next, loop)
            for j in range(T * V):
                acc[j].add_incoming(init[j], entry)
                acc[j].add_incoming(new[j], loop)
            builder.cbranch(builder.icmp_signed("<", k_next, K_), loop, done)

            builder.position_at_end(done)
            result = [builder.phi(vec) for _ in range(T * V)]
            for j in range(T * V):
                result[j].add_incoming(init[j], entry)
                result[j].add_incoming(new[j], loop)
            for j in range(T * V):
                builder.store(result[j], o_vecs[j], align=8)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# one vector per row (8 paths): tiles of 1..12 rows; two vectors (16 paths): 1..6 rows
_A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9, _A10, _A11, _A12 = (_make_tile(t, 1) for t in range(1, 13))
_B1, _B2, _B3, _B4, _B5, _B6 = (_make_tile(t, 2) for t in range(1, 7))


@jit(inline="always")
def _tile8(T, A, a_off, lda, B, b_off, K, OUT, o_off):
    if T == 12:
        _A12(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 11:
        _A11(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 10:
        _A10(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 9:
        _A9(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 8:
        _A8(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 7:
        _A7(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 6:
        _A6(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 5:
        _A5(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 4:
        _A4(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 3:
        _A3(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 2:
        _A2(A, a_off, lda, B, b_off, K, OUT, o_off)
    else:
        _A1(A, a_off, lda, B, b_off, K, OUT, o_off)


@jit(inline="always")
def _tile16(T, A, a_off, lda, B, b_off, K, OUT, o_off):
    if T == 6:
        _B6(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 5:
        _B5(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 4:
        _B4(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 3:
        _B3(A, a_off, lda, B, b_off, K, OUT, o_off)
    elif T == 2:
        _B2(A, a_off, lda, B, b_off, K, OUT, o_off)
    else:
        _B1(A, a_off, lda, B, b_off, K, OUT, o_off)


@jit(inline="always")
def lanes_matmul(A, lda, B, K, OUT, rows):
    """OUT[t, :] += sum_k A[k, t] B[k, :] for t < rows, k-ordered per entry; A (K, >= rows) with row
    stride lda, B (K, L) and OUT (rows, L) with L = 8 or 16 lanes (paths). Rows are split into tiles of
    balanced sizes (a small remainder tile would be bound by the FMA latency); k runs in blocks of
    ``K_BLOCK`` so that a block of B stays in the L1 cache across the tiles."""
    width = B.shape[1]
    t_max = ACC_MAX * VEC // width
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
            if width == 2 * VEC:
                _tile16(T, A, k0 * lda + t0, lda, B, k0 * width, kb, OUT, t0 * width)
            else:
                _tile8(T, A, k0 * lda + t0, lda, B, k0 * width, kb, OUT, t0 * width)
            t0 += T
