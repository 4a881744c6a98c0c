"""Where one Euler-Maruyama path-step of the reference problem spends its time (one thread).

Times, per path-step of the label-noise SGD SDE (n = 40, d = 100, "uu-vv"), each piece the step is made
of, in a Numba loop over 10^5 steps on one path (no threading):

* noise:     40 N(0, 1) from ``rng.fill_normals`` (diagsim's Philox + Box-Muller), and the same variates
             through libm's log/cos/sin (the implementation before the generator had its own routines), and
             NumPy's Generator;
* forward:   w = u*u - v*v, r = Z w - y  with ``kernels.forward`` (one axpy per coordinate) and with the
             8-way unrolled ``networks.diagonal.grouped.forward_group`` (same IEEE operations, bitwise equal);
* pullback:  Z^T c with ``kernels.pullback`` and ``networks.diagonal.grouped.pullback_group``;
* chain:     the elementwise chain rule / update.

Set ``NUMBA_CPU_FEATURES="<host features>,-prefer-256-bit"`` to let LLVM use 512-bit vectors on AVX-512
machines (see NOTES.md). Usage:  python benchmarks/profile_step.py [--steps 100000]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from diagsim.bench.problems import FULL
from diagsim.lowlevel import rng
from diagsim.lowlevel.jit import jit
from diagsim.networks.diagonal import pathwise as K
from diagsim.networks.diagonal.grouped import forward_group, pullback_group, w_of
from diagsim.networks.diagonal.parametrization import phi1


@jit
def libm_normals(k0, k1, path, step, out, scale):
    """The same variates as rng.fill_normals, through libm (the pre-issue-7 implementation)."""
    for b in range(out.shape[0] // 2):
        a, bb, c, d = rng._block(k0, k1, path, step, b)
        u1 = 1.0 - rng._u53(a, bb)
        u2 = rng._u53(c, d)
        rad = math.sqrt(-2.0 * math.log(u1))
        out[2 * b] = scale * rad * math.cos(2.0 * math.pi * u2)
        out[2 * b + 1] = scale * rad * math.sin(2.0 * math.pi * u2)


@jit
def loop_noise(k0, k1, steps, n, which):
    xi = np.empty(n)
    acc = 0.0
    for s in range(steps):
        if which == 0:
            rng.fill_normals(k0, k1, 0, s, xi, 0.1)
        else:
            libm_normals(k0, k1, 0, s, xi, 0.1)
        acc += xi[0]
    return acc


@jit
def loop_forward(theta, ZT, y, steps, which):
    d, n = ZT.shape
    w = np.empty(d)
    r = np.empty(n)
    W = np.empty((1, d))
    R = np.empty((1, n))
    L = np.empty(1)
    acc = 0.0
    for s in range(steps):
        theta[0] = 0.1 + 1e-9 * s
        if which == 0:
            acc += K.forward(theta, 0, 2, ZT, y, w, r)
        else:
            w_of(theta, 0, 2, W[0])
            forward_group(ZT, y, W, 1, R, L)
            acc += L[0]
    return acc


@jit
def loop_pullback(Z, steps, which):
    n, d = Z.shape
    c = np.ones(n)
    g = np.empty(d)
    C = np.ones((1, n))
    G = np.empty((1, d))
    acc = 0.0
    for s in range(steps):
        c[0] = s
        C[0, 0] = s
        if which == 0:
            K.pullback(Z, c, 1.0, g)
            acc += g[0]
        else:
            pullback_group(Z, C, 1, G)
            acc += G[0, 0]
    return acc


@jit
def loop_chain(theta, steps):
    d = theta.shape[0] // 2
    gz = np.ones(d)
    out = np.zeros(2 * d)
    for _ in range(steps):
        for i in range(d):
            _, wu, wv = phi1(0, 2, theta[i], theta[d + i])
            out[i] += gz[i] * wu
            out[d + i] += gz[i] * wv
        for i in range(2 * d):
            theta[i] += 1e-300 * out[i]
    return out[0]


def per_step(run, steps):
    """Best of 5 of ``run(steps)`` after a warm-up, in ns per step. CPU time of this thread
    (``time.thread_time``), so that time the thread spends descheduled on a shared machine is not counted."""
    run(10)
    best = math.inf
    for _ in range(5):
        t = time.thread_time()
        run(steps)
        best = min(best, time.thread_time() - t)
    return best / steps * 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100_000)
    a = ap.parse_args()
    prob = FULL.problem()
    th = prob.theta0(1)[0].copy()
    k0, k1 = rng.key_for(1, "brownian")
    N = a.steps
    Z, ZT, y = prob.Z, prob.ZT, prob.y
    rows = [
        ("noise: rng.fill_normals (40)", per_step(lambda s: loop_noise(k0, k1, s, 40, 0), N)),
        ("noise: libm Box-Muller (40)", per_step(lambda s: loop_noise(k0, k1, s, 40, 1), N)),
        ("forward: kernels.forward", per_step(lambda s: loop_forward(th, ZT, y, s, 0), N)),
        ("forward: _linalg.forward_group x8", per_step(lambda s: loop_forward(th, ZT, y, s, 1), N)),
        ("pullback: kernels.pullback", per_step(lambda s: loop_pullback(Z, s, 0), N)),
        ("pullback: _linalg.pullback_group x8", per_step(lambda s: loop_pullback(Z, s, 1), N)),
        ("chain + update (elementwise)", per_step(lambda s: loop_chain(th, s), N)),
    ]
    g = np.random.default_rng(0)
    buf = np.empty(40 * 10000)
    rows.append(("noise: NumPy Generator (40, bulk)",
                 per_step(lambda s: g.standard_normal(out=buf[:40 * s]), 10000)))
    for name, ns in rows:
        print(f"{name:40s} {ns:8.1f} ns per path-step")


if __name__ == "__main__":
    main()
