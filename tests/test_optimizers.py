"""Every discrete optimizer against an independent plain-NumPy implementation fed the same noise.

The reference below re-derives w(theta), its Jacobian and each update rule from docs/theory.md §4-5 in NumPy
(vectorised, BLAS products), taking the random numbers from the Python views of diagsim.lowlevel.rng
(signs / normals / uniforms of the documented streams). It shares no code with the kernels.
"""
from __future__ import annotations

import numpy as np
import pytest

from diagsim.errors import DiagsimError
from diagsim.lowlevel import rng
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import (
    GD,
    MESA,
    SAF,
    SAM,
    SGD,
    AdaGrad,
    Adalayer,
    Adam,
    AdamMini,
    LabelNoise,
    Lion,
    Minibatch,
    NoNoise,
    RMSProp,
    SignSGD,
    make_stepper,
)

SEED = 7


# --------------------------------------------------------------------------- reference
def w_and_dw(theta, param):
    d = theta.shape[0] // 2
    u, v = theta[:d], theta[d:]
    if param == "uu-vv":
        return u * u - v * v, 2 * u, -2 * v
    if param == "uv":
        return u * v, v, u
    D = int(param.split("-")[1])
    return u ** D - v ** D, D * u ** (D - 1), -D * v ** (D - 1)


def jt(theta, param, Z, c):
    """J(theta)^T c."""
    _, du, dv = w_and_dw(theta, param)
    gw = Z.T @ c
    return np.concatenate([du * gw, dv * gw])


def residual(theta, param, Z, y):
    return Z @ w_and_dw(theta, param)[0] - y


def noise_of(opt, n, path, k):
    """(xi, row weights a, rows) of step k, from the rng views."""
    nz = opt.noise
    if isinstance(nz, LabelNoise):
        view = rng.signs if nz.dist == "rademacher" else rng.normals
        xi = view(SEED, "label_noise", [path], range(k, k + 1), n, nz.delta)[0, 0]
        return xi, np.full(n, 1.0 / n), np.arange(n)
    if isinstance(nz, Minibatch):
        B = nz.batch_size
        u = rng.uniforms(SEED, "minibatch", [path], range(k, k + 1), B)[0, 0]
        perm = np.arange(n)
        for i in range(B):
            j = min(i + int(np.floor(u[i] * (n - i))), n - 1)
            perm[[i, j]] = perm[[j, i]]
        a = np.zeros(n)
        a[perm[:B]] = 1.0 / B
        return np.zeros(n), a, perm[:B]
    return np.zeros(n), np.full(n, 1.0 / n), np.arange(n)


def sam_eps(opt, theta, g, path, k):
    rho, dim = opt.rho, g.shape[0]
    nrm = np.linalg.norm(g)
    var = opt.variant
    if var == "sam":
        return rho * g / nrm
    if var == "usam":
        return rho * g
    if var == "asam":
        T = np.abs(theta) + opt.asam_eta
        return rho * T ** 2 * g / np.linalg.norm(T * g)
    if var == "fisher":
        F = 1 + opt.fisher_eta * g ** 2
        return rho * (g / F) / np.sqrt(g @ (g / F))
    if var == "ssam-f":
        mask = np.ones(dim)
        mask[np.argsort(g ** 2, kind="stable")[:int(np.floor(opt.sparsity * dim))]] = 0
        return rho * mask * g / nrm
    if var == "ssam-d":
        u = rng.uniforms(SEED, "sam", [path], range(k, k + 1), dim)[0, 0]
        return rho * (u >= opt.sparsity) * g / nrm
    if var == "block":
        d = dim // 2
        sl = slice(0, d) if opt.block == "u" else slice(d, dim)
        e = np.zeros(dim)
        e[sl] = rho * g[sl] / np.linalg.norm(g[sl])
        return e
    if var == "rsam":
        a = opt.renyi_alpha
        rho_eff = np.sign(1 - a) * rho * np.sum(np.abs(g) ** (2 * a)) / nrm ** (2 * a + 2)
        return -rho_eff * g
    raise AssertionError(var)


def reference(problem, opt, theta0, path, steps):
    """Plain-NumPy run of one path; returns the final state dict."""
    Z, y, param = problem.Z, problem.y, problem.param.name
    n, dim = problem.n, problem.dim
    th = theta0.copy()
    m = np.zeros(dim)
    v = None
    if isinstance(opt, AdamMini):
        blocks = np.repeat([0, 1], dim // 2) if opt.blocks is None else np.asarray(opt.blocks)
        v = np.full(blocks.max() + 1, opt.v0)
    elif isinstance(opt, (Adam, AdaGrad)):
        v = np.full(dim, opt.v0)
    if isinstance(opt, SAF):
        hist = [residual(th, param, Z, y)]
    ema = th.copy()
    for k in range(steps):
        xi, a, rows = noise_of(opt, n, path, k)
        r = residual(th, param, Z, y)
        c = a * (r - xi)
        if isinstance(opt, SAF):
            rhat = hist[max(k - opt.delay, 0)]
            c = a * ((r - xi) + 2 * opt.lam_tra * (r - rhat))
        if isinstance(opt, MESA):
            c = a * ((r - xi) + 2 * opt.lam_tra * (r - residual(ema, param, Z, y)))
        g = jt(th, param, Z, c)
        if isinstance(opt, SAM) and opt.variant == "msam":
            R, mc = len(rows), opt.m_chunks
            gs = np.zeros(dim)
            for ci in range(mc):
                ch = rows[ci * R // mc:(ci + 1) * R // mc]
                gc = jt(th, param, Z[ch], (r[ch] - xi[ch]) / len(ch))
                tc = th + opt.rho * gc / np.linalg.norm(gc)
                rc = residual(tc, param, Z[ch], y[ch]) - xi[ch]
                gs += len(ch) / R * jt(tc, param, Z[ch], rc / len(ch))
            th = th - opt.lr * gs
        elif isinstance(opt, SAM):
            tp = th + sam_eps(opt, th, g, path, k)
            th = th - opt.lr * jt(tp, param, Z, a * (residual(tp, param, Z, y) - xi))
        elif isinstance(opt, AdamMini):
            m = opt.beta1 * m + (1 - opt.beta1) * g
            gb = np.bincount(blocks, weights=g * g) / np.bincount(blocks)
            v = opt.beta2 * v + (1 - opt.beta2) * gb
            mh, vh = m, v
            if opt.bias_correction:
                mh, vh = m / (1 - opt.beta1 ** (k + 1)), v / (1 - opt.beta2 ** (k + 1))
            th = th - opt.lr * mh / (vh[blocks] ** opt.lam + opt.eps)
        elif isinstance(opt, Adam):
            m = opt.beta1 * m + (1 - opt.beta1) * g
            v = opt.beta2 * v + (1 - opt.beta2) * g * g
            mh, vh = m, v
            if opt.bias_correction:
                mh, vh = m / (1 - opt.beta1 ** (k + 1)), v / (1 - opt.beta2 ** (k + 1))
            th = th - opt.lr * mh / (vh ** opt.lam + opt.eps)
        elif isinstance(opt, AdaGrad):
            v = v + g * g
            th = th - opt.lr * g / (np.sqrt(v) + opt.eps)
        elif isinstance(opt, Lion):
            th = th - opt.lr * np.sign(opt.beta1 * m + (1 - opt.beta1) * g)
            m = opt.beta2 * m + (1 - opt.beta2) * g
        elif isinstance(opt, SignSGD):
            th = th - opt.lr * np.sign(g)
        else:
            th = th - opt.lr * g
        if isinstance(opt, SAF):
            hist.append(residual(th, param, Z, y))
        if isinstance(opt, MESA):
            ema = opt.beta_ema * ema + (1 - opt.beta_ema) * th
    out = {"theta": th}
    if isinstance(opt, Adam):
        out.update(m=m, v=v)
    if isinstance(opt, AdaGrad):
        out["v"] = v
    if isinstance(opt, Lion):
        out["m"] = m
    if isinstance(opt, MESA):
        out["ema"] = ema
    return out


# --------------------------------------------------------------------------- cases
def _blocks3(dim):
    b = np.arange(dim) % 3
    return tuple(int(x) for x in b)


CASES = {
    "gd": GD(lr=0.05),
    "sgd-rademacher": SGD(lr=0.05, noise=LabelNoise(0.5)),
    "sgd-gaussian": SGD(lr=0.05, noise=LabelNoise(0.3, "gaussian")),
    "sgd-minibatch": SGD(lr=0.05, noise=Minibatch(4)),
    "adam": Adam(lr=0.01, beta1=0.9, beta2=0.95, eps=1e-6),
    "adam-bias-v0": Adam(lr=0.01, bias_correction=True, v0=0.01),
    "adame-lambda": Adam(lr=0.01, lam=0.3, eps=1e-4),
    "adam-minibatch": Adam(lr=0.01, noise=Minibatch(5)),
    "rmsprop": RMSProp(lr=0.01),
    "adam-mini": AdamMini(lr=0.01),
    "adam-mini-3blocks-bias": None,  # needs the problem's dimension: built in the test
    "adalayer": Adalayer(lr=0.01, beta2=0.99),
    "adagrad": AdaGrad(lr=0.05),
    "sam": SAM(lr=0.05, rho=0.05),
    "usam": SAM(lr=0.05, rho=0.1, variant="usam"),
    "msam-3": SAM(lr=0.05, rho=0.05, variant="msam", m_chunks=3),
    "1-sam": SAM(lr=0.05, rho=0.05, variant="msam", m_chunks=11),
    "msam-minibatch": SAM(lr=0.05, rho=0.05, variant="msam", m_chunks=2, noise=Minibatch(5)),
    "asam": SAM(lr=0.05, rho=0.1, variant="asam"),
    "fisher-sam": SAM(lr=0.05, rho=0.05, variant="fisher", fisher_eta=0.5),
    "ssam-f": SAM(lr=0.05, rho=0.05, variant="ssam-f", sparsity=0.4),
    "ssam-d": SAM(lr=0.05, rho=0.05, variant="ssam-d", sparsity=0.5),
    "block-u": SAM(lr=0.05, rho=0.05, variant="block", block="u"),
    "block-v": SAM(lr=0.05, rho=0.05, variant="block", block="v", noise=Minibatch(3)),
    "rsam": SAM(lr=0.05, rho=0.02, variant="rsam", renyi_alpha=2.0),
    "rsam-alpha-half": SAM(lr=0.05, rho=0.02, variant="rsam", renyi_alpha=0.5),
    "lion": Lion(lr=0.01),
    "lion-betas-minibatch": Lion(lr=0.02, beta1=0.5, beta2=0.9, noise=Minibatch(4)),
    "signsgd": SignSGD(lr=0.01),
    "signsgd-gaussian": SignSGD(lr=0.01, noise=LabelNoise(0.3, "gaussian")),
    "saf": SAF(lr=0.05, lam_tra=0.3, delay=2),
    "mesa": MESA(lr=0.05, lam_tra=0.3, beta_ema=0.9),
}


def _problem(param="uu-vv", n=11, d=21):
    return make_problem(n, d, 3, parametrization=param, seed=3)


def _theta0(problem, n_paths):
    """Distinct, non-symmetric starting points (w != 0), the same for the kernel and the reference."""
    g = np.random.default_rng(np.random.SeedSequence(11)).standard_normal((n_paths, problem.dim))
    return problem.theta0(n_paths) + 0.3 * g


def _run(problem, opt, theta0, paths, steps, **kw):
    st = make_stepper(problem, opt, seed=SEED, **kw)
    state = st.init_state(theta0)
    active = np.ones(len(paths), bool)
    st.advance(state, np.asarray(paths), 0, steps, active)
    assert active.all()
    return state


def _check(problem, opt, steps, paths=(0, 5, 2)):
    th0 = _theta0(problem, len(paths))
    state = _run(problem, opt, th0, paths, steps)
    scale = max(1.0, np.abs(th0).max())
    for row, p in enumerate(paths):
        ref = reference(problem, opt, th0[row], p, steps)
        for name, val in ref.items():
            np.testing.assert_allclose(state[name][row], val, rtol=1e-12, atol=1e-12 * scale,
                                       err_msg=f"{name}, path {p}")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("steps", [1, 4])
def test_matches_numpy_reference(name, steps):
    problem = _problem()
    opt = CASES[name]
    if opt is None:
        opt = AdamMini(lr=0.01, blocks=_blocks3(problem.dim), bias_correction=True)
    _check(problem, opt, steps)


@pytest.mark.parametrize("param", ["uv", "depth-3"])
@pytest.mark.parametrize("name", ["sgd-rademacher", "adam", "sam", "msam-3"])
def test_other_parametrizations(param, name):
    _check(_problem(param), CASES[name], 3)


@pytest.mark.parametrize("name", ["lion", "signsgd"])
def test_sign_methods_over_many_steps(name):
    """Forty steps: Lion's momentum builds up; the sign is taken of the same numbers as in NumPy."""
    _check(_problem(), CASES[name], 40)


def test_large_d_uses_all_tiles():
    """d > the pullback tile and n not a multiple of the unroll: every loop remainder is exercised."""
    _check(make_problem(13, 1100, 3, seed=1), CASES["adam"], 2, paths=(0, 1, 2, 3, 4))


def test_gd_gradient_is_the_exact_gradient():
    """One GD step moves theta by -lr * (the foundation's gradient), up to the rounding of the update:
    the kernel may fuse theta - lr g into one FMA (one rounding instead of two), so the two differ by at
    most half an ulp of lr g plus one ulp of the result."""
    from diagsim.networks.diagonal.derivatives import gradient
    problem = _problem()
    th0 = _theta0(problem, 3)
    state = _run(problem, GD(lr=0.1), th0, [0, 1, 2], 1)
    step = 0.1 * gradient(problem, th0)
    expected = th0 - step
    bound = 0.5 * np.spacing(np.abs(step)) + np.spacing(np.abs(expected))
    assert np.all(np.abs(state["theta"] - expected) <= bound)
    assert np.any(step != 0.0)


@pytest.mark.parametrize("n, d", [(13, 1100), (8, 9), (3, 5), (50, 300)])
def test_grouped_products_equal_the_per_path_kernels_bitwise(n, d):
    """forward_group / pullback_group = kernels.forward / kernels.pullback, bitwise, for every way a group
    is split: row loops (< 4 paths), one 4-lane chunk (4), one 8-lane chunk (5..11), one 16-lane chunk
    (>= 12), and mixes (20 = 16 + 4, 21 = 16 + 5, 27 = 16 + 8 + 3, 37 = 16 + 16 + 5); d = 1100 spans several
    k blocks of the lanes kernel."""
    from diagsim.networks.diagonal import pathwise as K
    from diagsim.networks.diagonal.grouped import forward_group, forward_group_rows, pullback_group, pullback_group_rows
    problem = make_problem(n, d, 2, seed=4)
    M = 37
    th = _theta0(problem, M) * (1.0 + 0.1 * np.random.default_rng(1).standard_normal((M, 2 * d)))
    W, Rp, Lp, GWp = np.empty((M, d)), np.empty((M, n)), np.empty(M), np.empty((M, d))
    for s in range(M):  # the per-path kernel computes w itself: feed the same w to the group kernel
        Lp[s] = K.forward(th[s], 0, 2, problem.ZT, problem.y, W[s], Rp[s])
        K.pullback(problem.Z, Rp[s] / n, 1.0, GWp[s])
    for ns in (1, 3, 4, 5, 8, 11, 12, 16, 20, 21, 27, 37):
        R, L, GW = np.full((M, n), np.nan), np.full(M, np.nan), np.full((M, d), np.nan)
        forward_group(problem.ZT, problem.y, W, ns, R, L)
        pullback_group(problem.Z, np.ascontiguousarray(R / n), ns, GW)
        np.testing.assert_array_equal(R[:ns], Rp[:ns], err_msg=f"ns={ns}")
        np.testing.assert_array_equal(L[:ns], Lp[:ns], err_msg=f"ns={ns}")
        np.testing.assert_array_equal(GW[:ns], GWp[:ns], err_msg=f"ns={ns}")
        assert np.isnan(R[ns:]).all() and np.isnan(GW[ns:]).all()  # rows past ns are not touched
        # the GPU's twins (row loops only) give the same numbers
        R2, L2, GW2 = np.full((M, n), np.nan), np.full(M, np.nan), np.full((M, d), np.nan)
        forward_group_rows(problem.ZT, problem.y, W, ns, R2, L2)
        pullback_group_rows(problem.Z, np.ascontiguousarray(R2 / n), ns, GW2)
        np.testing.assert_array_equal(R2[:ns], Rp[:ns], err_msg=f"rows, ns={ns}")
        np.testing.assert_array_equal(L2[:ns], Lp[:ns], err_msg=f"rows, ns={ns}")
        np.testing.assert_array_equal(GW2[:ns], GWp[:ns], err_msg=f"rows, ns={ns}")


def test_stable_argsort():
    from diagsim.optimizers.step_loop import stable_argsort
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 64, 1000):
        key = rng.integers(0, 5, n).astype(float)  # many ties
        order, tmp = np.empty(n, np.int64), np.empty(n, np.int64)
        stable_argsort(key, order, tmp)
        np.testing.assert_array_equal(order, np.argsort(key, kind="stable"))


# --------------------------------------------------------------------------- reproducibility
def test_group_size_and_subsets_are_bitwise_invariant():
    """The same path gives the same bits whatever its group, the number of paths, or its position."""
    problem = make_problem(10, 40, 3, seed=2)
    opt = Adam(lr=0.02)
    th0 = np.repeat(_theta0(problem, 1), 7, axis=0)
    full = _run(problem, opt, th0, np.arange(7), 20, group=4)["theta"]
    for group in (1, 2, 3, 7):  # 7: the 8-lane SIMD kernel with a free lane
        np.testing.assert_array_equal(_run(problem, opt, th0, np.arange(7), 20, group=group)["theta"], full)
    alone = _run(problem, opt, th0[:1], [5], 20)["theta"]
    np.testing.assert_array_equal(alone[0], full[5])
    more = _run(problem, opt, np.repeat(th0[:1], 12, axis=0), np.arange(12), 20)["theta"]
    np.testing.assert_array_equal(more[:7], full)
    wide = _run(problem, opt, np.repeat(th0[:1], 12, axis=0), np.arange(12), 20, group=12)["theta"]
    np.testing.assert_array_equal(wide, more)  # 12 paths in one group: the 16-lane kernel
    assert not np.array_equal(full[0], full[1])  # different paths see different noise


def test_chunked_advance_equals_one_call():
    problem = make_problem(10, 40, 3, seed=2)
    for opt in (SAF(lr=0.05, delay=3), Adam(lr=0.02, bias_correction=True), SAM(lr=0.05, variant="ssam-d")):
        th0 = _theta0(problem, 3)
        one = _run(problem, opt, th0, [0, 1, 2], 10)
        st = make_stepper(problem, opt, seed=SEED)
        state = st.init_state(th0)
        act = np.ones(3, bool)
        for k0, nk in ((0, 3), (3, 1), (4, 6)):
            st.advance(state, np.arange(3), k0, nk, act)
        for name in one:
            np.testing.assert_array_equal(state[name], one[name])


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("make, match", [
    (lambda: SGD(lr=0.0), "lr"),
    (lambda: SGD(lr=-1), "lr"),
    (lambda: SGD(lr=float("nan")), "lr"),
    (lambda: Adam(lr=0.1, beta1=1.0), "beta1"),
    (lambda: Adam(lr=0.1, beta2=-0.1), "beta2"),
    (lambda: Adam(lr=0.1, eps=-1e-8), "eps"),
    (lambda: Adam(lr=0.1, lam=1.5), "lam"),
    (lambda: RMSProp(lr=0.1, beta1=0.9), "beta1"),
    (lambda: SAM(lr=0.1, variant="nope"), "variant"),
    (lambda: SAM(lr=0.1, rho=-1), "rho"),
    (lambda: SAM(lr=0.1, variant="rsam", renyi_alpha=1.0), "alpha"),
    (lambda: SAM(lr=0.1, sparsity=1.0), "sparsity"),
    (lambda: SGD(lr=0.1, noise=LabelNoise(-0.5)), "label_noise"),
    (lambda: SGD(lr=0.1, noise=LabelNoise(0.5, "uniform")), "distribution"),
    (lambda: SGD(lr=0.1, noise=Minibatch(0)), "batch_size"),
    (lambda: GD(lr=0.1, noise=LabelNoise(0.5)), "GD"),
    (lambda: MESA(lr=0.1, beta_ema=1.0), "beta_ema"),
    (lambda: SAF(lr=0.1, delay=0), "delay"),
])
def test_bad_hyperparameters_are_one_line_errors(make, match):
    with pytest.raises(DiagsimError, match=match) as exc:
        make()
    assert "\n" not in str(exc.value)


def test_problem_dependent_checks():
    problem = _problem()
    with pytest.raises(DiagsimError, match="batch_size"):
        make_stepper(problem, SGD(lr=0.1, noise=Minibatch(12)))
    with pytest.raises(DiagsimError, match="m_chunks"):
        make_stepper(problem, SAM(lr=0.1, variant="msam", m_chunks=12))
    with pytest.raises(DiagsimError, match="length 2d"):
        make_stepper(problem, AdamMini(lr=0.1, blocks=(0, 1, 0)))
    with pytest.raises(DiagsimError, match="without gaps"):
        make_stepper(problem, AdamMini(lr=0.1, blocks=(0,) * 21 + (2,) * 21))
    with pytest.raises(DiagsimError, match="model options"):
        make_stepper(problem, SGD(lr=0.1), dt=0.1)
    with pytest.raises(DiagsimError, match="optimizer"):
        make_stepper(problem, "adam")
    NoNoise()  # constructible


def test_simd_tiles_refuse_an_unexpected_width():
    """The SIMD kernel is compiled for 4, 8 or 16 lanes; any other width is an error, never a silent no-op."""
    from diagsim.lowlevel.simd import lanes_matmul
    A, B, OUT = np.ones((3, 5)), np.ones((3, 5)), np.zeros((5, 5))
    with pytest.raises(ValueError, match="4, 8 or 16 lanes"):
        lanes_matmul(A, 5, B, 3, OUT, 5)
