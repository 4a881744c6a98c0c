"""Baseline: Euler-Maruyama in plain NumPy with the paths batched into two GEMMs per step.

Per step, for U, V of shape (M, d)::

    W = U*U - V*V;  R = W Z^T - y  (GEMM, (M, n));  C = R dt/n - sigma sqrt(dt) xi,  xi ~ N(0, I) (M, n);
    Q = C Z  (GEMM, (M, d));  U <- U - 2 U*Q;  V <- V + 2 V*Q,

which is theta <- theta - grad L dt + sigma J^T dB for "uu-vv" (J^T c = [2u Z^T c, -2v Z^T c]).
Normals come from ``numpy.random.Generator(PCG64)``; the GEMMs use NumPy's BLAS threads. It is also the
independent engine of the reference ensemble (another seed, another generator than diagsim's Philox).
"""
from __future__ import annotations

import numpy as np

from .problems import SDEBench


def simulate_numpy(cfg: SDEBench, M: int, seed: int, n_steps: int) -> np.ndarray:
    """Final states (M, 2d) of the reference SDE after ``n_steps`` steps (plain NumPy)."""
    prob = cfg.problem()
    Z, y = prob.Z, prob.y
    ZT = np.ascontiguousarray(Z.T)
    d = prob.d
    th = prob.theta0(M)
    U = np.ascontiguousarray(th[:, :d])
    V = np.ascontiguousarray(th[:, d:])
    gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    a = cfg.dt / prob.n
    b = cfg.sigma * np.sqrt(cfg.dt)
    W = np.empty_like(U)
    T = np.empty_like(U)
    R = np.empty((M, prob.n))
    xi = np.empty((M, prob.n))
    Q = np.empty_like(U)
    for _ in range(n_steps):
        np.multiply(U, U, out=W)
        np.multiply(V, V, out=T)
        W -= T
        np.matmul(W, ZT, out=R)
        R -= y
        R *= a
        gen.standard_normal(out=xi)
        xi *= b
        R -= xi
        np.matmul(R, Z, out=Q)
        Q *= 2.0
        np.multiply(U, Q, out=T)
        U -= T
        np.multiply(V, Q, out=T)
        V += T
    return np.concatenate([U, V], axis=1)


class NumpyFused:
    name = "numpy-gemm"
    kind = "baseline"
    description = "plain NumPy, paths batched into two GEMMs per step, PCG64 normals"

    def available(self):
        return None

    def prepare(self, cfg: SDEBench, M: int, seed: int):
        return lambda n_steps: simulate_numpy(cfg, M, seed, n_steps)
