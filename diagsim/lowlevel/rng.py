"""Counter-based random numbers: Philox4x32-10 addressed by (key, path, step, index).

Every random number diagsim draws is a pure function of
``(seed, stream, path, step, index)``: the same on serial and parallel CPU kernels and on the GPU,
independent of how many paths run, so any path can be replayed alone and adding paths leaves the others
unchanged. The generator is Philox4x32 with 10 rounds (Salmon et al., SC'11), checked against the
Random123 known-answer vectors.

Layout of one Philox call (a *block*, 128 bits):
    counter = (block, step mod 2**32, step div 2**32, path),   key = (k0, k1) = key_for(seed, stream).

Derived variates (all indices are 0-based within one (path, step)):
    * uniform53(i): block i // 2; words (2a, 2a+1) with a = i % 2 give a 53-bit uniform in [0, 1):
                    j = (w0 >> 5) * 2**26 + (w1 >> 6), U = j / 2**53.
    * normal(i):    block i // 2 -> words (w0, w1, w2, w3) -> U1 = 1 - uniform53(w0, w1) in (0, 1],
                    U2 = uniform53(w2, w3) -> Box-Muller pair (R cos 2pi U2, R sin 2pi U2),
                    R = sqrt(-2 log U1); element i takes component i % 2.
    * sign(i):      block i // 128, word (i % 128) // 32, bit i % 32: +1 if set else -1.

How the normals are evaluated: log, cos and sin are diagsim's own branch-free float64 routines (the
FreeBSD msun polynomials of e_log.c, k_sin.c, k_cos.c; each within 1 ulp of the exact value, checked
against mpmath in the tests), not libm calls. The logarithm takes its exponent from the bit length of the
integer 2**53 U1 and the angle is reduced exactly on the integer phase 2**53 U2 (nearest quarter turn),
so a fill loop over blocks vectorizes (AVX2/AVX-512) and CPU, CUDA device and CUDA simulator run the same
operations. Normals are reproducible bit for bit on one backend; on a real GPU they may differ in the
last ulp where the device compiler contracts a*b + c into an FMA. (Before this implementation, libm's
functions were used: the same variates up to ~1e-15 absolute.)

Speed (2-core Xeon, float64): ``fill_normals`` ~5 ns per normal for 40 normals per call, single thread
(it was ~23 ns with libm; see benchmarks/NOTES.md).
"""
from __future__ import annotations

import math

import numpy as np

from .jit import jit_exact as jit

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

#: named streams: one key per use, so that e.g. label noise and Brownian increments never collide
STREAMS = {
    "label_noise": 1,
    "brownian": 2,
    "minibatch": 3,
    "init": 4,
    "sam": 5,
    "test": 99,
}


def key_for(seed: int, stream: str | int = "label_noise") -> tuple[np.uint64, np.uint64]:
    """The Philox key (two 32-bit words, held in uint64) for ``seed`` and a named ``stream``.

    Derived through ``numpy.random.SeedSequence(seed, spawn_key=(stream,))`` so that nearby seeds give
    unrelated keys.
    """
    sid = STREAMS[stream] if isinstance(stream, str) else int(stream)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        from ..errors import DiagsimError
        raise DiagsimError(f"seed must be a non-negative integer, got {seed!r}")
    st = np.random.SeedSequence(int(seed), spawn_key=(sid,)).generate_state(2, np.uint32)
    return np.uint64(st[0]), np.uint64(st[1])


@jit(inline="always")
def _philox_round(c0, c1, c2, c3, k0, k1):
    # words are uint32; the 32x32 -> 64-bit products give (hi, lo)
    p0 = np.uint64(c0) * _M0
    p1 = np.uint64(c2) * _M1
    return (np.uint32(p1 >> _S32) ^ c1 ^ k0, np.uint32(p1), np.uint32(p0 >> _S32) ^ c3 ^ k1, np.uint32(p0))


@jit(inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) under key (k0, k1); words are uint64 holding 32 bits.

    Computed on uint32 words with the ten rounds written out (not a loop) and inlined, so that LLVM
    vectorizes a loop over blocks.
    """
    k0 = np.uint64(k0) & _MASK
    k1 = np.uint64(k1) & _MASK
    c0 = np.uint32(np.uint64(c0) & _MASK)
    c1 = np.uint32(np.uint64(c1) & _MASK)
    c2 = np.uint32(np.uint64(c2) & _MASK)
    c3 = np.uint32(np.uint64(c3) & _MASK)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    k0 = k0 + _W0
    k1 = k1 + _W1
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, np.uint32(k0), np.uint32(k1))
    return np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3)


@jit(inline="always")
def _block(k0, k1, path, step, block):
    st = np.uint64(step)
    return philox4x32(np.uint64(block), st & _MASK, st >> _S32, np.uint64(path), k0, k1)


_INV53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * math.pi


@jit(inline="always")
def _u53(a, b):
    # 27 high bits of a, 26 high bits of b -> k / 2**53 in [0, 1)   (genrand_res53)
    return (float(a >> np.uint64(5)) * 67108864.0 + float(b >> np.uint64(6))) * _INV53


# ---------------------------------------------------------------------------------------------------
# Box-Muller with diagsim's own log / sin / cos.
#
# libm's log, sin and cos are opaque calls that stop LLVM from vectorizing a loop over blocks, and they
# differ between CPU and GPU. The routines below are branch-free float64 arithmetic on the integer phase
# (FreeBSD msun's e_log.c / k_sin.c / k_cos.c polynomials, errors below 1 ulp), so a fill loop vectorizes
# (AVX2/AVX-512) and the CPU, the CUDA device and the CUDA simulator evaluate the same operations.

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11
_TWO_PI_2M53 = _TWO_PI * _INV53          # 2 pi / 2**53 (exact power-of-two scaling of fl(2 pi))
_2P52 = 4503599627370496.0
_INV52 = 1.0 / _2P52
_U1 = np.uint64(1)
_U2P50 = np.uint64(1) << np.uint64(50)
_U2P53 = np.uint64(1) << np.uint64(53)


@jit(inline="always")
def _bit53(a, b):
    """The 53-bit integer (a >> 5) * 2**26 + (b >> 6) of two 32-bit words (uint64)."""
    return ((a >> np.uint64(5)) << np.uint64(26)) | (b >> np.uint64(6))


@jit(inline="always")
def _log_int53(m):
    """log(m / 2**53) for an integer 1 <= m <= 2**53 (uint64), to < 1 ulp (msun e_log.c).

    The exponent comes from the bit length of m (six branch-free halving steps), the mantissa from an
    exact shift, so no float bit-casts are needed.
    """
    t = m
    e = np.int64(0)
    s = (t >> np.uint64(32) != np.uint64(0)) * np.int64(32)
    t = t >> np.uint64(s)
    e += s
    s = (t >> np.uint64(16) != np.uint64(0)) * np.int64(16)
    t = t >> np.uint64(s)
    e += s
    s = (t >> np.uint64(8) != np.uint64(0)) * np.int64(8)
    t = t >> np.uint64(s)
    e += s
    s = (t >> np.uint64(4) != np.uint64(0)) * np.int64(4)
    t = t >> np.uint64(s)
    e += s
    s = (t >> np.uint64(2) != np.uint64(0)) * np.int64(2)
    t = t >> np.uint64(s)
    e += s
    s = (t >> np.uint64(1) != np.uint64(0)) * np.int64(1)
    e += s
    # m = 2**e * (1 + f0), 1 + f0 = (m << (52 - e)) / 2**52 in [1, 2)  (exact; e = 53 only for m = 2**53)
    top = e // 53
    mant = float((m >> np.uint64(top)) << np.uint64(52 - e + top)) * _INV52
    big = mant > _SQRT2
    mant = mant * (1.0 - 0.5 * big)                 # into [sqrt(2)/2, sqrt(2)), exact
    k = float(e + big - 53)
    f = mant - 1.0                                  # exact (Sterbenz)
    hfsq = 0.5 * f * f
    s_ = f / (2.0 + f)
    z = s_ * s_
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    return k * _LN2_HI - ((hfsq - (s_ * (hfsq + r) + k * _LN2_LO)) - f)


@jit(inline="always")
def _cos_sin_int53(j):
    """(cos, sin)(2 pi j / 2**53) for an integer 0 <= j < 2**53 (uint64), each to < 1 ulp of the reduced
    argument (msun k_cos.c / k_sin.c). The quadrant is taken from the integer phase, so the reduction is
    exact up to the one rounding of theta = r * (2 pi / 2**53), |theta| <= pi/4."""
    q = (j + _U2P50) >> np.uint64(51)              # nearest quarter turn, 0..4
    r = np.int64(j) - np.int64(q << np.uint64(51))  # in [-2**50, 2**50)
    x = float(r) * _TWO_PI_2M53
    z = x * x
    w = z * z
    rs = _S2 + z * (_S3 + z * _S4) + z * w * (_S5 + z * _S6)
    sn = x + z * x * (_S1 + z * rs)
    rc = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    wc = 1.0 - hz
    cs = wc + (((1.0 - wc) - hz) + z * rc)
    qq = q & np.uint64(3)
    odd = (qq & _U1) == _U1                         # quarter turns 1, 3: swap
    neg_c = (qq == np.uint64(1)) | (qq == np.uint64(2))
    neg_s = qq >= np.uint64(2)
    c = sn if odd else cs
    s = cs if odd else sn
    c = -c if neg_c else c
    s = -s if neg_s else s
    return c, s


@jit(inline="always")
def _box_muller(a, b, c, d):
    """The normal pair of one Philox block (words a, b, c, d): R (cos, sin)(2 pi U2),
    R = sqrt(-2 log U1), U1 = 1 - uniform53(a, b) in (0, 1], U2 = uniform53(c, d)."""
    m = _U2P53 - _bit53(a, b)                       # 2**53 * U1, in [1, 2**53]
    rad = math.sqrt(-2.0 * _log_int53(m))
    cs, sn = _cos_sin_int53(_bit53(c, d))
    return rad * cs, rad * sn


@jit(inline="always")
def normal_pair(k0, k1, path, step, block):
    """Two independent N(0, 1) from one Philox block (Box-Muller)."""
    a, b, c, d = _block(k0, k1, path, step, block)
    return _box_muller(a, b, c, d)


@jit
def fill_normals(k0, k1, path, step, out, scale):
    """out[i] = scale * normal(i) for i < len(out).

    Two vectorized passes: the Philox blocks first (their two 53-bit integers parked exactly in
    ``out`` as floats), then the Box-Muller transform in place.
    """
    n = out.shape[0]
    nb = n // 2
    for b in range(nb):
        a, bb, c, d = _block(k0, k1, path, step, b)
        out[2 * b] = float(_U2P53 - _bit53(a, bb))  # 2**53 * U1, exact
        out[2 * b + 1] = float(_bit53(c, d))         # 2**53 * U2, exact
    for b in range(nb):
        rad = scale * math.sqrt(-2.0 * _log_int53(np.uint64(out[2 * b])))
        cs, sn = _cos_sin_int53(np.uint64(out[2 * b + 1]))
        out[2 * b] = rad * cs
        out[2 * b + 1] = rad * sn
    if n % 2 == 1:
        z0, z1 = normal_pair(k0, k1, path, step, nb)
        out[n - 1] = scale * z0


@jit
def fill_normals_strided(k0, k1, path, step, out, scale, start, stride):
    """The entries of :func:`fill_normals` that come from blocks start, start + stride, ... (the odd last
    entry belongs to block n // 2): lanes of a GPU warp fill one ``out`` together, bitwise as one thread
    would (the same integers, the same transform)."""
    n = out.shape[0]
    nb = n // 2
    for b in range(start, nb, stride):
        a, bb, c, d = _block(k0, k1, path, step, b)
        u1 = np.uint64(float(_U2P53 - _bit53(a, bb)))
        u2 = np.uint64(float(_bit53(c, d)))
        rad = scale * math.sqrt(-2.0 * _log_int53(u1))
        cs, sn = _cos_sin_int53(u2)
        out[2 * b] = rad * cs
        out[2 * b + 1] = rad * sn
    if n % 2 == 1 and nb % stride == start:
        z0, z1 = normal_pair(k0, k1, path, step, nb)
        out[n - 1] = scale * z0


@jit
def fill_uniforms(k0, k1, path, step, out):
    """out[i] = uniform53(i) in [0, 1)."""
    n = out.shape[0]
    for b in range((n + 1) // 2):
        a, bb, c, d = _block(k0, k1, path, step, b)
        out[2 * b] = _u53(a, bb)
        if 2 * b + 1 < n:
            out[2 * b + 1] = _u53(c, d)


@jit
def fill_signs(k0, k1, path, step, out, scale):
    """out[i] = +scale or -scale from bit i of the stream (Rademacher)."""
    n = out.shape[0]
    nb = (n + 127) // 128
    one = np.uint64(1)
    for b in range(nb):
        w0, w1, w2, w3 = _block(k0, k1, path, step, b)
        base = 128 * b
        for q in range(4):
            if q == 0:
                word = w0
            elif q == 1:
                word = w1
            elif q == 2:
                word = w2
            else:
                word = w3
            for bit in range(32):
                i = base + 32 * q + bit
                if i >= n:
                    break
                if (word >> np.uint64(bit)) & one:
                    out[i] = scale
                else:
                    out[i] = -scale


@jit
def _normals_2d(k0, k1, paths, step0, n_steps, n, scale):
    m = paths.shape[0]
    out = np.empty((m, n_steps, n))
    for p in range(m):
        for s in range(n_steps):
            fill_normals(k0, k1, paths[p], step0 + s, out[p, s], scale)
    return out


def normals(seed: int, stream, paths, steps, n: int, scale: float = 1.0) -> np.ndarray:
    """Normals for ``paths`` (array of path ids) over ``steps`` (a range): shape (len(paths), len(steps), n).

    The Python-level view of the stream, used by tests and plain-NumPy references.
    """
    k0, k1 = key_for(seed, stream)
    paths = np.asarray(paths, dtype=np.int64)
    steps = range(steps) if isinstance(steps, int) else steps
    if steps.step != 1:
        raise ValueError("steps must be a contiguous range")
    return _normals_2d(k0, k1, paths, steps.start, len(steps), int(n), float(scale))


@jit
def _signs_2d(k0, k1, paths, step0, n_steps, n, scale):
    m = paths.shape[0]
    out = np.empty((m, n_steps, n))
    for p in range(m):
        for s in range(n_steps):
            fill_signs(k0, k1, paths[p], step0 + s, out[p, s], scale)
    return out


def signs(seed: int, stream, paths, steps, n: int, scale: float = 1.0) -> np.ndarray:
    """Rademacher ``±scale`` values, shape (len(paths), len(steps), n); see :func:`normals`."""
    k0, k1 = key_for(seed, stream)
    paths = np.asarray(paths, dtype=np.int64)
    steps = range(steps) if isinstance(steps, int) else steps
    return _signs_2d(k0, k1, paths, steps.start, len(steps), int(n), float(scale))


@jit
def _uniforms_2d(k0, k1, paths, step0, n_steps, n):
    m = paths.shape[0]
    out = np.empty((m, n_steps, n))
    for p in range(m):
        for s in range(n_steps):
            fill_uniforms(k0, k1, paths[p], step0 + s, out[p, s])
    return out


def uniforms(seed: int, stream, paths, steps, n: int) -> np.ndarray:
    """Uniforms in [0, 1), shape (len(paths), len(steps), n); see :func:`normals`."""
    k0, k1 = key_for(seed, stream)
    paths = np.asarray(paths, dtype=np.int64)
    steps = range(steps) if isinstance(steps, int) else steps
    return _uniforms_2d(k0, k1, paths, steps.start, len(steps), int(n))
