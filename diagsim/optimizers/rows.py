"""Compiled pieces of the model-agnostic discrete stepper (:mod:`diagsim.optimizers.generic`).

The generic stepper forms the gradients of all paths with the model's batched products (NumPy / BLAS) and
hands the per-path work that the diagonal kernel does in compiled code to these two loops, which call the
*same* functions as that kernel: the noise of (seed, stream, path, step) (:func:`.step_loop.draw_noise`)
and the update rules (:func:`.updates.apply_update`). So the noise and the update of a path are those of
the diagonal kernel, bit for bit, for the same seed.
"""
from __future__ import annotations

import numpy as np

from ..lowlevel.jit import jit
from .lowering import I_N_BLOCKS
from .step_loop import draw_noise
from .updates import apply_update


@jit
def noise_rows(noise, keys, delta, batch, paths, rows, step, XI, WROW):
    """XI[s], WROW[s] <- the label noise xi and the row weights a of path ``paths[rows[s]]`` at ``step``
    (:func:`.step_loop.draw_noise`), for s < len(rows)."""
    n = XI.shape[1]
    perm = np.empty(n, np.int64)
    ubuf = np.empty(max(n, 1))
    for s in range(rows.shape[0]):
        draw_noise(noise, keys, delta, batch, paths[rows[s]], step, XI[s], WROW[s], perm, ubuf)


@jit
def update_rows(update, theta, s1, s2, G, rows, fp, ip, blocks, bsize, step):
    """The update rule ``update`` (:func:`.updates.apply_update`) on the paths ``rows`` (theta, s1, s2 rows
    ``rows[s]``) with their gradients G[s], at ``step``."""
    sums = np.empty(max(ip[I_N_BLOCKS], 1))
    for s in range(rows.shape[0]):
        p = rows[s]
        apply_update(update, theta[p], s1[p], s2[p], G[s], fp, ip, blocks, bsize, sums, step)
