"""Explicit-SIMD micro-kernel for the products with Z over a group of paths (LLVM IR, via Numba).

LLVM's auto-vectorizer does not register-block across paths (NOTES.md §8), so the one loop that matters
is written here directly in LLVM IR, with 8-wide vectors whose lanes are 8 *paths*:

    OUT[t, :] <- OUT[t, :] + sum_k A[k, t] * B[k, :]      t = 0..T-1, k = 0, 1, ..., K-1 (in that order)

with OUT rows of ``LANES`` doubles, B (K, LANES) and A[k, t] = A_flat[a_off + k * lda + t]. Each lane's
entry is the sequence acc <- fmuladd(A[k, t], B[k, s], acc) for k in order: the operations of the per-path
loops in :mod:`diagsim.optimizers._linalg` (``acc + a * b`` contracted), so every path's result is
bitwise that of the per-path kernels, whichever lane, group or tile it is computed in. ``llvm.fmuladd``
is fused exactly where the contracted scalar code is (FMA hardware), so the equality also holds on a CPU
without FMA.

The T accumulators (vectors of 8 paths) stay in registers for the whole k loop; each step loads one row of
B and broadcasts T entries of A: the register-blocked inner kernel of a GEMM, with the summation order of
the per-path kernels.

Callers guarantee the index ranges (no bounds checks): a_off + (K-1) * lda + T <= A.size,
K * LANES <= B.size, o_off + T * LANES <= OUT.size, all arrays C-contiguous float64.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

#: paths per vector (one 512-bit register of doubles; two 256-bit ones on AVX2)
LANES = 8


def _make_tile(T: int):
    @intrinsic
    def tile(typingctx, A, a_off, lda, B, K, OUT, o_off):
        sig = types.void(A, a_off, lda, B, K, OUT, o_off)

        def codegen(context, builder, signature, args):
            A_, a_off_, lda_, B_, K_, OUT_, o_off_ = args
            aty, _, _, bty, _, oty, _ = signature.args
            i64 = ir.IntType(64)
            f64 = ir.DoubleType()
            vec = ir.VectorType(f64, LANES)
            vptr = vec.as_pointer()
            a_data = context.make_array(aty)(context, builder, A_).data
            b_data = context.make_array(bty)(context, builder, B_).data
            o_data = context.make_array(oty)(context, builder, OUT_).data
            a_off_ = context.cast(builder, a_off_, signature.args[1], types.int64)
            lda_ = context.cast(builder, lda_, signature.args[2], types.int64)
            K_ = context.cast(builder, K_, signature.args[4], types.int64)
            o_off_ = context.cast(builder, o_off_, signature.args[6], types.int64)
            fmuladd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fmuladd.v8f64")
            a_base = builder.gep(a_data, [a_off_])
            o_base = builder.gep(o_data, [o_off_])
            o_rows = [builder.bitcast(builder.gep(o_base, [ir.Constant(i64, t * LANES)]), vptr)
                      for t in range(T)]
            init = [builder.load(p, align=8) for p in o_rows]
            zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            undef = ir.Constant(vec, ir.Undefined)

            entry = builder.block
            loop = builder.append_basic_block("simd_tile.loop")
            done = builder.append_basic_block("simd_tile.done")
            builder.cbranch(builder.icmp_signed(">", K_, ir.Constant(i64, 0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(i64)
            acc = [builder.phi(vec) for _ in range(T)]
            b = builder.load(builder.bitcast(builder.gep(b_data, [builder.mul(k, ir.Constant(i64, LANES))]),
                                             vptr), align=8)
            a_row = builder.gep(a_base, [builder.mul(k, lda_)])
            new = []
            for t in range(T):
                a = builder.load(builder.gep(a_row, [ir.Constant(i64, t)]), align=8)
                a_vec = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(ir.IntType(32), 0)),
                                               undef, zero_mask)
                new.append(builder.call(fmuladd, [a_vec, b, acc[t]]))
            k_next = builder.add(k, ir.Constant(i64, 1))
            tail = builder.block
            k.add_incoming(ir.Constant(i64, 0), entry)
            k.add_incoming(k_next, tail)
            for t in range(T):
                acc[t].add_incoming(init[t], entry)
                acc[t].add_incoming(new[t], tail)
            builder.cbranch(builder.icmp_signed("<", k_next, K_), loop, done)

            builder.position_at_end(done)
            results = [builder.phi(vec) for _ in range(T)]
            for t in range(T):
                results[t].add_incoming(init[t], entry)
                results[t].add_incoming(new[t], tail)
            for t in range(T):
                builder.store(results[t], o_rows[t], align=8)
            return context.get_dummy_value()

        return sig, codegen

    return tile


#: the most accumulator rows per tile: 12 vectors + one row of B + broadcasts fit in 32 registers; 8 or more
#: rows keep both FMA ports busy through the FMA latency
T_MAX = 12

_T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _T9, _T10, _T11, _T12 = (_make_tile(t) for t in range(1, T_MAX + 1))


@jit(inline="always")
def _tile(T, A, a_off, lda, B, K, OUT, o_off):
    if T == 12:
        _T12(A, a_off, lda, B, K, OUT, o_off)
    elif T == 11:
        _T11(A, a_off, lda, B, K, OUT, o_off)
    elif T == 10:
        _T10(A, a_off, lda, B, K, OUT, o_off)
    elif T == 9:
        _T9(A, a_off, lda, B, K, OUT, o_off)
    elif T == 8:
        _T8(A, a_off, lda, B, K, OUT, o_off)
    elif T == 7:
        _T7(A, a_off, lda, B, K, OUT, o_off)
    elif T == 6:
        _T6(A, a_off, lda, B, K, OUT, o_off)
    elif T == 5:
        _T5(A, a_off, lda, B, K, OUT, o_off)
    elif T == 4:
        _T4(A, a_off, lda, B, K, OUT, o_off)
    elif T == 3:
        _T3(A, a_off, lda, B, K, OUT, o_off)
    elif T == 2:
        _T2(A, a_off, lda, B, K, OUT, o_off)
    else:
        _T1(A, a_off, lda, B, K, OUT, o_off)


@jit(inline="always")
def lanes_matmul(A, lda, B, K, OUT, rows):
    """OUT[t, :] += sum_k A[k, t] B[k, :] for t < rows (A (K, >= rows) with row stride lda, B (K, LANES),
    OUT (rows, LANES)), k-ordered per entry. Rows are split into ceil(rows / T_MAX) tiles of balanced
    sizes (a small remainder tile would be FMA-latency bound)."""
    q = (rows + T_MAX - 1) // T_MAX
    if q == 0:
        return
    base = rows // q
    extra = rows - base * q
    t0 = 0
    for b in range(q):
        T = base + 1 if b < extra else base
        _tile(T, A, t0, lda, B, K, OUT, t0 * LANES)
        t0 += T
