"""Sharpness measures on the matrix family, computed through the model interface (ModelContext), against
dense references built from the Jacobian (columns from jvp on the basis) and the dense Hessian."""
from __future__ import annotations

import numpy as np
import pytest

from diagsim import measures as S
from diagsim.errors import DiagsimError
from diagsim.networks.matrix import make_matrix_problem


@pytest.fixture(scope="module", params=[("sensing", 2), ("completion", 3)])
def case(request):
    kind, depth = request.param
    p = make_matrix_problem(4, 3, 2, depth=depth, width=4, n=9, kind=kind, alpha=0.6, seed=5)
    th = p.theta0(3) + 0.4 * np.random.default_rng(1).standard_normal((3, p.dim))
    # dense references, one path at a time: G = J^T J / n with J (n, P) from P jvp's, and H
    refs = []
    for m in range(3):
        J = p.jvp(np.repeat(th[m:m + 1], p.dim, axis=0), np.eye(p.dim)).T
        G = J.T @ J / p.n
        refs.append((G, p.hessian(th[m:m + 1])[0]))
    return p, th, refs


def test_spectral_measures_against_dense_references(case):
    p, th, refs = case
    out = S.evaluate(p, th)
    assert list(out) == [n for n in S.DEFAULT_MEASURES if n in S.GENERIC]
    for m, (G, _) in enumerate(refs):
        eig = np.linalg.eigvalsh(G)
        top = eig[-1]
        nz = eig[eig > 1e-9 * top]
        assert len(nz) == min(p.n, p.dim)  # generic states: (1/n) J J^T has full rank n
        d = np.diag(G)
        np.testing.assert_allclose(out["lambda_max"][m], top, rtol=1e-11)
        np.testing.assert_allclose(out["trace"][m], np.trace(G), rtol=1e-12)
        np.testing.assert_allclose(out["trace_diag_sqrt"][m], np.sqrt(d).sum(), rtol=1e-12)
        np.testing.assert_allclose(out["trace_diag_pow"][m], (d ** 0.75).sum(), rtol=1e-12)
        np.testing.assert_allclose(out["log_pdet"][m], np.log(nz).sum(), rtol=1e-10)
        q = nz / nz.sum()
        np.testing.assert_allclose(out["renyi"][m], np.log((q * q).sum()), rtol=1e-10)  # -H_2
        # f is L-homogeneous in theta: J theta = L f (Euler), so <theta, G theta> = L^2 ||f||^2 / n
        f = p.predict(th[m:m + 1])[0]
        np.testing.assert_allclose(out["fisher_rao"][m], p.depth ** 2 * (f @ f) / p.n, rtol=1e-12)
    full = S.evaluate(p, th, ["trace", "lambda_max"], hessian="full")
    for m, (_, H) in enumerate(refs):
        np.testing.assert_allclose(full["trace"][m], np.trace(H), rtol=1e-12)
        np.testing.assert_allclose(full["lambda_max"][m], np.linalg.eigvalsh(H)[-1], rtol=1e-11)
        # the residual term has a zero diagonal (each layer enters linearly): tr H = tr GN everywhere
        np.testing.assert_allclose(full["trace"][m], out["trace"][m], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(set(S.MEASURES) - S.GENERIC))
def test_diagonal_only_measures_are_one_line_errors(case, name):
    p, th, _ = case
    with pytest.raises(DiagsimError, match="diagonal network's structure") as e:
        S.evaluate(p, th, [name])
    assert "\n" not in str(e.value)


def test_direct_calls_on_diagonal_only_measures(case):
    p, th, _ = case
    with pytest.raises(DiagsimError, match="diagonal network's structure"):
        S.block_trace_sqrt(p, th)
    with pytest.raises(DiagsimError, match="block 'u'"):
        S.renyi_u(p, th)
    assert S.resolve_names("all", p) == [n for n in S.MEASURES if n in S.GENERIC]
