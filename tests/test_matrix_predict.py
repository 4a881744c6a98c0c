"""SGD's predicted limit on the matrix family (diagsim/predict/matrix.py, docs/theory.md §13.4): the
fibre identity behind it, the convex program's solution (feasibility, optimality certificate checked here,
comparison with other feasible points), first-order optimality of tr H on the manifold at the balanced
factors, known answers, errors and the CLI."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from diagsim.cli.main import main
from diagsim.errors import DiagsimError
from diagsim.networks.matrix import make_matrix_problem
from diagsim.networks.matrix.derivatives import Completion
from diagsim.networks.matrix.problem import MatrixProblem
from diagsim.predict import predict

pytest.importorskip("cvxpy")


def _moment_roots(p):
    """(M_2^{1/2}, M_1^{1/2}) from the dense A_j (this test's own computation)."""
    A = p.op.dense()
    M1 = sum(a.T @ a for a in A) / p.n
    M2 = sum(a @ a.T for a in A) / p.n

    def root(M):
        lam, Q = np.linalg.eigh(M)
        return (Q * np.sqrt(lam)) @ Q.T

    return root(M2), root(M1)


def _wnuc(p, W):
    R2, R1 = _moment_roots(p)
    return np.linalg.svd(R2 @ W @ R1, compute_uv=False).sum()


@pytest.mark.parametrize("kind", ["sensing", "completion"])
def test_trace_gn_on_the_fibre(kind):
    """tr GN = tr(W_1 M_1 W_1^T) + tr(W_2^T M_2 W_2) >= 2 ||M_2^{1/2} W M_1^{1/2}||_* on every factorization of
    W, with equality at the balanced factors M_2^{-1/2} U S^{1/2}, S^{1/2} V^T M_1^{-1/2}."""
    p = make_matrix_problem(5, 4, 2, width=5, n=30 if kind == "sensing" else 14, kind=kind, seed=2)
    assert np.all(p.op.C.sum(axis=0) > 0) and np.all(p.op.C.sum(axis=1) > 0) if kind == "completion" else True
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 4))
    R2, R1 = _moment_roots(p)
    U, s, Vt = np.linalg.svd(R2 @ W @ R1)
    W2 = np.zeros((5, 5))
    W1 = np.zeros((5, 4))
    W2[:, :2] = np.linalg.solve(R2, U[:, :2] * np.sqrt(s[:2]))
    W1[:2] = np.linalg.solve(R1.T, (np.sqrt(s[:2])[:, None] * Vt[:2]).T).T
    th = p.flatten([W1, W2])
    np.testing.assert_allclose(p.end_to_end(th)[0], W, rtol=0, atol=1e-12 * np.abs(W).max())
    bound = 2.0 * s.sum()
    np.testing.assert_allclose(p.gn_diag(th).sum(), bound, rtol=1e-12)
    A = p.op.dense()
    closed = sum(np.sum((a @ W1.T) ** 2) + np.sum((W2.T @ a) ** 2) for a in A) / p.n
    np.testing.assert_allclose(p.gn_diag(th).sum(), closed, rtol=1e-12)
    for _ in range(20):  # other factorizations (W_2 R, R^{-1} W_1) of the same W are never below the bound
        Rm = np.eye(5) + 0.5 * rng.standard_normal((5, 5))
        t2 = p.flatten([np.linalg.solve(Rm, W1), W2 @ Rm])
        assert p.gn_diag(t2).sum() >= bound * (1 - 1e-12)


@pytest.fixture(scope="module", params=["sensing", "completion"])
def solved(request):
    kind = request.param
    p = make_matrix_problem(7, 6, 2, n=40 if kind == "sensing" else 26, kind=kind, seed=11)
    return p, predict(p, "sgd")


def test_prediction_is_feasible_and_certified(solved):
    p, pred = solved
    ys = np.abs(p.y).max()
    assert pred.residual <= 1e-7 * ys
    np.testing.assert_allclose(p.op.apply(pred.W[None])[0], p.y, rtol=0, atol=1e-7 * ys)
    R2, R1 = _moment_roots(p)
    X = R2 @ pred.W @ R1
    obj = np.linalg.svd(X, compute_uv=False).sum()
    np.testing.assert_allclose(pred.objective, obj, rtol=1e-9)
    # certificate: G in the range of the adjoint (G = sum_j nu_j B_j) with ||G||_2 <= 1 and <G, X> = ||X||_*
    # proves global optimality (any feasible X' has ||X'||_* >= <G, X'> = nu^T y = <G, X>)
    B = np.stack([np.linalg.solve(R2, np.linalg.solve(R1.T, a.T).T) for a in p.op.dense()])
    G = pred.dual
    coef = np.linalg.lstsq(B.reshape(p.n, -1).T, G.ravel(), rcond=None)[0]
    np.testing.assert_allclose(B.reshape(p.n, -1).T @ coef, G.ravel(), rtol=0, atol=1e-8)
    assert np.linalg.norm(G, 2) <= 1 + 1e-6
    np.testing.assert_allclose(np.sum(G * X), obj, rtol=1e-6)


def test_prediction_beats_other_feasible_points(solved):
    p, pred = solved
    A = p.op.dense().reshape(p.n, -1)
    null = np.linalg.svd(A)[2][np.linalg.matrix_rank(A):]  # basis of {D : <A_j, D> = 0}
    rng = np.random.default_rng(3)
    tol = 1e-6 * pred.objective  # the solver's tolerances (duality gap ~ 1e-9 relative) with margin
    assert pred.objective <= _wnuc(p, p.W_star) + tol
    for scale in (1e-3, 1e-1, 1.0):
        for _ in range(10):
            D = (rng.standard_normal(len(null)) @ null).reshape(p.m1, p.m2)
            assert pred.objective <= _wnuc(p, pred.W + scale * D) + tol
            assert pred.objective <= _wnuc(p, p.W_star + scale * D) + tol


def test_balanced_factors_are_stationary_for_trace_on_the_manifold(solved):
    """At the predicted factors: zero loss, tr GN = 2 * objective, and the gradient of tr GN (gn_diag_vjp with
    c = 1) lies in the span of the constraint gradients (J^T x): first-order optimality on the manifold."""
    p, pred = solved
    th = pred.theta[None]
    assert p.loss(th)[0] <= 1e-14 * np.mean(p.y ** 2)
    np.testing.assert_allclose(p.gn_diag(th).sum(), pred.trace_gn, rtol=1e-12)
    np.testing.assert_allclose(pred.trace_gn, 2 * pred.objective, rtol=1e-6)
    # the factors keep the singular values above RANK_RTOL = 1e-6 (relative) of the weighted W
    np.testing.assert_allclose(p.end_to_end(th)[0], pred.W, rtol=0, atol=1e-6 * np.abs(pred.W).max())
    g = p.gn_diag_vjp(th, np.ones_like(th))[0]
    J = p.vjp(np.repeat(th, p.n, axis=0), np.eye(p.n))  # rows: gradients of f_j
    x = np.linalg.lstsq(J.T, g, rcond=None)[0]
    # the solver's relative accuracy is ~1e-8 (gap 1e-9, tolerances 1e-9); allow 1e-5 of |g|
    assert np.linalg.norm(g - J.T @ x) <= 1e-5 * np.linalg.norm(g)
    # negative control: an unbalanced factorization of the same W (W_2 R, R^{-1} W_1) is far from stationary
    W1, W2 = (W[0] for W in p.factors(th))
    R = np.eye(p.width) + 0.1 * np.random.default_rng(0).standard_normal((p.width, p.width))
    tu = p.flatten([np.linalg.solve(R, W1), W2 @ R])
    gu = p.gn_diag_vjp(tu, np.ones_like(tu))[0]
    Ju = p.vjp(np.repeat(tu, p.n, axis=0), np.eye(p.n))
    assert np.linalg.norm(gu - Ju.T @ np.linalg.lstsq(Ju.T, gu, rcond=None)[0]) > 0.1 * np.linalg.norm(gu)


def test_known_answer_2x2_completion():
    """Observed W_00 = W_01 = W_10 = 1: the (weighted) nuclear norm over the free W_11 is minimized by the
    rank-one completion W_11 = 1 (for [[a, b], [b, z]], the nuclear norm is >= a + b^2/a with equality at
    z = b^2 / a, and the weights diag(2, 1)/3 on both sides keep z = b^2/a at W_11 = 1)."""
    op = Completion(np.array([0, 0, 1]), np.array([0, 1, 0]), 2, 2)
    p = MatrixProblem(op, np.ones(3), None)
    pred = predict(p, "sgd")
    np.testing.assert_allclose(pred.W, np.ones((2, 2)), rtol=0, atol=1e-7)
    assert pred.rank == 1


def test_full_observation_is_the_target():
    p = make_matrix_problem(4, 3, 2, n=12, kind="completion", seed=1)
    np.testing.assert_allclose(predict(p, "sgd").W, p.W_star, rtol=0, atol=1e-7)


def test_low_rank_recovery_by_gaussian_sensing():
    """Claim (regime fixed in advance: 8 x 6, rank 1, n = 60, seed 3): the weighted nuclear norm recovers W*
    from Gaussian measurements, as the plain nuclear norm does with enough samples. Holds."""
    p = make_matrix_problem(8, 6, 1, n=60, seed=3)
    pred = predict(p, "sgd")
    np.testing.assert_allclose(pred.W, p.W_star, rtol=0, atol=1e-6)
    assert pred.rank == 1


@pytest.mark.parametrize("optimizer,kwargs,msg", [
    ("adam", {}, "no closed-form limit for Adam"), ("adame", {"lam": 0.25}, "AdamE"),
    ("gd", {}, "gradient flow"), ("adam-mini", {}, "Adam-mini"),
    ("sgd", {"method": "local"}, "method applies"),
])
def test_prediction_errors(optimizer, kwargs, msg):
    p = make_matrix_problem(4, 3, 1, n=10, seed=0)
    with pytest.raises(DiagsimError, match=msg):
        predict(p, optimizer, **kwargs)


def test_depth_and_moment_errors():
    with pytest.raises(DiagsimError, match="depth 3"):
        predict(make_matrix_problem(4, 3, 1, depth=3, n=10, seed=0), "sgd")
    op = Completion(np.array([0, 0]), np.array([0, 1]), 2, 2)  # row 1 never observed: M_2 singular
    with pytest.raises(DiagsimError, match="M_2 .* is singular"):
        predict(MatrixProblem(op, np.ones(2), None), "sgd")


def test_missing_cvxpy_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(DiagsimError, match=r"needs cvxpy, which is not installed: pip install -e \".\[convex\]\""):
        predict(make_matrix_problem(4, 3, 1, n=10, seed=0), "sgd")


def test_cli_predict_data_json(tmp_path, capsys):
    p = make_matrix_problem(5, 4, 1, n=16, kind="completion", seed=6)
    path = p.save(tmp_path / "data.npz")
    assert main(["predict", "--optimizer", "sgd", "--data", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    W = np.array(out["W"])
    assert W.shape == (5, 4)
    np.testing.assert_array_equal(W, predict(p, "sgd").W)
    assert out["status"] in ("optimal", "optimal_inaccurate") and out["rank"] >= 1
    np.testing.assert_allclose(out["error_fro2"], np.sum((W - p.W_star) ** 2), rtol=1e-12)
    assert main(["predict", "--data", str(path)]) == 0
    assert "weighted nuclear norm" in capsys.readouterr().out


def test_cli_predict_data_errors(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, A=np.zeros((3, 2, 2)), y=np.zeros(4))
    assert main(["predict", "--data", str(bad), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "y must have shape" in err and "\n" not in err
    good = make_matrix_problem(3, 3, 1, n=9, seed=0).save(tmp_path / "g.npz")
    assert main(["predict", "--data", str(good), "--depth", "3"]) == 2
    assert "depth 2" in capsys.readouterr().err
