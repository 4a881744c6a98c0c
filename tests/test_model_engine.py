"""The engine on any model problem (diagsim.networks.model): the generic steppers against the diagonal
kernels on the same noise, toy models written here (dense Jacobians) against closed forms, results,
checkpoints, the CLI and bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from diagsim import simulate
from diagsim.cli.main import main
from diagsim.engine.driver import resume
from diagsim.engine.result import load_result
from diagsim.errors import DiagsimError
from diagsim.networks.diagonal.problem import make_problem
from diagsim.networks.model import ModelProblem, family, register_family
from diagsim.optimizers import GD, MESA, SAF, SAM, SGD, Adam, AdamMini, LabelNoise, Minibatch, NoNoise, SignSGD
from diagsim.optimizers.discrete import make_stepper as diagonal_discrete
from diagsim.optimizers.generic import make_stepper as generic_discrete

EPS = np.finfo(float).eps


# --------------------------------------------------------------------------- toy model problems
class DenseToy:
    """A model problem from a dense Jacobian J (M, n, P) and the per-sample second derivatives D2 (M, n, P, P)
    of f: every member of the interface by its definition (an independent reference implementation)."""

    family = "toy"

    def __init__(self, y, init, seed=0):
        self.y = np.asarray(y, dtype=np.float64)
        self.init = np.asarray(init, dtype=np.float64)
        self.seed = seed

    @property
    def n(self):
        return self.y.shape[0]

    @property
    def dim(self):
        return self.init.shape[0]

    def check_theta(self, theta, name="theta"):
        a = np.asarray(theta, dtype=np.float64)
        a = a[None] if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise DiagsimError(f"{name} must have shape (M, {self.dim}), got {np.shape(theta)}")
        return a

    def theta0(self, n_paths=1):
        return np.tile(self.init, (n_paths, 1))

    def residual(self, theta):
        return self.predict(theta) - self.y

    def loss(self, theta):
        r = self.residual(theta)
        return 0.5 * (r * r).sum(axis=1) / self.n

    def gradient(self, theta):
        return self.vjp(theta, self.residual(theta)) / self.n

    def jvp(self, theta, v):
        return np.einsum("mjp,mp->mj", self.jac(theta), np.broadcast_to(v, (len(theta), self.dim)))

    def vjp(self, theta, x):
        return np.einsum("mjp,mj->mp", self.jac(theta), x)

    def gn_diag(self, theta):
        return (self.jac(theta) ** 2).sum(axis=1) / self.n

    def gn_diag_vjp(self, theta, c):
        return 2.0 * np.einsum("mi,mji,mjik->mk", c, self.jac(theta), self.d2f(theta)) / self.n

    def hessian(self, theta):
        J = self.jac(theta)
        return (np.einsum("mji,mjk->mik", J, J) + np.einsum("mj,mjik->mik", self.residual(theta),
                                                              self.d2f(theta))) / self.n

    def hvp(self, theta, v):
        return np.einsum("mik,mk->mi", self.hessian(theta), np.broadcast_to(v, (len(theta), self.dim)))

    def hessian_diag(self, theta):
        return np.diagonal(self.hessian(theta), axis1=1, axis2=2).copy()

    def test_loss(self, theta):
        return np.full(len(theta), np.nan)

    def observables(self, theta):
        return {"norm": np.sqrt((theta * theta).sum(axis=1))}

    def describe(self):
        return {"n": self.n, "P": self.dim, "seed": self.seed}

    def data_arrays(self):
        return {"y": self.y, "init": self.init}


class LinearToy(DenseToy):
    """f = X theta (J = X, no curvature): GD and the SDE's mean have closed forms."""

    family = "toy-linear"

    def __init__(self, X, y, init, seed=0):
        super().__init__(y, init, seed)
        self.X = np.asarray(X, dtype=np.float64)

    def predict(self, theta):
        return theta @ self.X.T

    def jac(self, theta):
        return np.broadcast_to(self.X, (len(theta), *self.X.shape))

    def d2f(self, theta):
        return np.zeros((len(theta), self.n, self.dim, self.dim))

    def data_arrays(self):
        return {"X": self.X, "y": self.y, "init": self.init}

    # closed forms
    def interpolant(self):
        """The limit of GD / gradient flow from init: init + X^T (X X^T)^-1 (y - X init)."""
        X = self.X
        return self.init + X.T @ np.linalg.solve(X @ X.T, self.y - X @ self.init)

    def gd_iterate(self, lr, k):
        """theta_k of GD: theta_inf + (I - lr X^T X / n)^k (init - theta_inf)."""
        inf = self.interpolant()
        A = np.eye(self.dim) - lr * self.X.T @ self.X / self.n
        return inf + np.linalg.matrix_power(A, k) @ (self.init - inf)


def make_linear(n: int = 4, P: int = 6, seed: int = 0) -> LinearToy:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, P))
    return LinearToy(X, X @ rng.standard_normal(P), 0.1 * rng.standard_normal(P), seed)


def load_linear(path, seed: int = 0) -> LinearToy:
    f = np.load(path)
    if not {"X", "y", "init"} <= set(f.files):
        raise DiagsimError(f"{path}: needs arrays X, y, init")
    return LinearToy(f["X"], f["y"], f["init"], seed)


register_family("toy-linear", make_linear, load_linear, "tests: f = X theta")


class ScalarFactorization(DenseToy):
    """f_j = x_j a b (theta = (a, b)): Gamma = {a b = w*}; on it tr H = s (a^2 + b^2) and
    tr diag(H)^{1/2} = sqrt(s) (|a| + |b|), s = mean x^2, both minimal at a = b = sqrt(w*) (w* > 0)."""

    family = "toy-scalar"

    def __init__(self, x, w_star, init):
        x = np.asarray(x, dtype=np.float64)
        super().__init__(x * w_star, init)
        self.x = x

    def predict(self, theta):
        return np.outer(theta[:, 0] * theta[:, 1], self.x)

    def jac(self, theta):
        return self.x[None, :, None] * theta[:, None, ::-1]

    def d2f(self, theta):
        return np.broadcast_to(self.x[None, :, None, None] * np.array([[0.0, 1.0], [1.0, 0.0]]),
                               (len(theta), self.n, 2, 2))

    def data_arrays(self):
        return {"x": self.x, "y": self.y, "init": self.init}


class Wrapped:
    """The diagonal Problem seen only through the model interface (so simulate takes the generic steppers)."""

    family = "wrapped-diagonal"

    def __init__(self, problem):
        self._p = problem
        self.y = problem.y

    def __getattr__(self, name):
        return getattr(self._p, name)

    @property
    def n(self):
        return self._p.n

    @property
    def dim(self):
        return self._p.dim

    def observables(self, theta):
        return self._p.observables(theta)


DIAG = make_problem(n=10, d=20, k=2, seed=1)


def test_toys_satisfy_the_interface_and_their_derivatives():
    """The toys' dense derivatives against finite differences (they serve as references below)."""
    toy = ScalarFactorization([1.0, -0.5, 2.0], 1.5, [0.3, 0.7])
    assert isinstance(toy, ModelProblem) and isinstance(DIAG, ModelProblem)
    th = np.array([[0.4, -1.1]])
    h = 1e-6
    fd = np.stack([(toy.loss(th + h * e) - toy.loss(th - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(toy.gradient(th), fd, rtol=1e-8, atol=1e-10)
    fdh = np.stack([(toy.gradient(th + h * e) - toy.gradient(th - h * e)) / (2 * h) for e in np.eye(2)], axis=2)
    np.testing.assert_allclose(toy.hessian(th), fdh, rtol=1e-6, atol=1e-8)
    c = np.array([[0.3, 1.7]])
    fdg = np.stack([((toy.gn_diag(th + h * e) - toy.gn_diag(th - h * e)) * c).sum(axis=1) / (2 * h)
                    for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(toy.gn_diag_vjp(th, c), fdg, rtol=1e-7, atol=1e-9)


def test_diagonal_problem_members_against_its_derivatives():
    """The diagonal Problem's interface members: J products against the dense Jacobian, gn_diag_vjp against
    finite differences of gn_diag, and the family registry."""
    from diagsim.networks.diagonal.derivatives import jacobian
    rng = np.random.default_rng(0)
    th = DIAG.theta0(2) + 0.1 * rng.standard_normal((2, DIAG.dim))
    J = jacobian(DIAG, th)
    v, x = rng.standard_normal((2, DIAG.dim)), rng.standard_normal((2, DIAG.n))
    np.testing.assert_allclose(DIAG.jvp(th, v), np.einsum("mjp,mp->mj", J, v), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(DIAG.vjp(th, x), np.einsum("mjp,mj->mp", J, x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(DIAG.gn_diag(th), (J * J).sum(axis=1) / DIAG.n, rtol=1e-13)
    np.testing.assert_allclose(DIAG.predict(th), DIAG.residual(th) + DIAG.y, rtol=1e-13, atol=1e-14)
    c = rng.uniform(0.5, 1.5, (2, DIAG.dim))
    h = 1e-6
    fd = np.empty_like(th)
    for i in range(DIAG.dim):
        e = np.zeros(DIAG.dim)
        e[i] = h
        fd[:, i] = ((DIAG.gn_diag(th + e) - DIAG.gn_diag(th - e)) * c).sum(axis=1) / (2 * h)
    np.testing.assert_allclose(DIAG.gn_diag_vjp(th, c), fd, rtol=1e-7, atol=1e-9)
    assert family("diagonal").make(n=10, d=20, k=2, seed=1).data_arrays().keys() == DIAG.data_arrays().keys()
    with pytest.raises(DiagsimError, match="unknown model family 'nope'; known: .*diagonal"):
        family("nope")


# --------------------------------------------------------------------------- (a) discrete: generic vs kernel
def _rounding_tol(k: int, scale: float) -> float:
    """Both steppers evaluate the same formulas in another order (BLAS vs loops, FMA contraction): each step
    differs by a few ulp of the state; over k steps of a non-expanding map the difference grows at most
    linearly, so 64 k eps |theta| bounds it."""
    return 64 * k * EPS * scale


@pytest.mark.parametrize("opt", [SGD(lr=0.01, noise=LabelNoise(0.5)), Adam(lr=0.01, noise=LabelNoise(0.5, "gaussian")),
                                 AdamMini(lr=0.01, beta2=0.99), SignSGD(lr=0.001), SGD(lr=0.01, noise=Minibatch(3))],
                         ids=lambda o: f"{o.name}-{o.noise.kind}")
def test_generic_discrete_reproduces_the_diagonal_kernel(opt):
    K, M = 200, 3
    out = []
    for make in (diagonal_discrete, generic_discrete):
        st = make(DIAG, opt, seed=3)
        s = st.init_state(DIAG.theta0(M))
        st.advance(s, np.array([0, 5, 2]), 0, K, np.ones(M, bool))
        out.append(s)
    for key in out[0]:
        scale = 1.0 + np.abs(out[0][key]).max()
        np.testing.assert_allclose(out[1][key], out[0][key], rtol=0, atol=_rounding_tol(K, scale), err_msg=key)


_LN = LabelNoise(0.5)
GRADIENT_FORMING = [SAM(lr=0.01, rho=0.05, variant=v, noise=_LN)
                    for v in ("sam", "usam", "asam", "fisher", "ssam-f", "ssam-d", "block", "rsam")] + [
    SAM(lr=0.01, rho=0.05, variant="block", block="v", noise=_LN),
    SAM(lr=0.01, rho=0.05, variant="msam", m_chunks=3, noise=_LN),
    SAM(lr=0.01, rho=0.05, variant="msam", m_chunks=2, noise=Minibatch(5)),
    SAM(lr=0.01, rho=0.05, variant="rsam", renyi_alpha=0.5, noise=Minibatch(4)),
    SAF(lr=0.01, noise=_LN), MESA(lr=0.01, noise=Minibatch(4))]


@pytest.mark.parametrize("opt", GRADIENT_FORMING,
                         ids=lambda o: f"{o.name}-{getattr(o, 'variant', '')}{getattr(o, 'block', '')}-{o.noise.kind}")
def test_generic_sam_saf_mesa_reproduce_the_diagonal_kernel(opt):
    """The SAM family, SAF and MESA formed from the model's products (generic stepper) against the Numba kernel
    on the same noise, state slots included; and the check has teeth: SGD with the same noise ends further
    from the kernel's SAM / SAF / MESA paths than 100 times the tolerance."""
    K, M = 200, 3
    paths = np.array([0, 5, 2])
    out = []
    sgd = SGD(lr=0.01, noise=opt.noise)
    for make, o in ((diagonal_discrete, opt), (generic_discrete, opt), (diagonal_discrete, sgd)):
        st = make(DIAG, o, seed=3)
        s = st.init_state(DIAG.theta0(M))
        act = np.ones(M, bool)
        st.advance(s, paths, 0, K, act)
        assert act.all()
        out.append(s)
    for key in out[0]:
        tol = _rounding_tol(K, 1.0 + np.abs(out[0][key]).max())
        np.testing.assert_allclose(out[1][key], out[0][key], rtol=0, atol=tol, err_msg=key)
    assert np.abs(out[2]["theta"] - out[0]["theta"]).max() > 100 * _rounding_tol(K, 1.0 + np.abs(out[0]["theta"]).max())


MATRIX = None


def _matrix():
    global MATRIX
    if MATRIX is None:
        from diagsim import make_matrix_problem
        MATRIX = make_matrix_problem(4, rank=1, n=12)
    return MATRIX


@pytest.mark.parametrize("opt", [o for o in GRADIENT_FORMING if getattr(o, "variant", "") != "block"],
                         ids=lambda o: f"{o.name}-{getattr(o, 'variant', '')}-{o.noise.kind}")
def test_generic_sam_saf_mesa_on_a_matrix_problem(opt):
    """Every gradient-forming optimizer but 'block' runs on a matrix problem: finite, decreasing loss; SAM with
    rho = 0 is SGD bit for bit (eps = 0 * g, the gradient at theta + 0 is the same product)."""
    P = _matrix()
    opt = dataclasses.replace(opt, lr=0.05)
    st = generic_discrete(P, opt, seed=3)
    s = st.init_state(P.theta0(3))
    act = np.ones(3, bool)
    st.advance(s, np.arange(3), 0, 100, act)
    assert act.all() and all(np.isfinite(v).all() for v in s.values())
    assert (P.loss(s["theta"]) < 0.5 * P.loss(P.theta0(1))).all()
    if isinstance(opt, SAM):
        runs = []
        sam0 = SAM(lr=0.05, rho=0.0, variant=opt.variant, m_chunks=1, noise=opt.noise)  # m-SAM: one chunk
        for o in (sam0, SGD(lr=0.05, noise=opt.noise)):
            st = generic_discrete(P, o, seed=3)
            s = st.init_state(P.theta0(3))
            st.advance(s, np.arange(3), 0, 50, np.ones(3, bool))
            runs.append(s["theta"])
        np.testing.assert_array_equal(runs[0], runs[1])


def test_generic_sam_one_step_against_the_gradient():
    """One noiseless SAM step on a matrix problem against its definition written with problem.gradient:
    theta1 = theta0 - lr grad L(theta0 + rho g / |g|), g = grad L(theta0); and an m-SAM step with one chunk
    per sample (1-SAM) against the per-sample definition."""
    P = _matrix()
    rng = np.random.default_rng(0)
    th0 = P.theta0(1) + 0.3 * rng.standard_normal((1, P.dim))
    lr, rho = 0.05, 0.1
    g = P.gradient(th0)
    ref = th0 - lr * P.gradient(th0 + rho * g / np.linalg.norm(g))
    st = generic_discrete(P, SAM(lr=lr, rho=rho, noise=NoNoise()), seed=0)
    s = st.init_state(th0)
    st.advance(s, np.array([0]), 0, 1, np.ones(1, bool))
    np.testing.assert_allclose(s["theta"], ref, rtol=0, atol=64 * EPS * (1 + np.abs(ref).max()))
    r = P.residual(th0)
    grad = np.zeros_like(th0)
    for j in range(P.n):
        e = np.zeros((1, P.n))
        e[0, j] = 1.0
        gj = P.vjp(th0, e * r)  # the gradient of the sample loss r_j^2 / 2
        tj = th0 + rho * gj / np.linalg.norm(gj)
        grad += P.vjp(tj, e * P.residual(tj)) / P.n
    st = generic_discrete(P, SAM(lr=lr, rho=rho, variant="msam", m_chunks=P.n, noise=NoNoise()), seed=0)
    s = st.init_state(th0)
    st.advance(s, np.array([0]), 0, 1, np.ones(1, bool))
    np.testing.assert_allclose(s["theta"], th0 - lr * grad, rtol=0, atol=64 * EPS * (1 + np.abs(th0).max()))


def test_generic_saf_and_mesa_two_steps_against_their_definitions():
    """Two noiseless steps of SAF (delay 1) and MESA on a matrix problem against their definitions written with
    problem.gradient / vjp: step 1 adds 2 lam_tra J^T (f(theta_1) - fhat) / n, fhat = f(theta_0) (SAF) or
    f(ema_1), ema_1 = beta theta_0 + (1 - beta) theta_1 (MESA); step 0's trajectory term is zero."""
    P = _matrix()
    rng = np.random.default_rng(1)
    th0 = P.theta0(1) + 0.3 * rng.standard_normal((1, P.dim))
    lr, lam, beta = 0.05, 0.3, 0.9
    th1 = th0 - lr * P.gradient(th0)
    for opt, fhat_of in ((SAF(lr=lr, lam_tra=lam, delay=1, noise=NoNoise()), lambda: P.predict(th0)),
                         (MESA(lr=lr, lam_tra=lam, beta_ema=beta, noise=NoNoise()),
                          lambda: P.predict(beta * th0 + (1 - beta) * th1))):
        ref = th1 - lr * (P.gradient(th1) + 2 * lam * P.vjp(th1, P.predict(th1) - fhat_of()) / P.n)
        st = generic_discrete(P, opt, seed=0)
        s = st.init_state(th0)
        st.advance(s, np.array([0]), 0, 2, np.ones(1, bool))
        np.testing.assert_allclose(s["theta"], ref, rtol=0, atol=256 * EPS * (1 + np.abs(ref).max()), err_msg=opt.name)
        assert np.abs(ref - (th1 - lr * P.gradient(th1))).max() > 1e6 * EPS  # the trajectory term matters


def test_simulate_dispatches_and_records_through_the_model():
    """simulate on the wrapped diagonal problem (generic steppers, model records) against the fast path."""
    opt = SGD(lr=0.01)
    a = simulate(DIAG, opt, steps=100, n_paths=2, seed=2, progress=False)
    b = simulate(Wrapped(DIAG), opt, steps=100, n_paths=2, seed=2, progress=False)
    assert b.config["stepper"]["engine"] == "generic (model products)" and b.family == "wrapped-diagonal"
    assert "engine" not in a.config["stepper"] and "family" not in a.config["problem"]
    tol = _rounding_tol(100, 1.0 + np.abs(a.theta).max())
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=tol)
    for key in ("train_loss", "trace_h", "trace_sqrt_diag_h", "trace_sqrt_diag_gn", "l1", "support", "test_loss"):
        np.testing.assert_allclose(b.records[key], a.records[key], rtol=1e-9, atol=1e-12, err_msg=key)


# --------------------------------------------------------------------------- (b) SDE, (c) slow flow
@pytest.mark.parametrize("opt, opts", [(SGD(lr=0.01), {"dt": 0.0025}),
                                       (Adam(lr=0.01, beta2=0.9999), {"dt": 0.0025, "v0": "target"}),
                                       (AdamMini(lr=0.01, beta2=0.9999), {"dt": 0.0025, "v0": 1e-3})],
                         ids=["sgd", "adam", "adam-mini"])
def test_generic_sde_follows_the_diagonal_sde_on_the_same_brownian_path(opt, opts):
    K = 300
    a = simulate(DIAG, opt, steps=K, n_paths=3, seed=4, model="sde", model_options=opts, progress=False)
    b = simulate(Wrapped(DIAG), opt, steps=K, n_paths=3, seed=4, model="sde", model_options=opts, progress=False)
    assert b.config["stepper"]["model"] == a.config["stepper"]["model"]
    for key in a.final:
        np.testing.assert_allclose(b.final[key], a.final[key], rtol=0,
                                   atol=_rounding_tol(K, 1.0 + np.abs(a.final[key]).max()), err_msg=key)


@pytest.mark.parametrize("opt, opts, steps", [(SGD(lr=0.01), {"dtau": 0.01, "kappa": 1e9}, 5),
                                              (Adam(lr=0.01), {"dtau": 1e-4, "kappa": 1e9}, 5)], ids=["sgd", "adam"])
def test_generic_slow_flow_follows_the_diagonal_slow_flow(opt, opts, steps):
    """Gamma from the model's products (n x n Gram from vjp) against the closed forms: the same flow to
    rounding (Newton retractions converge to 1e-12 of |y|, so the paths agree far below the flow's motion).
    kappa is large so that both take one Heun step per dtau (their substep rules differ: per coordinate on
    the diagonal family, relative to the whole state on the others)."""
    a = simulate(DIAG, opt, steps=steps, model="slow-flow", model_options=opts, progress=False)
    b = simulate(Wrapped(DIAG), opt, steps=steps, model="slow-flow", model_options=opts, progress=False)
    moved = np.abs(a.theta - DIAG.theta0(1)).max()
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=1e-9 * moved)
    np.testing.assert_allclose(b.records["trace_h"], a.records["trace_h"], rtol=1e-9)


# --------------------------------------------------------------------------- (d) toys with closed forms
def test_gd_on_a_linear_model_is_its_closed_form():
    toy = make_linear()
    lr, K = 0.1, 150
    res = simulate(toy, GD(lr=lr), steps=K, progress=False)
    want = toy.gd_iterate(lr, K)
    np.testing.assert_allclose(res.theta[0], want, rtol=0, atol=_rounding_tol(K, 1 + np.abs(want).max()))
    # records: the loss of the closed form, the model's observables and Hessian traces (constant: J = X)
    r = toy.X @ want - toy.y
    assert res.final_observables["train_loss"][0] == pytest.approx(0.5 * r @ r / toy.n, rel=1e-8, abs=1e-15)
    assert res.final_observables["norm"][0] == pytest.approx(np.linalg.norm(want), rel=1e-12)
    assert res.final_observables["trace_h"][0] == pytest.approx((toy.X ** 2).sum() / toy.n, rel=1e-12)
    assert np.isnan(res.final_observables["test_loss"][0])


def test_gradient_flow_sde_on_a_linear_model_is_its_closed_form():
    toy = make_linear()
    dt, K = 0.05, 200
    res = simulate(toy, GD(lr=0.1), steps=K, model="sde", model_options={"dt": dt}, progress=False)
    want = toy.gd_iterate(dt, K)  # Euler on d theta = -H (theta - theta_inf) dt
    np.testing.assert_allclose(res.theta[0], want, rtol=0, atol=_rounding_tol(K, 1 + np.abs(want).max()))


def test_label_noise_on_a_linear_model_mean_and_null_space():
    """With f = X theta the label noise is additive and zero-mean: E theta_k is GD's iterate (discrete SGD)
    and Euler's iterate (the SDE), within 4 standard errors; and the noise J^T xi = X^T xi never leaves the
    row space of X, so the null-space component of theta stays that of theta_0 (to rounding)."""
    toy = make_linear()
    M = 400
    X = toy.X
    null = np.eye(toy.dim) - X.T @ np.linalg.solve(X @ X.T, X)
    for model, opts, lr, K, step in [("discrete", {}, 0.05, 60, 0.05), ("sde", {"dt": 0.025}, 0.05, 80, 0.025)]:
        res = simulate(toy, SGD(lr=lr, noise=LabelNoise(1.0)), steps=K, n_paths=M, seed=9, model=model,
                       model_options=opts, progress=False)
        th = res.theta
        mean, se = th.mean(axis=0), th.std(axis=0, ddof=1) / np.sqrt(M)
        want = toy.gd_iterate(step, K)
        assert np.all(se > 0)
        assert np.all(np.abs(mean - want) < 4 * se), (model, (mean - want) / se)
        drift = (th - toy.init) @ null.T
        assert np.abs(drift).max() < 1e-12, model


@pytest.mark.parametrize("opt", [SGD(lr=0.01, noise=LabelNoise(1.0)), Adam(lr=0.01, noise=LabelNoise(1.0))],
                         ids=["sgd", "adam"])
def test_slow_flow_on_a_scalar_factorization_reaches_the_flattest_minimizer(opt):
    """On Gamma = {a b = w*} both SGD's measure s (a^2 + b^2) and Adam's sqrt(s) (|a| + |b|) are minimal at
    a = b = sqrt(w*); the flow starts at the gradient-flow limit of (0.1, 0.3), where a^2 - b^2 = -0.08
    (conserved by gradient flow), and must end at (sqrt(w*), sqrt(w*))."""
    toy = ScalarFactorization([1.0, -0.5, 2.0], 1.5, [0.1, 0.3])
    res = simulate(toy, opt, steps=40, model="slow-flow", model_options={"dtau": 2.0}, record=[0, 40],
                   progress=False)
    assert res.config["stepper"]["start_used"] == "gradient-flow"
    assert res.records["trace_h"][-1, 0] < res.records["trace_h"][0, 0]
    np.testing.assert_allclose(res.theta[0], np.sqrt(1.5) * np.ones(2), rtol=1e-6)


def test_gradient_flow_limit_of_the_scalar_factorization_conserves_the_balance():
    from diagsim.slowflow import gradient_flow_limit
    toy = ScalarFactorization([1.0, -0.5, 2.0], 1.5, [0.1, 0.3])
    z = gradient_flow_limit(toy, toy.theta0(1))[0]
    q = -0.08  # a^2 - b^2 at the start; with a b = 1.5: a^2 = (q + sqrt(q^2 + 4 w*^2)) / 2
    a2 = 0.5 * (q + np.sqrt(q * q + 4 * 1.5 ** 2))
    np.testing.assert_allclose(z, [np.sqrt(a2), np.sqrt(a2 - q)], rtol=1e-8)


# --------------------------------------------------------------------------- results, checkpoints, CLI
def test_result_save_load_and_checkpoint_of_a_model_run(tmp_path):
    toy = make_linear()
    ck = tmp_path / "run.ckpt.npz"
    res = simulate(toy, SGD(lr=0.05), steps=40, n_paths=2, seed=1, checkpoint=ck, progress=False)
    assert res.config["problem"]["family"] == "toy-linear"
    path = res.save(tmp_path / "res.npz")
    back = load_result(path)
    np.testing.assert_array_equal(back.theta, res.theta)
    assert back.summary()["family"] == "toy-linear" and "w_mean" not in back.summary()
    with pytest.raises(DiagsimError, match="Result.w is the diagonal network's"):
        _ = back.w
    again = resume(ck, problem=toy)
    np.testing.assert_array_equal(again.theta, res.theta)
    np.testing.assert_array_equal(again.records["train_loss"], res.records["train_loss"])
    with pytest.raises(DiagsimError, match="model family 'toy-linear': pass its problem"):
        resume(ck)
    other = make_linear(seed=1)
    with pytest.raises(DiagsimError, match="other data"):
        resume(ck, problem=other)


def test_cli_model_family_and_data(tmp_path, capsys):
    argv = ["simulate", "--model-family", "toy-linear", "--family-option", "n=3", "--family-option", "P=5",
            "--seed", "2", "--optimizer", "gd", "--lr", "0.1", "--steps", "30", "--json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    res = simulate(make_linear(3, 5, 2), GD(lr=0.1), steps=30, progress=False)
    assert out["train_loss"] == res.summary()["train_loss"] and out["family"] == "toy-linear"
    toy = make_linear(3, 5, 2)
    data = tmp_path / "d.npz"
    np.savez(data, **toy.data_arrays())
    assert main(["simulate", "--model-family", "toy-linear", "--data", str(data), "--optimizer", "gd", "--lr", "0.1",
                 "--steps", "30", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["train_loss"] == out["train_loss"]
    # without --model-family: a file without Z goes to the family whose loader reads it
    assert main(["simulate", "--data", str(data), "--optimizer", "gd", "--lr", "0.1", "--steps", "30", "--json",
                 "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["train_loss"] == out["train_loss"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, q=np.zeros(3))
    assert main(["simulate", "--data", str(bad), "--steps", "2", "--quiet"]) == 2
    assert "no other model family reads it" in capsys.readouterr().err
    assert main(argv[:-2] + ["--quiet"]) == 0  # the text summary
    assert "norm" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--model-family", "toy-linear", "--d", "5"], "--d belong to the diagonal family"),
    (["--model-family", "toy-linear", "--family-option", "q=1"], "has no option 'q'; its options: n, P, seed"),
    (["--model-family", "nope"], "unknown model family 'nope'"),
    (["--family-option", "n=3"], "--family-option applies to the other model families"),
])
def test_cli_model_family_errors(argv, match, capsys):
    assert main(["simulate", "--steps", "2", "--quiet", *argv]) == 2
    assert match in capsys.readouterr().err


# --------------------------------------------------------------------------- (e) bad input
def test_bad_input_is_one_line_errors():
    toy = make_linear()
    with pytest.raises(DiagsimError, match="SAM variant 'block' perturbs the diagonal network's u or v block and "
                                           "runs on the diagonal family only; got model family 'toy-linear'"):
        simulate(toy, SAM(lr=0.01, variant="block"), steps=1)
    with pytest.raises(DiagsimError, match="momentum SDE runs on the diagonal family only"):
        simulate(toy, Adam(lr=0.01), steps=1, model="sde", model_options={"variant": "momentum", "dt": 0.01})
    with pytest.raises(DiagsimError, match="device='cuda' runs the diagonal family only"):
        simulate(toy, SGD(lr=0.01), steps=1, device="cuda")
    with pytest.raises(DiagsimError, match="problem must be a diagsim model problem"):
        simulate(object(), SGD(lr=0.01), steps=1)
    with pytest.raises(DiagsimError, match="theta0 must have shape"):
        simulate(toy, SGD(lr=0.01), steps=1, theta0=np.zeros(3))
    with pytest.raises(DiagsimError, match="GD without label noise has no slow flow|gd without"):
        simulate(toy, GD(lr=0.01), steps=1, model="slow-flow")


def test_slow_flow_from_a_given_start_point_far_from_the_problems_theta0():
    """start='given' with theta0 on Gamma, while problem.theta0 is far from it (planning once measured the
    state at problem.theta0 and refused the run)."""
    from diagsim.slowflow import gradient_flow_limit
    toy = ScalarFactorization([1.0, -0.5, 2.0], 1.5, [0.1, 0.3])
    z = gradient_flow_limit(toy, toy.theta0(1))
    res = simulate(toy, SGD(lr=0.01, noise=LabelNoise(1.0)), steps=1, model="slow-flow", theta0=z,
                   model_options={"dtau": 0.1, "start": "given"}, progress=False)
    assert res.config["stepper"]["start_used"] == "given"
    assert abs(res.theta[0, 0] * res.theta[0, 1] - 1.5) < 1e-10


def test_an_interrupted_model_run_resumes_bit_for_bit(tmp_path):
    """A run stopped after its checkpoint at step 20 and resumed ends exactly where the uninterrupted run does
    (the noise depends only on (seed, path, step))."""
    toy = make_linear()
    opt = Adam(lr=0.01, noise=LabelNoise(0.5))
    ck = tmp_path / "run.ckpt.npz"

    class Stop(Exception):
        pass

    def stop(step, state):
        if step > 20:
            raise Stop

    with pytest.raises(Stop):
        simulate(toy, opt, steps=40, n_paths=2, seed=1, checkpoint=ck, checkpoint_every=20, callback=stop,
                 progress=False)
    res = resume(ck, problem=toy)
    full = simulate(toy, opt, steps=40, n_paths=2, seed=1, progress=False)
    assert res.info["resumed_from_step"] == 20
    for key in full.final:
        np.testing.assert_array_equal(res.final[key], full.final[key])
    for key in full.records:
        np.testing.assert_array_equal(res.records[key], full.records[key])
