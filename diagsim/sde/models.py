"""SDE models of the optimizers on a diagonal network (docs/theory.md §7): drift and diffusion functions.

Each model is a pair of small jitted functions in the form of :mod:`diagsim.sde.integrator`
(drift b + s beta, diffusion a * s dB) plus the data they read, collected in an :class:`SDEModel`.
Notation: L(theta) = (1/2n)||Z w(theta) - y||^2, r = Z w - y, J = df/dtheta (n x 2d),
J^T x = [wu * Z^T x, wv * Z^T x] (wu = dw/du, wv = dw/dv, elementwise), delta = label noise,
Sigma(theta) = (delta^2/n^2) J^T J the label-noise gradient covariance,
diag Sigma = (delta^2/n) [s wu^2, s wv^2] (exact at every theta), B an n-dimensional Brownian motion,
t = lr * k the SDE's time.

Models (``SDEModel.name``):

* ``"gradient-flow"``  d theta = -grad L dt.
* ``"sgd-label-noise"``  d theta = -grad L dt + sqrt(lr) (delta/n) J^T dB.
  The label-noise SDE of SGD (Li, Wang, Arora 2022); Rademacher and Gaussian label noise share it.
* ``"adam-sde"``  the paper's regime 1 - beta2 = C lr^2 (beta1, eps fixed; C = (1 - beta2)/lr^2):
  momentum averages out at leading order and the second moment is a slow variable,

      d theta = -S(v) (grad L dt + sqrt(lr) (delta/n) J^T dB),     S(v) = diag(1 / (v^lam + eps)),
      dv      = C lr (diag Sigma(theta) + grad L * grad L - v) dt.

  lam = 1/2 is Adam and RMSProp (beta1 plays no role at this order), general lam is AdamE-lam.
  Block variants (Adam-mini, Adalayer): one v_b per block b, S_i = 1/(v_b(i)^lam + eps),
  dv_b = C lr (mean_{i in b} (diag Sigma + grad L^2)_i - v_b) dt.
  (The noise may be written -S * sqrt(lr)(delta/n) J^T dB; +S ... is the same law and what is
  integrated here: docs/theory.md §7.5.)
* ``"adam-momentum-sde"``  a coupled (theta, m, v) SDE of Malladi et al. (2022) type, in the scaling
  1 - beta1 = c1 lr and 1 - beta2 = C lr^2 (time t = lr k; c1 = (1 - beta1)/lr, C = (1 - beta2)/lr^2):

      d theta = -S(v) m dt,
      dm      = c1 (grad L - m) dt + c1 sqrt(lr) (delta/n) J^T dB,
      dv      = C lr (diag Sigma(theta) + grad L * grad L - v) dt.

  (Malladi et al. scale 1 - beta1 with lr^2 and time with lr^2 k; here 1 - beta1 ~ lr keeps the
  momentum's relaxation time 1/c1 fixed on the t clock, so that the model stays a refinement of
  "adam-sde" at finite beta1. m is the momentum, not bias-corrected.)

Second moments and preconditioner blocks: ``v`` has one entry per parameter (2d) or one per block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DiagsimError, check_positive
from ..lowlevel.jit import jit
from ..networks.diagonal.grouped import forward_group, pullback_group, w_of
from ..networks.diagonal.parametrization import UUVV, UV, check_blocks, phi1
from ..networks.diagonal.problem import Problem
from .integrator import diffusion_function, drift_function

# float parameters (fpar) --------------------------------------------------------------------------
F_RATE_V = 0      # C * lr: relaxation rate of v on the t clock
F_NOISE_VAR = 1   # delta^2 / n: diag Sigma = noise_var * s * wu^2
F_EPS = 2
F_LAM = 3
F_C1 = 4          # momentum rate (adam-momentum-sde)
N_FPAR = 5
# integer parameters (ipar) ------------------------------------------------------------------------
I_CODE = 0
I_DEPTH = 1
I_NV = 2          # number of second-moment entries (2d per-parameter, or the number of blocks)
I_BLOCKED = 3     # 1: block preconditioner; then ipar[I_BLOCKS: I_BLOCKS + 2d] are block ids
I_HALF = 4        # 1: lam == 1/2 (sqrt instead of pow)
I_BLOCKS = 5


# ================================================================== shared pieces (group form)
# The parametrization code is a runtime integer; the loops over coordinates are written once per common
# code with the code as a constant (so that phi/phi1 fold into straight-line, vectorizable arithmetic),
# and once generic. The arithmetic is identical in every branch.
@jit(inline="always")
def _w_rows_impl(code, depth, X, ns, W):
    for q in range(ns):
        w_of(X[q], code, depth, W[q])


@jit(inline="always")
def _w_rows(code, depth, X, ns, W):
    """W[q] <- w(X[q, :2d]) for q < ns."""
    if code == UUVV:
        _w_rows_impl(UUVV, 2, X, ns, W)
    elif code == UV:
        _w_rows_impl(UV, 2, X, ns, W)
    else:
        _w_rows_impl(code, depth, X, ns, W)


@jit(inline="always")
def _jt_rows_impl(code, depth, X, ns, GZ, OUT, off, c, SS, use_s):
    d = GZ.shape[1]
    for q in range(ns):
        x = X[q]
        gz = GZ[q]
        out = OUT[q]
        if use_s:
            S = SS[q]
            for i in range(d):
                _, wu, wv = phi1(code, depth, x[i], x[d + i])
                out[off + i] += S[i] * gz[i] * wu
                out[off + d + i] += S[d + i] * gz[i] * wv
        else:
            for i in range(d):
                _, wu, wv = phi1(code, depth, x[i], x[d + i])
                out[off + i] += c * gz[i] * wu
                out[off + d + i] += c * gz[i] * wv


@jit(inline="always")
def _jt_rows(code, depth, X, ns, GZ, OUT, off, c, SS, use_s):
    """OUT[q, off:off+2d] += (S[q] or c) * [wu * GZ[q], wv * GZ[q]]  (wu, wv at X[q]) for q < ns."""
    if code == UUVV:
        _jt_rows_impl(UUVV, 2, X, ns, GZ, OUT, off, c, SS, use_s)
    elif code == UV:
        _jt_rows_impl(UV, 2, X, ns, GZ, OUT, off, c, SS, use_s)
    else:
        _jt_rows_impl(code, depth, X, ns, GZ, OUT, off, c, SS, use_s)


@drift_function
def _label_noise_drift(X, ns, t, args, work, B, BETA, health):
    """-grad L = J^T (-r/n): b = 0, beta = -r/n (the drift lies in the range of J^T).

    work: W (G, d) | GZ (G, d) (the diffusion's Z^T xi).
    """
    Z, ZT, y, s, fpar, ipar = args
    n, d = Z.shape
    G = X.shape[0]
    code = ipar[I_CODE]
    depth = ipar[I_DEPTH]
    W = work[:G * d].reshape((G, d))
    _w_rows(code, depth, X, ns, W)
    forward_group(ZT, y, W, ns, BETA, health)
    inv_n = 1.0 / n
    for q in range(ns):
        for j in range(n):
            BETA[q, j] = -BETA[q, j] * inv_n
        for i in range(2 * d):
            B[q, i] = 0.0


@diffusion_function
def _jt_diffusion(X, ns, t, args, work, XI, OUT):
    """OUT[:, :2d] += J^T xi = [wu * Z^T xi, wv * Z^T xi] for each path of the group."""
    Z = args[0]
    ipar = args[5]
    code = ipar[I_CODE]
    depth = ipar[I_DEPTH]
    n, d = Z.shape
    G = X.shape[0]
    GZ = work[G * d:2 * G * d].reshape((G, d))
    pullback_group(Z, XI, ns, GZ)
    _jt_rows(code, depth, X, ns, GZ, OUT, 0, 1.0, GZ, False)  # (1.0 * gz) * wu == gz * wu exactly


# ------------------------------------------------------------------ the label-noise step, entry by entry
# Used by the GPU's warp-per-path kernel (diagsim.cuda.warp_kernels): lane l computes the entries l, l + 32, ...
# with the operations of _label_noise_drift + the integrator's scale_drift / add_rows + _jt_diffusion.
@jit
def label_noise_xi_strided(r, xi, inv_n, dt, start, stride):
    """xi_j <- xi_j + beta_j dt with beta_j = -r_j / n (the drift's part in the range of J^T)."""
    for j in range(start, r.shape[0], stride):
        beta = -r[j] * inv_n
        xi[j] += beta * dt


@jit
def jt_step_strided(x, code, depth, gz, dt, start, stride):
    """x_i <- x_i + b_i with b = (0 dt) + J^T xi entry-wise (gz = Z^T xi), for i and d + i,
    i = start, start + stride, ..."""
    d = gz.shape[0]
    for i in range(start, d, stride):
        _, wu, wv = phi1(code, depth, x[i], x[d + i])
        # Bit parity with the CPU path, operation for operation: the drift's b = 0 is scaled by dt in
        # scale_drift (0.0 * dt), then _jt_rows adds (c * gz) * wu with c = 1.0, which FMA contraction may
        # fuse into one rounding; writing the same expression here lets the compiler fuse it the same way.
        # Simplifying it to x[i] += gz[i] * wu would change the last bit where the CPU fuses and this does not.
        bu = 0.0 * dt
        bv = 0.0 * dt
        bu += 1.0 * gz[i] * wu
        bv += 1.0 * gz[i] * wv
        x[i] += bu
        x[d + i] += bv


@jit(inline="always")
def _adam_rows(code, depth, X, ns, s, fpar, ipar, GW, SS, ACC, B, BETA):
    """The per-path part of the Adam drift from GW = Z^T r / n (see :func:`_adam_drift`)."""
    d = GW.shape[1]
    n = BETA.shape[1]
    nv = ipar[I_NV]
    blocked = ipar[I_BLOCKED] == 1
    half = ipar[I_HALF] == 1
    rate = fpar[F_RATE_V]
    noise_var = fpar[F_NOISE_VAR]
    eps = fpar[F_EPS]
    lam = fpar[F_LAM]
    c1 = fpar[F_C1]
    momentum = c1 > 0.0
    voff = 4 * d if momentum else 2 * d
    for q in range(ns):
        x = X[q]
        b = B[q]
        gw = GW[q]
        S = SS[q]
        acc = ACC[q]
        # preconditioner S = 1 / (v^lam + eps)
        if blocked:
            for i in range(2 * d):
                vb = x[voff + ipar[I_BLOCKS + i]]
                S[i] = 1.0 / ((math.sqrt(vb) if half else vb ** lam) + eps)
            for k in range(nv):
                acc[k] = 0.0
        else:
            for i in range(2 * d):
                vi = x[voff + i]
                S[i] = 1.0 / ((math.sqrt(vi) if half else vi ** lam) + eps)
        for i in range(d):
            _, wu, wv = phi1(code, depth, x[i], x[d + i])
            gu = gw[i] * wu
            gv = gw[i] * wv
            if momentum:
                b[i] = -S[i] * x[2 * d + i]
                b[d + i] = -S[d + i] * x[3 * d + i]
                b[2 * d + i] = c1 * (gu - x[2 * d + i])
                b[3 * d + i] = c1 * (gv - x[3 * d + i])
            else:
                b[i] = -S[i] * gu
                b[d + i] = -S[d + i] * gv
            tu = noise_var * s[i] * wu * wu + gu * gu
            tv = noise_var * s[i] * wv * wv + gv * gv
            if blocked:
                acc[ipar[I_BLOCKS + i]] += tu
                acc[ipar[I_BLOCKS + d + i]] += tv
            else:
                b[voff + i] = rate * (tu - x[voff + i])
                b[voff + d + i] = rate * (tv - x[voff + d + i])
        if blocked:
            cnt = ipar[I_BLOCKS + 2 * d:I_BLOCKS + 2 * d + nv]
            for k in range(nv):
                b[voff + k] = rate * (acc[k] / cnt[k] - x[voff + k])
        for j in range(n):
            BETA[q, j] = 0.0


def adam_work_size(n: int, d: int, nv: int) -> int:
    """Scratch per path of the Adam models (the sizes of the blocks of ``_adam_work``)."""
    return d + n + d + 2 * d + nv


@jit(inline="always")
def _adam_work(work, G, n, d, nv):
    """The Adam models' scratch for a group of G paths, one definition for the drift and the diffusion:
    W (G, d) | R (G, n) | GW (G, d) | S (G, 2d) | ACC (G, nv), consecutive in ``work``. The drift leaves the
    preconditioner S there for the diffusion of the same step, which also reuses W for Z^T xi."""
    o = 0
    W = work[o:o + G * d].reshape((G, d))
    o += G * d
    R = work[o:o + G * n].reshape((G, n))
    o += G * n
    GW = work[o:o + G * d].reshape((G, d))
    o += G * d
    SS = work[o:o + G * 2 * d].reshape((G, 2 * d))
    o += G * 2 * d
    ACC = work[o:o + G * nv].reshape((G, nv))
    return W, R, GW, SS, ACC


@drift_function
def _adam_drift(X, ns, t, args, work, B, BETA, health):
    """theta: -S(v) grad L; v: C lr (diag Sigma + grad L^2 - v). Leaves S in work for the diffusion.

    Scratch: ``_adam_work``. State x = [theta (2d), v (nv)], or [theta (2d), m (2d), v (nv)] when
    fpar[F_C1] > 0 (the momentum model: theta follows -S m and m relaxes to grad L at rate c1).
    """
    Z, ZT, y, s, fpar, ipar = args
    n, d = Z.shape
    G = X.shape[0]
    code = ipar[I_CODE]
    depth = ipar[I_DEPTH]
    nv = ipar[I_NV]
    W, R, GW, SS, ACC = _adam_work(work, G, n, d, nv)
    inv_n = 1.0 / n
    _w_rows(code, depth, X, ns, W)
    forward_group(ZT, y, W, ns, R, health)
    for q in range(ns):
        for j in range(n):
            R[q, j] = inv_n * R[q, j]  # kernels.pullback(Z, r, 1/n, gw) scales r first
    pullback_group(Z, R, ns, GW)
    if code == UUVV:
        _adam_rows(UUVV, 2, X, ns, s, fpar, ipar, GW, SS, ACC, B, BETA)
    elif code == UV:
        _adam_rows(UV, 2, X, ns, s, fpar, ipar, GW, SS, ACC, B, BETA)
    else:
        _adam_rows(code, depth, X, ns, s, fpar, ipar, GW, SS, ACC, B, BETA)


@diffusion_function
def _adam_diffusion(X, ns, t, args, work, XI, OUT):
    """theta += S J^T xi (adam-sde), or m += c1 J^T xi (adam-momentum-sde); S from the drift's work."""
    Z = args[0]
    fpar = args[4]
    ipar = args[5]
    code = ipar[I_CODE]
    depth = ipar[I_DEPTH]
    n, d = Z.shape
    G = X.shape[0]
    c1 = fpar[F_C1]
    GZ, _, _, SS, _ = _adam_work(work, G, n, d, ipar[I_NV])  # GZ: W's block, not needed any more this step
    pullback_group(Z, XI, ns, GZ)
    if c1 > 0.0:
        _jt_rows(code, depth, X, ns, GZ, OUT, 2 * d, c1, SS, False)
    else:
        _jt_rows(code, depth, X, ns, GZ, OUT, 0, 1.0, SS, True)


# ================================================================== the model object
@dataclass(frozen=True, eq=False)
class SDEModel:
    """A model lowered for the integrator.

    Attributes
    ----------
    name, equation : identification and the SDE in words (recorded in every result).
    drift, diffusion : the jitted functions (see :mod:`diagsim.sde.integrator`).
    args : the model data tuple.
    layout : ((key, size), ...): the state X (M, dim) is the concatenation of these state arrays.
    n_noise, n_work : Brownian dimension and per-path scratch size.
    amplitude : the noise amplitude a (0 for an ODE).
    params : JSON-serializable hyperparameters of the model.
    relaxation : rates of the linear relaxation terms on the t clock (C lr, c1); dt must resolve them.
    """

    name: str
    equation: str
    drift: object
    diffusion: object
    args: tuple
    layout: tuple
    n_noise: int
    n_work: int
    amplitude: float
    params: dict = field(default_factory=dict)
    relaxation: float = 0.0

    @property
    def dim(self) -> int:
        return sum(size for _, size in self.layout)

    def pack(self, state: dict) -> np.ndarray:
        """The (M, dim) integrator state from the state dict (no copy for a theta-only model)."""
        if len(self.layout) == 1:
            key = self.layout[0][0]
            a = state[key]
            if a.dtype == np.float64 and a.flags.c_contiguous:
                return a
            return np.ascontiguousarray(a, dtype=np.float64)
        return np.ascontiguousarray(np.concatenate([state[k] for k, _ in self.layout], axis=1))

    def unpack(self, X: np.ndarray, state: dict) -> None:
        """Write X back into the state dict's arrays (in place)."""
        off = 0
        for key, size in self.layout:
            if state[key] is not X:
                state[key][...] = X[:, off:off + size]
            off += size

    def preconditioner(self, state: dict) -> np.ndarray | None:
        """S (M, 2d) of the adaptive models, None otherwise."""
        if "v" not in state:
            return None
        fpar, ipar = self.args[4], self.args[5]
        d = self.args[0].shape[1]
        v = state["v"]
        if ipar[I_BLOCKED] == 1:
            v = v[:, ipar[I_BLOCKS:I_BLOCKS + 2 * d]]
        return 1.0 / (v ** fpar[F_LAM] + fpar[F_EPS])


def _base_args(problem: Problem, fpar: np.ndarray, ipar: np.ndarray) -> tuple:
    return (problem.Z, problem.ZT, problem.y, problem.s, np.ascontiguousarray(fpar, dtype=np.float64),
            np.ascontiguousarray(ipar, dtype=np.int64))


def _theta_layout(problem):
    return (("theta", problem.dim),)


def gradient_flow(problem: Problem) -> SDEModel:
    """d theta = -grad L dt (an ODE; integrated by explicit Euler)."""
    ipar = np.array([problem.param.code, problem.param.depth, 0, 0, 0], dtype=np.int64)
    return SDEModel("gradient-flow", "d theta = -grad L dt", _label_noise_drift, _jt_diffusion,
                    _base_args(problem, np.zeros(N_FPAR), ipar), _theta_layout(problem), problem.n,
                    2 * problem.d + problem.n, 0.0, {})


def sgd_label_noise(problem: Problem, lr: float, label_noise: float) -> SDEModel:
    """d theta = -grad L dt + sqrt(lr) (label_noise / n) J^T dB  (B in R^n)."""
    lr = check_positive("lr", lr)
    delta = check_positive("label_noise", label_noise, allow_zero=True)
    ipar = np.array([problem.param.code, problem.param.depth, 0, 0, 0], dtype=np.int64)
    return SDEModel("sgd-label-noise", "d theta = -grad L dt + sqrt(lr) (delta/n) J^T dB",
                    _label_noise_drift, _jt_diffusion, _base_args(problem, np.zeros(N_FPAR), ipar),
                    _theta_layout(problem), problem.n, 2 * problem.d + problem.n,
                    math.sqrt(lr) * delta / problem.n, {"lr": lr, "label_noise": delta})


def adam_sde(problem: Problem, lr: float, label_noise: float, *, beta2: float, eps: float, lam: float = 0.5,
             blocks=None, beta1: float | None = None, momentum: bool = False) -> SDEModel:
    """The Adam SDE of the paper's regime (``momentum=False``) or the (theta, m, v) model.

    Parameters
    ----------
    lr, label_noise : eta and delta.
    beta2 : sets C = (1 - beta2) / lr^2.
    eps, lam : S(v) = 1/(v^lam + eps); lam = 1/2 is Adam/RMSProp, otherwise AdamE-lam.
    blocks : None (one v per parameter) or (2d,) block ids (Adam-mini / Adalayer).
    beta1, momentum : with ``momentum=True`` the state carries m and c1 = (1 - beta1)/lr.
    """
    lr = check_positive("lr", lr)
    delta = check_positive("label_noise", label_noise, allow_zero=True)
    d, n = problem.d, problem.n
    C = (1.0 - beta2) / lr ** 2
    c1 = 0.0
    if momentum:
        if beta1 is None or not 0.0 <= beta1 < 1.0:
            raise DiagsimError(f"beta1 must lie in [0, 1) for the momentum SDE, got {beta1!r}")
        c1 = (1.0 - beta1) / lr
    if blocks is None:
        nv, blocked, bl, counts = 2 * d, 0, np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        bl = check_blocks(blocks, 2 * d)
        counts = np.bincount(bl).astype(np.int64)
        nv, blocked = counts.size, 1
    fpar = np.zeros(N_FPAR)
    fpar[F_RATE_V] = C * lr
    fpar[F_NOISE_VAR] = delta ** 2 / n
    fpar[F_EPS] = eps
    fpar[F_LAM] = lam
    fpar[F_C1] = c1
    ipar = np.concatenate([[problem.param.code, problem.param.depth, nv, blocked, int(lam == 0.5)],
                           bl, counts]).astype(np.int64)
    layout = (("theta", 2 * d),) + ((("m", 2 * d),) if momentum else ()) + (("v", nv),)
    params = {"lr": lr, "label_noise": delta, "beta2": beta2, "C": C, "eps": eps, "lam": lam,
              "blocks": None if blocks is None else bl.tolist()}
    if momentum:
        params.update(beta1=beta1, c1=c1)
        name = "adam-momentum-sde"
        eq = ("d theta = -S(v) m dt; dm = c1 (grad L - m) dt + c1 sqrt(lr) (delta/n) J^T dB; "
              "dv = C lr (diag Sigma + grad L^2 - v) dt; S = 1/(v^lam + eps), c1 = (1-beta1)/lr, "
              "C = (1-beta2)/lr^2")
    else:
        name = "adam-sde"
        eq = ("d theta = -S(v) (grad L dt + sqrt(lr) (delta/n) J^T dB); "
              "dv = C lr (diag Sigma + grad L^2 - v) dt; S = 1/(v^lam + eps), C = (1-beta2)/lr^2")
    if blocked:
        eq += "; v per block (mean over the block)"
    return SDEModel(name, eq, _adam_drift, _adam_diffusion, _base_args(problem, fpar, ipar), layout, n,
                    adam_work_size(n, d, nv), math.sqrt(lr) * delta / n, params, relaxation=max(C * lr, c1))


def v_target(problem: Problem, theta: np.ndarray, label_noise: float, blocks=None) -> np.ndarray:
    """The drift target of v at theta: diag Sigma + grad L^2, per parameter (M, 2d) or per block."""
    from ..networks.diagonal.derivatives import gradient, phi_derivatives
    th = problem.check_theta(theta)
    wu, wv, *_ = phi_derivatives(problem, th)
    g = gradient(problem, th)
    c = label_noise ** 2 / problem.n
    tgt = np.concatenate([c * problem.s * wu ** 2, c * problem.s * wv ** 2], axis=1) + g * g
    if blocks is None:
        return tgt
    bl = check_blocks(blocks, problem.dim)
    counts = np.bincount(bl)
    out = np.zeros((th.shape[0], counts.size))
    for q in range(counts.size):
        out[:, q] = tgt[:, bl == q].mean(axis=1)
    return out
