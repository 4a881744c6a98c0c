"""Explicit-SIMD micro-kernel for the products with Z over a group of paths (LLVM IR, via Numba).

LLVM's auto-vectorizer does not register-block across paths (NOTES.md §8), so the one loop that matters
is written here directly in LLVM IR, with vectors of 8 doubles whose lanes are 8 *paths*; a row of the
output holds ``8 V`` paths (V = 1 or 2 vectors):

    OUT[t, :] <- OUT[t, :] + sum_k A[k, t] * B[k, :]      t = 0..T-1, k = 0, 1, ..., K-1 (in that order)

with OUT (rows, 8 V), B (K, 8 V) and A[k, t] = A_flat[a_off + k * lda + t]. Each lane's entry is the
sequence acc <- fmuladd(A[k, t], B[k, l], acc) for k in order: the operations of the per-path loops in
:mod:`diagsim.networks.diagonal.grouped` (``acc + a * b`` contracted), so every path's result is bitwise that of
the per-path kernels, whichever lane, group or tile it is computed in. ``llvm.fmuladd`` is fused exactly
where the contracted scalar code is (FMA hardware), so the equality also holds on a CPU without FMA.

The T x V accumulators stay in registers for the whole k loop; each step loads one row of B (V vectors)
and broadcasts T entries of A: the register-blocked inner kernel of a GEMM, with the summation order of
the per-path kernels. With V = 2 each broadcast feeds two FMAs, which halves the loads and the traffic of
A per path (benchmarks/NOTES.md §10).

Callers guarantee the index ranges (no bounds checks): a_off + (K-1) * lda + T <= A.size,
K * 8 V <= B.size, o_off + T * 8 V <= OUT.size, all arrays C-contiguous float64.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import jit

#: doubles per vector (one 512-bit register; two 256-bit ones on AVX2)
VEC = 8
#: most accumulator vectors of a tile: T x V <= 12 leaves registers for a row of B and the broadcasts;
#: 8 or more keep both FMA ports busy through the FMA latency
ACC_MAX = 12
#: rows of B per k block (256 x 8 doubles = 16 KiB)
K_BLOCK = 256


def _emit_tile(builder, T, V, a_base, lda, b_data, b_off, K, o_base):
    """Emit the loop of one tile (T rows of OUT, V vectors per row) at the builder's position; the
    builder ends in the block after the loop."""
    width = VEC * V
    i32 = ir.IntType(32)
    i64 = ir.IntType(64)
    vec = ir.VectorType(ir.DoubleType(), VEC)
    vptr = vec.as_pointer()

    def const(x):
        return ir.Constant(i64, x)

    fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             "llvm.fmuladd.v8f64")
    # accumulator (t, v) is OUT[t, 8v : 8v + 8]
    o_vecs = [builder.bitcast(builder.gep(o_base, [const(t * width + v * VEC)]), vptr)
              for t in range(T) for v in range(V)]
    init = [builder.load(p, align=8) for p in o_vecs]
    undef = ir.Constant(vec, ir.Undefined)
    splat_mask = ir.Constant(ir.VectorType(i32, VEC), [0] * VEC)

    entry = builder.block
    loop = builder.append_basic_block(f"simd_tile{T}x{V}.loop")
    done = builder.append_basic_block(f"simd_tile{T}x{V}.done")
    builder.cbranch(builder.icmp_signed(">", K, const(0)), loop, done)

    builder.position_at_end(loop)
    k = builder.phi(i64)
    acc = [builder.phi(vec) for _ in range(T * V)]
    b_row = builder.gep(b_data, [builder.add(b_off, builder.mul(k, const(width)))])
    b = [builder.load(builder.bitcast(builder.gep(b_row, [const(v * VEC)]), vptr), align=8) for v in range(V)]
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


#: the tiles compiled: (T, V) with T x V <= ACC_MAX
TILES = [(t, v) for v in (1, 2) for t in range(1, ACC_MAX // v + 1)]


@intrinsic
def _tile(typingctx, T, A, a_off, lda, B, b_off, K, OUT, o_off):
    """One tile of T rows (1 <= T <= ACC_MAX / V) with V = B.shape[1] / 8 vectors per row: a switch over
    (T, V) to the loop emitted for it by :func:`_emit_tile`."""
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
        for t, v in TILES:
            case = builder.append_basic_block(f"simd_tile{t}x{v}")
            switch.add_case(ir.Constant(i64, t * 64 + VEC * v), case)
            builder.position_at_end(case)
            _emit_tile(builder, t, v, a_base, lda_, b_arr.data, b_off_, K_, o_base)
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
    stride lda, B (K, L) and OUT (rows, L) with L = 8 or 16 lanes (paths). Rows are split into tiles of
    balanced sizes (a small remainder tile would be bound by the FMA latency); k runs in blocks of
    ``K_BLOCK`` so that a block of B stays in the L1 cache across the tiles."""
    width = B.shape[1]
    if width != VEC and width != 2 * VEC:
        raise ValueError("lanes_matmul: B must have 8 or 16 lanes (columns)")
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
            _tile(T, A, k0 * lda + t0, lda, B, k0 * width, kb, OUT, t0 * width)
            t0 += T
