"""Geodesic sharpness (Hide & Seek, da Silva, Dangel & Oore, arXiv 2505.05409) for diagonal networks.

Symmetry. For "uv" (w = u v) each coordinate has the rescaling symmetry (u_i, v_i) -> (a_i u_i, v_i / a_i),
a_i > 0; the quotient coordinate is beta = u v = w. For "uu-vv" the same holds in p = u + v, q = u - v
(w = u^2 - v^2 = p q; the symmetry is a hyperbolic rotation of (u, v)), so beta = w again. Geodesic
sharpness therefore depends on theta only through beta = w: it is exactly invariant under the symmetry.
("depth-D" has no such group action; the measure is not defined for it.)

Horizontal directions. Under the invariant ("inv") metric du^2/u^2 + dv^2/v^2 (in p, q for "uu-vv"),
vectors orthogonal to the orbit satisfy eta_u / u = eta_v / v = b, i.e. eta = b * theta, with squared length
||eta / |theta|||^2 = 2 ||b||^2, and they move beta by d beta = 2 b beta.

Geodesics from beta_0 with initial horizontal velocity given by b (elementwise, all d coordinates):

    "inv":               beta(1) = beta_0 * exp(2 b)   (log beta is flat coordinates of the inv metric)
    "mix":               beta(1) = beta_0 * (1 + 2 b)  (the metric v^2 du^2 + u^2 dv^2, flat in beta)
    first order (no Christoffel term, theta(1) = theta_0 + eta): beta(1) = beta_0 * (1 + b)^2.

Radius convention: geodesic sharpness of radius rho is

    S(rho) = max_{||b|| <= rho / sqrt(2)} L(beta(1)) - L(beta_0),   L(beta) = (1/2n) ||Z beta - y||^2,

i.e. the horizontal lift eta = b * theta has adaptive (inv-metric) length ||eta / |theta||| <= rho, the same
ball as adaptive sharpness of radius rho; both metrics use this b-ball. (The mix metric's own norm of that
vector, sqrt(2) ||b * beta||, would make the measure on Gamma independent of beta, so it is not used.)
The first-order version equals adaptive worst-case sharpness of radius rho of the "uv" network (for
"uu-vv": of the corresponding "uv" point (p, q)) whenever rho <= 1/sqrt(2): per coordinate, a vertical
component only shrinks the reachable range of w_i(theta + delta)/w_i, so the maximum is horizontal.

"mix" is an exact quadratic in b, solved exactly as a trust-region problem (on n x n matrices);
"inv" and the first-order version use projected ascent in b (d-dimensional) from +-b_mix and random
restarts, so they are lower bounds that are exact at a global maximizer.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DiagsimError, check_choice, check_int, check_positive
from ..networks.diagonal.parametrization import UUVV, UV
from ._ascent import ball_ascent, best_of
from ._context import Context
from ._structured import StructuredHessian

METRICS = ("inv", "mix")
ORDERS = ("exact", "first")


def _beta(ctx: Context) -> np.ndarray:
    if ctx.problem.param.code not in (UUVV, UV):
        raise DiagsimError(f"geodesic sharpness is defined for parametrizations 'uv' and 'uu-vv' (rescaling "
                           f"symmetry); got {ctx.problem.param.name!r}")
    return ctx.w


def _multiplier(kind: str, b: np.ndarray):
    """m(b), dm/db and d2m/db2 for kind "inv", "mix" or "first"."""
    if kind == "inv":
        e = np.exp(2.0 * b)
        return e, 2.0 * e, 4.0 * e
    if kind == "mix":
        return 1.0 + 2.0 * b, np.full_like(b, 2.0), np.zeros_like(b)
    return (1.0 + b) ** 2, 2.0 * (1.0 + b), np.full_like(b, 2.0)


def _mix_model(ctx: Context, radius: float):
    """Exact maximizer of the (exactly quadratic) mix objective over ||b|| <= radius: (value, b)."""
    p = ctx.problem
    beta = _beta(ctx)
    zero = np.zeros_like(beta)
    op = StructuredHessian(p, 2.0 * beta, zero, zero, zero, zero)
    g = np.concatenate([2.0 * beta * ctx.gw, zero], axis=1)
    val, x = op.trust_region(g, radius)
    return val, x[:, :ctx.d]


def geodesic(problem, theta, *, metric: str = "inv", order: str = "exact", rho: float = 0.1,
             n_random: int = 0, steps: int = 100, seed: int = 0, ctx: Context | None = None,
             return_perturbation: bool = False):
    """Geodesic sharpness S(rho) = max_{||b|| <= rho/sqrt 2} L(beta(1)) - L(beta_0) (module docstring), (M,).

    ``metric``: "inv" (beta(1) = beta_0 e^{2b}) or "mix" (beta_0 (1 + 2b)); ``order="first"`` replaces the
    geodesic by its first-order version beta_0 (1 + b)^2 (= adaptive sharpness of the "uv" network, for
    either metric). "mix" (exact order) is solved exactly; the others by projected ascent in b with
    restarts +-b_mix and ``n_random`` random ones. With ``return_perturbation`` also returns b (M, d).
    """
    ctx = Context.of(problem, theta, ctx)
    check_choice("metric", metric, METRICS)
    check_choice("order", order, ORDERS)
    rho = check_positive("rho", rho)
    n_random = check_int("n_random", n_random, minimum=0)
    steps = check_int("steps", steps, minimum=0)
    radius = rho / math.sqrt(2.0)
    val_mix, b_mix = _mix_model(ctx, radius)
    kind = "first" if order == "first" else metric
    if kind == "mix":
        return (val_mix, b_mix) if return_perturbation else val_mix
    beta = _beta(ctx)
    M = ctx.M
    p = ctx.problem
    base = ctx.loss

    d = ctx.d

    def objective(x, rows, hessian):
        # x = [b, 0] in R^{2d}: the v-half is padding so that the 2d machinery applies unchanged
        b = x[:, :d]
        m, dm, d2m = _multiplier(kind, b)
        bt = beta[rows]
        r = (bt * m) @ p.ZT - p.y
        gw = (r @ p.Z) / p.n
        f = 0.5 * np.mean(r * r, axis=1) - base[rows]
        zero = np.zeros_like(b)
        grad = np.concatenate([gw * bt * dm, zero], axis=1)
        H = StructuredHessian(p, bt * dm, zero, gw * bt * d2m, zero, zero) if hessian else None
        return f, grad, H

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    blocks = [b_mix, -b_mix]
    for _ in range(n_random):
        z = rng.standard_normal(b_mix.shape)
        blocks.append(z * (radius / np.linalg.norm(z, axis=1))[:, None])
    starts = np.concatenate(blocks, axis=0)
    starts = np.concatenate([starts, np.zeros_like(starts)], axis=1)
    rows = np.tile(np.arange(M), len(blocks))
    f, x, _ = ball_ascent(objective, starts, rows, np.full(len(rows), radius), steps=steps)
    val, b = best_of(f, x[:, :d], rows, M)
    return (val, b) if return_perturbation else val


def geodesic_inv(problem, theta, *, rho: float = 0.1, n_random: int = 0, steps: int = 100, seed: int = 0,
                 ctx: Context | None = None) -> np.ndarray:
    """Geodesic sharpness under the inv metric: max_{||b|| <= rho/sqrt 2} L(w e^{2b}) - L(w), (M,)."""
    return geodesic(problem, theta, metric="inv", rho=rho, n_random=n_random, steps=steps, seed=seed, ctx=ctx)


def geodesic_mix(problem, theta, *, rho: float = 0.1, ctx: Context | None = None) -> np.ndarray:
    """Geodesic sharpness, mix metric: max_{||b|| <= rho/sqrt 2} L(w (1 + 2b)) - L(w), (M,), exact."""
    return geodesic(problem, theta, metric="mix", rho=rho, ctx=ctx)
