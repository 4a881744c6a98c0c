"""Compiled pieces of the model-agnostic discrete stepper (:mod:`diagsim.optimizers.generic`).

The generic stepper forms the gradients of all paths with the model's batched products (NumPy / BLAS) and
hands the per-path work that the diagonal kernel does in compiled code to these loops, which call the
*same* functions as that kernel: the noise of (seed, stream, path, step) (:func:`.step_loop.draw_noise`),
the SAM family's perturbation of a flat gradient (:func:`.step_loop.perturbation`), MESA's EMA copy
(:func:`.step_loop.ema_update_strided`) and the update rules (:func:`.updates.apply_update`). So the noise,
the perturbation and the update of a path are those of the diagonal kernel, bit for bit, for the same seed
and the same inputs.
"""
from __future__ import annotations

import numpy as np

from ..lowlevel.jit import jit
from .lowering import I_N_BLOCKS
from .step_loop import draw_noise, ema_update_strided, perturbation
from .updates import apply_update


@jit
def noise_rows(noise, keys, delta, batch, paths, rows, step, XI, WROW, PERM):
    """XI[s], WROW[s] <- the label noise xi and the row weights a of path ``paths[rows[s]]`` at ``step``
    (:func:`.step_loop.draw_noise`), PERM[s, :R] the rows the step uses in order, for s < len(rows);
    returns R (the same for every path: B for a minibatch, else n)."""
    n = XI.shape[1]
    ubuf = np.empty(max(n, 1))
    n_rows = n
    for s in range(rows.shape[0]):
        n_rows = draw_noise(noise, keys, delta, batch, paths[rows[s]], step, XI[s], WROW[s], PERM[s], ubuf)
    return n_rows


@jit
def perturb_rows(variant, fp, ip, keys, paths, rows, step, TH, G, OUT):
    """OUT[s] <- theta + eps(theta, g) of the SAM variant ``variant`` (:func:`.step_loop.perturbation`, not
    m-SAM) for theta = TH[s], g = G[s] and the path ``paths[rows[s]]`` at ``step``, for s < len(rows)."""
    dim = TH.shape[1]
    ubuf = np.empty(max(dim, 1))
    score = np.empty(dim)
    order = np.empty(dim, np.int64)
    otmp = np.empty(dim, np.int64)
    for s in range(rows.shape[0]):
        perturbation(variant, fp, ip, keys, paths[rows[s]], step, TH[s], G[s], OUT[s], ubuf, score, order, otmp)


@jit
def ema_rows(ema, theta, rows, beta_ema):
    """MESA's EMA copy of the paths ``rows`` follows theta (:func:`.step_loop.ema_update_strided`)."""
    for s in range(rows.shape[0]):
        p = rows[s]
        ema_update_strided(ema[p], theta[p], beta_ema, 0, 1)


@jit
def update_rows(update, theta, s1, s2, G, rows, fp, ip, blocks, bsize, step):
    """The update rule ``update`` (:func:`.updates.apply_update`) on the paths ``rows`` (theta, s1, s2 rows
    ``rows[s]``) with their gradients G[s], at ``step``."""
    sums = np.empty(max(ip[I_N_BLOCKS], 1))
    for s in range(rows.shape[0]):
        p = rows[s]
        apply_update(update, theta[p], s1[p], s2[p], G[s], fp, ip, blocks, bsize, sums, step)
