"""Slow flows on the manifold of minimizers: vector fields against dense NumPy / finite differences, the
Lyapunov property, staying on Gamma, the c-scalings, finite-time extinction, start points and errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize

from diagsim.errors import DiagsimError
from diagsim.networks.diagonal.derivatives import hessian, jacobian
from diagsim.networks.diagonal.manifold import residual_norm
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import GD, SAM, SGD, Adalayer, Adam, AdamMini, LabelNoise, Minibatch
from diagsim.slowflow import SlowFlow, gradient_flow_limit, make_stepper

P = make_problem(5, 12, 2, teacher="ones", init="constant", alpha=0.3, seed=0, support=range(2))


@pytest.fixture(scope="module")
def zeta():
    """Two points of Gamma: the gradient-flow limit and a second one from a perturbed start."""
    th0 = P.theta0(2)
    th0[1] *= np.linspace(0.7, 1.3, P.dim)
    return gradient_flow_limit(P, th0)


def dense_projection(J, S=None):
    """I - S J^T (J S J^T)^-1 J for one point (S=None: orthogonal)."""
    S = np.ones(J.shape[1]) if S is None else S
    SJt = S[:, None] * J.T
    return np.eye(J.shape[1]) - SJt @ np.linalg.solve(J @ SJt, J)


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def test_gradient_flow_limit_is_woodworths_minimizer():
    """Gradient flow from u = v = a: w_inf = argmin sum a^2 q(w / a^2) s.t. Z w = y,
    q(z) = 2 - sqrt(4 + z^2) + z asinh(z/2) (Woodworth et al. 2020)."""
    a2 = P.alpha ** 2
    z = gradient_flow_limit(P, P.theta0(1))
    w_gf = P.w(z)[0]

    def Q(w):
        x = w / a2
        return a2 * np.sum(2 - np.sqrt(4 + x * x) + x * np.arcsinh(x / 2))

    res = minimize(Q, np.linalg.lstsq(P.Z, P.y, rcond=None)[0], jac=lambda w: np.arcsinh(w / a2 / 2),
                   constraints={"type": "eq", "fun": lambda w: P.Z @ w - P.y, "jac": lambda w: P.Z},
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    assert res.success
    np.testing.assert_allclose(w_gf, res.x, atol=2e-6)
    assert residual_norm(P, z)[0] < 1e-10


def test_sgd_velocity_is_projected_gradient_of_trace_hessian(zeta):
    c = 0.5 ** 2 / P.n
    flow = SlowFlow(P, c)
    vel, _ = flow.velocity(zeta)
    for p in range(2):
        J = jacobian(P, zeta[p:p + 1])[0]
        g = fd_grad(lambda x: np.trace(hessian(P, x[None])[0]), zeta[p])
        np.testing.assert_allclose(vel[p], -(c / 4) * dense_projection(J) @ g, rtol=1e-6, atol=1e-8)
        assert np.abs(J @ vel[p]).max() < 1e-10


@pytest.mark.parametrize("blocks", [None, "uv"])
def test_adaptive_velocity_is_the_oblique_semi_gradient(zeta, blocks):
    c = 0.3 ** 2 / P.n
    bl = None if blocks is None else np.repeat([0, 1], P.d)
    flow = SlowFlow(P, c, lam=0.5, eps=1e-3, blocks=bl)
    vel, _ = flow.velocity(zeta)
    for p in range(2):
        # S from v = c diag H (block means), built here from the dense Hessian
        h = np.diag(hessian(P, zeta[p:p + 1])[0])
        v = c * h if bl is None else np.array([c * h[bl == b].mean() for b in (0, 1)])[bl]
        S = 1 / (np.sqrt(v) + 1e-3)
        J = jacobian(P, zeta[p:p + 1])[0]
        g = fd_grad(lambda x: np.trace(S[:, None] * hessian(P, x[None])[0]), zeta[p])
        np.testing.assert_allclose(vel[p], -(c / 4) * dense_projection(J, S) @ (S * g), rtol=1e-6, atol=1e-8)
        assert np.abs(J @ vel[p]).max() < 1e-10


@pytest.mark.parametrize("lam,eps,blocks", [(0.0, 0.0, None), (0.5, 0.0, None), (0.5, 1e-2, None),
                                            (0.3, 0.0, None), (0.5, 0.0, "uv"), (0.5, 1e-2, "thirds")])
def test_potential_is_the_lyapunov_function(zeta, lam, eps, blocks):
    """The semi-gradient is the gradient of Phi (finite differences), so dPhi/dtau = g . vel <= 0."""
    c = 0.02
    bl = {None: None, "uv": np.repeat([0, 1], P.d), "thirds": np.arange(P.dim) % 3}[blocks]
    flow = SlowFlow(P, c, lam=lam, eps=eps, blocks=bl)
    for p in range(2):
        x = zeta[p:p + 1]
        g = flow.semi_gradient(x, flow.preconditioner(x))[0]
        np.testing.assert_allclose(g, fd_grad(lambda y: flow.potential(y[None])[0], x[0], 1e-7), rtol=1e-5,
                                   atol=1e-7)
        vel, _ = flow.velocity(x)
        assert g @ vel[0] < 0


def run(stepper, theta0, n_steps, record=None):
    s = stepper.init_state(theta0)
    act = np.ones(theta0.shape[0], bool)
    out = [record(s)] if record else []
    for k in range(n_steps):
        stepper.advance(s, np.arange(theta0.shape[0]), k, 1, act)
        assert act.all()
        assert residual_norm(P, s["theta"]).max() < 1e-10
        if record:
            out.append(record(s))
    return s, np.array(out)


@pytest.mark.parametrize("opt,kw,name", [
    (SGD(lr=0.01, noise=LabelNoise(0.5)), {}, "tr H"),
    (Adam(lr=0.01, noise=LabelNoise(0.5)), {"eps": 0.0}, "tr diag(H)^1/2"),
    (Adam(lr=0.01, noise=LabelNoise(0.5), lam=0.3), {"eps": 0.0}, "tr diag(H)^0.7"),
    (AdamMini(lr=0.01, noise=LabelNoise(0.5)), {"eps": 0.0}, "sum_b sqrt(|b| tr H_bb)"),
])
def test_measure_non_increasing_and_on_gamma(zeta, opt, kw, name):
    st = make_stepper(P, opt, start="given", dtau=0.05 if isinstance(opt, SGD) else 0.002, **kw)
    _, m = run(st, zeta, 30, lambda s: st.measure(s))
    d = np.diff(m, axis=0)
    print(name, m[0], m[-1], d.max())
    assert np.all(d <= 1e-12 * m[:-1])
    assert np.all(m[-1] < m[0])
    if isinstance(opt, SGD):   # tr H on Gamma: 4 sum s (u^2 + v^2) (docs/theory.md §3.4)
        u, v = st_theta(st, zeta)
        want = 4 * ((u ** 2 + v ** 2) * P.s).sum(axis=1)
        np.testing.assert_allclose(st.flow.measure(zeta), want, rtol=1e-12)


def st_theta(st, th):
    return th[:, :P.d], th[:, P.d:]


def test_adam_flow_does_not_depend_on_label_noise(zeta):
    a = make_stepper(P, Adam(lr=0.01, noise=LabelNoise(0.2)), eps=0.0, dtau=0.002)
    b = make_stepper(P, Adam(lr=0.01, noise=LabelNoise(3.0)), eps=0.0, dtau=0.002)
    sa, _ = run(a, zeta, 10)
    sb, _ = run(b, zeta, 10)
    assert np.abs(sa["theta"] - zeta).max() > 1e-3   # it moved
    np.testing.assert_allclose(sa["theta"], sb["theta"], rtol=1e-9, atol=1e-12)


def test_sgd_flow_speed_scales_with_c(zeta):
    """c = delta^2/n: doubling delta makes the flow 4x faster in tau."""
    a = make_stepper(P, SGD(lr=0.01, noise=LabelNoise(0.5)), dtau=0.08)
    b = make_stepper(P, SGD(lr=0.01, noise=LabelNoise(1.0)), dtau=0.02)
    sa, _ = run(a, zeta, 10)
    sb, _ = run(b, zeta, 10)
    assert np.abs(sa["theta"] - zeta).max() > 1e-3
    np.testing.assert_allclose(sa["theta"], sb["theta"], rtol=1e-9, atol=1e-12)
    assert a.dt == pytest.approx(0.08 / 0.01) and a.config()["dtau"] == 0.08


def test_adam_zeroes_coordinates_in_finite_time_sgd_does_not(zeta):
    z = zeta[:1]
    ad = make_stepper(P, Adam(lr=0.01, noise=LabelNoise(0.5)), eps=0.0, dtau=0.01)
    sg = make_stepper(P, SGD(lr=0.01, noise=LabelNoise(0.5)), dtau=0.5)
    s_ad, _ = run(ad, z, 40)
    s_sg, _ = run(sg, z, 40)
    assert (s_ad["theta"] == 0).sum() > 0
    assert (s_sg["theta"] == 0).sum() == 0
    # under SGD the smallest coordinates still shrink (exponentially): a monotone decrease
    assert np.abs(s_sg["theta"]).min() < np.abs(z).min()


def test_v_ode_with_fast_relaxation_approaches_quasi_static(zeta):
    """dv/dtau = C (c diag H - v): the lag of v behind c diag H is O(1/C), so the flow with v following its
    ODE converges to the quasi-static one like 1/C."""
    z = zeta[:1]
    qs = make_stepper(P, Adam(lr=1e-4, noise=LabelNoise(0.5)), eps=1e-4, dtau=0.002)
    s_qs, _ = run(qs, z, 5)
    diffs = []
    for C in (2e3, 2e4, 2e5):
        st = make_stepper(P, Adam(lr=1e-4, noise=LabelNoise(0.5), beta2=1 - C * 1e-8), eps=1e-4, v="ode",
                          dtau=0.002)
        assert st.flow.C == pytest.approx(C) and st.config()["v0"] == "quasi-static"
        s, _ = run(st, z, 5)
        diffs.append(np.abs(s["theta"] - s_qs["theta"]).max())
    print("max |theta_ode - theta_quasi-static| for C = 2e3, 2e4, 2e5:", diffs)
    assert diffs[0] > diffs[1] > diffs[2]
    assert diffs[2] < 0.2 * diffs[0] / 10    # at least ~1/C (up to a factor 2 per decade... twice)


def test_start_point_must_be_near_gamma():
    st = make_stepper(P, SGD(lr=0.01, noise=LabelNoise(0.5)), dtau=0.01, start="given")
    with pytest.raises(DiagsimError, match="not near the manifold"):
        st.init_state(P.theta0(1))
    st = make_stepper(P, SGD(lr=0.01, noise=LabelNoise(0.5)), dtau=0.01, start="gradient-flow")
    s = st.init_state(P.theta0(1))
    assert residual_norm(P, s["theta"])[0] < 1e-10
    assert st.config()["start_used"] == "gradient-flow"


def test_auto_start_chooses_given_on_gamma_and_gradient_flow_off_it():
    opt = SGD(lr=0.01, noise=LabelNoise(0.5))
    th0 = P.theta0(2)
    assert residual_norm(P, th0).max() > 1e-3        # the problem's init is far from Gamma
    auto = make_stepper(P, opt, dtau=0.01)
    assert auto.config()["start"] == "auto"
    s_auto = auto.init_state(th0)
    s_gf = make_stepper(P, opt, dtau=0.01, start="gradient-flow").init_state(th0)
    np.testing.assert_array_equal(s_auto["theta"], s_gf["theta"])
    assert auto.config()["start_used"] == "gradient-flow"
    # from a point of Gamma (plus a perturbation below max_start_residual) "auto" is "given"
    on = s_gf["theta"] + 1e-6
    assert residual_norm(P, on).max() <= 1e-3
    s_auto = auto.init_state(on)
    s_given = make_stepper(P, opt, dtau=0.01, start="given").init_state(on)
    np.testing.assert_array_equal(s_auto["theta"], s_given["theta"])
    cfg = auto.config()
    json.dumps(cfg)
    assert cfg["start"] == "auto" and cfg["start_used"] == "given"


def test_simulate_slow_flow_from_problem_theta0_by_default():
    from diagsim import simulate
    opt = SGD(lr=0.01, noise=LabelNoise(0.5))
    res = simulate(P, opt, model="slow-flow", n_paths=1, steps=2, model_options={"dtau": 0.01})
    assert res.config["stepper"]["start_used"] == "gradient-flow"
    ref = make_stepper(P, opt, dtau=0.01, start="gradient-flow")
    s = ref.init_state(P.theta0(1))
    ref.advance(s, np.arange(1), 0, 2, np.ones(1, bool))
    np.testing.assert_array_equal(res.final["theta"], s["theta"])


def test_auto_dtau_and_config():
    st = make_stepper(P, SGD(lr=0.01, noise=LabelNoise(0.5)), start="gradient-flow")
    assert st.dtau > 0 and st.dt == pytest.approx(st.dtau / 0.01)
    cfg = st.config()
    json.dumps(cfg)
    assert cfg["level"] == "slow-flow" and cfg["model"] == "sgd-slow-flow"
    st = make_stepper(P, Adalayer(lr=0.01, noise=LabelNoise(0.5)), start="gradient-flow", dtau=0.01)
    assert st.config()["params"]["blocks"][:2] == [0, 0]
    s = st.init_state(P.theta0(2))
    assert st.preconditioner_stats(s)["precond_mean"].shape == (2,)


@pytest.mark.parametrize("opt,match", [
    (GD(lr=0.1), "no slow flow"),
    (SGD(lr=0.1, noise=LabelNoise(0.0)), "no slow flow"),
    (SGD(lr=0.1, noise=Minibatch(2)), "minibatch"),
    (SAM(lr=0.1), "has no continuous model .* for optimizer 'sam'; "
                  "it covers gd, sgd, adam, rmsprop, adam-mini, adalayer"),
    (Adam(lr=0.1, bias_correction=True), "bias_correction"),
])
def test_no_slow_flow(opt, match):
    with pytest.raises(DiagsimError, match=match):
        make_stepper(P, opt, v="ode", dtau=0.1)


@pytest.mark.parametrize("method,order", [("heun", 2), ("euler", 1)])
def test_flow_integrator_order(zeta, method, order):
    """Errors at tau = 0.4 against a fine Heun reference shrink like dtau^order (the retraction keeps it)."""
    z = zeta[:1]
    opt = SGD(lr=0.01, noise=LabelNoise(1.0))

    def at(dtau, m):
        st = make_stepper(P, opt, dtau=dtau, method=m, kappa=10.0)   # kappa large: no extra substeps
        s, _ = run(st, z, int(round(0.4 / dtau)))
        return s["theta"][0]

    ref = at(0.4 / 256, "heun")
    dts = [0.4 / 8, 0.4 / 16, 0.4 / 32]
    errs = [np.abs(at(h, method) - ref).max() for h in dts]
    from diagsim.sde.convergence import log_slope
    print(method, errs, log_slope(dts, errs))
    assert abs(log_slope(dts, errs) - order) < 0.2


def test_flow_rejects_a_substep_that_cannot_be_retracted(monkeypatch):
    """A stage that Newton cannot bring back onto Gamma is rejected and the substep retried with half its
    size; the run goes on as if the smaller substep had been chosen in the first place."""
    P = make_problem(10, 20, 2, alpha=0.1, seed=0)
    opt = Adam(lr=0.01, noise=LabelNoise(1.0), lam=0.25)
    z = np.asarray(gradient_flow_limit(P, P.theta0(1)[0])).reshape(1, -1)
    st = make_stepper(P, opt, dtau=0.02)
    real = st._stage
    sizes = []

    def failing_once(t_r, v_r, vel, dv, h):
        sizes.append(np.array(h, copy=True))
        if len(sizes) == 1:
            raise DiagsimError("stage could not be retracted")
        return real(t_r, v_r, vel, dv, h)

    monkeypatch.setattr(st, "_stage", failing_once)
    s = st.init_state(z)
    act = np.ones(1, bool)
    for k in range(3):
        st.advance(s, np.arange(1), k, 1, act)
    assert act.all() and st.rejected_substeps == 1
    np.testing.assert_array_equal(sizes[1], 0.5 * sizes[0])
    assert np.all(np.isfinite(s["theta"])) and residual_norm(P, s["theta"])[0] < 1e-8


def test_adame_quarter_flow_reaches_its_predicted_limit():
    """AdamE-1/4 with eps = 0 on this instance once produced a stage 1e11 off the manifold (a coordinate
    collapsing faster than the rate bound saw; on some CPUs the rejection above is what saves it): the
    flow reaches the predicted limit, the global weighted l_{3/4} minimizer."""
    from diagsim.predict import predict
    from diagsim.verify.flow_limits import converge
    P = make_problem(10, 20, 2, alpha=0.1, seed=0)
    opt = Adam(lr=0.01, noise=LabelNoise(1.0), lam=0.25)
    taus, W, th, tail, st = converge(P, opt, dtau=0.02, tau_first=5.0, tau_max=5120.0, tail_target=1e-8,
                                     adaptive=True)
    assert tail <= 1e-8
    assert np.abs(P.w(th[None])[0] - predict(P, "adame", lam=0.25).w).max() < 1e-8
