"""SDEs with known solutions, in the integrator's form, for convergence tests and oracles.

* Ornstein–Uhlenbeck  dX = -k X dt + sigma dB (componentwise, X in R^m, B in R^m):
  X_T = e^{-kT} X_0 + sigma int_0^T e^{-k(T-s)} dB_s;  E X_T = e^{-kT} X_0,
  Var X_T = sigma^2 (1 - e^{-2kT}) / (2k). Additive noise: Euler–Maruyama has strong order 1 here.
* Geometric Brownian motion  dX = mu X dt + sigma X dB (componentwise):
  X_T = X_0 exp((mu - sigma^2/2) T + sigma B_T) exactly on every path;  E X_T^2 = X_0^2 e^{(2mu+sigma^2)T}.
  Multiplicative noise: strong order 1/2, weak order 1.
* The 2-D toy of docs/theory.md §8.8 for the preconditioned label-noise drift: x = (x, y),
  L = (1/2) h(y) x^2, h = 1 + y^2, noise only in x with variance c h (so Sigma = c H on x = 0), a fixed
  diagonal preconditioner S = diag(s_x, s_y):

      dx = -s_x h(y) x dt + sqrt(lr) s_x sqrt(c h(y)) dB,      dy = -s_y (1/2) h'(y) x^2 dt.

  The fast variable x equilibrates to Var x = lr c s_x / 2 (independent of h); averaging gives the slow
  flow on Gamma = {x = 0}: dy/dtau = -(c/4) s_x s_y h'(y), tau = lr t, i.e.
  y(tau) = y0 exp(-(c/2) s_x s_y tau).
"""
from __future__ import annotations

import math

import numpy as np

from .integrator import diffusion_function, drift_function
from .models import SDEModel

_EMPTY2 = np.zeros((0, 0))
_EMPTY1 = np.zeros(0)
_EMPTYI = np.zeros(0, dtype=np.int64)


def _args(fpar):
    return (_EMPTY2, _EMPTY2, _EMPTY1, _EMPTY1, np.asarray(fpar, dtype=np.float64), _EMPTYI)


# ------------------------------------------------------------------ Ornstein–Uhlenbeck
@drift_function
def _ou_drift(X, ns, t, args, work, B, BETA, health):
    k = args[4][0]
    for q in range(ns):
        for i in range(X.shape[1]):
            B[q, i] = -k * X[q, i]
            BETA[q, i] = 0.0
        health[q] = X[q, 0]


@diffusion_function
def _additive_diffusion(X, ns, t, args, work, XI, OUT):
    for q in range(ns):
        for i in range(X.shape[1]):
            OUT[q, i] += XI[q, i]


def ornstein_uhlenbeck(rate: float, sigma: float, dim: int = 1) -> SDEModel:
    """dX = -rate X dt + sigma dB in R^dim."""
    return SDEModel("ornstein-uhlenbeck", "dX = -k X dt + sigma dB", _ou_drift, _additive_diffusion,
                    _args([rate]), (("x", dim),), dim, 0, float(sigma), {"rate": rate, "sigma": sigma})


def ou_mean_var(x0, rate: float, sigma: float, T: float):
    """Exact E X_T and Var X_T."""
    return np.exp(-rate * T) * np.asarray(x0), sigma ** 2 * (1 - math.exp(-2 * rate * T)) / (2 * rate)


# ------------------------------------------------------------------ geometric Brownian motion
@drift_function
def _gbm_drift(X, ns, t, args, work, B, BETA, health):
    mu = args[4][0]
    for q in range(ns):
        for i in range(X.shape[1]):
            B[q, i] = mu * X[q, i]
            BETA[q, i] = 0.0
        health[q] = X[q, 0]


@diffusion_function
def _multiplicative_diffusion(X, ns, t, args, work, XI, OUT):
    for q in range(ns):
        for i in range(X.shape[1]):
            OUT[q, i] += X[q, i] * XI[q, i]


def geometric_brownian_motion(mu: float, sigma: float, dim: int = 1) -> SDEModel:
    """dX = mu X dt + sigma X dB in R^dim (componentwise)."""
    return SDEModel("geometric-brownian-motion", "dX = mu X dt + sigma X dB", _gbm_drift,
                    _multiplicative_diffusion, _args([mu]), (("x", dim),), dim, 0, float(sigma),
                    {"mu": mu, "sigma": sigma})


def gbm_exact(x0, mu: float, sigma: float, T: float, B_T):
    """The exact solution on the path with B_T."""
    return np.asarray(x0) * np.exp((mu - 0.5 * sigma ** 2) * T + sigma * np.asarray(B_T))


# ---------------------------------------------------------- the 2-D toy of docs/theory.md §8.8
@drift_function
def _toy_drift(X, ns, t, args, work, B, BETA, health):
    f = args[4]
    sx, sy = f[0], f[1]
    for q in range(ns):
        x = X[q]
        h = 1.0 + x[1] * x[1]
        B[q, 0] = -sx * h * x[0]
        B[q, 1] = -sy * x[1] * x[0] * x[0]  # -(s_y/2) h'(y) x^2, h' = 2y
        BETA[q, 0] = 0.0
        health[q] = 0.5 * h * x[0] * x[0]


@diffusion_function
def _toy_diffusion(X, ns, t, args, work, XI, OUT):
    f = args[4]
    sx, c = f[0], f[2]
    for q in range(ns):
        OUT[q, 0] += sx * math.sqrt(c * (1.0 + X[q, 1] * X[q, 1])) * XI[q, 0]


def toy2d(c: float, lr: float, s=(2.0, 3.0)) -> SDEModel:
    """The preconditioned 2-D toy (state (x, y), one Brownian motion, amplitude sqrt(lr))."""
    return SDEModel("toy2d", "dx = -s_x h x dt + sqrt(lr) s_x sqrt(c h) dB; dy = -(s_y/2) h'(y) x^2 dt",
                    _toy_drift, _toy_diffusion, _args([s[0], s[1], c]), (("x", 2),), 1, 0, math.sqrt(lr),
                    {"c": c, "lr": lr, "s": list(s)})


def toy2d_slow_flow(y0: float, c: float, s, tau):
    """y(tau) = y0 exp(-(c/2) s_x s_y tau), the solution of dy/dtau = -(c/4) s_x s_y h'(y), h = 1 + y^2."""
    return y0 * np.exp(-0.5 * c * s[0] * s[1] * np.asarray(tau))


# ------------------------------------------------------------------ exact moments of Euler–Maruyama
def gbm_em_moments(x0: float, mu: float, sigma: float, T: float, h: float) -> dict:
    """Exact moments of Euler–Maruyama X_h (N = T/h steps) for GBM, and of its error on the same path.

    E X_h = x0 (1 + mu h)^N, E X_h^2 = x0^2 ((1 + mu h)^2 + sigma^2 h)^N,
    E[X_h X_T] = x0^2 e^{mu T} (1 + (mu + sigma^2) h)^N (X_T the exact solution on the same path), so the
    mean-square error E (X_h - X_T)^2 = E X_h^2 - 2 E[X_h X_T] + E X_T^2 is exact too.
    """
    N = int(round(T / h))
    m2 = x0 ** 2 * ((1 + mu * h) ** 2 + sigma ** 2 * h) ** N
    cross = x0 ** 2 * math.exp(mu * T) * (1 + (mu + sigma ** 2) * h) ** N
    ex2 = x0 ** 2 * math.exp((2 * mu + sigma ** 2) * T)
    return {"mean": x0 * (1 + mu * h) ** N, "second": m2, "mse": m2 - 2 * cross + ex2,
            "exact_mean": x0 * math.exp(mu * T), "exact_second": ex2}


def ou_em_coefficients(x0: float, rate: float, sigma: float, T: float, h: float, h_base: float):
    """Euler–Maruyama for OU as a linear functional of the base-grid increments.

    X_h = q^N x0 + sum_i a_i dB_i (q = 1 - rate h, N = T/h; dB_i the increments on the base grid h_base,
    a_i = sigma q^(N-1-m(i)) for i in coarse step m(i)). Returns (q^N x0, a) with a of shape (T/h_base,).
    """
    N = int(round(T / h))
    sub = int(round(h / h_base))
    q = 1.0 - rate * h
    a = sigma * q ** (N - 1 - np.arange(N, dtype=float))
    return q ** N * x0, np.repeat(a, sub)


def ou_em_moments(x0: float, rate: float, sigma: float, T: float, h: float, h_base: float) -> dict:
    """Exact E X_h, E X_h^2 of OU Euler–Maruyama and E (X_h - R)^2 against R = Euler–Maruyama on h_base
    (the same path), plus the exact solution's moments."""
    m, a = ou_em_coefficients(x0, rate, sigma, T, h, h_base)
    m0, a0 = ou_em_coefficients(x0, rate, sigma, T, h_base, h_base)
    mean_T, var_T = ou_mean_var(x0, rate, sigma, T)
    return {"mean": m, "second": m * m + h_base * float(a @ a),
            "mse_vs_base": (m - m0) ** 2 + h_base * float((a - a0) @ (a - a0)),
            "base_second": m0 * m0 + h_base * float(a0 @ a0),
            "exact_mean": float(mean_T), "exact_second": float(mean_T ** 2 + var_T)}
