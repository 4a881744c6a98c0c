"""Exact derivatives of deep matrix factorization, batched over paths (docs/theory.md §13).

The end-to-end matrix is W = W_{L-1} ... W_1 W_0 (0-based layer index i; layer 0 is the input layer of
shape width x m2, layer L-1 the output layer of shape m1 x width). Every factor list ``Ws`` holds arrays
of shape (M, rows_i, cols_i), and every product is a batched matmul (one GEMM per path, stacked).

Products over an empty range are the identity, represented by ``None`` (never materialized unless a
formula needs its entries).

The observations are linear in W: f_j = <A_j, W>, through an :class:`Operator` (``apply``: W -> (f_j)_j,
``adjoint``: x -> sum_j x_j A_j). f is multilinear in the layers, so:

* J v = A(sum_i P_{>i} V_i P_{<i}) with P_{>i} = W_{L-1} ... W_{i+1}, P_{<i} = W_{i-1} ... W_0;
* J^T x on layer i = P_{>i}^T A*(x) P_{<i}^T;
* the second derivative of f_j along v is A_j(sum_{i != k} ... V_i ... V_k ...), whose diagonal (i = k,
  same entry) is zero: the Hessian's residual term has a zero diagonal, so diag H = diag GN exactly.
"""
from __future__ import annotations

import numpy as np


def mm(a, b):
    """a @ b with None as the identity."""
    if a is None:
        return b
    if b is None:
        return a
    return np.matmul(a, b)


def tr(a):
    """Batched transpose (None stays None)."""
    return None if a is None else np.swapaxes(a, -1, -2)


def prod(Ws, lo: int, hi: int):
    """W_hi ... W_lo (inclusive, 0-based), None when lo > hi."""
    out = None
    for i in range(lo, hi + 1):
        out = mm(Ws[i], out)
    return out


def chain_jvp(Ws, Vs, lo: int, hi: int):
    """The derivative of W_hi ... W_lo along (V_lo, ..., V_hi): sum_i W_hi..W_{i+1} V_i W_{i-1}..W_lo.

    None when lo > hi (the derivative of the identity is zero, returned as None; callers test for it)."""
    out = None
    for i in range(lo, hi + 1):
        term = mm(prod(Ws, i + 1, hi), mm(Vs[i], prod(Ws, lo, i - 1)))
        out = term if out is None else out + term
    return out


def chain_vjp(Ws, G, lo: int, hi: int) -> dict:
    """{i: gradient with respect to W_i of <G, W_hi ... W_lo>} for lo <= i <= hi."""
    return {i: mm(tr(prod(Ws, i + 1, hi)), mm(G, tr(prod(Ws, lo, i - 1)))) for i in range(lo, hi + 1)}


def chain_vjp_dir(Ws, Vs, G, lo: int, hi: int) -> dict:
    """The derivative along V of :func:`chain_vjp` with G held fixed: {i: d(left_i^T G right_i^T)}."""
    out = {}
    for i in range(lo, hi + 1):
        left, right = prod(Ws, i + 1, hi), prod(Ws, lo, i - 1)
        dleft, dright = chain_jvp(Ws, Vs, i + 1, hi), chain_jvp(Ws, Vs, lo, i - 1)
        term = None
        if dleft is not None:
            term = mm(tr(dleft), mm(G, tr(right)))
        if dright is not None:
            t2 = mm(tr(left), mm(G, tr(dright)))
            term = t2 if term is None else term + t2
        out[i] = term
    return out


class Operator:
    """The linear map W (M, m1, m2) -> (<A_j, W>)_j (M, n) and its adjoint; two kinds below."""

    kind = ""
    n: int
    m1: int
    m2: int

    def apply(self, W: np.ndarray) -> np.ndarray:  # (M, m1, m2) -> (M, n)
        raise NotImplementedError

    def adjoint(self, x: np.ndarray) -> np.ndarray:  # (M, n) -> (M, m1, m2)
        raise NotImplementedError

    def gn_layer(self, S, P) -> np.ndarray:
        """(1/n) sum_j (S^T A_j P^T)**2 (entrywise), (M, rows, cols); S (M, m1, rows), P (M, cols, m2)."""
        raise NotImplementedError

    def gn_layer_vjp(self, S, P, c):
        """Gradients (GS, GP) of sum_pq c_pq (1/n) sum_j (S^T A_j P^T)_pq**2 w.r.t. S and P (c fixed)."""
        raise NotImplementedError

    def moments(self):
        """(M_1, M_2) = ((1/n) sum_j A_j^T A_j (m2 x m2), (1/n) sum_j A_j A_j^T (m1 x m1))."""
        raise NotImplementedError

    def dense(self) -> np.ndarray:
        """A as a dense (n, m1, m2) array."""
        raise NotImplementedError


#: largest number of floats a chunk of per-sample layer Jacobians may hold (sensing gn_diag)
_CHUNK_FLOATS = 1 << 22


class Sensing(Operator):
    """Dense measurement matrices A (n, m1, m2): apply and adjoint are one GEMM each with A as (n, m1 m2)."""

    kind = "sensing"

    def __init__(self, A: np.ndarray):
        self.n, self.m1, self.m2 = A.shape
        self.A = A
        self.Aflat = np.ascontiguousarray(A.reshape(self.n, self.m1 * self.m2))

    def apply(self, W):
        return W.reshape(W.shape[0], -1) @ self.Aflat.T

    def adjoint(self, x):
        return (x @ self.Aflat).reshape(x.shape[0], self.m1, self.m2)

    def _chunks(self, M, rows, cols):
        step = max(1, _CHUNK_FLOATS // max(1, M * max(rows, self.m1) * max(cols, self.m2)))
        for j0 in range(0, self.n, step):
            yield self.A[j0:j0 + step]

    def _blocks(self, Ac, S, P, M):
        """For the samples of the chunk Ac (k, m1, m2): T_j = A_j P^T (M, k, m1, q) and B_j = S^T T_j
        (M, k, p, q), stacked GEMMs (an identity end, None, costs nothing)."""
        k = Ac.shape[0]
        if P is None:
            T = np.broadcast_to(Ac[None], (M,) + Ac.shape)
        else:
            T = np.matmul(Ac.reshape(k * self.m1, self.m2)[None], np.swapaxes(P, 1, 2)).reshape(M, k, self.m1, -1)
        return T, (T if S is None else np.matmul(np.swapaxes(S, 1, 2)[:, None], T))

    @staticmethod
    def _sizes(S, P, m1, m2):
        return (m1 if S is None else S.shape[2]), (m2 if P is None else P.shape[1])

    def gn_layer(self, S, P):
        M = (S if S is not None else P).shape[0]
        p, q = self._sizes(S, P, self.m1, self.m2)
        out = np.zeros((M, p, q))
        for Ac in self._chunks(M, p, q):
            B = self._blocks(Ac, S, P, M)[1]
            out += np.einsum("mjpq,mjpq->mpq", B, B)
        return out / self.n

    def gn_layer_vjp(self, S, P, c):
        M = c.shape[0]
        p, q = self._sizes(S, P, self.m1, self.m2)
        GS = np.zeros((M, self.m1, p)) if S is not None else None
        GP = np.zeros((M, q, self.m2)) if P is not None else None
        for Ac in self._chunks(M, p, q):
            k = Ac.shape[0]
            T, B = self._blocks(Ac, S, P, M)
            D = (2.0 / self.n) * c[:, None] * B                                   # (M, k, p, q)
            if GS is not None:  # sum_j A_j P^T D_j^T: one GEMM over (j, q)
                GS += np.matmul(T.transpose(0, 2, 1, 3).reshape(M, self.m1, k * q),
                                D.transpose(0, 1, 3, 2).reshape(M, k * q, p))
            if GP is not None:  # sum_j D_j^T S^T A_j: one GEMM over (j, p)
                SA = Ac[None] if S is None else np.matmul(np.swapaxes(S, 1, 2)[:, None], Ac[None])
                SA = np.broadcast_to(SA, (M, k, p, self.m2))
                GP += np.matmul(D.transpose(0, 3, 1, 2).reshape(M, q, k * p), SA.reshape(M, k * p, self.m2))
        return GS, GP

    def moments(self):
        M1 = np.einsum("jab,jac->bc", self.A, self.A) / self.n
        M2 = np.einsum("jab,jcb->ac", self.A, self.A) / self.n
        return M1, M2

    def dense(self):
        return self.A


class Completion(Operator):
    """Observed entries A_j = e_{a_j} e_{b_j}^T, stored as indices: apply is a gather, the adjoint a
    scatter, and the Gauss-Newton diagonal a product with the count matrix C (C_ab = #{j: (a_j, b_j) = (a, b)})."""

    kind = "completion"

    def __init__(self, rows: np.ndarray, cols: np.ndarray, m1: int, m2: int):
        self.rows, self.cols = rows, cols
        self.n, self.m1, self.m2 = len(rows), m1, m2
        self.flat = rows * m2 + cols
        self.unique = len(np.unique(self.flat)) == self.n
        C = np.zeros(m1 * m2)
        np.add.at(C, self.flat, 1.0)
        self.C = C.reshape(m1, m2)

    def apply(self, W):
        return W.reshape(W.shape[0], -1)[:, self.flat]

    def adjoint(self, x):
        G = np.zeros((x.shape[0], self.m1 * self.m2))
        if self.unique:
            G[:, self.flat] = x
        else:
            for j in range(self.n):  # repeated entries (loaded data only): accumulate
                G[:, self.flat[j]] += x[:, j]
        return G.reshape(x.shape[0], self.m1, self.m2)

    def gn_layer(self, S, P):
        # (S^T A_j P^T)_pq = S_{a_j p} P_{q b_j}: sum_j of its square is ((S o S)^T C (P o P)^T)_pq
        S2 = None if S is None else S * S
        P2 = None if P is None else P * P
        return mm(tr(S2), mm(self.C, tr(P2))) / self.n  # depth >= 2: S or P is not None

    def gn_layer_vjp(self, S, P, c):
        S2 = None if S is None else S * S
        P2 = None if P is None else P * P
        GS = None if S is None else (2.0 / self.n) * S * mm(self.C, mm(tr(P2), tr(c)))
        GP = None if P is None else (2.0 / self.n) * P * mm(tr(c), mm(tr(S2), self.C))
        return GS, GP

    def moments(self):
        return np.diag(self.C.sum(axis=0)) / self.n, np.diag(self.C.sum(axis=1)) / self.n

    def dense(self):
        A = np.zeros((self.n, self.m1, self.m2))
        A[np.arange(self.n), self.rows, self.cols] = 1.0
        return A
