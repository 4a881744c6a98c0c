"""Slow flows on the manifold of minimizers Gamma = {theta: Z w(theta) = y} (docs/theory.md §8), tau = lr^2 k.

With label noise the gradient covariance on Gamma is c H, c = delta^2 / n, and the drift that survives on
the slow time scale is

    SGD (Li, Wang, Arora 2022)     d zeta/d tau = -(c/4) P_zeta grad tr H(zeta),
                                   P = I - J^T (J J^T)^-1 J (orthogonal projection onto T Gamma);
    adaptive (semi-gradient flow)  d zeta/d tau = -(c/4) P^S_zeta S grad_theta tr(S H(theta))|_{S fixed},
                                   P^S = I - S J^T (J S J^T)^-1 J (oblique projection),
                                   S = diag(1 / (v^lam + eps)) with v either quasi-static, v = c diag H(zeta)
                                   (per parameter, or the mean over a block), or following
                                   dv/d tau = C (c diag H(zeta) - v),  C = (1 - beta2)/lr^2.

On Gamma, H = (1/n) J^T J and diag H = [s wu^2, s wv^2] (wu = dw/du, wv = dw/dv); tr(S H) = sum_i S_i h_i, so
the semi-gradient is  g_u = 2 s (S_u wu w_uu + S_v wv w_uv),  g_v = 2 s (S_u wu w_uv + S_v wv w_vv)  for any
elementwise parametrization (w_uu, ... its second derivatives); lam = 0 (S = 1) gives SGD's grad tr H.

Lyapunov function. With quasi-static v, S_b = F'(H_b/|b|) for the blocks b (single parameters without
blocks), H_b = sum_{i in b} h_i, F'(x) = 1/((c x)^lam + eps); hence g = grad Phi with
Phi = sum_b |b| F(H_b/|b|), and dPhi/dtau = -(c/4) g^T P^S S g <= 0 (P^S S is symmetric positive
semi-definite). For eps = 0: Phi = c^-lam/(1-lam) * sum_b |b|^lam H_b^(1-lam), i.e. tr H (SGD),
tr diag(H)^(1/2) (Adam), tr diag(H)^(1-lam) (AdamE-lam), sum_b sqrt(|b| tr H_bb) (Adam-mini / Adalayer),
up to constants; the Adam flow's speed is then independent of c.

With eps = 0 the adaptive flow is singular where h_i -> 0: a coordinate reaches 0 in finite slow time
(docs/theory.md §8.6). The stepper then sets it to 0, and a parameter with h_i = 0 and (v^lam + eps) = 0 gets
S_i = 0 (it is frozen: the exact flow leaves it at 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DiagsimError, check_choice, check_interval, check_positive
from ..networks.diagonal.problem import Problem
from .generic import manifold_of

V_MODES = ("quasi-static", "ode")


@dataclass(frozen=True, eq=False)
class SlowFlow:
    """A slow flow on Gamma.

    Parameters
    ----------
    problem : the problem: the diagonal family's, or any model problem
        (:class:`diagsim.networks.model.ModelProblem`: diag H on Gamma is its ``gn_diag``, the semi-gradient
        its ``gn_diag_vjp``, the projections those of :func:`diagsim.slowflow.generic.manifold_of`).
    c : delta^2 / n (> 0).
    lam : the preconditioner's exponent (0: SGD's flow, 1/2: Adam, other: AdamE-lam).
    eps : S = 1/(v^lam + eps).
    blocks : None or (2d,) block ids 0..nb-1 (one v per block: Adam-mini / Adalayer).
    v_mode : "quasi-static" (v = c diag H) or "ode" (dv/dtau = C (c diag H - v)); adaptive flows only.
    C : (1 - beta2)/lr^2 (v_mode="ode").
    name : label recorded in results.
    """

    problem: Problem
    c: float
    lam: float = 0.0
    eps: float = 0.0
    blocks: np.ndarray | None = None
    v_mode: str = "quasi-static"
    C: float = 0.0
    name: str = "sgd-slow-flow"

    def __post_init__(self):
        object.__setattr__(self, "c", check_positive("c (label_noise^2 / n)", self.c))
        object.__setattr__(self, "lam", check_interval("lam", self.lam, 0.0, 1.0))
        object.__setattr__(self, "eps", check_positive("eps", self.eps, allow_zero=True))
        check_choice("v", self.v_mode, V_MODES)
        if self.blocks is not None:
            b = np.asarray(self.blocks, dtype=np.int64)
            if b.shape != (self.problem.dim,):
                raise DiagsimError(f"blocks must have one id per parameter ({self.problem.dim}), "
                                   f"got shape {b.shape}")
            object.__setattr__(self, "blocks", b)
        if self.v_mode == "ode":
            object.__setattr__(self, "C", check_positive("C", self.C))
        object.__setattr__(self, "manifold", manifold_of(self.problem))

    # ---------------------------------------------------------------- sizes
    @property
    def adaptive(self) -> bool:
        return self.lam > 0.0

    @property
    def n_v(self) -> int:
        """Number of second-moment entries (v_mode="ode")."""
        return self.problem.dim if self.blocks is None else int(self.blocks.max()) + 1

    def _counts(self) -> np.ndarray:
        return np.bincount(self.blocks)

    # ---------------------------------------------------------------- pieces
    def diag_hessian(self, theta: np.ndarray) -> np.ndarray:
        """diag H on Gamma: the Gauss-Newton diagonal (1/n) diag(J^T J) (diagonal family: [s wu^2, s wv^2]),
        shape (M, P)."""
        return self.problem.gn_diag(theta)

    def block_mean(self, x: np.ndarray) -> np.ndarray:
        """Mean of x (M, 2d) over each block, (M, nb) (x itself without blocks)."""
        if self.blocks is None:
            return x
        nb = self.n_v
        out = np.zeros((x.shape[0], nb))
        for q in range(nb):
            out[:, q] = x[:, self.blocks == q].mean(axis=1)
        return out

    def v_quasi_static(self, theta: np.ndarray) -> np.ndarray:
        """c diag H (per parameter or block mean), (M, n_v)."""
        return self.block_mean(self.c * self.diag_hessian(theta))

    def preconditioner(self, theta: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
        """S (M, 2d): ones for SGD; 1/(v^lam + eps) otherwise (0 where that denominator is 0)."""
        if not self.adaptive:
            return np.ones_like(theta)
        if v is None:
            v = self.v_quasi_static(theta)
        if self.blocks is not None:
            v = v[:, self.blocks]
        den = np.maximum(v, 0.0) ** self.lam + self.eps
        with np.errstate(divide="ignore"):
            S = np.where(den > 0, 1.0 / np.where(den > 0, den, 1.0), 0.0)
        return S

    def semi_gradient(self, theta: np.ndarray, S: np.ndarray) -> np.ndarray:
        """grad_theta tr(S H(theta)) with S fixed (H = (1/n) J^T J): the model's ``gn_diag_vjp(theta, S)``,
        (M, P)."""
        return self.problem.gn_diag_vjp(theta, S)

    def velocity(self, theta: np.ndarray, v: np.ndarray | None = None):
        """(d zeta/d tau (M, 2d), dv/d tau (M, n_v) or None) at points of Gamma."""
        S = self.preconditioner(theta, v)
        g = self.semi_gradient(theta, S)
        if self.adaptive:
            vel = -0.25 * self.c * self.manifold.project(theta, S * g, S)
        else:
            vel = -0.25 * self.c * self.manifold.project(theta, g)
        dv = None
        if self.v_mode == "ode" and self.adaptive:
            dv = self.C * (self.v_quasi_static(theta) - v)
        return vel, dv

    # ---------------------------------------------------------------- measures
    def measure(self, theta: np.ndarray) -> np.ndarray:
        """The flow's sharpness measure (eps -> 0): sum_b |b|^lam H_b^(1-lam), (M,).

        tr H (SGD), tr diag(H)^(1/2) (Adam), tr diag(H)^(1-lam) (AdamE-lam), sum_b sqrt(|b| tr H_bb) (blocks).
        """
        h = self.diag_hessian(theta)
        if self.blocks is None:
            return (h ** (1.0 - self.lam)).sum(axis=1)
        cnt = self._counts()
        Hb = self.block_mean(h) * cnt
        return (cnt ** self.lam * Hb ** (1.0 - self.lam)).sum(axis=1)

    def potential(self, theta: np.ndarray) -> np.ndarray | None:
        """The exact Lyapunov function Phi = sum_b |b| F(H_b/|b|) of the quasi-static flow, (M,).

        F' = 1/((c x)^lam + eps). Closed forms for lam = 0, for eps = 0, and for lam = 1/2
        (F(x) = (2/c)(q - eps log(1 + q/eps)), q = sqrt(c x)); None otherwise or for v_mode="ode".
        """
        if self.v_mode == "ode" and self.adaptive:
            return None
        x = self.block_mean(self.diag_hessian(theta))
        cnt = np.ones(x.shape[1]) if self.blocks is None else self._counts()
        lam, eps, c = self.lam, self.eps, self.c
        if lam == 0.0:
            F = x
        elif eps == 0.0:
            F = c ** -lam * x ** (1.0 - lam) / (1.0 - lam)
        elif lam == 0.5:
            q = np.sqrt(c * x)
            F = (2.0 / c) * (q - eps * np.log1p(q / eps))
        else:
            return None
        return (cnt * F).sum(axis=1)

    def describe(self) -> dict:
        d = {"flow": self.name, "c": self.c, "lam": self.lam, "eps": self.eps, "v": self.v_mode}
        if self.v_mode == "ode":
            d["C"] = self.C
        if self.blocks is not None:
            d["blocks"] = self.blocks.tolist()
        return d

    def equation(self) -> str:
        if not self.adaptive:
            return "d zeta/d tau = -(c/4) P grad tr H(zeta), c = delta^2/n"
        v = ("v = c diag H (quasi-static)" if self.v_mode == "quasi-static"
             else "dv/d tau = C (c diag H - v)")
        blk = ", v per block" if self.blocks is not None else ""
        return ("d zeta/d tau = -(c/4) P^S S grad tr(S H)|_S, S = 1/(v^lam + eps), " + v + blk)


def rate_bound(theta: np.ndarray, vel: np.ndarray, floor: float) -> np.ndarray:
    """Per path max_i |vel_i| / max(|theta_i|, floor): the relative speed that limits an explicit step."""
    return (np.abs(vel) / np.maximum(np.abs(theta), floor)).max(axis=1)

