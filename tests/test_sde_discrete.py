"""Discrete SGD / Adam (plain NumPy, Rademacher label noise from ``diagsim.lowlevel.rng.signs``) versus their SDEs.

At t = lr k the weak error E phi(theta_k) - E phi(Theta_t) of the discrete optimizer against its SDE must
shrink roughly like lr (docs/theory.md §7.10). phi = the training loss at t = 0.4, during the descent.
The SDE side is Euler–Maruyama at dt = lr/4 and lr/2 on one Brownian path, combined by Richardson
extrapolation (2 E_{lr/4} - E_{lr/2}) so that its own O(dt) bias drops out. The slope of log|weak error|
against log lr has a bootstrap standard error (paths of both sides resampled); the assertion is that it
lies within 4 standard errors of [0.75, 1.25] ("roughly ∝ lr": the band allows the O(lr^2) terms at
lr * lambda_max <= 0.15). The diffusion is checked separately through the spread of w, tr Cov(w): for SGD
it equals the SDE's at the smallest lr (within 4 standard errors of the log ratio); for Adam with
beta1 = 0.9 the momentum colours the noise, and the log ratio must shrink roughly like lr.
"""
from __future__ import annotations

import numpy as np
import pytest

from diagsim.lowlevel import rng
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import SGD, Adam, LabelNoise
from diagsim.sde import make_stepper
from diagsim.sde.convergence import log_slope

P = make_problem(5, 10, 2, teacher="ones", init="constant", alpha=0.5, seed=0, support=range(2))
T = 0.4


def loss(th):
    u, v = th[:, :P.d], th[:, P.d:]
    r = (u * u - v * v) @ P.Z.T - P.y
    return 0.5 * np.mean(r * r, axis=1)


def noisy_grad(th, xi):
    """grad L - (1/n) J^T xi for "uu-vv" (NumPy)."""
    u, v = th[:, :P.d], th[:, P.d:]
    r = (u * u - v * v) @ P.Z.T - P.y - xi
    gw = r @ P.Z / P.n
    return np.concatenate([2 * u * gw, -2 * v * gw], axis=1)


def discrete(lr, delta, M, seed, adam=None):
    """theta after T / lr steps of SGD (adam=None) or Adam (adam = (beta1, beta2, eps, v0))."""
    K = int(round(T / lr))
    xi = rng.signs(seed, "label_noise", np.arange(M), K, P.n, scale=delta)
    th = P.theta0(M)
    if adam is not None:
        b1, b2, eps, v0 = adam
        m, v = np.zeros_like(th), np.full_like(th, v0)
    for k in range(K):
        g = noisy_grad(th, xi[:, k])
        if adam is None:
            th = th - lr * g
        else:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            th = th - lr * m / (np.sqrt(v) + eps)
    return th


def sde_pair(opt, M, seed, **kw):
    """Final theta of Euler–Maruyama at dt = lr/4 and lr/2 on the same Brownian paths."""
    out = []
    for dt in (opt.lr / 4, opt.lr / 2):
        st = make_stepper(P, opt, dt=dt, dt_base=opt.lr / 4, seed=seed, **kw)
        s = st.init_state(P.theta0(M))
        act = np.ones(M, bool)
        st.advance(s, np.arange(M), 0, int(round(T / dt)), act)
        assert act.all()
        out.append(s["theta"])
    return out


def weak_error_study(lrs, make_opt, M, adam_of=None, n_boot=200):
    """Weak error of the loss at each lr (and its log-log slope with bootstrap SE), and the log ratio of the
    spread tr Cov(w) of the discrete optimizer to that of the SDE at each lr (with bootstrap SEs)."""
    D, A, B, ratio_samples = [], [], [], []
    g = np.random.default_rng(0)
    draws = [(g.integers(0, M, M), g.integers(0, M, M)) for _ in range(n_boot)]
    allp = np.arange(M)
    for lr in lrs:
        opt = make_opt(lr)
        d_th = discrete(lr, opt.label_noise, M, 0, None if adam_of is None else adam_of(opt))
        a, b = sde_pair(opt, M, 1)
        D.append(loss(d_th))
        A.append(loss(a))
        B.append(loss(b))
        wD, wA = P.w(d_th), P.w(a)
        ratio_samples.append([np.log(wD[i].var(axis=0).sum() / wA[j].var(axis=0).sum())
                              for i, j in [(allp, allp)] + draws])
    D, A, B, R = np.array(D), np.array(A), np.array(B), np.array(ratio_samples)

    def errors(i, j):
        return D[:, i].mean(axis=1) - (2 * A[:, j] - B[:, j]).mean(axis=1)

    err = errors(allp, allp)
    boots = [log_slope(lrs, errors(i, j)) for i, j in draws]
    return {"err": err, "slope": log_slope(lrs, err), "se": float(np.std(boots, ddof=1)),
            "log_ratio": R[:, 0], "log_ratio_se": R[:, 1:].std(axis=1, ddof=1),
            "ratio_slope": log_slope(lrs, R[:, 0]),
            "ratio_slope_se": float(np.std([log_slope(lrs, R[:, 1 + q]) for q in range(n_boot)], ddof=1))}


def report(label, lrs, r):
    print(f"{label}: weak error / lr = {np.round(r['err'] / np.asarray(lrs), 4)}; slope {r['slope']:.3f} +- "
          f"{r['se']:.3f}; log tr Cov(w) ratio (discrete/SDE) = {np.round(r['log_ratio'], 4)} "
          f"+- {np.round(r['log_ratio_se'], 4)}")


def in_band(slope, se):
    return 0.75 - 4 * se <= slope <= 1.25 + 4 * se


def sgd(lr):
    return SGD(lr=lr, noise=LabelNoise(0.3))


def adam(lr):
    return Adam(lr=lr, noise=LabelNoise(1.0), beta1=0.9, beta2=1 - 20 * lr ** 2, eps=1e-8, v0=1.0)


def adam_params(opt):
    return (opt.beta1, opt.beta2, opt.eps, opt.v0)


def run_case(which, lrs, M):
    r = weak_error_study(lrs, sgd, M) if which == "sgd" else weak_error_study(lrs, adam, M, adam_params)
    report(which, lrs, r)
    assert in_band(r["slope"], r["se"]), (r["slope"], r["se"])
    if which == "sgd":
        # the label-noise SDE has SGD's gradient covariance: equal spread at the smallest lr
        assert abs(r["log_ratio"][-1]) <= 4 * r["log_ratio_se"][-1]
    else:
        # momentum (beta1 = 0.9) colours the noise: the spread differs at O(lr / (1 - beta1)), a
        # difference that must itself shrink roughly like lr
        assert np.all(r["log_ratio"] < 0)
        assert in_band(r["ratio_slope"], r["ratio_slope_se"]), (r["ratio_slope"], r["ratio_slope_se"])


@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_discrete_vs_sde_weak_error_is_order_lr(which):
    run_case(which, [0.02, 0.01, 0.005], 4000)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_discrete_vs_sde_weak_error_four_lrs_many_paths(which):
    run_case(which, [0.04, 0.02, 0.01, 0.005] if which == "sgd" else [0.02, 0.01, 0.005, 0.0025], 20000)
