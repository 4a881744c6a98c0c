"""Update rules of the discrete optimizers (docs/theory.md §5): how theta and the optimizer's state move,
given the noisy gradient ``g`` of the step.

Each rule is scalar code over the entries ``start, start + stride, ...`` of one path, so that the same
function serves the CPU kernel (``start = 0, stride = 1``) and the GPU kernel (one lane of a warp per
stride). A rule reads its hyperparameters from the float and integer arrays ``fp`` / ``ip`` that the
lowering fills (:mod:`.lowering`) and its state from the slots ``s1`` / ``s2`` that the optimizer's
registry entry declares (:mod:`.registry`): for Adam s1 = m and s2 = v.

The kernels call :func:`apply_update` (every rule) or :func:`apply_elementwise` (the rules whose entries
are independent, which the GPU runs) with the rule's integer code. Adding an update rule: write the
function, give it the next code, add one branch to :func:`apply_elementwise` (docs/extending.md).
"""
from __future__ import annotations

import math

from ..lowlevel.jit import jit
from .lowering import F_BETA1, F_BETA2, F_EPS, F_LAM, F_LR, I_BIAS, I_N_BLOCKS, I_SQRT

#: update rules (codes the kernels switch on)
UPDATE_SGD, UPDATE_ADAM, UPDATE_ADAGRAD, UPDATE_ADAM_MINI, UPDATE_LION, UPDATE_SIGN = range(6)
#: the rules whose entries are independent (:func:`apply_elementwise`; the GPU runs these)
ELEMENTWISE = (UPDATE_SGD, UPDATE_ADAM, UPDATE_ADAGRAD, UPDATE_LION, UPDATE_SIGN)


# --------------------------------------------------------------------------- SGD
@jit
def update_sgd(theta, g, lr):
    """theta <- theta - lr g."""
    for i in range(theta.shape[0]):
        theta[i] -= lr * g[i]


@jit
def update_sgd_strided(theta, g, lr, start, stride):
    """The entries start, start + stride, ... of :func:`update_sgd` (GPU lanes)."""
    for i in range(start, theta.shape[0], stride):
        theta[i] -= lr * g[i]


# --------------------------------------------------------------------------- Adam family
@jit(inline="always")
def _adam_hyper(fp, ip, step):
    """(b1, b2, eps, lam, lr, use_sqrt, bias, c1, c2) of the Adam family at step k (c = 1 - b^(k+1)
    under bias correction, else 1)."""
    b1 = fp[F_BETA1]
    b2 = fp[F_BETA2]
    bias = ip[I_BIAS] != 0
    c1 = 1.0 - b1 ** (step + 1) if bias else 1.0
    c2 = 1.0 - b2 ** (step + 1) if bias else 1.0
    return b1, b2, fp[F_EPS], fp[F_LAM], fp[F_LR], ip[I_SQRT] != 0, bias, c1, c2


@jit
def update_adam(theta, m, v, g, fp, ip, step):
    """See :func:`update_adam_strided` (all entries)."""
    update_adam_strided(theta, m, v, g, fp, ip, step, 0, 1)


@jit(inline="always")
def update_adam_strided(theta, m, v, g, fp, ip, step, start, stride):
    """Adam / RMSProp / AdamE-lambda (docs/theory.md §5.3): m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    theta <- theta - lr mh / (vh^lam + eps) with (mh, vh) = (m, v) / (1 - b^(k+1)) under bias correction,
    else (m, v). lam = 1/2 uses sqrt."""
    b1, b2, eps, lam, lr, use_sqrt, bias, c1, c2 = _adam_hyper(fp, ip, step)
    # the branches are hoisted out of the loop (constant flags: the common loop vectorizes)
    if use_sqrt and not bias:
        _adam_loop(theta, m, v, g, b1, b2, eps, lam, lr, c1, c2, False, True, start, stride)
    elif use_sqrt:
        _adam_loop(theta, m, v, g, b1, b2, eps, lam, lr, c1, c2, True, True, start, stride)
    else:
        _adam_loop(theta, m, v, g, b1, b2, eps, lam, lr, c1, c2, bias, False, start, stride)


@jit(inline="always")
def _adam_loop(theta, m, v, g, b1, b2, eps, lam, lr, c1, c2, bias, use_sqrt, start, stride):
    a1 = 1.0 - b1
    a2 = 1.0 - b2
    for i in range(start, theta.shape[0], stride):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * gi * gi
        m[i] = mi
        v[i] = vi
        if bias:
            mi = mi / c1
            vi = vi / c2
        den = math.sqrt(vi) if use_sqrt else vi ** lam
        theta[i] -= lr * mi / (den + eps)


@jit
def update_adam_mini(theta, m, v, g, fp, ip, blocks, bsize, sums, step):
    """Adam-mini / Adalayer: one second moment per block b, v_b <- b2 v_b + (1-b2) mean_{i in b} g_i^2
    (the block sum accumulated in index order, then divided by |b|); otherwise as :func:`update_adam`.
    Not element-wise (a block couples its entries): CPU only."""
    b1, b2, eps, lam, lr, use_sqrt, bias, c1, c2 = _adam_hyper(fp, ip, step)
    nb = ip[I_N_BLOCKS]
    for b in range(nb):
        sums[b] = 0.0
    for i in range(theta.shape[0]):
        sums[blocks[i]] += g[i] * g[i]
    for b in range(nb):
        vb = b2 * v[b] + (1.0 - b2) * (sums[b] / bsize[b])
        v[b] = vb
        if bias:
            vb = vb / c2
        sums[b] = math.sqrt(vb) if use_sqrt else vb ** lam  # now the denominators
    a1 = 1.0 - b1
    for i in range(theta.shape[0]):
        mi = b1 * m[i] + a1 * g[i]
        m[i] = mi
        if bias:
            mi = mi / c1
        theta[i] -= lr * mi / (sums[blocks[i]] + eps)


# --------------------------------------------------------------------------- AdaGrad
@jit(inline="always")
def update_adagrad_strided(theta, v, g, fp, start, stride):
    """AdaGrad: v <- v + g^2; theta <- theta - lr g / (sqrt(v) + eps)."""
    lr = fp[F_LR]
    eps = fp[F_EPS]
    for i in range(start, theta.shape[0], stride):
        vi = v[i] + g[i] * g[i]
        v[i] = vi
        theta[i] -= lr * g[i] / (math.sqrt(vi) + eps)


# --------------------------------------------------------------------------- sign methods
@jit(inline="always")
def _sign(x):
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


@jit(inline="always")
def update_lion_strided(theta, m, g, fp, start, stride):
    """Lion: c = b1 m + (1 - b1) g; theta <- theta - lr sign(c); m <- b2 m + (1 - b2) g."""
    lr = fp[F_LR]
    b1 = fp[F_BETA1]
    b2 = fp[F_BETA2]
    for i in range(start, theta.shape[0], stride):
        gi = g[i]
        theta[i] -= lr * _sign(b1 * m[i] + (1.0 - b1) * gi)
        m[i] = b2 * m[i] + (1.0 - b2) * gi


@jit(inline="always")
def update_sign_strided(theta, g, lr, start, stride):
    """signSGD: theta <- theta - lr sign(g)."""
    for i in range(start, theta.shape[0], stride):
        theta[i] -= lr * _sign(g[i])


# --------------------------------------------------------------------------- dispatch
@jit(inline="always")
def apply_elementwise(update, theta, s1, s2, g, fp, ip, step, start, stride):
    """The element-wise rule ``update`` on the entries start, start + stride, ... of one path."""
    if update == UPDATE_ADAM:
        update_adam_strided(theta, s1, s2, g, fp, ip, step, start, stride)
    elif update == UPDATE_ADAGRAD:
        update_adagrad_strided(theta, s2, g, fp, start, stride)
    elif update == UPDATE_LION:
        update_lion_strided(theta, s1, g, fp, start, stride)
    elif update == UPDATE_SIGN:
        update_sign_strided(theta, g, fp[F_LR], start, stride)
    else:
        update_sgd_strided(theta, g, fp[F_LR], start, stride)


@jit(inline="always")
def apply_update(update, theta, s1, s2, g, fp, ip, blocks, bsize, sums, step):
    """Rule ``update`` on one whole path (CPU): the block rule of Adam-mini, else the element-wise one."""
    if update == UPDATE_ADAM_MINI:
        update_adam_mini(theta, s1, s2, g, fp, ip, blocks, bsize, sums, step)
    else:
        apply_elementwise(update, theta, s1, s2, g, fp, ip, step, 0, 1)
