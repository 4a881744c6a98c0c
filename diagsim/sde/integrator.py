"""Euler–Maruyama over ensembles of paths, for any SDE given as a drift and a diffusion function.

The integrator solves (Itô)

    dX = [b(X, t) + s(X, t) beta(X, t)] dt + a * s(X, t) dB_t,        X in R^dim,  B in R^n_noise,

with fixed step dt:

    X_{k+1} = X_k + b(X_k, t_k) dt + s(X_k, t_k) (beta(X_k, t_k) dt + a dB_k),   t_k = k dt.

A model supplies two small jitted functions and knows nothing about the integrator. Both act on a *group*
of paths at once (a thread advances up to ``GROUP`` paths in lockstep, so that a model can share the loads
of its data between them, e.g. :func:`diagsim.networks.diagonal.grouped.forward_group`); row s < ns of every
(G, .) array belongs to one path, and a row's result must depend on that row only (bitwise), so that a
path's numbers do not depend on its group, on threading or on how many paths run:

* ``drift(X, ns, t, args, work, B, BETA, health)`` writes, for s < ns, the drift at X[s] split into a free
  part ``B[s]`` (dim,) and a part ``BETA[s]`` (n_noise,) in the *range of the diffusion* (total drift
  b + s beta; models with no such part write beta = 0), and a health scalar ``health[s]`` (the loss, say)
  that is non-finite exactly when the state has blown up; the path is then stopped.
* ``diffusion(X, ns, t, args, work, XI, OUT)`` adds the diffusion product ``s(X[s], t) XI[s]`` to
  ``OUT[s]`` (dim,) for noise-space vectors ``XI[s]`` (n_noise,); it never forms the dim x n_noise matrix.

``X``, ``B``, ``OUT`` have shape (G, dim), ``BETA``, ``XI`` (G, n_noise), ``health`` (G,); G = X.shape[0]
is the group capacity. ``a`` is the scalar noise amplitude (a = 0: an ODE, no random numbers are drawn).
``work`` is scratch of G * ``n_work`` floats (``n_work`` per path) shared by the two calls of a step (the
drift may leave there what the diffusion reuses); a model views it as (G, .) blocks with ``reshape``.
``args`` is the model's data, a tuple of fixed types (``ARGS``): two matrices, two vectors, a float
parameter vector and an integer parameter vector. The drift's split lets a model whose
drift lies in the range of its diffusion (the label-noise SDE: -grad L = J^T (-r/n), noise J^T dB) apply
the expensive product J^T once per step, as a hand-fused kernel would; the integrator stays generic.

Brownian increments come from :mod:`diagsim.sde.brownian` (``rng`` stream "brownian", path id, step):
the same numbers serially and in parallel, for any subset of paths, and the same path at every
dt = 2**j dt_base. Euler–Maruyama has strong order 1/2 (1 for additive noise) and weak order 1.

Drift and diffusion are passed as first-class functions (``numba.types.FunctionType``): the kernel below
is compiled once for all models (a parallel one, prange over groups, and a serial twin used when all
paths fit in one group, e.g. M = 1) and cached on disk.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types

from ..lowlevel.jit import jit, jit_typed, prange
from .brownian import increment

_F1 = types.float64[::1]
_F2 = types.float64[:, ::1]
_I1 = types.int64[::1]

#: paths advanced in lockstep by one thread (the group products of :mod:`diagsim.networks.diagonal.grouped`
#: load each element of Z once for the whole group; 16 fill the two-vector lanes of its SIMD kernel,
#: benchmarks/NOTES.md §10)
GROUP = 16

#: the model data tuple: (matrix A, matrix B, vector a, vector b, float params, int params)
ARGS = types.Tuple((_F2, _F2, _F1, _F1, _F1, _I1))
#: drift(X, ns, t, args, work, B, BETA, health) -> None
DRIFT_SIG = types.void(_F2, types.int64, types.float64, ARGS, _F1, _F2, _F2, _F1)
#: diffusion(X, ns, t, args, work, XI, OUT) -> None   (OUT[s] += s(X[s], t) XI[s])
DIFFUSION_SIG = types.void(_F2, types.int64, types.float64, ARGS, _F1, _F2, _F2)

DriftType = types.FunctionType(DRIFT_SIG)
DiffusionType = types.FunctionType(DIFFUSION_SIG)

_KERNEL_SIG = types.void(DriftType, DiffusionType, _F2, _I1, types.boolean[::1], types.int64, types.int64,
                         types.float64, types.int64, types.float64, types.uint64, types.uint64, types.int64,
                         types.int64, types.int64, ARGS)


def drift_function(fn):
    """Decorator: compile ``fn`` as a drift (signature ``DRIFT_SIG``)."""
    return jit_typed(DRIFT_SIG)(fn)


def diffusion_function(fn):
    """Decorator: compile ``fn`` as a diffusion product (signature ``DIFFUSION_SIG``)."""
    return jit_typed(DIFFUSION_SIG)(fn)


@jit(inline="always")
def scale_drift(B, BETA, XI, ns, dt):
    """B[s] <- B[s] dt and XI[s] <- XI[s] + BETA[s] dt for s < ns (shared with the CUDA kernel)."""
    for s in range(ns):
        for i in range(B.shape[1]):
            B[s, i] *= dt
        for j in range(XI.shape[1]):
            XI[s, j] += BETA[s, j] * dt


@jit(inline="always")
def add_rows(XG, B, ns):
    """XG[s] <- XG[s] + B[s] for s < ns (shared with the CUDA kernel)."""
    for s in range(ns):
        for i in range(XG.shape[1]):
            XG[s, i] += B[s, i]


def _em_groups(drift, diffusion, X, paths, active, step0, n_steps, dt, sub, noise_scale, k0, k1, n_noise,
               n_work, group, args):
    """Advance every active row of X (M, dim) from step ``step0`` by ``n_steps`` Euler–Maruyama steps.

    Rows are taken in consecutive groups of ``group``; one thread advances the active rows of a group in
    lockstep (compacted into a (group, dim) buffer). ``sub`` base steps per step and ``noise_scale`` =
    a * sqrt(dt_base) define the increments (see :func:`diagsim.sde.brownian.increment`); ``paths`` (M,)
    are the global path ids. A path whose drift reports a non-finite health value is stopped at that step
    (its state is the one at which the value was computed) and marked inactive; the step is then redone
    for the rest of its group (a path's numbers never depend on its group).
    """
    m, dim = X.shape
    lvl = 0
    while (1 << lvl) < sub:
        lvl += 1
    n_groups = (m + group - 1) // group
    for g in prange(n_groups):
        p0 = g * group
        idx = np.empty(group, dtype=np.int64)
        ns = 0
        for p in range(p0, min(p0 + group, m)):
            if active[p]:
                idx[ns] = p
                ns += 1
        if ns == 0:
            continue
        XG = np.empty((group, dim))
        B = np.empty((group, dim))
        BETA = np.empty((group, n_noise))
        XI = np.zeros((group, n_noise))
        H = np.empty(group)
        stack = np.empty((lvl + 1, n_noise))
        work = np.empty(group * max(n_work, 1))
        for s in range(ns):
            XG[s, :] = X[idx[s]]
        k = step0
        while k < step0 + n_steps:
            t = k * dt
            if noise_scale != 0.0:
                for s in range(ns):
                    increment(k0, k1, paths[idx[s]], k, sub, noise_scale, XI[s], stack)
            drift(XG, ns, t, args, work, B, BETA, H)
            dead = False
            for s in range(ns):
                if not np.isfinite(H[s]):
                    dead = True
            if dead:
                s = 0
                while s < ns:
                    if np.isfinite(H[s]):
                        s += 1
                        continue
                    X[idx[s], :] = XG[s]
                    active[idx[s]] = False
                    ns -= 1
                    if s < ns:
                        XG[s, :] = XG[ns]
                        idx[s] = idx[ns]
                        H[s] = H[ns]
                if ns == 0:
                    break
                continue  # redo step k for the survivors
            scale_drift(B, BETA, XI, ns, dt)
            diffusion(XG, ns, t, args, work, XI, B)
            add_rows(XG, B, ns)
            if noise_scale == 0.0:
                for s in range(ns):
                    for j in range(n_noise):
                        XI[s, j] = 0.0
            k += 1
        for s in range(ns):
            X[idx[s], :] = XG[s]


def _compile(fn, suffix, parallel):
    import types as _pytypes
    copy = _pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                                 fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__doc__ = fn.__doc__
    return jit_typed(_KERNEL_SIG, parallel=parallel)(copy)


#: the parallel kernel (prange over groups) and its serial twin (one group: no thread pool wakes up)
em_kernel = _compile(_em_groups, "_parallel", True)
em_kernel_serial = _compile(_em_groups, "_serial", False)


def integrate(drift, diffusion, args, X: np.ndarray, *, paths, active, step0: int, n_steps: int, dt: float,
              n_noise: int, n_work: int, amplitude: float, brownian, group: int = GROUP) -> None:
    """Advance ``X`` (M, dim) in place by ``n_steps`` Euler–Maruyama steps of size ``dt``.

    Parameters
    ----------
    drift, diffusion : functions compiled with :func:`drift_function` / :func:`diffusion_function`.
    args : the model data tuple (types ``ARGS``).
    X : (M, dim) C-contiguous float64 states, modified in place.
    paths : (M,) int64 global path ids (address the Brownian increments).
    active : (M,) bool; inactive rows are skipped, a row that blows up is set False.
    step0 : index of the first step (the time of step k is k dt).
    n_noise, n_work : Brownian dimension and per-path scratch size of the model.
    amplitude : the noise amplitude a (0: deterministic, no random numbers).
    brownian : a :class:`~diagsim.sde.brownian.BrownianPath` (seed and base grid).
    group : paths per thread in lockstep (1..; results do not depend on it, bitwise).
    """
    sub = brownian.substeps(dt)
    k0, k1 = brownian.key
    scale = float(amplitude) * math.sqrt(brownian.dt_base)
    group = max(int(group), 1)
    kern = em_kernel_serial if X.shape[0] <= group else em_kernel
    kern(drift, diffusion, X, paths, active, int(step0), int(n_steps), float(dt), int(sub), scale,
         k0, k1, int(n_noise), int(n_work), group, args)
