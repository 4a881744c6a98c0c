"""Strictly convex separable problems min sum_i f_i(w_i) s.t. Z w = y, solved through the dual.

The dual of min sum f_i(w_i), Z w = y is max_nu y.nu - sum_i f_i*((Z^T nu)_i); its maximizer gives
w_i = (f_i*)'((Z^T nu)_i), which satisfies stationarity exactly, so only feasibility Z w = y has to be
driven to tolerance. The dual is smooth and concave; :func:`dual_newton` runs Newton's method with a
Levenberg-Marquardt shift and Armijo backtracking (the shift handles conjugates whose curvature vanishes,
e.g. |w|**e with 1 < e < 2 at zeta = 0). Stops when max|Z w - y| <= tol (1 + max|y|).

Conjugates provided:

* :class:`HyperbolicEntropy` (Woodworth et al. 2020, docs/theory.md §9.7): f_i(w) = a_i**2 q(w / a_i**2),
  q(z) = 2 - sqrt(4 + z**2) + z arcsinh(z / 2); q'(z) = arcsinh(z / 2), so f* = a**2 (2 cosh(zeta) - 2),
  w(zeta) = 2 a**2 sinh(zeta), w'(zeta) = 2 a**2 cosh(zeta).
* :class:`PowerLaw` (e > 1): f_i(w) = c+_i w**e (w > 0), c-_i |w|**e (w < 0);
  w(zeta) = sign(zeta) (|zeta| / (e c))**(1 / (e - 1)) with c = c+ or c- by the sign of zeta,
  f* = (e - 1) c |w(zeta)|**e.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DiagsimError
from .linear import System


def q_woodworth(z):
    """q(z) = 2 - sqrt(4 + z**2) + z arcsinh(z / 2) (convex, q(0) = 0)."""
    z = np.asarray(z, dtype=np.float64)
    return 2.0 - np.sqrt(4.0 + z * z) + z * np.arcsinh(z / 2.0)


@dataclass(frozen=True)
class HyperbolicEntropy:
    """sum_i a_i**2 q(w_i / a_i**2); ``a2`` = a**2 (d,)."""

    a2: np.ndarray

    def value(self, w):
        a2 = self.a2
        out = np.zeros_like(w)
        m = a2 > 0
        out[m] = a2[m] * q_woodworth(w[m] / a2[m])
        out[~m & (w != 0)] = np.inf
        return float(out.sum())

    def conj(self, zeta):
        return self.a2 * (2.0 * np.cosh(zeta) - 2.0)

    def primal(self, zeta):
        return 2.0 * self.a2 * np.sinh(zeta)

    def dprimal(self, zeta):
        return 2.0 * self.a2 * np.cosh(zeta)


@dataclass(frozen=True)
class PowerLaw:
    """sum_i c_sign,i |w_i|**e with e > 1 (c = inf forbids that sign)."""

    c_pos: np.ndarray
    c_neg: np.ndarray
    e: float

    def _c(self, zeta):
        return np.where(zeta > 0, self.c_pos, self.c_neg)

    def value(self, w):
        a = np.abs(w)
        c = np.where(w > 0, self.c_pos, np.where(w < 0, self.c_neg, 0.0))
        return float(np.sum(np.where(a > 0, c * a**self.e, 0.0)))

    def primal(self, zeta):
        c = self._c(zeta)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = (np.abs(zeta) / (self.e * c)) ** (1.0 / (self.e - 1.0))
        mag = np.where(np.isfinite(mag), mag, 0.0)
        return np.sign(zeta) * mag

    def conj(self, zeta):
        c = self._c(zeta)
        x = np.abs(self.primal(zeta))
        with np.errstate(invalid="ignore"):
            out = (self.e - 1.0) * c * x**self.e
        return np.where(x > 0, out, 0.0)

    def dprimal(self, zeta):
        x = np.abs(self.primal(zeta))
        az = np.abs(zeta)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = x / ((self.e - 1.0) * az)
        return np.where((az > 0) & np.isfinite(out), out, 0.0)


def dual_newton(system: System, f, *, tol: float = 1e-13, max_iter: int = 500) -> dict:
    """Solve min sum f_i(w_i) s.t. Z w = y through its dual (see the module text).

    Returns dict(w, nu, zeta = Z^T nu, iterations, residual = max|Z w - y|).
    """
    Z, y = system.Z, system.y
    r, dd = Z.shape
    nu = np.zeros(r)
    scale = 1.0 + float(np.max(np.abs(y), initial=0.0))
    if r == 0:
        return {"w": np.zeros(dd), "nu": nu, "zeta": np.zeros(dd), "iterations": 0, "residual": 0.0}

    def obj(nu_):
        with np.errstate(over="ignore", invalid="ignore"):
            val = float(np.sum(f.conj(Z.T @ nu_))) - float(y @ nu_)
        return val if np.isfinite(val) else np.inf

    zz = float(np.trace(Z @ Z.T)) / r
    mu = 1e-6 * zz
    fval = obj(nu)
    for it in range(1, max_iter + 1):
        zeta = Z.T @ nu
        w = f.primal(zeta)
        g = Z @ w - y
        res = float(np.max(np.abs(g)))
        if res <= tol * scale:
            return {"w": w, "nu": nu, "zeta": zeta, "iterations": it - 1, "residual": res}
        H = (Z * f.dprimal(zeta)) @ Z.T
        step_ok = False
        for _ in range(60):
            try:
                L = np.linalg.cholesky(H + mu * np.eye(r))
            except np.linalg.LinAlgError:
                mu = max(mu * 10.0, 1e-14 * zz)
                continue
            p = -np.linalg.solve(L.T, np.linalg.solve(L, g))
            slope = float(g @ p)
            step = 1.0
            # Armijo on the dual objective, with slack for its rounding error: near the solution the
            # required decrease (~|g|^2) falls below eps * |f|, and an exact test rejects every step
            slack = 64.0 * np.finfo(float).eps * max(1.0, abs(fval))
            while step > 1e-12:
                f_new = obj(nu + step * p)
                if f_new <= fval + 1e-4 * step * slope + slack:
                    step_ok = True
                    break
                step *= 0.5
            if step_ok:
                break
            mu = max(mu * 10.0, 1e-14 * zz)
        if not step_ok:
            break
        nu = nu + step * p
        fval = obj(nu)
        mu = max(mu / 10.0, 1e-15 * zz) if step == 1.0 else mu * 2.0
    zeta = Z.T @ nu
    w = f.primal(zeta)
    res = float(np.max(np.abs(Z @ w - y)))
    if res > 1e3 * tol * scale:
        raise DiagsimError(f"the dual Newton solve did not converge (max|Z w - y| = {res:.3g} after "
                           f"{max_iter} "
                           "iterations)")
    return {"w": w, "nu": nu, "zeta": zeta, "iterations": max_iter, "residual": res}
