"""Exact eigen- and trust-region computations for Hessians of the diagonal-network form

    H = B + (1/n) J^T J   on R^{2d},     J = Z [diag(au), diag(av)]   (n x 2d),

with B block-diagonal in 2 x 2 blocks [[B11_i, B12_i], [B12_i, B22_i]] that couple coordinates i and d + i.
This covers the full Hessian anywhere (au, av = dw/du, dw/dv; B = the residual term gw * d2w), its
adaptive rescaling T H T with T = diag|theta| (au -> |u| au, B -> T B T), and the quadratic forms of the
geodesic measures (one block, B = 0). All work is on n x n matrices, batched over paths; no 2d x 2d
matrix is formed.

* lambda_max(H): if B is negligible it is the top eigenvalue of (1/n) Z diag(au^2 + av^2) Z^T. Otherwise it
  is the largest root of the secular equation  lambda_max(K(lam)) = 1,  K(lam) = (1/n) J (lam - B)^-1 J^T
  = (1/n) Z diag(c(lam)) Z^T  (lam > lambda_max(B)): for lam above every eigenvalue of B,
  lam - H = (lam - B)^{1/2} (I - (lam - B)^{-1/2} J^T J (lam - B)^{-1/2} / n) (lam - B)^{1/2} is singular
  iff K(lam) has eigenvalue 1, and lambda_max(K(lam)) decreases in lam. Solved by safeguarded Newton.
* (mu - H)^{-1} g by the Woodbury identity with the 2x2-block inverse of A = mu - B.
* The trust-region subproblem  max_{||delta|| <= rho} g.delta + 1/2 delta.H delta  exactly
  (Moré & Sorensen 1983): the global maximizer satisfies (mu - H) delta = g, mu >= max(lambda_max, 0),
  mu (rho - ||delta||) = 0; mu is found by Newton on 1/||delta(mu)|| - 1/rho from the left, with the
  "hard case" (g orthogonal to the top eigenvector, e.g. g = 0 on the manifold) completed along the top
  eigenvector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .eigen import top_eigpair, weighted_gram

_TINY = 1e-300
#: B is ignored when all its eigenvalues are below this fraction of lambda_max((1/n) J^T J)
NEGLIGIBLE_B = 1e-14


class _Sub:
    """Rows ``idx`` of a lazily computed (lambda, x) pair."""

    def __init__(self, fn, idx):
        self.fn, self.idx = fn, idx

    def __call__(self):
        lam, x = self.fn()
        return lam[self.idx], x[self.idx]


@dataclass
class StructuredHessian:
    """H = B + (1/n) J^T J per path (see module docstring). All arrays (M, d)."""

    problem: object
    au: np.ndarray
    av: np.ndarray
    B11: np.ndarray
    B12: np.ndarray
    B22: np.ndarray
    gn_top: object = None   # optional callable returning (lambda_max, x) of (1/n) Z diag(au^2 + av^2) Z^T

    def __post_init__(self):
        self.n = self.problem.n
        self.d = self.problem.d
        self.M = self.au.shape[0]

    # ------------------------------------------------------------------ products
    def jvp(self, x: np.ndarray) -> np.ndarray:
        """J x, (M, 2d) -> (M, n)."""
        d = self.d
        return (self.au * x[:, :d] + self.av * x[:, d:]) @ self.problem.ZT

    def jt(self, y: np.ndarray) -> np.ndarray:
        """J^T y, (M, n) -> (M, 2d)."""
        t = y @ self.problem.Z
        out = np.empty((t.shape[0], 2 * self.d))
        np.multiply(self.au, t, out=out[:, :self.d])
        np.multiply(self.av, t, out=out[:, self.d:])
        return out

    def bvp(self, x: np.ndarray) -> np.ndarray:
        """B x per path, (M, 2d)."""
        return self._apply((self.B11, self.B12, self.B22), x, self.d)

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """H x per path, (M, 2d)."""
        return self.bvp(x) + self.jt(self.jvp(x)) / self.n

    def quad(self, x: np.ndarray) -> np.ndarray:
        """x.H x per path, (M,)."""
        Jx = self.jvp(x)
        return np.einsum("mi,mi->m", x, self.bvp(x)) + np.einsum("mj,mj->m", Jx, Jx) / self.n

    # ------------------------------------------------------------------ blocks of B
    def _b_eigs(self):
        mid = 0.5 * (self.B11 + self.B22)
        rad = np.hypot(0.5 * (self.B11 - self.B22), self.B12)
        return mid - rad, mid + rad

    def _ainv(self, mu: np.ndarray):
        """Entries of (mu - B_i)^-1 per block; mu (M,)."""
        m = mu[:, None]
        a = m - self.B11
        c = m - self.B22
        det = a * c - self.B12 * self.B12
        return c / det, self.B12 / det, a / det

    @staticmethod
    def _apply(inv, x, d):
        """Apply the 2x2 blocks (i11, i12, i22) to x (M, 2d)."""
        i11, i12, i22 = inv
        a, b = x[:, :d], x[:, d:]
        out = np.empty_like(x)
        lo, hi = out[:, :d], out[:, d:]
        np.multiply(i11, a, out=lo)
        lo += i12 * b
        np.multiply(i22, b, out=hi)
        hi += i12 * a
        return out

    def _kmat(self, inv) -> np.ndarray:
        i11, i12, i22 = inv
        c = self.au * self.au * i11 + 2.0 * self.au * self.av * i12 + self.av * self.av * i22
        return weighted_gram(self.problem, c) / self.n

    # ------------------------------------------------------------------ lambda_max
    def gauss_newton_top(self):
        """(lambda_max, x) of (1/n) Z diag(au^2 + av^2) Z^T."""
        if self.gn_top is not None:
            lam, x = self.gn_top()
            return lam.copy(), x.copy()
        G = weighted_gram(self.problem, self.au ** 2 + self.av ** 2) / self.n
        return top_eigpair(G)

    def lambda_max(self, max_iter: int = 100):
        """Largest eigenvalue (M,) and a unit top eigenvector (M, 2d) of H, exact to rounding."""
        M, d = self.M, self.d
        bmin, bmax = self._b_eigs()
        lam_g, x_g = self.gauss_newton_top()
        beta = bmax.max(axis=1)
        bnorm = np.maximum(np.abs(bmin).max(axis=1), np.abs(bmax).max(axis=1))
        scale = np.maximum(np.maximum(np.abs(lam_g), bnorm), _TINY)
        lam = lam_g.copy()
        xs = x_g.copy()
        structured = bnorm > NEGLIGIBLE_B * np.maximum(lam_g, _TINY)
        idx = np.flatnonzero(structured)
        vec = np.zeros((M, 2 * d))
        if idx.size:
            sub = self._take(idx)
            lam_s, x_s, pure_b = sub._secular(beta[idx], lam_g[idx], bmin[idx].min(axis=1),
                                              scale[idx], max_iter)
            lam[idx] = lam_s
            xs[idx] = x_s
            vec[idx] = sub._eigvec(lam_s, x_s, pure_b)
        easy = np.flatnonzero(~structured)
        if easy.size:
            sub = self._take(easy)
            vec[easy] = sub.jt(xs[easy])
        nrm = np.linalg.norm(vec, axis=1, keepdims=True)
        vec = vec / np.where(nrm > 0, nrm, 1.0)
        return lam, vec

    def _take(self, idx) -> "StructuredHessian":
        return StructuredHessian(self.problem, self.au[idx], self.av[idx], self.B11[idx], self.B12[idx],
                                 self.B22[idx], None if self.gn_top is None else _Sub(self.gn_top, idx))

    def _secular(self, beta, lam_g, bmin_min, scale, max_iter):
        """Largest root of lambda_max(K(lam)) = 1 on (beta, beta + lam_g]; returns (lam, x, pure_b)."""
        M, n = self.M, self.n
        lo = np.maximum(beta, lam_g + bmin_min)       # Weyl: lambda_max(H) >= both
        lo_valid = lo > beta                           # g(lo) <= 0 known only if lo is inside the domain
        hi = beta + lam_g                              # Weyl: lambda_max(H) <= beta + lambda_max(G)
        lam = hi.copy()
        x = np.zeros((M, n))
        done = hi <= beta * (1 + 1e-15) + 1e-300       # lam_g == 0: H = B on the range that matters
        pure_b = done.copy()
        for _ in range(max_iter):
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            sub = self._take(act)
            L = lam[act]
            inv = sub._ainv(L)
            kappa, xa = top_eigpair(sub._kmat(inv))
            x[act] = xa
            kappa = np.maximum(kappa, _TINY)
            g = 1.0 / kappa - 1.0
            z = sub._apply(inv, sub.jt(xa), self.d)
            dk = -np.einsum("mi,mi->m", z, z) / n      # d kappa / d lam
            gp = -dk / kappa ** 2
            pos = g >= 0
            hi[act] = np.where(pos, L, hi[act])
            lo[act] = np.where(pos, lo[act], L)
            lo_valid[act] |= ~pos
            step = np.where(gp > 0, g / np.where(gp > 0, gp, 1.0), np.inf)
            new = L - step
            lo_a, hi_a = lo[act], hi[act]
            bad = ~np.isfinite(new) | (new <= lo_a) | (new >= hi_a)
            new = np.where(bad, 0.5 * (lo_a + hi_a), new)
            conv = (np.abs(new - L) <= 4e-16 * scale[act]) | (hi_a - lo_a <= 4e-16 * scale[act])
            # no root above beta: lambda_max(H) = beta with an eigenvector of B that J annihilates
            nob = (~lo_valid[act]) & (hi_a - beta[act] <= 1e-13 * scale[act])
            lam[act] = np.where(conv, L, new)
            lam[act[nob]] = beta[act[nob]]
            pure_b[act[nob]] = True
            done[act[conv | nob]] = True
        return lam, x, pure_b

    def _eigvec(self, lam, x, pure_b):
        """Top eigenvector (unnormalized) (lam - B)^-1 J^T x, or the top eigenvector of the top B-block."""
        M, d = self.M, self.d
        vec = np.zeros((M, 2 * d))
        ok = np.flatnonzero(~pure_b)
        if ok.size:
            sub = self._take(ok)
            vec[ok] = sub._apply(sub._ainv(lam[ok]), sub.jt(x[ok]), d)
        if pure_b.any():
            _, bmax = self._b_eigs()
        for m in np.flatnonzero(pure_b):
            i = int(np.argmax(bmax[m]))
            blk = np.array([[self.B11[m, i], self.B12[m, i]], [self.B12[m, i], self.B22[m, i]]])
            _, U = np.linalg.eigh(blk)
            vec[m, i], vec[m, d + i] = U[0, 1], U[1, 1]
        return vec

    # ------------------------------------------------------------------ shifted solves
    def solve_shifted(self, mu: np.ndarray, g: np.ndarray, *, want_k: bool = False):
        """(mu - H)^{-1} g per path by Woodbury (mu above every eigenvalue of H or mu - H invertible)."""
        d, n = self.d, self.n
        inv = self._ainv(mu)
        K = self._kmat(inv)
        IK = np.eye(n)[None] - K
        h = self._apply(inv, g, d)
        y = np.linalg.solve(IK, self.jvp(h)[..., None])[..., 0]
        out = h + self._apply(inv, self.jt(y), d) / n
        if want_k:
            return out, (inv, IK)
        return out

    def _resolve(self, fact, g):
        d, n = self.d, self.n
        inv, IK = fact
        h = self._apply(inv, g, d)
        y = np.linalg.solve(IK, self.jvp(h)[..., None])[..., 0]
        return h + self._apply(inv, self.jt(y), d) / n

    def solve_bordered(self, mu: np.ndarray, sigma: np.ndarray, x: np.ndarray, rhs: list):
        """Solve (H - mu I + sigma x x^T) z = b for each b in ``rhs`` (each (M, 2d)); mu, sigma < 0: (M,).

        Woodbury on the block-diagonal A0 = B - mu I with the rank-(n + 1) term U C U^T,
        U = [J^T / sqrt(n), x], C = diag(1, ..., 1, sigma): an (n + 1) x (n + 1) solve with the capacitance
        matrix S = C^-1 + U^T A0^-1 U per path. Used by the Newton steps on the sphere, where sigma x x^T
        removes the near-null direction x of H - mu I.

        Returns (list of solutions, negdef (M,) bool): whether H - mu I + sigma x x^T is negative definite,
        from Sylvester's law of inertia, In(A0 + U C U^T) = In(A0) + In(-S) - In(-C^-1): it is iff every
        2x2 block of A0 is negative definite and S has exactly one negative eigenvalue.
        """
        M, d, n = self.M, self.d, self.n
        inv = self._ainv(mu)                      # (mu - B)^-1 = -A0^-1
        neg = lambda z: -self._apply(inv, z, d)   # -A0^-1 z
        K = self._kmat(inv)                       # (1/n) J (mu - B)^-1 J^T
        A0x = neg(x)
        S = np.empty((M, n + 1, n + 1))
        S[:, :n, :n] = np.eye(n)[None] - K
        col = self.jvp(A0x) / np.sqrt(n)
        S[:, :n, n] = col
        S[:, n, :n] = col
        S[:, n, n] = 1.0 / sigma + np.einsum("mi,mi->m", x, A0x)
        hs = [neg(b) for b in rhs]
        R = np.stack([np.concatenate([self.jvp(h) / np.sqrt(n), np.einsum("mi,mi->m", x, h)[:, None]], axis=1)
                      for h in hs], axis=2)
        Y = np.linalg.solve(S, R)
        out = []
        for k, h in enumerate(hs):
            y = Y[:, :, k]
            corr = self.jt(y[:, :n]) / np.sqrt(n) + x * y[:, n:n + 1]
            out.append(h - neg(corr))
        _, bmax = self._b_eigs()
        a0_neg = (bmax < mu[:, None]).all(axis=1)
        ev = np.linalg.eigvalsh(S)
        negdef = a0_neg & ((ev < 0).sum(axis=1) == 1) & np.all(ev != 0, axis=1)
        return out, negdef

    # ------------------------------------------------------------------ trust region
    def trust_region(self, g: np.ndarray, radius, max_iter: int = 100):
        """Exact maximizer of q(delta) = g.delta + 1/2 delta.H delta over ||delta|| <= radius.

        Returns (value (M,), delta (M, 2d)). ``radius`` is a scalar or (M,).
        """
        M, d = self.M, self.d
        rho = np.broadcast_to(np.asarray(radius, dtype=np.float64), (M,)).copy()
        lam, vtop = self.lambda_max()
        gnorm = np.linalg.norm(g, axis=1)
        bmin, bmax = self._b_eigs()
        scale = np.maximum.reduce([np.abs(lam), np.abs(bmin).max(axis=1), np.abs(bmax).max(axis=1),
                                   gnorm / np.maximum(rho, _TINY), np.full(M, _TINY)])
        delta = np.zeros((M, 2 * d))
        mu_lo = np.maximum(lam, 0.0)
        todo = np.ones(M, dtype=bool)
        # interior maximizer (only possible when H is negative definite)
        neg = np.flatnonzero(lam < -1e-14 * scale)
        if neg.size:
            sub = self._take(neg)
            d0 = sub.solve_shifted(np.zeros(neg.size), g[neg])
            inside = np.linalg.norm(d0, axis=1) <= rho[neg]
            delta[neg[inside]] = d0[inside]
            todo[neg[inside]] = False
        # boundary: Newton on phi(mu) = 1/||delta(mu)|| - 1/rho from just above mu_lo
        mu = mu_lo + 1e-12 * scale
        hi = mu_lo + gnorm / np.maximum(rho, _TINY) + 1e-12 * scale
        # g negligible (e.g. on Gamma): the hard case, with a value error below rho ||g|| <= 1e-13 Q
        hard = todo & (gnorm <= 1e-13 * rho * np.maximum(np.abs(lam), _TINY))
        act0 = np.flatnonzero(todo & ~hard)
        if act0.size:
            sub = self._take(act0)
            d1 = sub.solve_shifted(mu[act0], g[act0])
            small = np.linalg.norm(d1, axis=1) <= rho[act0]
            hard[act0[small]] = True
            delta[act0[small]] = d1[small]
        lo = mu.copy()
        act_mask = todo & ~hard
        for _ in range(max_iter):
            act = np.flatnonzero(act_mask)
            if act.size == 0:
                break
            sub = self._take(act)
            dl, fact = sub.solve_shifted(mu[act], g[act], want_k=True)
            q = sub._resolve(fact, dl)
            nd = np.linalg.norm(dl, axis=1)
            phi = 1.0 / nd - 1.0 / rho[act]
            dphi = np.einsum("mi,mi->m", dl, q) / nd ** 3
            delta[act] = dl
            lo[act] = np.where(phi < 0, mu[act], lo[act])
            hi[act] = np.where(phi >= 0, mu[act], hi[act])
            new = mu[act] - phi / dphi
            bad = ~np.isfinite(new) | (new < lo[act]) | (new > hi[act])
            new = np.where(bad, 0.5 * (lo[act] + hi[act]), new)
            conv = (np.abs(phi) * rho[act] <= 1e-14) | (np.abs(new - mu[act]) <= 1e-16 * scale[act])
            mu[act] = new
            act_mask[act[conv]] = False
        # hard case: complete along the top eigenvector to the boundary
        hidx = np.flatnonzero(hard)
        if hidx.size:
            p = delta[hidx]
            v = vtop[hidx]
            p = p - np.einsum("mi,mi->m", p, v)[:, None] * v
            tau = np.sqrt(np.maximum(rho[hidx] ** 2 - np.einsum("mi,mi->m", p, p), 0.0))
            sub = self._take(hidx)
            lin = np.einsum("mi,mi->m", g[hidx], v) + np.einsum("mi,mi->m", sub.matvec(p), v)
            sgn = np.where(lin >= 0, 1.0, -1.0)
            delta[hidx] = p + (sgn * tau)[:, None] * v
        value = np.einsum("mi,mi->m", g, delta) + 0.5 * self.quad(delta)
        return value, delta
