"""Problem generators, teacher distributions, .npz round trip and the one-line errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from diagsim.errors import DiagsimError
from diagsim.networks.diagonal.problem import Problem, load_problem, make_problem, make_teacher


def test_generator_is_a_function_of_the_seed():
    a = make_problem(20, 50, 4, seed=7)
    b = make_problem(20, 50, 4, seed=7)
    c = make_problem(20, 50, 4, seed=8)
    for x, y in [(a.Z, b.Z), (a.y, b.y), (a.w_star, b.w_star), (a.theta0(2), b.theta0(2))]:
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.Z, c.Z)
    # the parametrization does not change the data
    np.testing.assert_array_equal(make_problem(20, 50, 4, seed=7, parametrization="uv").Z, a.Z)


@pytest.mark.parametrize("param", ["uu-vv", "uv", "depth-3"])
@pytest.mark.parametrize("init", ["constant", "gaussian"])
def test_init_has_w0_zero_and_labels_are_clean(param, init):
    p = make_problem(10, 30, 3, parametrization=param, init=init, alpha=0.3, seed=1)
    th = p.theta0(4)
    assert th.shape == (4, 60)
    np.testing.assert_array_equal(p.w(th), 0.0)
    np.testing.assert_allclose(p.y, p.Z @ p.w_star, rtol=0, atol=1e-14)
    assert np.count_nonzero(p.w_star) == 3
    np.testing.assert_allclose(p.test_loss_w(p.w_star), 0.0)
    np.testing.assert_allclose(p.test_loss_w(np.zeros(30)), 0.5 * np.sum(p.w_star ** 2))


def test_teacher_pm1_and_ones():
    p = make_problem(5, 40, 6, teacher="pm1", seed=3)
    vals = p.w_star[p.w_star != 0]
    assert vals.size == 6 and set(np.abs(vals)) == {1.0}
    q = make_problem(5, 40, 6, teacher="ones", seed=3)
    assert np.count_nonzero(q.w_star) == 6 and set(q.w_star[q.w_star != 0]) == {1.0}
    r = make_problem(5, 40, 6, support=[0, 1, 2, 3, 4, 5], seed=3)
    assert set(np.flatnonzero(r.w_star)) == set(range(6))


def test_teacher_uniform_respects_threshold_and_distribution():
    # 20000 draws: about 200 fall below 0.01 at first and must be redrawn
    rng = np.random.default_rng(np.random.SeedSequence(5))
    k = 20000
    w = make_teacher(k, k, "uniform", rng)
    assert np.all(np.abs(w) >= 0.01) and np.all(np.abs(w) < 1.0)
    # |w| ~ Uniform(0.01, 1) and the sign is fair
    assert stats.kstest(np.abs(w), stats.uniform(loc=0.01, scale=0.99).cdf).pvalue > 1e-3
    assert stats.binomtest(int((w > 0).sum()), k).pvalue > 1e-3


def test_teacher_halfnormal_distribution():
    rng = np.random.default_rng(np.random.SeedSequence(6))
    w = make_teacher(5000, 5000, "halfnormal", rng)
    assert np.all(w >= 0)
    assert stats.kstest(w, stats.halfnorm.cdf).pvalue > 1e-3


def test_design_distributions_and_s():
    rad = make_problem(30, 200, 3, design="rademacher", seed=2)
    assert set(np.unique(rad.Z)) == {-1.0, 1.0}
    assert np.all(rad.s == 1.0)
    gau = make_problem(400, 50, 3, design="gaussian", seed=2)
    np.testing.assert_allclose(gau.s, (gau.Z ** 2).mean(axis=0))
    assert stats.kstest(gau.Z.ravel(), stats.norm.cdf).pvalue > 1e-3


def test_npz_round_trip(tmp_path):
    p = make_problem(8, 20, 3, parametrization="uv", init="constant", alpha=0.25, seed=9)
    path = p.save(tmp_path / "prob.npz")
    q = load_problem(path)
    for name in ("Z", "y", "w_star"):
        np.testing.assert_array_equal(getattr(p, name), getattr(q, name))
    assert (q.param.name, q.init, q.alpha, q.seed) == ("uv", "constant", 0.25, 9)
    np.testing.assert_array_equal(p.theta0(2), q.theta0(2))
    # user data: only Z and y (+ an optional test set)
    rng = np.random.default_rng(0)
    Z, y = rng.standard_normal((6, 9)), rng.standard_normal(6)
    Zt, yt = rng.standard_normal((4, 9)), rng.standard_normal(4)
    np.savez(tmp_path / "user.npz", Z=Z, y=y, Z_test=Zt, y_test=yt)
    u = load_problem(tmp_path / "user.npz", parametrization="depth-3")
    assert u.w_star is None and u.param.name == "depth-3"
    w = rng.standard_normal(9)
    np.testing.assert_allclose(u.test_loss_w(w), 0.5 * np.mean((Zt @ w - yt) ** 2))
    np.testing.assert_allclose(u.train_loss_w(w), 0.5 * np.mean((Z @ w - y) ** 2))


# --------------------------------------------------------------------------- bad input
def _raises(fn, *words):
    with pytest.raises(DiagsimError) as exc:
        fn()
    msg = str(exc.value)
    assert "\n" not in msg
    for wd in words:
        assert wd in msg, msg
    return msg


def test_bad_sizes():
    _raises(lambda: make_problem(0, 10, 1), "n", ">= 1")
    _raises(lambda: make_problem(5, 0, 1), "d", ">= 1")
    _raises(lambda: make_problem(-3, 10, 1), "n")
    _raises(lambda: make_problem(5, 10, 11), "k", "d")
    _raises(lambda: make_problem(5, 10, -1), "k")
    _raises(lambda: make_problem(5.5, 10, 1), "n", "integer")


def test_bad_choices():
    _raises(lambda: make_problem(5, 10, 1, parametrization="uvw"), "parametrization", "uu-vv", "uv")
    _raises(lambda: make_problem(5, 10, 1, parametrization="depth-1"), "depth")
    _raises(lambda: make_problem(5, 10, 1, design="bernoulli"), "design", "gaussian")
    _raises(lambda: make_problem(5, 10, 1, teacher="cauchy"), "teacher", "pm1")
    _raises(lambda: make_problem(5, 10, 1, init="zeros"), "init", "gaussian")
    _raises(lambda: make_problem(5, 10, 1, alpha=-0.1), "alpha")
    _raises(lambda: make_problem(5, 10, 2, support=[1, 1]), "support")


def test_bad_shapes_and_values():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4, 6))
    _raises(lambda: Problem(Z, np.zeros(5), None, "uv"), "y", "shape (4")
    _raises(lambda: Problem(Z, np.zeros(4), np.zeros(5), "uv"), "w_star", "shape (6")
    _raises(lambda: Problem(np.zeros((0, 6)), np.zeros(0), None, "uv"), "Z")
    bad = Z.copy()
    bad[1, 2] = np.nan
    _raises(lambda: Problem(bad, np.zeros(4), None, "uv"), "Z", "non-finite")
    p = Problem(Z, np.zeros(4), None, "uv")
    _raises(lambda: p.check_theta(np.zeros((2, 11))), "theta", "12")
    th = np.zeros((2, 12))
    th[1, 3] = np.inf
    _raises(lambda: p.check_theta(th), "theta", "non-finite")


def test_negative_noise_and_unknown_measure():
    from diagsim import measures as S
    from diagsim.optimizers.specs import LabelNoise
    _raises(lambda: LabelNoise(delta=-0.5), "label_noise", ">= 0")
    p = make_problem(5, 10, 1)
    _raises(lambda: S.evaluate(p, p.theta0(), ["trace", "sharpest"]), "measure", "lambda_max", "sharpest")
    _raises(lambda: S.evaluate(p, np.full(20, np.nan), ["trace"]), "theta", "non-finite")


def test_bad_data_files(tmp_path):
    _raises(lambda: load_problem(tmp_path / "missing.npz"), "does not exist")
    np.savez(tmp_path / "noy.npz", Z=np.zeros((3, 4)))
    _raises(lambda: load_problem(tmp_path / "noy.npz"), "'Z'", "'y'")
    np.savez(tmp_path / "mismatch.npz", Z=np.ones((3, 4)), y=np.ones(5))
    _raises(lambda: load_problem(tmp_path / "mismatch.npz"), "y", "shape (3")
    (tmp_path / "junk.npz").write_text("not a zip")
    msg = _raises(lambda: load_problem(tmp_path / "junk.npz"), "junk.npz", "not an .npz file")
    assert "pickle" not in msg  # never advise unpickling
