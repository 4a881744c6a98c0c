"""Counter-based random numbers: Philox4x32-10 addressed by (key, path, step, index).

Every random number diagsim draws is a pure function of
``(seed, stream, path, step, index)``: the same on serial and parallel CPU kernels and on the GPU,
independent of how many paths run, so any path can be replayed alone and adding paths leaves the others
unchanged. The generator is Philox4x32 with 10 rounds (Salmon et al., SC'11), checked against the
Random123 known-answer vectors.

Layout of one Philox call (a *block*, 128 bits):
    counter = (block, step mod 2**32, step div 2**32, path),   key = (k0, k1) = key_for(seed, stream).

Derived variates (all indices are 0-based within one (path, step)):
    * uniform53(i): block i // 2; words (2a, 2a+1) with a = i % 2 give a 53-bit uniform in [0, 1).
    * normal(i):    block i // 2 -> two uniforms (U1, U2) -> Box-Muller pair
                    (R cos 2pi U2, R sin 2pi U2), R = sqrt(-2 log(1 - U1)); element i takes component i % 2.
    * sign(i):      block i // 128, word (i % 128) // 32, bit i % 32: +1 if set else -1.
Normals are reproducible bit for bit on one backend; across CPU and GPU they may differ in the last ulp
through the device's log/sin/cos.
"""
from __future__ import annotations

import math

import numpy as np

from ._jit import jit

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
        from .errors import DiagsimError
        raise DiagsimError(f"seed must be a non-negative integer, got {seed!r}")
    st = np.random.SeedSequence(int(seed), spawn_key=(sid,)).generate_state(2, np.uint32)
    return np.uint64(st[0]), np.uint64(st[1])


@jit
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) under key (k0, k1); words are uint64 holding 32 bits."""
    c0 = np.uint64(c0) & _MASK
    c1 = np.uint64(c1) & _MASK
    c2 = np.uint64(c2) & _MASK
    c3 = np.uint64(c3) & _MASK
    k0 = np.uint64(k0) & _MASK
    k1 = np.uint64(k1) & _MASK
    for r in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        hi0 = p0 >> _S32
        lo0 = p0 & _MASK
        hi1 = p1 >> _S32
        lo1 = p1 & _MASK
        n0 = hi1 ^ c1 ^ k0
        n2 = hi0 ^ c3 ^ k1
        c0 = n0
        c1 = lo1
        c2 = n2
        c3 = lo0
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@jit
def _block(k0, k1, path, step, block):
    st = np.uint64(step)
    return philox4x32(np.uint64(block), st & _MASK, st >> _S32, np.uint64(path), k0, k1)


_INV53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * math.pi


@jit
def _u53(a, b):
    # 27 high bits of a, 26 high bits of b -> k / 2**53 in [0, 1)   (genrand_res53)
    return (float(a >> np.uint64(5)) * 67108864.0 + float(b >> np.uint64(6))) * _INV53


@jit
def normal_pair(k0, k1, path, step, block):
    """Two independent N(0, 1) from one Philox block (Box-Muller)."""
    a, b, c, d = _block(k0, k1, path, step, block)
    u1 = 1.0 - _u53(a, b)  # in (0, 1]
    u2 = _u53(c, d)
    rad = math.sqrt(-2.0 * math.log(u1))
    ang = _TWO_PI * u2
    return rad * math.cos(ang), rad * math.sin(ang)


@jit
def fill_normals(k0, k1, path, step, out, scale):
    """out[i] = scale * normal(i) for i < len(out)."""
    n = out.shape[0]
    nb = n // 2
    for b in range(nb):
        z0, z1 = normal_pair(k0, k1, path, step, b)
        out[2 * b] = scale * z0
        out[2 * b + 1] = scale * z1
    if n % 2 == 1:
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
