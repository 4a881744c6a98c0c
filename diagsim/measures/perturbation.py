"""Perturbation sharpness: average-case, worst-case and their adaptive versions (docs/theory.md §10.4-10.5).

Notation: L(theta) = (1/2n) ||Z w(theta) - y||^2, theta = [u, v] in R^{2d}, r = Z w - y, g = grad L,
H = Hessian. Radii are Euclidean norms over all 2d parameters.

* Average-case rho-sharpness   A(rho)   = E_{delta ~ N(0, rho^2 I_2d)} L(theta + delta) - L(theta).
* Adaptive average-case        A_ad(rho) = E_{eps ~ N(0, rho^2 I_2d)} L(theta + T eps) - L(theta),
  T = diag(|theta| + eta) (eta = 0 by default: the ball ||delta / |theta||| <= rho, docs/theory.md §10.5).
* Worst-case rho-sharpness     W(rho)   = max_{||delta|| <= rho} L(theta + delta) - L(theta).
* Adaptive worst-case          W_ad(rho) = max_{||eps|| <= rho} L(theta + T eps) - L(theta).
* Their quadratic models       Q(rho)   = max_{||delta|| <= rho} g.delta + 1/2 delta.H delta (exact
  trust-region solution; T g and T H T for the adaptive one). On Gamma (g = 0) Q = rho^2 lambda_max / 2.

Closed form of the average case (derived here for every parametrization and any per-coordinate
variances; none of it assumes r = 0). Perturb (u_i, v_i) by independent a_i ~ N(0, sa_i^2),
b_i ~ N(0, sb_i^2) and let Delta_i = w_i(theta + delta) - w_i(theta), with mean m_i and variance V_i.
Coordinates are independent, so with Z^T Z having diagonal n s:

    E L(theta + delta) - L(theta) = (1/n) r.Z m + (1/2n) ||Z m||^2 + (1/2) sum_i s_i V_i.

"uu-vv": Delta = 2ua + a^2 - 2vb - b^2, m = sa^2 - sb^2, V = 4u^2 sa^2 + 2 sa^4 + 4v^2 sb^2 + 2 sb^4.
"uv":    Delta = u b + v a + a b,       m = 0,             V = u^2 sb^2 + v^2 sa^2 + sa^2 sb^2.
"depth-D": moments of (u + a)^D from E a^j = sa^j (j - 1)!! (j even).
With sa = sb = rho this gives, at every theta (tr H of "uu-vv" and "uv" has no residual part):
"uu-vv": A = (rho^2/2) tr H + 2 rho^4 tr(Z^T Z)/n;  "uv": A = (rho^2/2) tr H + rho^4 tr(Z^T Z)/(2n),
as in docs/theory.md §10.4 (checked against Monte Carlo in the tests). For "depth-D" m != 0 and the
residual and ||Z m||^2 terms appear.

The worst case is computed by ascent on the ball (:mod:`._ascent`: damped Riemannian Newton steps on the
sphere with exact structured Hessians, safeguarded by projected gradient steps) from the trust-region
solution delta_Q, its mirror -delta_Q (the cubic term changes sign between them) and ``n_random`` seeded
random points; the result is the value at a point of the ball, hence a lower bound on W, and it is exact
at a global maximizer (it agrees with SciPy SLSQP multistart in the tests). Since L is a polynomial,
L(theta + delta_Q) - L(theta) = Q + (cubic and quartic remainder), so the result is never below Q minus
that remainder ("uu-vv": |remainder| <= (||J|| ||Z|| rho^3 + ||Z||^2 rho^4 / 2) / n; tested).
"""
from __future__ import annotations

from math import comb

import numpy as np

from ..errors import DiagsimError, check_int, check_positive
from ..networks.diagonal import derivatives as D
from ..networks.diagonal.parametrization import UUVV, UV
from ._ascent import ball_ascent, best_of
from ._context import Context, hessian_operator


# ---------------------------------------------------------------------------- closed form
def _gauss_power_mean(x: np.ndarray, sig2: np.ndarray, k: int) -> np.ndarray:
    """E (x + a)^k for a ~ N(0, sig2), elementwise."""
    out = np.zeros_like(x)
    dfact = 1.0  # (j - 1)!! for even j, starting at j = 0
    for j in range(0, k + 1, 2):
        if j > 0:
            dfact *= (j - 1)
        out = out + comb(k, j) * x ** (k - j) * sig2 ** (j // 2) * dfact
    return out


def delta_moments(param, u: np.ndarray, v: np.ndarray, sa2: np.ndarray, sb2: np.ndarray):
    """Mean and variance of Delta_i = w_i(u + a, v + b) - w_i(u, v), a ~ N(0, sa2), b ~ N(0, sb2)."""
    if param.code == UUVV:
        return sa2 - sb2, 4 * u * u * sa2 + 2 * sa2 * sa2 + 4 * v * v * sb2 + 2 * sb2 * sb2
    if param.code == UV:
        return np.zeros_like(u), u * u * sb2 + v * v * sa2 + sa2 * sb2
    D_ = param.depth
    eu, ev = _gauss_power_mean(u, sa2, D_), _gauss_power_mean(v, sb2, D_)
    mean = (eu - u ** D_) - (ev - v ** D_)
    var = (_gauss_power_mean(u, sa2, 2 * D_) - eu * eu) + (_gauss_power_mean(v, sb2, 2 * D_) - ev * ev)
    return mean, var


def _average_closed(ctx: Context, sa2: np.ndarray, sb2: np.ndarray) -> np.ndarray:
    p = ctx.problem
    m, var = delta_moments(p.param, ctx.u, ctx.v, sa2, sb2)
    Zm = m @ p.ZT
    return (np.einsum("mj,mj->m", ctx.r, Zm) + 0.5 * np.einsum("mj,mj->m", Zm, Zm)) / ctx.n \
        + 0.5 * (var * p.s).sum(axis=1)


def average(problem, theta, *, rho: float = 0.05, ctx: Context | None = None) -> np.ndarray:
    """Average-case sharpness E_{delta ~ N(0, rho^2 I)} L(theta + delta) - L(theta), exact, (M,).

    rho is the standard deviation of each of the 2d coordinates of delta (so E||delta||^2 = 2d rho^2).
    Closed form in the module docstring; valid at every theta (no r = 0 assumption).
    """
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    s2 = np.full_like(ctx.u, rho * rho)
    return _average_closed(ctx, s2, s2)


def average_adaptive(problem, theta, *, rho: float = 0.1, eta: float = 0.0, ctx: Context | None = None
                     ) -> np.ndarray:
    """Adaptive average-case sharpness E_{eps ~ N(0, rho^2 I)} L(theta + T eps) - L(theta), (M,).

    T = diag(|theta| + eta): coordinate i is perturbed with standard deviation rho (|theta_i| + eta).
    Exact closed form (module docstring); for "uu-vv" the mean shift m = rho^2 (u^2 - v^2) = rho^2 w makes
    the residual and ||Z m||^2 terms non-zero.
    """
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    eta = check_positive("eta", eta, allow_zero=True)
    sa2 = (rho * (np.abs(ctx.u) + eta)) ** 2
    sb2 = (rho * (np.abs(ctx.v) + eta)) ** 2
    return _average_closed(ctx, sa2, sb2)


def average_theory(problem, theta, *, rho: float = 0.05, ctx: Context | None = None) -> np.ndarray:
    """docs/theory.md §10.4 in terms of tr H: "uv": (rho^2/2) tr H + rho^4 tr(Z^T Z)/(2n);
    "uu-vv": (rho^2/2) tr H + 2 rho^4 tr(Z^T Z)/n. Kept separately so the tests can compare it with
    :func:`average` and with Monte Carlo. Not defined for "depth-D"."""
    from ..errors import DiagsimError
    from .spectral import trace
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    trZ = float((problem.Z ** 2).sum())
    trH = trace(problem, theta, hessian="full", ctx=ctx)
    if problem.param.code == UV:
        return 0.5 * rho ** 2 * trH + rho ** 4 * trZ / (2 * problem.n)
    if problem.param.code == UUVV:
        return 0.5 * rho ** 2 * trH + 2 * rho ** 4 * trZ / problem.n
    raise DiagsimError("average_theory: the closed form (docs/theory.md §10.4) covers only 'uu-vv' and 'uv'; "
                       "use average() for depth-D")


def average_mc(problem, theta, *, rho: float = 0.05, n_samples: int = 10000, seed: int = 0,
               adaptive: bool = False, eta: float = 0.0, batch: int = 4096):
    """Monte Carlo estimate of (adaptive) average-case sharpness with its standard error.

    Draws delta ~ N(0, rho^2 I) (times T = diag(|theta| + eta) if ``adaptive``) from
    numpy's Generator(PCG64(SeedSequence([seed, path]))) and averages L(theta + delta) - L(theta)
    (computed by :func:`diagsim.networks.diagonal.derivatives.loss`). Returns (mean (M,), standard error (M,)).
    """
    th = problem.check_theta(theta)
    rho = check_positive("rho", rho)
    n_samples = check_int("n_samples", n_samples, minimum=2)
    batch = check_int("batch", batch)
    eta = check_positive("eta", eta, allow_zero=True)
    base = D.loss(problem, th)
    mean = np.empty(th.shape[0])
    se = np.empty(th.shape[0])
    for m in range(th.shape[0]):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), m]))
        T = (np.abs(th[m]) + eta) if adaptive else 1.0
        s1 = s2 = 0.0
        done = 0
        while done < n_samples:
            k = min(batch, n_samples - done)
            delta = rho * rng.standard_normal((k, th.shape[1])) * T
            f = D.loss(problem, th[m] + delta) - base[m]
            s1 += f.sum()
            s2 += (f * f).sum()
            done += k
        mu = s1 / n_samples
        var = max(s2 / n_samples - mu * mu, 0.0) * n_samples / (n_samples - 1)
        mean[m], se[m] = mu, np.sqrt(var / n_samples)
    return mean, se


# ---------------------------------------------------------------------------- quadratic model
def worst_quadratic(problem, theta, *, rho: float = 0.05, ctx: Context | None = None,
                    return_perturbation: bool = False):
    """Exact worst case of the quadratic model: max_{||delta|| <= rho} g.delta + 1/2 delta.H delta, (M,).

    g and H are the exact gradient and Hessian at theta (residual term included). Solved exactly as a
    trust-region subproblem on n x n matrices (:meth:`._structured.StructuredHessian.trust_region`);
    on Gamma it equals rho^2 lambda_max(H) / 2. With ``return_perturbation`` also returns delta (M, 2d).
    """
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    op, g = hessian_operator(ctx)
    val, delta = op.trust_region(g, rho)
    return (val, delta) if return_perturbation else val


def worst_adaptive_quadratic(problem, theta, *, rho: float = 0.1, eta: float = 0.0,
                             ctx: Context | None = None, return_perturbation: bool = False):
    """Quadratic model of adaptive worst-case sharpness: max_{||eps|| <= rho} (T g).eps + 1/2 eps.(T H T) eps,
    T = diag(|theta| + eta), solved exactly (trust region), (M,). With ``return_perturbation`` also
    returns eps (M, 2d) (the parameter perturbation is T eps)."""
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    eta = check_positive("eta", eta, allow_zero=True)
    op, g = hessian_operator(ctx, adaptive=True, eta=eta)
    val, eps = op.trust_region(g, rho)
    return (val, eps) if return_perturbation else val


# ---------------------------------------------------------------------------- ascent
def _starts(x_q: np.ndarray, radius: np.ndarray, n_random: int, seed: int, model_starts: bool = True):
    """Start points: x_q and -x_q (if ``model_starts``) and n_random seeded random points on the sphere.
    Returns (starts (B, k), rows (B,), radius (B,))."""
    M, k = x_q.shape
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    blocks = [x_q, -x_q] if model_starts else []
    for _ in range(n_random):
        z = rng.standard_normal((M, k))
        blocks.append(z * (radius / np.linalg.norm(z, axis=1))[:, None])
    if not blocks:
        raise DiagsimError("no start points: n_random must be >= 1 when model_starts is False")
    starts = np.concatenate(blocks, axis=0)
    rows = np.tile(np.arange(M), len(blocks))
    return starts, rows, np.tile(radius, len(blocks))


def _worst(problem, ctx: Context, rho: float, T: np.ndarray | None, x_q: np.ndarray, n_random: int,
           steps: int, seed: int, model_starts: bool):
    """max_{||x|| <= rho} L(theta + T x) - L(theta) per path by :func:`._ascent.ball_ascent`."""
    th, M = ctx.theta, ctx.M
    base = ctx.loss
    starts, rows, rad = _starts(x_q, np.full(M, rho), n_random, seed, model_starts)

    def objective(x, r_idx, hessian):
        Tr = None if T is None else T[r_idx]
        c = Context(problem, th[r_idx] + (x if Tr is None else x * Tr))
        g = c.gradient if Tr is None else c.gradient * Tr
        H = hessian_operator(c, scale=Tr)[0] if hessian else None
        return c.loss - base[r_idx], g, H

    f, x, _ = ball_ascent(objective, starts, rows, rad, steps=steps)
    return best_of(f, x, rows, M)


def worst(problem, theta, *, rho: float = 0.05, n_random: int = 0, steps: int = 100, seed: int = 0,
          model_starts: bool = True, ctx: Context | None = None, return_perturbation: bool = False):
    """Worst-case sharpness max_{||delta|| <= rho} L(theta + delta) - L(theta) by ascent, (M,).

    rho is the Euclidean radius over all 2d parameters; no r = 0 assumption. Starts: the exact
    quadratic-model maximizer delta_Q (:func:`worst_quadratic`) and -delta_Q (``model_starts``), and
    ``n_random`` random points of the sphere (seeded by ``seed``); at most ``steps`` iterations each
    (:mod:`._ascent`; typically 3-5 Newton steps from +-delta_Q). The value is attained at a point of the
    ball, so it is a lower bound on the true maximum, and it is at least L(theta + delta_Q) - L(theta).
    Each iteration costs one n x n Gram product per path and start. With ``return_perturbation`` also
    returns the maximizing delta (M, 2d).
    """
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    n_random = check_int("n_random", n_random, minimum=0)
    steps = check_int("steps", steps, minimum=0)
    _, dq = worst_quadratic(problem, theta, rho=rho, ctx=ctx, return_perturbation=True)
    val, delta = _worst(problem, ctx, rho, None, dq, n_random, steps, seed, model_starts)
    return (val, delta) if return_perturbation else val


def worst_adaptive(problem, theta, *, rho: float = 0.1, eta: float = 0.0, n_random: int = 0,
                   steps: int = 100, seed: int = 0, model_starts: bool = True, ctx: Context | None = None,
                   return_perturbation: bool = False):
    """Adaptive worst-case sharpness max_{||eps|| <= rho} L(theta + T eps) - L(theta), (M,).

    T = diag(|theta| + eta); for eta = 0 this is the ball ||delta / |theta||| <= rho (rho is relative: each
    coordinate moves by a fraction of itself). Computed by ascent in eps; no r = 0 assumption.
    Starts as in :func:`worst`, from the adaptive quadratic-model maximizer
    (:func:`worst_adaptive_quadratic`). Coordinates are the native (u, v) ones; for "uu-vv" the identity
    "first-order geodesic = adaptive" holds for the adaptive sharpness of the corresponding "uv" point
    (u + v, u - v), see :mod:`.geodesics`. With ``return_perturbation`` also returns eps (M, 2d).
    """
    ctx = Context.of(problem, theta, ctx)
    rho = check_positive("rho", rho)
    eta = check_positive("eta", eta, allow_zero=True)
    n_random = check_int("n_random", n_random, minimum=0)
    steps = check_int("steps", steps, minimum=0)
    _, eq = worst_adaptive_quadratic(problem, theta, rho=rho, eta=eta, ctx=ctx, return_perturbation=True)
    T = np.abs(ctx.theta) + eta
    val, eps = _worst(problem, ctx, rho, T, eq, n_random, steps, seed, model_starts)
    return (val, eps) if return_perturbation else val
