"""Brownian increments on a dyadic refinement of a base grid, from the counter-based generator.

The path of path id ``p`` is defined on the *base grid* of step ``dt_base``: its increment over the fine
interval ``[i dt_base, (i+1) dt_base)`` is ``sqrt(dt_base) * N(p, i)`` with ``N(p, i)`` the n normals of
``diagsim.lowlevel.rng`` stream ``"brownian"`` at (path p, step i). A run at ``dt = 2**j * dt_base`` uses, for its
step k, the sum of the fine increments ``i = k 2**j, ..., (k+1) 2**j - 1``, added as a balanced binary tree:

    dB_j[k] = dB_{j-1}[2k] + dB_{j-1}[2k+1]        (bit for bit)

so every refinement sees *the same* Brownian path, and a coarse increment is exactly the sum of the two
increments of the next finer level (what strong/weak convergence-order tests need). Increments are
N(0, dt I_n) (times the model's noise amplitude) and independent across paths and steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DiagsimError, check_int, check_positive
from ..lowlevel import rng
from ..lowlevel.jit import jit

STREAM = "brownian"


@jit
def increment(k0, k1, path, step, sub, scale, out, stack):
    """out <- scale * (B((step+1) sub) - B(step sub)) in units of the base grid, (n,).

    ``sub`` = 2**L fine steps per step; ``stack`` is scratch of shape (L + 1, n) (unused when sub = 1).
    Each fine increment is ``scale * N(path, fine step)`` (scale = amplitude * sqrt(dt_base)); they are
    summed as a balanced binary tree (a binary counter of partial sums), so the result at level L is the
    exact floating-point sum of the two level-(L-1) increments.
    """
    if sub == 1:
        rng.fill_normals(k0, k1, path, step, out, scale)
        return
    n = out.shape[0]
    base = step * sub
    for i in range(sub):
        cur = out  # the newest leaf, carried up the tree
        rng.fill_normals(k0, k1, path, base + i, cur, scale)
        lvl = 0
        ii = i
        while ii & 1:
            row = stack[lvl]
            for j in range(n):
                cur[j] = row[j] + cur[j]
            lvl += 1
            ii >>= 1
        if i < sub - 1:
            row = stack[lvl]
            for j in range(n):
                row[j] = cur[j]
    # after the last leaf the carry has reached level L and lives in ``out``


def levels(sub: int) -> int:
    """L with sub = 2**L."""
    return int(sub).bit_length() - 1


@dataclass(frozen=True)
class BrownianPath:
    """The Brownian path family of one seed on the base grid ``dt_base``.

    Parameters
    ----------
    seed : non-negative integer; the key is ``rng.key_for(seed, "brownian")``.
    dt_base : the finest step; a run may use any ``dt = 2**j * dt_base`` (j >= 0).
    """

    seed: int
    dt_base: float

    def __post_init__(self):
        object.__setattr__(self, "seed", check_int("seed", self.seed, minimum=0))
        object.__setattr__(self, "dt_base", check_positive("dt_base", self.dt_base))

    @property
    def key(self) -> tuple[np.uint64, np.uint64]:
        return rng.key_for(self.seed, STREAM)

    def substeps(self, dt: float) -> int:
        """Number of base steps per step of size ``dt`` (a power of two), or a DiagsimError."""
        dt = check_positive("dt", dt)
        ratio = dt / self.dt_base
        sub = int(round(ratio))
        if sub < 1 or abs(ratio - sub) > 1e-9 * ratio or sub & (sub - 1):
            raise DiagsimError(f"dt must be dt_base times a power of two (same Brownian path at every "
                               f"refinement); got dt={dt!r}, dt_base={self.dt_base!r} (ratio {ratio:.6g})")
        return sub

    def scratch(self, dt: float, n: int) -> np.ndarray:
        """The ``stack`` argument of :func:`increment` for this dt."""
        return np.empty((levels(self.substeps(dt)) + 1, n))


@jit
def _increments_2d(k0, k1, paths, step0, n_steps, n, sub, scale, L):
    m = paths.shape[0]
    out = np.empty((m, n_steps, n))
    stack = np.empty((L + 1, n))
    for p in range(m):
        for s in range(n_steps):
            increment(k0, k1, paths[p], step0 + s, sub, scale, out[p, s], stack)
    return out


def increments(seed: int, paths, steps, n: int, dt: float, dt_base: float | None = None,
               amplitude: float = 1.0) -> np.ndarray:
    """The increments the integrator uses, ``amplitude * dB``, shape (len(paths), len(steps), n).

    ``steps`` is an int (``range(steps)``) or a contiguous range of step indices at step size ``dt``.
    """
    bp = BrownianPath(seed, dt if dt_base is None else dt_base)
    sub = bp.substeps(dt)
    steps = range(steps) if isinstance(steps, int) else steps
    k0, k1 = bp.key
    return _increments_2d(k0, k1, np.asarray(paths, dtype=np.int64), steps.start, len(steps), int(n), sub,
                          float(amplitude) * math.sqrt(bp.dt_base), levels(sub))
