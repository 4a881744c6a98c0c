"""The matrix family (diagsim/networks/matrix): layout, data, exact derivatives against finite differences
and SymPy, completion (by index) against the same data as dense sensing, observables, loading, errors."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from diagsim.errors import DiagsimError
from diagsim.networks.matrix import (
    MatrixProblem,
    effective_rank,
    is_matrix_data,
    load_matrix_problem,
    make_matrix_problem,
)
from diagsim.networks.matrix.derivatives import Completion, Sensing
from diagsim.networks.model import ModelProblem, family

EPS = np.finfo(float).eps


def _states(p, M=2, scale=0.6, seed=0):
    rng = np.random.default_rng(seed)
    return p.theta0(M) + scale * rng.standard_normal((M, p.dim))


# --------------------------------------------------------------------------- finite differences
def _stencil(k: int, h: float):
    """Central stencil at t = +-h, ..., +-k h for g'(0): exact for polynomials of degree <= 2k."""
    ts = np.array([j * h for j in range(-k, k + 1) if j != 0])
    V = np.vander(ts, len(ts), increasing=True).T  # rows: powers 0..2k-1
    rhs = np.zeros(len(ts))
    rhs[1] = 1.0
    return ts, np.linalg.solve(V, rhs)


def fd_check(g, theta, v, exact, degree: int, h: float = 0.25):
    """Compare d/dt g(theta + t v) at t = 0 with ``exact``.

    Along a line every function of the model is a polynomial in t of degree <= ``degree`` (the layers enter
    multilinearly), so the central stencil with 2k >= degree points has no truncation error; what is left
    is rounding: each g(t_i) carries a relative error of order (number of flops) * eps, bounded here by
    1e3 * eps * max|g|, amplified by sum |c_i|."""
    k = (degree + 1) // 2 + 1
    ts, c = _stencil(k, h)
    vals = [np.asarray(g(theta + t * v)) for t in ts]
    fd = sum(ci * vi for ci, vi in zip(c, vals))
    scale = max(float(np.max(np.abs(vi))) for vi in vals)
    tol = 1e3 * EPS * float(np.sum(np.abs(c))) * scale
    np.testing.assert_allclose(fd, exact, rtol=0, atol=tol)


CASES = [(kind, depth) for kind in ("sensing", "completion") for depth in (2, 3, 4)]


@pytest.mark.parametrize("kind,depth", CASES)
def test_derivatives_against_finite_differences(kind, depth):
    p = make_matrix_problem(4, 3, 2, depth=depth, width=5, n=9, kind=kind, alpha=0.5, seed=1)
    rng = np.random.default_rng(2)
    th = _states(p)
    v = rng.standard_normal(th.shape)
    c = rng.standard_normal(th.shape)
    L = depth
    x = rng.standard_normal((2, p.n))
    fd_check(p.predict, th, v, p.jvp(th, v), L)
    fd_check(lambda t: np.einsum("mj,mj->m", p.predict(t), x), th, v, np.einsum("mp,mp->m", p.vjp(th, x), v), L)
    fd_check(p.loss, th, v, np.einsum("mp,mp->m", p.gradient(th), v), 2 * L)
    fd_check(p.gradient, th, v, p.hvp(th, v), 2 * L - 1)
    fd_check(lambda t: np.einsum("mp,mp->m", c, p.gn_diag(t)), th, v,
             np.einsum("mp,mp->m", p.gn_diag_vjp(th, c), v), 2 * (L - 1))
    # vjp is the adjoint of jvp; the dense Hessian agrees with hvp; its diagonal with hessian_diag
    np.testing.assert_allclose(np.einsum("mj,mj->m", p.jvp(th, v), x), np.einsum("mp,mp->m", v, p.vjp(th, x)),
                               rtol=1e-12)
    H = p.hessian(th)
    np.testing.assert_allclose(np.einsum("mpq,mq->mp", H, v), p.hvp(th, v), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.diagonal(H, axis1=1, axis2=2), p.hessian_diag(th), rtol=1e-12, atol=1e-12)
    # gn_diag = (1/n) diag(J^T J) with J's columns from jvp on the basis (not the code path of gn_diag)
    J = p.jvp(np.repeat(th[:1], p.dim, axis=0), np.eye(p.dim)).T  # (n, P)
    np.testing.assert_allclose(p.gn_diag(th[:1])[0], (J * J).sum(axis=0) / p.n, rtol=1e-12, atol=1e-14)


def _sympy_reference(p: MatrixProblem, theta: np.ndarray, c: np.ndarray):
    """Gradient, Hessian, GN diagonal and grad of sum c * gn_diag from SymPy's symbolic model."""
    syms = sp.symbols(f"t0:{p.dim}")
    Ws = []
    for (a, b), (r, cc) in zip(zip(p.offsets, p.offsets[1:]), p.shapes):
        Ws.append(sp.Matrix(r, cc, syms[a:b]))
    W = Ws[0]
    for Wi in Ws[1:]:
        W = Wi * W
    A = p.op.dense()
    f = [sum(sp.Float(A[j, a, b]) * W[a, b] for a in range(p.m1) for b in range(p.m2)) for j in range(p.n)]
    loss = sum((fj - sp.Float(yj)) ** 2 for fj, yj in zip(f, p.y)) / (2 * p.n)
    J = sp.Matrix(f).jacobian(syms)
    gn = [sum(J[j, i] ** 2 for j in range(p.n)) / p.n for i in range(p.dim)]
    measure = sum(sp.Float(ci) * gi for ci, gi in zip(c, gn))
    num = lambda e: np.array(sp.lambdify(syms, sp.Matrix(e), "mpmath")(*[sp.Float(t, 30) for t in theta]
                                                                       ).tolist(), dtype=float)
    grad = num([sp.diff(loss, s) for s in syms]).ravel()
    hess = num(sp.hessian(loss, syms))
    return grad, hess, num(gn).ravel(), num([sp.diff(measure, s) for s in syms]).ravel()


@pytest.mark.parametrize("kind,depth", [("sensing", 2), ("completion", 3),
                                        pytest.param("sensing", 3, marks=pytest.mark.slow)])  # ~9 s
def test_derivatives_against_sympy(kind, depth):
    p = make_matrix_problem(2, 2, 1, depth=depth, width=2, n=3, kind=kind, alpha=0.7, seed=4)
    th = _states(p, M=1, seed=5)
    c = np.random.default_rng(6).standard_normal(p.dim)
    grad, hess, gn, gvjp = _sympy_reference(p, th[0], c)
    # the reference is exact to 30 digits; ours is float64 arithmetic on O(1) numbers: 1e-12 is ~ 1e4 eps
    np.testing.assert_allclose(p.gradient(th)[0], grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.hessian(th)[0], hess, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.gn_diag(th)[0], gn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.gn_diag_vjp(th, c[None])[0], gvjp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("repeated", [False, True])
def test_completion_by_index_equals_dense_sensing(repeated):
    """The completion operator (gather / scatter / count matrix) against the same A_j = e_a e_b^T as dense
    matrices handled by the sensing code; ``repeated``: an entry observed three times (loaded data)."""
    p = make_matrix_problem(5, 4, 2, depth=3, width=5, n=12, kind="completion", seed=3)
    if repeated:
        rows, cols = np.r_[p.op.rows, p.op.rows[0], p.op.rows[0]], np.r_[p.op.cols, p.op.cols[0], p.op.cols[0]]
        p = MatrixProblem(Completion(rows, cols, 5, 4), np.r_[p.y, p.y[0], p.y[0]], p.W_star, 3, 5)
        assert not p.op.unique
    q = MatrixProblem(Sensing(p.op.dense()), p.y, p.W_star, p.depth, p.width, p.init, p.alpha, p.seed)
    th = _states(p, M=3)
    rng = np.random.default_rng(1)
    v, c, x = rng.standard_normal(th.shape), rng.standard_normal(th.shape), rng.standard_normal((3, p.n))
    for name, args in [("predict", ()), ("gradient", ()), ("gn_diag", ()), ("hvp", (v,)), ("vjp", (x,)),
                       ("gn_diag_vjp", (c,)), ("jvp", (v,))]:
        np.testing.assert_allclose(getattr(p, name)(th, *args), getattr(q, name)(th, *args), rtol=1e-12,
                                   atol=1e-13, err_msg=name)


def test_layout_shapes_and_initializations():
    p = make_matrix_problem(4, 3, 2, depth=3, width=6, n=10, init="identity", alpha=0.3, seed=0)
    assert isinstance(p, ModelProblem) and p.family == "matrix"
    assert p.shapes == ((6, 3), (6, 6), (4, 6)) and p.dim == 18 + 36 + 24
    th = p.theta0(2)
    assert th.shape == (2, p.dim) and np.array_equal(th[0], th[1])
    W1, W2, W3 = (W[0] for W in p.factors(th))
    np.testing.assert_array_equal(W1, 0.3 * np.eye(6, 3))
    np.testing.assert_array_equal(th[0, :18].reshape(6, 3), W1)  # row-major layer blocks, input layer first
    np.testing.assert_allclose(p.end_to_end(th)[0], W3 @ W2 @ W1, rtol=1e-15)
    np.testing.assert_array_equal(p.flatten(p.factors(th)), th)
    np.testing.assert_array_equal(p.parameter_blocks(), np.repeat([0, 1, 2], [18, 36, 24]))
    g = make_matrix_problem(4, 3, 2, depth=3, width=6, n=10, alpha=0.3, seed=0)
    g2 = make_matrix_problem(4, 3, 2, depth=3, width=6, n=10, alpha=0.3, seed=0)
    np.testing.assert_array_equal(g.theta0(1), g2.theta0(1))  # a pure function of the seed
    assert not np.array_equal(g.theta0(1), make_matrix_problem(4, 3, 2, depth=3, width=6, n=10, alpha=0.3,
                                                               seed=1).theta0(1))
    assert p.width == 6 and make_matrix_problem(4, 3, 2).width == 4


def test_generated_data():
    p = make_matrix_problem(6, 5, 2, n=40, seed=7)
    sv = np.linalg.svd(p.W_star, compute_uv=False)
    np.testing.assert_allclose(sv[:2], 1.0, rtol=1e-13)
    assert sv[2] < 1e-13
    np.testing.assert_allclose(p.y, np.einsum("jab,ab->j", p.op.A, p.W_star), rtol=1e-14)
    c = make_matrix_problem(6, 5, 2, n=20, kind="completion", n_test=7, seed=7)
    flat = c.op.rows * 5 + c.op.cols
    held = c.test_rows * 5 + c.test_cols
    assert len(np.unique(flat)) == 20 and len(held) == 7 and not set(flat) & set(held)
    np.testing.assert_array_equal(c.y, c.W_star[c.op.rows, c.op.cols])
    assert make_matrix_problem(6, 5, 2, kind="completion", seed=7).test_rows.size == 30 - 15


def test_losses_and_observables():
    p = make_matrix_problem(5, 4, 2, depth=2, n=12, kind="completion", n_test=5, seed=2)
    th = _states(p, M=2)
    W = p.end_to_end(th)
    r = np.stack([Wm[p.op.rows, p.op.cols] for Wm in W]) - p.y
    np.testing.assert_allclose(p.loss(th), 0.5 * (r * r).mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(p.test_loss(th), ((W - p.W_star) ** 2).sum(axis=(1, 2)), rtol=1e-14)
    obs = p.observables(th)
    sv = np.linalg.svd(W, compute_uv=False)
    np.testing.assert_allclose(obs["nuclear_norm"], sv.sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(obs["sv1"], sv[:, 0], rtol=1e-14)
    e = W[:, p.test_rows, p.test_cols] - p.W_star[p.test_rows, p.test_cols]
    np.testing.assert_allclose(obs["heldout_loss"], 0.5 * (e * e).mean(axis=1), rtol=1e-14)
    # effective rank: k equal singular values -> k; a single one -> 1; zero matrix -> 0
    np.testing.assert_allclose(effective_rank(np.array([[2.0, 2.0, 2.0, 0.0], [1.0, 0, 0, 0], [0, 0, 0, 0]])),
                               [3.0, 1.0, 0.0], rtol=1e-15)
    s = make_matrix_problem(4, 3, 1, n=8, seed=0)  # sensing: no held-out entries
    assert "heldout_loss" not in s.observables(s.theta0())


def test_family_registry_and_save_load(tmp_path):
    fam = family("matrix")
    p = fam.make(m1=4, m2=3, rank=1, n=7, seed=3)
    path = p.save(tmp_path / "m.npz")
    assert is_matrix_data(path)
    q = fam.load(path)
    assert q.kind == "sensing"
    th = p.theta0(1)
    np.testing.assert_array_equal(q.loss(th), p.loss(th))
    c = make_matrix_problem(4, 3, 1, n=7, kind="completion", seed=3)
    qc = load_matrix_problem(c.save(tmp_path / "c.npz"), depth=3, width=4)
    assert qc.kind == "completion" and qc.depth == 3 and qc.test_rows.size == 5
    np.testing.assert_array_equal(qc.op.rows, c.op.rows)


@pytest.mark.parametrize("arrays,msg", [
    ({"y": np.zeros(3)}, "no array 'A'"),
    ({"A": np.zeros((3, 2)), "y": np.zeros(3)}, "A must have shape"),
    ({"A": np.zeros((3, 2, 2)), "y": np.zeros(4)}, "y must have shape"),
    ({"A": np.ones((3, 2, 2)), "y": np.array([0, np.nan, 1.0])}, "non-finite"),
    ({"A": np.ones((3, 2, 2)), "y": np.zeros(3), "W_star": np.zeros((2, 3))}, "W_star must have shape"),
    ({"A": np.ones((3, 2, 2)), "y": np.zeros(3), "Z": np.zeros(3)}, "unknown arrays"),
])
def test_load_errors(tmp_path, arrays, msg):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DiagsimError, match=msg) as e:
        load_matrix_problem(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(rank=5), "rank"), (dict(width=1), "width must be >= rank"), (dict(depth=1), "depth"),
    (dict(kind="dense"), "kind"), (dict(init="zeros"), "init"), (dict(n=13, kind="completion"), "n"),
    (dict(n_test=3), "n_test applies"), (dict(alpha=-1.0), "alpha"),
])
def test_make_errors(kwargs, msg):
    args = dict(m1=4, m2=3, rank=2, n=6)
    args.update(kwargs)
    with pytest.raises(DiagsimError, match=msg):
        make_matrix_problem(**args)


def test_state_errors():
    p = make_matrix_problem(3, 3, 1, n=5)
    with pytest.raises(DiagsimError, match="theta must have shape"):
        p.loss(np.zeros((2, p.dim + 1)))
    with pytest.raises(DiagsimError, match="v must have shape"):
        p.jvp(p.theta0(2), np.zeros((1, p.dim)))
    with pytest.raises(DiagsimError, match="non-finite"):
        p.gradient(np.full(p.dim, np.nan))
    big = make_matrix_problem(40, 40, 1, n=5)
    with pytest.raises(DiagsimError, match="above the dense limit"):
        big.hessian(big.theta0())
