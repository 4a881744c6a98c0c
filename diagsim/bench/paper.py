"""Paper-scale timing: Adam and label-noise SGD at d = 1000, n = 50, k = 3, M = 8 paths (docs/theory.md §5.8).

Each contestant runs ``cfg.n_steps`` steps of the discrete optimizer with Rademacher label noise
(delta = 0.5) from theta0 and the table reports seconds per ``cfg.per`` (10^6) steps, extrapolated
linearly from the timed steps (best of 2 after a warm-up). Contestants: diagsim's discrete stepper
(:func:`diagsim.optimizers.make_stepper`) and a plain NumPy loop over steps with the 8 paths batched into
GEMMs (NumPy Generator signs). Final losses are reported as a sanity check (both ensembles start at the
same theta0; they use different random streams, so only their scale is comparable).
"""
from __future__ import annotations

import time

import numpy as np

from .problems import PaperBench


def numpy_loop(cfg: PaperBench, opt: str, n_steps: int, seed: int = 1) -> np.ndarray:
    """Discrete SGD or Adam with label noise in plain NumPy; returns theta (M, 2d)."""
    prob = cfg.problem()
    Z, y, ZT = prob.Z, prob.y, prob.ZT
    n, d = prob.n, prob.d
    th = prob.theta0(cfg.M)
    U = np.ascontiguousarray(th[:, :d])
    V = np.ascontiguousarray(th[:, d:])
    gen = np.random.default_rng(seed)
    mu = np.zeros_like(U)
    mv = np.zeros_like(V)
    su = np.zeros_like(U)
    sv = np.zeros_like(V)
    b1, b2, eps = cfg.beta1, cfg.beta2, cfg.eps
    lr = cfg.adam_lr if opt == "adam" else cfg.sgd_lr
    for _ in range(n_steps):
        R = (U * U - V * V) @ ZT - y
        xi = cfg.label_noise * (2.0 * gen.integers(0, 2, size=R.shape) - 1.0)
        Q = ((R - xi) / n) @ Z
        gu = 2.0 * U * Q
        gv = -2.0 * V * Q
        if opt == "sgd":
            U -= lr * gu
            V -= lr * gv
        else:
            mu = b1 * mu + (1 - b1) * gu
            mv = b1 * mv + (1 - b1) * gv
            su = b2 * su + (1 - b2) * gu * gu
            sv = b2 * sv + (1 - b2) * gv * gv
            U -= lr * mu / (np.sqrt(su) + eps)
            V -= lr * mv / (np.sqrt(sv) + eps)
    return np.concatenate([U, V], axis=1)


def diagsim_runner(cfg: PaperBench, opt: str):
    """``run(n_steps) -> theta`` with diagsim's discrete stepper, or a string saying why it is missing."""
    try:
        from ..optimizers import SGD, Adam, LabelNoise, make_stepper
    except ImportError as exc:  # pragma: no cover - depends on the tree
        return f"diagsim discrete optimizers unavailable ({exc})"
    prob = cfg.problem()
    noise = LabelNoise(cfg.label_noise, "rademacher")
    spec = (Adam(lr=cfg.adam_lr, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps, noise=noise)
            if opt == "adam" else SGD(lr=cfg.sgd_lr, noise=noise))
    stepper = make_stepper(prob, spec, seed=0)
    paths = np.arange(cfg.M, dtype=np.int64)

    def run(n_steps):
        state = stepper.init_state(prob.theta0(cfg.M))
        active = np.ones(cfg.M, dtype=bool)
        stepper.advance(state, paths, 0, n_steps, active)
        return state["theta"]

    return run


def _time(run, n_steps, repeats=2):
    t = time.perf_counter()
    run(min(50, n_steps))
    warm = time.perf_counter() - t
    best = np.inf
    theta = None
    for _ in range(repeats):
        t = time.perf_counter()
        theta = run(n_steps)
        best = min(best, time.perf_counter() - t)
    return warm, best, theta


def run_paper(cfg: PaperBench, log=print) -> dict:
    """Seconds per ``cfg.per`` steps for diagsim and the NumPy loop, SGD and Adam."""
    prob = cfg.problem()
    rows = []
    for opt in ("sgd", "adam"):
        contestants = {"diagsim": diagsim_runner(cfg, opt),
                       "numpy-loop": lambda s, o=opt: numpy_loop(cfg, o, s)}
        per = {}
        for name, run in contestants.items():
            if isinstance(run, str):
                log(f"paper scale: skipping {name} ({run})")
                continue
            warm, best, theta = _time(run, cfg.n_steps)
            loss = prob.train_loss_w(prob.w(theta))
            per[name] = best / cfg.n_steps * cfg.per
            rows.append({"optimizer": opt, "contestant": name, "warmup_s": warm, "timed_steps": cfg.n_steps,
                         "seconds": best, "seconds_per_1e6_steps": per[name],
                         "final_loss_mean": float(np.mean(loss))})
            log(f"paper scale: {opt:4s} {name:10s} {per[name]:9.1f} s per 1e6 steps "
                f"(timed {cfg.n_steps} steps, warm-up {warm:.2f} s)")
        if "diagsim" in per and "numpy-loop" in per:
            for r in rows:
                if r["optimizer"] == opt:
                    r["speedup_vs_numpy"] = per["numpy-loop"] / r["seconds_per_1e6_steps"]
    return {"config": cfg.to_dict(), "rows": rows}
