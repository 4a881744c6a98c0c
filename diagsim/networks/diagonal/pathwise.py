"""Per-path Numba kernels of the diagonal network: the building blocks every optimizer, SDE model and
measure calls inside its own loops.

All loops run in "axpy order" (contiguous inner loops without reductions), so LLVM vectorizes them
without fastmath, and each path is computed by a single thread in a fixed order: results do not depend
on how many paths run or on threading. Shapes: theta (2d,), Z (n, d), ZT (d, n), y (n,), w (d,), r (n,).
"""
from __future__ import annotations

from ...lowlevel.jit import jit
from .parametrization import UUVV, UV, phi, phi1, phi2


@jit
def forward(theta, code, depth, ZT, y, w, r):
    """w <- w(theta);  r <- Z w - y.  Returns the loss (1/2n) ||r||^2."""
    d = ZT.shape[0]
    n = ZT.shape[1]
    for j in range(n):
        r[j] = -y[j]
    for i in range(d):
        wi = phi(code, depth, theta[i], theta[d + i])
        w[i] = wi
        row = ZT[i]
        for j in range(n):
            r[j] += row[j] * wi
    acc = 0.0
    for j in range(n):
        acc += r[j] * r[j]
    return 0.5 * acc / n


@jit
def pullback(Z, r, scale, gw):
    """gw <- scale * Z^T r  (d,)."""
    n = Z.shape[0]
    d = Z.shape[1]
    for i in range(d):
        gw[i] = 0.0
    for j in range(n):
        c = scale * r[j]
        row = Z[j]
        for i in range(d):
            gw[i] += row[i] * c


@jit(inline="always")
def _chain_impl(theta, code, depth, gw, grad, start, stride):
    d = gw.shape[0]
    for i in range(start, d, stride):
        _, wu, wv = phi1(code, depth, theta[i], theta[d + i])
        grad[i] = gw[i] * wu
        grad[d + i] = gw[i] * wv


@jit
def chain(theta, code, depth, gw, grad):
    """grad <- [gw * dw/du, gw * dw/dv]  (the parameter gradient from the w-gradient gw).

    One loop per common parametrization with its code a constant (vectorizable), one generic; the
    arithmetic is the same in every branch."""
    if code == UUVV:
        _chain_impl(theta, UUVV, 2, gw, grad, 0, 1)
    elif code == UV:
        _chain_impl(theta, UV, 2, gw, grad, 0, 1)
    else:
        _chain_impl(theta, code, depth, gw, grad, 0, 1)


@jit
def chain_strided(theta, code, depth, gw, grad, start, stride):
    """The entries i and d + i of :func:`chain` for i = start, start + stride, ... (GPU lanes)."""
    _chain_impl(theta, code, depth, gw, grad, start, stride)


@jit
def loss_grad(theta, code, depth, Z, ZT, y, w, r, gw, grad):
    """Loss and gradient at theta (fills w, r = Zw - y, gw = Z^T r / n, grad). Returns the loss."""
    loss = forward(theta, code, depth, ZT, y, w, r)
    pullback(Z, r, 1.0 / Z.shape[0], gw)
    chain(theta, code, depth, gw, grad)
    return loss


@jit
def jvp(theta, code, depth, ZT, vec, out):
    """out <- J vec = Z (dw/du * a + dw/dv * b) for vec = [a, b]  (n,)."""
    d = ZT.shape[0]
    n = ZT.shape[1]
    for j in range(n):
        out[j] = 0.0
    for i in range(d):
        _, wu, wv = phi1(code, depth, theta[i], theta[d + i])
        c = wu * vec[i] + wv * vec[d + i]
        row = ZT[i]
        for j in range(n):
            out[j] += row[j] * c


@jit
def hvp(theta, code, depth, Z, ZT, gw, vec, tmp_n, tmp_d, out):
    """out <- H vec with H = (1/n) J^T J + residual term; gw = Z^T r / n must be current."""
    d = Z.shape[1]
    jvp(theta, code, depth, ZT, vec, tmp_n)
    pullback(Z, tmp_n, 1.0 / Z.shape[0], tmp_d)
    for i in range(d):
        _, wu, wv = phi1(code, depth, theta[i], theta[d + i])
        huu, huv, hvv = phi2(code, depth, theta[i], theta[d + i])
        a = vec[i]
        b = vec[d + i]
        out[i] = tmp_d[i] * wu + gw[i] * (huu * a + huv * b)
        out[d + i] = tmp_d[i] * wv + gw[i] * (huv * a + hvv * b)


@jit
def diag_hessian(theta, code, depth, s, gw, out):
    """out <- diag H: [s * wu^2 + gw * wuu, s * wv^2 + gw * wvv]."""
    d = s.shape[0]
    for i in range(d):
        _, wu, wv = phi1(code, depth, theta[i], theta[d + i])
        huu, _, hvv = phi2(code, depth, theta[i], theta[d + i])
        out[i] = s[i] * wu * wu + gw[i] * huu
        out[d + i] = s[i] * wv * wv + gw[i] * hvv
