"""Matrix sensing and matrix completion with a deep matrix factorization (docs/theory.md §13).

Model. W = W_L ... W_2 W_1 (depth L >= 2) with W_1: h x m2, W_2, ..., W_{L-1}: h x h, W_L: m1 x h
(h = ``width``). Predictions f_j = <A_j, W> = sum_ab (A_j)_ab W_ab on n samples; square loss
L = (1/2n) sum_j (f_j - y_j)^2.

Parameters. theta = [vec(W_1), vec(W_2), ..., vec(W_L)] (P = h m2 + (L - 2) h^2 + m1 h entries), each vec
row-major (NumPy's C order): layer i occupies ``theta[offset_i : offset_i + rows_i * cols_i]`` and is
``reshape(rows_i, cols_i)``. :meth:`MatrixProblem.factors` and :meth:`MatrixProblem.flatten` convert.

Data. "sensing": A_j with i.i.d. N(0, 1) entries; "completion": A_j = e_a e_b^T for n distinct observed
entries (a, b), stored as indices (the derivatives gather and scatter instead of multiplying by dense A).
W* = U V^T with U (m1 x r), V (m2 x r) having orthonormal columns (all r singular values 1), from ``seed``;
y_j = <A_j, W*>.

Initialization (identical for every path). "gaussian": W_i = alpha G_i with G_i standard Gaussian (from
``seed``); "identity": W_i = alpha I (the rows_i x cols_i matrix with ones on its main diagonal).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...errors import DiagsimError, as_float_array, check_choice, check_int, check_memory, check_positive
from ...storage import load_npz, write_npz_atomic
from ..model import register_family
from .derivatives import Completion, Operator, Sensing, chain_jvp, chain_vjp, chain_vjp_dir, prod

KINDS = ("sensing", "completion")
INITS = ("gaussian", "identity")
#: largest parameter count for which :meth:`MatrixProblem.hessian` builds the dense P x P Hessian
HESSIAN_MAX_DIM = 3000
#: how many top singular values :meth:`MatrixProblem.observables` records (at most min(m1, m2))
N_SINGULAR = 8


@dataclass(frozen=True, eq=False)
class MatrixProblem:
    """Data + deep factorization + initialization; implements :class:`diagsim.networks.model.ModelProblem`.

    Attributes
    ----------
    op : the measurement operator (:class:`~.derivatives.Sensing` or :class:`~.derivatives.Completion`).
    y : (n,) labels. W_star : (m1, m2) target or None.
    depth, width : L and h. init, alpha, seed : the initialization.
    test_rows, test_cols : held-out entries (completion with W_star), or None.
    meta : how the problem was made.
    """

    family: ClassVar[str] = "matrix"

    op: Operator
    y: np.ndarray
    W_star: np.ndarray | None
    depth: int = 2
    width: int | None = None
    init: str = "gaussian"
    alpha: float = 0.1
    seed: int = 0
    test_rows: np.ndarray | None = None
    test_cols: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        op = self.op
        object.__setattr__(self, "y", as_float_array("y", self.y, (op.n,)))
        if self.W_star is not None:
            object.__setattr__(self, "W_star", as_float_array("W_star", self.W_star, (op.m1, op.m2)))
        depth = check_int("depth", self.depth, minimum=2)
        object.__setattr__(self, "depth", depth)
        width = max(op.m1, op.m2) if self.width is None else check_int("width", self.width)
        object.__setattr__(self, "width", width)
        check_choice("init", self.init, INITS)
        object.__setattr__(self, "alpha", check_positive("alpha", self.alpha))
        shapes = [(width, op.m2)] + [(width, width)] * (depth - 2) + [(op.m1, width)]
        sizes = [r * c for r, c in shapes]
        object.__setattr__(self, "shapes", tuple(shapes))
        object.__setattr__(self, "offsets", tuple(int(x) for x in np.concatenate([[0], np.cumsum(sizes)])))

    # ---------------------------------------------------------------- sizes
    @property
    def n(self) -> int:
        return self.op.n

    @property
    def m1(self) -> int:
        return self.op.m1

    @property
    def m2(self) -> int:
        return self.op.m2

    @property
    def kind(self) -> str:
        return self.op.kind

    @property
    def dim(self) -> int:
        return self.offsets[-1]

    # ---------------------------------------------------------------- layout
    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """[W_1, ..., W_L] as views of shape (M, rows_i, cols_i) of a validated theta (M, P)."""
        M = theta.shape[0]
        return [theta[:, a:b].reshape(M, r, c) for (a, b), (r, c) in zip(zip(self.offsets, self.offsets[1:]),
                                                                          self.shapes)]

    def flatten(self, Ws) -> np.ndarray:
        """Inverse of :meth:`factors`: (M, P) from [W_1, ..., W_L] (each (M, rows_i, cols_i) or 2-D)."""
        Ws = [np.asarray(W, dtype=np.float64) for W in Ws]
        if len(Ws) != self.depth:
            raise DiagsimError(f"flatten needs {self.depth} factors, got {len(Ws)}")
        Ws = [W[None] if W.ndim == 2 else W for W in Ws]
        for i, (W, s) in enumerate(zip(Ws, self.shapes)):
            if W.shape[1:] != s:
                raise DiagsimError(f"factor W_{i + 1} must have shape {s}, got {W.shape[1:]}")
        return np.concatenate([W.reshape(W.shape[0], -1) for W in Ws], axis=1)

    def parameter_blocks(self) -> np.ndarray:
        """Block id of every parameter, (P,) int64: the layer (0 for W_1, ..., L - 1 for W_L), the natural
        partition of Adam-mini / Adalayer (an optional member of the model interface)."""
        return np.repeat(np.arange(self.depth, dtype=np.int64), np.diff(self.offsets))

    def check_theta(self, theta, name: str = "theta") -> np.ndarray:
        """Validate a state array: shape (M, P) (or (P,), promoted), finite, float64."""
        a = np.asarray(theta, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        return as_float_array(name, a, (None, self.dim))

    def _check_pair(self, theta, other, name, width):
        theta = self.check_theta(theta)
        o = np.asarray(other, dtype=np.float64)
        if o.ndim == 1:
            o = o[None, :]
        return theta, as_float_array(name, o, (theta.shape[0], width))

    def theta0(self, n_paths: int = 1) -> np.ndarray:
        """Initial states (n_paths, P), identical rows."""
        n_paths = check_int("n_paths", n_paths)
        if self.init == "identity":
            Ws = [self.alpha * np.eye(r, c) for r, c in self.shapes]
        else:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(3,)))
            Ws = [self.alpha * rng.standard_normal((r, c)) for r, c in self.shapes]
        return np.tile(self.flatten(Ws), (n_paths, 1))

    # ---------------------------------------------------------------- model
    def end_to_end(self, theta) -> np.ndarray:
        """W = W_L ... W_1, (M, m1, m2)."""
        theta = self.check_theta(theta)
        return prod(self.factors(theta), 0, self.depth - 1)

    def predict(self, theta) -> np.ndarray:
        return self.op.apply(self.end_to_end(theta))

    def residual(self, theta) -> np.ndarray:
        return self.predict(theta) - self.y

    def loss(self, theta) -> np.ndarray:
        r = self.residual(theta)
        return 0.5 * np.mean(r * r, axis=1)

    def jvp(self, theta, v) -> np.ndarray:
        theta, v = self._check_pair(theta, v, "v", self.dim)
        return self.op.apply(chain_jvp(self.factors(theta), self.factors(v), 0, self.depth - 1))

    def _layer_grads(self, Ws, G) -> np.ndarray:
        g = chain_vjp(Ws, G, 0, self.depth - 1)
        return np.concatenate([g[i].reshape(G.shape[0], -1) for i in range(self.depth)], axis=1)

    def vjp(self, theta, x) -> np.ndarray:
        theta, x = self._check_pair(theta, x, "x", self.n)
        return self._layer_grads(self.factors(theta), self.op.adjoint(x))

    def gradient(self, theta) -> np.ndarray:
        theta = self.check_theta(theta)
        return self.vjp(theta, self.residual(theta)) / self.n

    def hvp(self, theta, v) -> np.ndarray:
        """H v = (1/n) [J^T J v + sum_j r_j (d^2 f_j) v] (exact)."""
        theta, v = self._check_pair(theta, v, "v", self.dim)
        Ws, Vs = self.factors(theta), self.factors(v)
        L = self.depth
        W = prod(Ws, 0, L - 1)
        gn = self._layer_grads(Ws, self.op.adjoint(self.op.apply(chain_jvp(Ws, Vs, 0, L - 1))))
        G = self.op.adjoint(self.op.apply(W) - self.y)
        d = chain_vjp_dir(Ws, Vs, G, 0, L - 1)
        res = np.concatenate([d[i].reshape(theta.shape[0], -1) for i in range(L)], axis=1)
        return (gn + res) / self.n

    def _ends(self, Ws, i):
        """(S, P) = (W_L ... W_{i+2}, W_i ... W_1) in 1-based terms: the factors left and right of layer i
        (0-based), None for the identity."""
        return prod(Ws, i + 1, self.depth - 1), prod(Ws, 0, i - 1)

    def gn_diag(self, theta) -> np.ndarray:
        """(1/n) diag(J^T J): on layer i, (1/n) sum_j (S_i^T A_j P_i^T)**2 entrywise."""
        theta = self.check_theta(theta)
        Ws = self.factors(theta)
        M = theta.shape[0]
        return np.concatenate([self.op.gn_layer(*self._ends(Ws, i)).reshape(M, -1) for i in range(self.depth)],
                              axis=1)

    def gn_diag_vjp(self, theta, c) -> np.ndarray:
        """grad_theta sum_i c_i gn_diag(theta)_i (c fixed): layer i's entries depend on the others through
        S_i and P_i; their gradients are pulled back to the layers by the chain rule."""
        theta, c = self._check_pair(theta, c, "c", self.dim)
        Ws, cs = self.factors(theta), self.factors(c)
        L = self.depth
        out = [np.zeros_like(W) for W in Ws]
        for i in range(L):
            S, P = self._ends(Ws, i)
            GS, GP = self.op.gn_layer_vjp(S, P, cs[i])
            if GS is not None:
                for k, g in chain_vjp(Ws, GS, i + 1, L - 1).items():
                    out[k] += g
            if GP is not None:
                for k, g in chain_vjp(Ws, GP, 0, i - 1).items():
                    out[k] += g
        return np.concatenate([o.reshape(theta.shape[0], -1) for o in out], axis=1)

    def hessian_diag(self, theta) -> np.ndarray:
        """diag H = diag GN: f is linear in each layer, so the residual term has a zero diagonal."""
        return self.gn_diag(theta)

    def hessian(self, theta) -> np.ndarray:
        """The exact Hessian (M, P, P), column by column from :meth:`hvp` (P <= HESSIAN_MAX_DIM)."""
        theta = self.check_theta(theta)
        P, M = self.dim, theta.shape[0]
        if P > HESSIAN_MAX_DIM:
            raise DiagsimError(f"hessian: P = {P} parameters is above the dense limit {HESSIAN_MAX_DIM} of the "
                               "matrix family; use hvp")
        check_memory(8.0 * M * P * P * 3, "the dense Hessian", "use fewer paths or hvp")
        out = np.empty((M, P, P))
        eye = np.eye(P)
        for m in range(M):
            out[m] = self.hvp(np.repeat(theta[m:m + 1], P, axis=0), eye)
        return 0.5 * (out + np.swapaxes(out, 1, 2))

    # ---------------------------------------------------------------- records
    def test_loss(self, theta) -> np.ndarray:
        """||W - W*||_F^2 (NaN without W*)."""
        W = self.end_to_end(theta)
        if self.W_star is None:
            return np.full(W.shape[0], np.nan)
        E = W - self.W_star
        return np.einsum("mab,mab->m", E, E)

    def observables(self, theta) -> dict[str, np.ndarray]:
        """nuclear_norm ||W||_*, effective_rank exp(H(p)) with p = sigma / sum(sigma) (Roy & Vetterli;
        0 for W = 0), sv1..svK the top singular values (K = min(m1, m2, N_SINGULAR)), and for completion
        with held-out entries heldout_loss = (1/2 n_test) sum (W_ab - W*_ab)^2 over them."""
        W = self.end_to_end(theta)
        sv = np.linalg.svd(W, compute_uv=False)  # (M, min(m1, m2)), descending
        out = {"nuclear_norm": sv.sum(axis=1), "effective_rank": effective_rank(sv)}
        for k in range(min(self.m1, self.m2, N_SINGULAR)):
            out[f"sv{k + 1}"] = sv[:, k].copy()
        if self.test_rows is not None and len(self.test_rows):
            e = W[:, self.test_rows, self.test_cols] - self.W_star[self.test_rows, self.test_cols]
            out["heldout_loss"] = 0.5 * np.mean(e * e, axis=1)
        return out

    def describe(self) -> dict:
        return {"family": self.family, "kind": self.kind, "n": self.n, "m1": self.m1, "m2": self.m2,
                "depth": self.depth, "width": self.width, "dim": self.dim, "init": self.init,
                "alpha": self.alpha, "seed": self.seed, **self.meta}

    def data_arrays(self) -> dict[str, np.ndarray]:
        out = {"y": self.y}
        if self.kind == "completion":
            out["rows"], out["cols"] = self.op.rows, self.op.cols
        else:
            out["A"] = self.op.A
        if self.W_star is not None:
            out["W_star"] = self.W_star
        if self.test_rows is not None:
            out["test_rows"], out["test_cols"] = self.test_rows, self.test_cols
        return out

    def save(self, path) -> Path:
        """An ``.npz`` with A (dense), y and W_star that :func:`load_matrix_problem` reads."""
        arrays = {"A": self.op.dense(), "y": self.y}
        if self.W_star is not None:
            arrays["W_star"] = self.W_star
        return write_npz_atomic(Path(path), arrays)


def effective_rank(sv: np.ndarray) -> np.ndarray:
    """exp of the Shannon entropy of p = sigma / sum(sigma) per row of singular values (M, k); 0 if all 0."""
    tot = sv.sum(axis=1, keepdims=True)
    p = np.where(tot > 0, sv / np.where(tot > 0, tot, 1.0), 0.0)
    ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    return np.where(tot[:, 0] > 0, np.exp(ent), 0.0)


def make_target(m1: int, m2: int, rank: int, seed: int) -> np.ndarray:
    """W* = U V^T, U and V with orthonormal columns (Q factors of Gaussian matrices) from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    U = np.linalg.qr(rng.standard_normal((m1, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((m2, rank)))[0]
    return U @ V.T


def make_matrix_problem(m1: int = 10, m2: int | None = None, rank: int = 2, *, depth: int = 2,
                        width: int | None = None, n: int | None = None, kind: str = "sensing",
                        init: str = "gaussian", alpha: float = 0.1, seed: int = 0,
                        n_test: int | None = None) -> MatrixProblem:
    """A generated matrix sensing / completion problem (see the module docstring).

    m2 defaults to m1, width to max(m1, m2) (>= rank required), n to 2 rank (m1 + m2) for sensing and
    half of the m1 m2 entries for completion. Completion: n distinct observed entries drawn without
    replacement, and ``n_test`` held-out entries among the others (default: all of them)."""
    m1 = check_int("m1", m1)
    m2 = m1 if m2 is None else check_int("m2", m2)
    rank = check_int("rank", rank, maximum=min(m1, m2))
    kind = check_choice("kind", kind, KINDS)
    depth = check_int("depth", depth, minimum=2)
    width = max(m1, m2) if width is None else check_int("width", width)
    if width < rank:
        raise DiagsimError(f"width must be >= rank = {rank} (the factorization cannot reach W*); got {width}")
    total = m1 * m2
    if n is None:
        n = 2 * rank * (m1 + m2) if kind == "sensing" else total // 2
    n = check_int("n", n, maximum=total if kind == "completion" else None)
    W_star = make_target(m1, m2, rank, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    meta = {"source": "generated", "rank": rank}
    test_rows = test_cols = None
    if kind == "sensing":
        if n_test is not None:
            raise DiagsimError("n_test applies to kind='completion' only (sensing's test loss is ||W - W*||_F^2)")
        A = rng.standard_normal((n, m1, m2))
        op = Sensing(A)
        y = np.einsum("jab,ab->j", A, W_star)
    else:
        perm = rng.permutation(total)
        n_test = total - n if n_test is None else check_int("n_test", n_test, minimum=0, maximum=total - n)
        obs, held = perm[:n], perm[n:n + n_test]
        op = Completion(obs // m2, obs % m2, m1, m2)
        y = W_star.reshape(-1)[obs].copy()
        test_rows, test_cols = held // m2, held % m2
        meta["n_test"] = int(n_test)
    return MatrixProblem(op, y, W_star, depth, width, init, alpha, seed, test_rows, test_cols, meta)


def is_matrix_data(path) -> bool:
    """Whether the ``.npz`` at ``path`` holds matrix-family data (an array ``A``, no ``Z``); False for anything
    unreadable (the loader then says why)."""
    try:
        # our own file handle: np.load leaves the file it opened unclosed when the zip is corrupt
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            return "A" in f.files and "Z" not in f.files
    except Exception:  # unreadable (OSError, ValueError, zipfile.BadZipFile, ...): the loader then says why
        return False


def load_matrix_problem(path, *, depth: int = 2, width: int | None = None, init: str = "gaussian",
                        alpha: float = 0.1, seed: int = 0) -> MatrixProblem:
    """A problem from an ``.npz`` with ``A`` (n, m1, m2), ``y`` (n) and optionally ``W_star`` (m1, m2).

    When every A_j is a single entry e_a e_b^T (equal to 1) the problem is one of completion (stored as
    indices); with W_star its held-out entries are all the unobserved ones. ``seed`` fixes the Gaussian
    initialization only."""
    data = load_npz(path, "data file")
    label = f"data file {str(path)!r}"
    for key in ("A", "y"):
        if key not in data:
            raise DiagsimError(f"{label} has no array {key!r} (needs A (n, m1, m2), y (n) [, W_star (m1, m2)])")
    extra = sorted(set(data) - {"A", "y", "W_star"})
    if extra:
        raise DiagsimError(f"{label} has unknown arrays {extra}; allowed: A, y, W_star")
    A = as_float_array(f"{label}: A", data["A"], (None, None, None))
    n, m1, m2 = A.shape
    if min(n, m1, m2) < 1:
        raise DiagsimError(f"{label}: A must have shape (n, m1, m2) with all sizes >= 1, got {A.shape}")
    y = as_float_array(f"{label}: y", data["y"], (n,))
    W_star = None
    if "W_star" in data:
        W_star = as_float_array(f"{label}: W_star", data["W_star"], (m1, m2))
    flat = A.reshape(n, -1)
    one_hot = bool(np.all((flat == 0.0) | (flat == 1.0)) and np.all(flat.sum(axis=1) == 1.0))
    meta = {"source": str(path)}
    test_rows = test_cols = None
    if one_hot:
        idx = flat.argmax(axis=1)
        op = Completion(idx // m2, idx % m2, m1, m2)
        if W_star is not None:
            held = np.setdiff1d(np.arange(m1 * m2), idx)
            test_rows, test_cols = held // m2, held % m2
    else:
        op = Sensing(A)
    return MatrixProblem(op, y, W_star, depth, width, init, alpha, seed, test_rows, test_cols, meta)


register_family("matrix", make_matrix_problem, load_matrix_problem,
                "deep matrix factorization: matrix sensing (Gaussian A_j) and completion (A_j = e_a e_b^T)")
