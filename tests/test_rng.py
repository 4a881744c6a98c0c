"""Tests of the counter-based generator (diagsim.lowlevel.rng) against independent references.

Known-answer vectors of Random123, mpmath for the log/sin/cos routines, a NumPy re-implementation of the
Box-Muller transform from the raw Philox words, and statistical tests (KS, monobit, chi-square) with
thresholds set by the tests' null distributions at fixed seeds.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import stats

from diagsim.errors import DiagsimError
from diagsim.lowlevel import rng
from diagsim.lowlevel.jit import jit

# Random123 kat_vectors, philox4x32 with 10 rounds: (counter, key) -> output
KATS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KATS)
def test_philox_known_answers(ctr, key, expected):
    got = rng.philox4x32(*ctr, *key)
    assert tuple(int(x) for x in got) == expected


@pytest.mark.parametrize("ctr,key,expected", KATS)
def test_philox_known_answers_pure_python(ctr, key, expected):
    # the uncompiled function is what the CUDA simulator runs
    got = rng.philox4x32.py_func(*(np.uint64(c) for c in ctr), *(np.uint64(k) for k in key))
    assert tuple(int(x) for x in got) == expected


@jit
def _logs(ms):
    out = np.empty(ms.shape[0])
    for i in range(ms.shape[0]):
        out[i] = rng._log_int53(ms[i])
    return out


@jit
def _cos_sin(js):
    c = np.empty(js.shape[0])
    s = np.empty(js.shape[0])
    for i in range(js.shape[0]):
        c[i], s[i] = rng._cos_sin_int53(js[i])
    return c, s


def test_log_within_one_ulp_of_mpmath():
    g = np.random.default_rng(11)
    ms = np.concatenate([g.integers(1, 2**53, 3000, dtype=np.uint64),
                         np.arange(1, 200, dtype=np.uint64),
                         (2**53 - np.arange(0, 200)).astype(np.uint64),
                         (np.uint64(1) << np.arange(0, 54, dtype=np.uint64)),
                         (np.uint64(1) << np.arange(1, 54, dtype=np.uint64)) - np.uint64(1)])
    got = _logs(ms)
    mpmath.mp.prec = 120
    ref = np.array([float(mpmath.log(mpmath.mpf(int(m)) / 2**53)) for m in ms])
    zero = ref == 0.0
    assert np.all(got[zero] == 0.0)
    ulps = np.abs(got[~zero] - ref[~zero]) / np.spacing(np.abs(ref[~zero]))
    assert ulps.max() <= 1.0


def test_cos_sin_within_one_ulp_of_mpmath():
    g = np.random.default_rng(12)
    quarter = np.uint64(1) << np.uint64(51)
    js = np.concatenate([g.integers(0, 2**53, 3000, dtype=np.uint64), np.arange(0, 100, dtype=np.uint64),
                         np.arange(0, 4, dtype=np.uint64) * quarter,
                         np.arange(1, 5, dtype=np.uint64) * quarter - np.uint64(1),
                         np.arange(0, 8, dtype=np.uint64) * (quarter >> np.uint64(1)) + np.uint64(3)])
    c, s = _cos_sin(js)
    mpmath.mp.prec = 120
    ang = [2 * mpmath.pi * int(j) / mpmath.mpf(2**53) for j in js]
    rc = np.array([float(mpmath.cos(a)) for a in ang])
    rs = np.array([float(mpmath.sin(a)) for a in ang])
    # absolute error <= 1 ulp of 1/2 (the results are bounded by 1); relative <= 2 ulp away from zeros
    assert np.abs(c - rc).max() <= 2.0**-53 and np.abs(s - rs).max() <= 2.0**-53
    big = np.abs(rc) > 1e-3
    assert (np.abs(c - rc)[big] / np.spacing(np.abs(rc[big]))).max() <= 2.0
    assert np.all(c * c + s * s == pytest.approx(1.0, abs=4e-16))


def _words(seed, stream, path, step, nblocks):
    k0, k1 = rng.key_for(seed, stream)
    return np.array([[int(x) for x in rng.philox4x32(b, step & 0xFFFFFFFF, step >> 32, path, k0, k1)]
                     for b in range(nblocks)], dtype=np.uint64)


def test_normals_match_numpy_box_muller_from_raw_words():
    n, path, step = 13, 7, 2**33 + 5
    w = _words(3, "test", path, step, (n + 1) // 2)
    u1 = 1.0 - ((w[:, 0] >> 5).astype(float) * 67108864.0 + (w[:, 1] >> 6).astype(float)) / 2.0**53
    u2 = ((w[:, 2] >> 5).astype(float) * 67108864.0 + (w[:, 3] >> 6).astype(float)) / 2.0**53
    rad = np.sqrt(-2.0 * np.log(u1))
    ref = np.stack([rad * np.cos(2 * np.pi * u2), rad * np.sin(2 * np.pi * u2)], axis=1).ravel()[:n]
    got = rng.normals(3, "test", [path], range(step, step + 1), n)[0, 0]
    # libm's cos(2 pi u) rounds 2 pi u first: absolute differences of a few 1e-16 * (1 + |z|)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)


def test_uniforms_and_signs_match_raw_words():
    n, path, step = 9, 3, 11
    w = _words(5, "test", path, step, 5)
    hi = [int(w[i // 2, 2 * (i % 2)]) >> 5 for i in range(n)]
    lo = [int(w[i // 2, 2 * (i % 2) + 1]) >> 6 for i in range(n)]
    ref_u = np.array([(a * 2**26 + b) / 2**53 for a, b in zip(hi, lo)])
    np.testing.assert_array_equal(rng.uniforms(5, "test", [path], range(step, step + 1), n)[0, 0], ref_u)
    m = 300
    w = _words(5, "test", path, step, 3)
    ref_s = np.array([1.0 if (int(w[i // 128, (i % 128) // 32]) >> (i % 32)) & 1 else -1.0 for i in range(m)])
    got = rng.signs(5, "test", [path], range(step, step + 1), m, 0.5)[0, 0]
    np.testing.assert_array_equal(got, 0.5 * ref_s)


def test_normals_ks_and_moments():
    z = rng.normals(0, "test", np.arange(200), range(50), 20).ravel()  # 200 000 draws
    assert stats.kstest(z, "norm").pvalue > 1e-3
    N = z.size
    assert abs(z.mean()) / math.sqrt(1.0 / N) < 4.5
    assert abs(z.var() - 1.0) / math.sqrt(2.0 / N) < 4.5
    # components of one pair (cos, sin) are independent: correlation ~ N(0, 1/N)
    pairs = z.reshape(-1, 2)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) * math.sqrt(pairs.shape[0]) < 4.5
    # tails: P(|z| > 3) = 0.0026998
    p = 2 * stats.norm.sf(3.0)
    assert abs((np.abs(z) > 3).mean() - p) / math.sqrt(p * (1 - p) / N) < 4.5


def test_sign_bits_frequency():
    s = rng.signs(1, "test", np.arange(100), range(20), 1000)  # 2e6 bits
    N = s.size
    assert abs(s.sum()) / math.sqrt(N) < 4.5
    # every bit position of the 128-bit blocks is balanced (500 words per position x 2000 draws)
    pos = s.reshape(-1, 1000)[:, :896].reshape(-1, 7, 128).reshape(-1, 128)
    z = pos.sum(axis=0) / math.sqrt(pos.shape[0])
    assert stats.chi2.sf((z * z).sum(), 128) > 1e-4
    # consecutive signs are independent: runs test via lag-1 correlation
    flat = s.ravel()
    assert abs(np.mean(flat[1:] * flat[:-1])) * math.sqrt(N - 1) < 4.5


def test_uniform_bits():
    u = rng.uniforms(2, "test", np.arange(100), range(20), 500).ravel()  # 1e6
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=64, range=(0, 1))[0]
    exp = u.size / 64
    assert stats.chi2.sf(((counts - exp) ** 2 / exp).sum(), 63) > 1e-4
    # the low bits are as random as the high ones: the last of the 53 bits is a fair coin
    j = np.round(u * 2.0**53).astype(np.int64)
    assert abs((j & 1).mean() - 0.5) / math.sqrt(0.25 / u.size) < 4.5
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_path_and_step_independence_and_replay():
    big = rng.normals(4, "brownian", np.arange(64), range(10, 30), 21)
    # a path replays alone; adding paths or steps changes nothing
    np.testing.assert_array_equal(rng.normals(4, "brownian", [17], range(15, 16), 21)[0, 0], big[17, 5])
    np.testing.assert_array_equal(rng.normals(4, "brownian", [63, 2], range(10, 30), 21)[1], big[2])
    # element i does not depend on how many are drawn (prefix property, odd lengths included)
    np.testing.assert_array_equal(rng.normals(4, "brownian", [3], range(12, 13), 8)[0, 0], big[3, 2, :8])
    # neighbouring paths / steps / streams are uncorrelated: |r| ~ N(0, 1/N)
    a = big[:-1].ravel()
    b = big[1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) * math.sqrt(a.size) < 4.5
    a = big[:, :-1].ravel()
    b = big[:, 1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) * math.sqrt(a.size) < 4.5
    other = rng.normals(4, "label_noise", np.arange(64), range(10, 30), 21).ravel()
    assert abs(np.corrcoef(big.ravel(), other)[0, 1]) * math.sqrt(other.size) < 4.5
    other = rng.normals(5, "brownian", np.arange(64), range(10, 30), 21).ravel()
    assert abs(np.corrcoef(big.ravel(), other)[0, 1]) * math.sqrt(other.size) < 4.5


@jit
def _fill_all(k0, k1, path, step, n, scale):
    z = np.empty(n)
    s = np.empty(n)
    u = np.empty(n)
    rng.fill_normals(k0, k1, path, step, z, scale)
    rng.fill_signs(k0, k1, path, step, s, scale)
    rng.fill_uniforms(k0, k1, path, step, u)
    pair = rng.normal_pair(k0, k1, path, step, 1)
    return z, s, u, pair


@pytest.mark.parametrize("n", [1, 2, 7, 40, 129])
def test_fill_functions_agree_with_python_views(n):
    k0, k1 = rng.key_for(9, "sam")
    z, s, u, pair = _fill_all(k0, k1, 12, 34, n, 0.25)
    np.testing.assert_array_equal(z, rng.normals(9, "sam", [12], range(34, 35), n, 0.25)[0, 0])
    np.testing.assert_array_equal(s, rng.signs(9, "sam", [12], range(34, 35), n, 0.25)[0, 0])
    np.testing.assert_array_equal(u, rng.uniforms(9, "sam", [12], range(34, 35), n)[0, 0])
    both = rng.normals(9, "sam", [12], range(34, 35), 4)[0, 0]
    assert pair == (both[2], both[3])


def test_key_for_validation():
    assert rng.key_for(0, "test") != rng.key_for(1, "test")
    assert rng.key_for(0, "test") != rng.key_for(0, "brownian")
    with pytest.raises(DiagsimError, match="seed"):
        rng.key_for(-1)
    with pytest.raises(DiagsimError, match="seed"):
        rng.key_for(1.5)


def test_fill_normals_strided_lanes_reproduce_fill_normals_bitwise():
    """The GPU lanes' split of fill_normals (blocks start, start + stride, ...) gives its numbers exactly."""
    from diagsim.lowlevel.rng import fill_normals, fill_normals_strided, key_for
    k0, k1 = key_for(3, "brownian")
    for n in (1, 2, 7, 40, 65):
        ref = np.empty(n)
        fill_normals(k0, k1, 5, 11, ref, 0.3)
        for stride in (1, 3, 32):
            out = np.full(n, np.nan)
            for start in range(stride):
                fill_normals_strided(k0, k1, 5, 11, out, 0.3, start, stride)
            np.testing.assert_array_equal(out, ref)
