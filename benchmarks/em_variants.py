"""How fast can one Euler-Maruyama path-step of the reference problem be, keeping diagsim's numbers?

Three single-threaded variants of the label-noise SGD SDE step (the arithmetic of diagsim.sde's
``sgd-label-noise`` model: xi = a dB - (r/n) dt, theta += J^T xi), timed in *thread CPU time* so that a
loaded machine distorts them little, and checked to give bit-identical final states:

* ``per-path``   : kernels.forward + kernels.pullback (one axpy per coordinate / per row), as the
                   generic integrator does today;
* ``unrolled``   : the 8-way unrolled forward/pullback of ``networks.diagonal.grouped`` (same IEEE operations);
* ``grouped(G)`` : G paths in lockstep sharing the loads of Z (``forward_group`` / ``pullback_group``).

Run:  python benchmarks/em_variants.py [--steps 2000 --M 64]
Prefix ``NUMBA_CPU_FEATURES="<host features>,-prefer-256-bit"`` to allow 512-bit vectors (see NOTES.md).
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
def em_per_path(X, step0, n_steps, dt, scale, k0, k1, Z, ZT, y, variant):
    m = X.shape[0]
    n, d = Z.shape
    inv_n = 1.0 / n
    xi = np.empty(n)
    w = np.empty(d)
    r = np.empty(n)
    g = np.empty(d)
    W = np.empty((1, d))
    R = np.empty((1, n))
    L = np.empty(1)
    C = np.empty((1, n))
    G = np.empty((1, d))
    for p in range(m):
        x = X[p]
        for k in range(step0, step0 + n_steps):
            rng.fill_normals(k0, k1, p, k, xi, scale)
            if variant == 0:
                K.forward(x, 0, 2, ZT, y, w, r)
                for j in range(n):
                    xi[j] += -r[j] * inv_n * dt
                K.pullback(Z, xi, 1.0, g)
                for i in range(d):
                    _, wu, wv = phi1(0, 2, x[i], x[d + i])
                    x[i] += g[i] * wu
                    x[d + i] += g[i] * wv
            else:
                w_of(x, 0, 2, W[0])
                forward_group(ZT, y, W, 1, R, L)
                for j in range(n):
                    C[0, j] = xi[j] + -R[0, j] * inv_n * dt
                pullback_group(Z, C, 1, G)
                for i in range(d):
                    _, wu, wv = phi1(0, 2, x[i], x[d + i])
                    x[i] += G[0, i] * wu
                    x[d + i] += G[0, i] * wv


@jit
def em_grouped(X, step0, n_steps, dt, scale, k0, k1, Z, ZT, y, group):
    m = X.shape[0]
    n, d = Z.shape
    inv_n = 1.0 / n
    W = np.empty((group, d))
    R = np.empty((group, n))
    L = np.empty(group)
    C = np.empty((group, n))
    G = np.empty((group, d))
    xi = np.empty(n)
    for p0 in range(0, m, group):
        ns = min(group, m - p0)
        for k in range(step0, step0 + n_steps):
            for s in range(ns):
                w_of(X[p0 + s], 0, 2, W[s])
            forward_group(ZT, y, W, ns, R, L)
            for s in range(ns):
                rng.fill_normals(k0, k1, p0 + s, k, xi, scale)
                for j in range(n):
                    C[s, j] = xi[j] + -R[s, j] * inv_n * dt
            pullback_group(Z, C, ns, G)
            for s in range(ns):
                x = X[p0 + s]
                for i in range(d):
                    _, wu, wv = phi1(0, 2, x[i], x[d + i])
                    x[i] += G[s, i] * wu
                    x[d + i] += G[s, i] * wv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--M", type=int, default=64)
    a = ap.parse_args()
    cfg = FULL
    prob = cfg.problem()
    k0, k1 = rng.key_for(1, "brownian")
    scale = cfg.sigma * math.sqrt(cfg.dt)
    data = (cfg.dt, scale, k0, k1, prob.Z, prob.ZT, prob.y)
    variants = {"per-path": lambda X, s: em_per_path(X, 0, s, *data, 0),
                "unrolled": lambda X, s: em_per_path(X, 0, s, *data, 1),
                "grouped(4)": lambda X, s: em_grouped(X, 0, s, *data, 4),
                "grouped(8)": lambda X, s: em_grouped(X, 0, s, *data, 8)}
    finals = {}
    for name, f in variants.items():
        f(prob.theta0(2), 5)
        best = math.inf
        for _ in range(3):
            X = prob.theta0(a.M)
            t = time.thread_time()
            f(X, a.steps)
            best = min(best, time.thread_time() - t)
        finals[name] = X
        ns = best / (a.M * a.steps) * 1e9
        print(f"{name:12s} {ns:7.1f} ns per path-step (thread CPU time) = {1e9 / ns:.3g} "
              "path-steps/s per core")
    same = all(np.array_equal(finals["per-path"], v) for v in finals.values())
    print(f"all variants bitwise equal: {same}")


if __name__ == "__main__":
    main()
