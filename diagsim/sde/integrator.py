"""Euler–Maruyama over ensembles of paths, for any SDE given as a drift and a diffusion function.

The integrator solves (Itô)

    dX = [b(X, t) + s(X, t) beta(X, t)] dt + a * s(X, t) dB_t,        X in R^dim,  B in R^n_noise,

with fixed step dt:

    X_{k+1} = X_k + b(X_k, t_k) dt + s(X_k, t_k) (beta(X_k, t_k) dt + a dB_k),   t_k = k dt.

A model supplies two small jitted functions and knows nothing about the integrator:

* ``drift(x, t, args, work, b, beta) -> float`` writes the drift split into a free part ``b`` (dim,) and a
  part ``beta`` (n_noise,) in the *range of the diffusion* (total drift b + s beta; models with no such
  part write beta = 0). It returns a health scalar (the loss, say) that is non-finite exactly when the
  state has blown up; the path is then stopped.
* ``diffusion(x, t, args, work, xi, out)`` adds the diffusion product ``s(x, t) xi`` to ``out`` (dim,)
  for a noise-space vector ``xi`` (n_noise,); it never forms the dim x n_noise matrix.

``a`` is the scalar noise amplitude (a = 0: an ODE, no random numbers are drawn). ``work`` is per-path
scratch of ``n_work`` floats shared by the two calls of a step (the drift may leave there what the
diffusion reuses). ``args`` is the model's data, a tuple of fixed types (``ARGS``): two matrices, two
vectors, a float parameter vector and an integer parameter vector. The drift's split lets a model whose
drift lies in the range of its diffusion (the label-noise SDE: -grad L = J^T (-r/n), noise J^T dB) apply
the expensive product J^T once per step, as a hand-fused kernel would; the integrator stays generic.

Brownian increments come from :mod:`diagsim.sde.brownian` (``rng`` stream "brownian", path id, step):
the same numbers serially and in parallel, for any subset of paths, and the same path at every
dt = 2**j dt_base. Euler–Maruyama has strong order 1/2 (1 for additive noise) and weak order 1.

Drift and diffusion are passed as first-class functions (``numba.types.FunctionType``): the kernel below
is compiled once for all models and cached on disk.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types

from .._jit import jit_typed, prange
from .brownian import increment

_F1 = types.float64[::1]
_F2 = types.float64[:, ::1]
_I1 = types.int64[::1]

#: the model data tuple: (matrix A, matrix B, vector a, vector b, float params, int params)
ARGS = types.Tuple((_F2, _F2, _F1, _F1, _F1, _I1))
#: drift(x, t, args, work, b, beta) -> health scalar
DRIFT_SIG = types.float64(_F1, types.float64, ARGS, _F1, _F1, _F1)
#: diffusion(x, t, args, work, xi, out) -> None   (out += s(x, t) xi)
DIFFUSION_SIG = types.void(_F1, types.float64, ARGS, _F1, _F1, _F1)

DriftType = types.FunctionType(DRIFT_SIG)
DiffusionType = types.FunctionType(DIFFUSION_SIG)

_KERNEL_SIG = types.void(DriftType, DiffusionType, _F2, _I1, types.boolean[::1], types.int64, types.int64,
                         types.float64, types.int64, types.float64, types.uint64, types.uint64, types.int64,
                         types.int64, ARGS)


def drift_function(fn):
    """Decorator: compile ``fn`` as a drift (signature ``DRIFT_SIG``)."""
    return jit_typed(DRIFT_SIG)(fn)


def diffusion_function(fn):
    """Decorator: compile ``fn`` as a diffusion product (signature ``DIFFUSION_SIG``)."""
    return jit_typed(DIFFUSION_SIG)(fn)


@jit_typed(_KERNEL_SIG, parallel=True)
def em_kernel(drift, diffusion, X, paths, active, step0, n_steps, dt, sub, noise_scale, k0, k1, n_noise,
              n_work, args):
    """Advance every active row of X (M, dim) from step ``step0`` by ``n_steps`` Euler–Maruyama steps.

    ``sub`` base steps per step and ``noise_scale`` = a * sqrt(dt_base) define the increments (see
    :func:`diagsim.sde.brownian.increment`); ``paths`` (M,) are the global path ids. A path whose drift
    returns a non-finite value is stopped at that step and marked inactive.
    """
    m, dim = X.shape
    lvl = 0
    while (1 << lvl) < sub:
        lvl += 1
    for p in prange(m):
        if not active[p]:
            continue
        x = X[p]
        b = np.empty(dim)
        beta = np.empty(n_noise)
        xi = np.empty(n_noise)
        stack = np.empty((lvl + 1, n_noise))
        work = np.empty(max(n_work, 1))
        pid = paths[p]
        if noise_scale == 0.0:
            for j in range(n_noise):
                xi[j] = 0.0
        for k in range(step0, step0 + n_steps):
            t = k * dt
            if noise_scale != 0.0:
                increment(k0, k1, pid, k, sub, noise_scale, xi, stack)
            health = drift(x, t, args, work, b, beta)
            if not np.isfinite(health):
                active[p] = False
                break
            for i in range(dim):
                b[i] *= dt
            for j in range(n_noise):
                xi[j] += beta[j] * dt
            diffusion(x, t, args, work, xi, b)
            for i in range(dim):
                x[i] += b[i]
            if noise_scale == 0.0:
                for j in range(n_noise):
                    xi[j] = 0.0


def integrate(drift, diffusion, args, X: np.ndarray, *, paths, active, step0: int, n_steps: int, dt: float,
              n_noise: int, n_work: int, amplitude: float, brownian) -> None:
    """Advance ``X`` (M, dim) in place by ``n_steps`` Euler–Maruyama steps of size ``dt``.

    Parameters
    ----------
    drift, diffusion : functions compiled with :func:`drift_function` / :func:`diffusion_function`.
    args : the model data tuple (types ``ARGS``).
    X : (M, dim) C-contiguous float64 states, modified in place.
    paths : (M,) int64 global path ids (address the Brownian increments).
    active : (M,) bool; inactive rows are skipped, a row that blows up is set False.
    step0 : index of the first step (the time of step k is k dt).
    amplitude : the noise amplitude a (0: deterministic, no random numbers).
    brownian : a :class:`~diagsim.sde.brownian.BrownianPath` (seed and base grid).
    """
    sub = brownian.substeps(dt)
    k0, k1 = brownian.key
    scale = float(amplitude) * math.sqrt(brownian.dt_base)
    em_kernel(drift, diffusion, X, paths, active, int(step0), int(n_steps), float(dt), int(sub), scale,
              k0, k1, int(n_noise), int(n_work), args)
