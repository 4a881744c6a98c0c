"""The ``"precond"`` job kind: how closely the Adam preconditioner follows its quasi-static value during a
discrete run with label noise, recorded over a window of steps (Figure 10, ``paper_repro/``).

Job configuration::

    problem    make_problem arguments (as in the "simulate" job; ``data = FILE`` too).
    optimizer  an Adam-family optimizer config with one second moment per parameter ("adam", "rmsprop",
               AdamE-lambda through ``lam``) and label noise (``label_noise = delta`` or ``noise``).
    precond    steps (required): the horizon; seed (default 0): the noise seed; n_paths (default 1);
               every (default 100): steps between records; start (default steps // 2): the first recorded
               step (the window is start, start + every, ... < steps); beta2_exponent (optional) p, with
               beta2_ref_lr (default 0.1) and beta2_ref (default 0.9): set beta2 = 1 - C lr^p with
               C = (1 - beta2_ref) / beta2_ref_lr^p, i.e. beta2 = beta2_ref at lr = beta2_ref_lr; the
               optimizer table must then leave beta2 unset. The canonical optimizer table holds the beta2
               actually used.

What is recorded (docs/theory.md §5.3, §7.5, §8.4). At a record step k the run takes its step k -> k + 1
and the job reads, per path:

* ``g_k``, the noisy gradient of that step, recovered from the stored first moment,
  ``g_k = (m_{k+1} - beta1 m_k) / (1 - beta1)`` (the update rule itself is the kernel's, not repeated here);
* ``s``, the preconditioner that step applied, 1/(vh^lam + eps) with vh = v_{k+1} / (1 - beta2^(k+1))
  under bias correction and v_{k+1} otherwise;
* ``s_ref``, the quasi-static preconditioner at the current point: 1/(E[g (.) g | theta_k]^lam + eps), where
  E[g (.) g | theta] = grad L (.) grad L + diag Sigma(theta) is the drift target of v in the Adam SDE
  (``diagsim.sde.models.v_target``); on the manifold it is c diag H, the slow flow's quasi-static v.

and stores, per record and path (arrays (R, M)): ``drift`` = ||s - s_ref|| / ||s_ref||, ``corr_g`` =
<s - s_ref, g_k> / (||s - s_ref|| ||g_k||), ``corr_g2`` = the same cosine with g_k (.) g_k - E[g (.) g | theta_k]
in place of g_k, the three again over the *active* parameters only (``drift_active``, ``corr_g_active``,
``corr_g2_active``; when the teacher w* is known: u_i where w*_i > 0 and v_i where w*_i < 0 on "uu-vv", the
parameters that stay away from 0 at a recovering limit; the others go extinct under Adam, docs/theory.md
§8.6, their quasi-static v collapses faster than v can decay and they dominate the norms over all
parameters), and ``train_loss`` at theta_k. Over the window, per path and parameter: ``s_mean`` (M, 2d) and
``s_var`` (the mean and the population variance of s, Welford's updates). Also ``active`` (the indices of
the active parameters), ``record_steps`` (R,), ``beta2``, the final ``theta`` and ``v``, the
loss at step 0 and ``diverged`` (M,) (a path whose loss exceeds 10^6 (L_0 + 1) or is not finite stops, as
in :func:`diagsim.simulate`; its records from then on are NaN), and ``elapsed_s``.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import DiagsimError, check_int, check_interval, check_positive
from .jobs import JobKind, check_sections, dump_arrays, load_arrays, summarize_arrays
from .simjob import build_problem, canonical_optimizer, canonical_problem

SECTIONS = ("problem", "optimizer", "precond")
PRECOND_DEFAULTS = {"steps": None, "seed": 0, "n_paths": 1, "every": 100, "start": None,
                    "beta2_exponent": None, "beta2_ref_lr": 0.1, "beta2_ref": 0.9}
#: a path stops when its loss exceeds this factor times (initial loss + 1) (the default of diagsim.simulate)
DIVERGENCE_FACTOR = 1e6
#: the recorded series, (R, M) each
SERIES = ("drift", "corr_g", "corr_g2", "drift_active", "corr_g_active", "corr_g2_active", "train_loss")


def scaled_beta2(lr: float, p: float, ref_lr: float = 0.1, ref: float = 0.9) -> float:
    """beta2 = 1 - C lr^p with C = (1 - ref) / ref_lr^p (so beta2 = ref at lr = ref_lr)."""
    return 1.0 - (1.0 - ref) * (lr / ref_lr) ** p


def canonicalize(cfg: dict) -> dict:
    from ..optimizers.specs import Adam, AdamMini, LabelNoise, from_config
    check_sections(cfg, SECTIONS, "precond")
    pc = dict(cfg.get("precond", {}))
    bad = sorted(set(pc) - set(PRECOND_DEFAULTS))
    if bad:
        raise DiagsimError(f"unknown precond option(s) {', '.join(bad)}; allowed: {', '.join(PRECOND_DEFAULTS)}")
    pc = {**PRECOND_DEFAULTS, **pc}
    if pc["steps"] is None:
        raise DiagsimError("precond.steps is required")
    pc["steps"] = check_int("precond.steps", pc["steps"])
    pc["seed"] = check_int("precond.seed", pc["seed"], minimum=0)
    pc["n_paths"] = check_int("precond.n_paths", pc["n_paths"])
    pc["every"] = check_int("precond.every", pc["every"])
    pc["start"] = check_int("precond.start", pc["steps"] // 2 if pc["start"] is None else pc["start"], minimum=0,
                            maximum=pc["steps"] - 1)
    pc["beta2_ref_lr"] = check_positive("precond.beta2_ref_lr", pc["beta2_ref_lr"])
    pc["beta2_ref"] = check_interval("precond.beta2_ref", pc["beta2_ref"], 0.0, 1.0)
    raw = dict(cfg.get("optimizer", {}))
    if pc["beta2_exponent"] is not None:
        pc["beta2_exponent"] = check_positive("precond.beta2_exponent", pc["beta2_exponent"], allow_zero=True)
        if "beta2" in raw:
            raise DiagsimError("optimizer.beta2 and precond.beta2_exponent both set beta2; give one")
        lr = check_positive("optimizer.lr", raw.get("lr", Adam.default_lr))
        raw["beta2"] = scaled_beta2(lr, pc["beta2_exponent"], pc["beta2_ref_lr"], pc["beta2_ref"])
        if not 0.0 <= raw["beta2"] < 1.0:
            raise DiagsimError(f"precond.beta2_exponent = {pc['beta2_exponent']} gives beta2 = {raw['beta2']!r} "
                               f"at lr = {lr}, outside [0, 1)")
    opt = canonical_optimizer(raw)
    spec = from_config(opt)
    if not isinstance(spec, Adam) or isinstance(spec, AdamMini):
        raise DiagsimError(f"a precond job needs an Adam-family optimizer with one second moment per parameter "
                           f"(adam, rmsprop); got {opt['optimizer']!r}")
    if not isinstance(spec.noise, LabelNoise):
        raise DiagsimError(f"a precond job needs label noise (optimizer.label_noise); got {opt.get('noise')!r}")
    return {"job": "precond", "problem": canonical_problem(cfg.get("problem", {})), "optimizer": opt,
            "precond": pc}


def active_parameters(problem) -> np.ndarray | None:
    """Indices into theta = (u, v) of the parameters that carry the teacher on "uu-vv" (u_i for w*_i > 0,
    v_i for w*_i < 0); None without a teacher or for another parametrization."""
    w = problem.w_star
    if w is None or not np.any(w != 0) or problem.param.name != "uu-vv":
        return None
    return np.concatenate([np.flatnonzero(w > 0), problem.d + np.flatnonzero(w < 0)]).astype(np.int64)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise <a, b> / (||a|| ||b||) (NaN where a norm is 0)."""
    with np.errstate(all="ignore"):
        return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def run(cfg: dict) -> dict:
    from ..engine.recording import loss_and_diag
    from ..optimizers.discrete import make_stepper
    from ..optimizers.entries import preconditioner
    from ..optimizers.specs import from_config
    from ..sde.models import v_target
    t0 = time.perf_counter()
    pc = cfg["precond"]
    P = build_problem(cfg["problem"])
    opt = from_config(cfg["optimizer"])
    delta = float(opt.noise.delta)
    stepper = make_stepper(P, opt, seed=pc["seed"])
    M, N, every = pc["n_paths"], pc["steps"], pc["every"]
    state = stepper.init_state(P.theta0(M))
    paths = np.arange(M, dtype=np.int64)
    active = np.ones(M, dtype=bool)
    L0 = loss_and_diag(P, state["theta"])[0]
    limit = DIVERGENCE_FACTOR * (L0 + 1.0)
    div_step = np.full(M, -1, dtype=np.int64)
    div_loss = np.full(M, np.nan)
    ks = np.arange(pc["start"], N, every, dtype=np.int64)
    R, dim = ks.size, P.dim
    act = active_parameters(P)
    rec = {name: np.full((R, M), np.nan) for name in SERIES}
    count = np.zeros(M)
    s_mean = np.zeros((M, dim))
    s_m2 = np.zeros((M, dim))
    b1, b2 = opt.beta1, opt.beta2
    k = 0

    def advance(n):
        nonlocal k
        if n > 0:
            stepper.advance_checked(state, paths, k, n, active, limit, div_step, div_loss)
            k += n

    for i, kr in enumerate(ks):
        advance(int(kr) - k)
        th = state["theta"].copy()
        m0 = state["m"].copy()
        ok0 = active.copy()
        advance(1)
        ok = ok0 & active & np.all(np.isfinite(state["theta"]), axis=1)
        if not ok.any():
            continue
        g = (state["m"][ok] - b1 * m0[ok]) / (1.0 - b1)
        vh = state["v"][ok] / (1.0 - b2 ** (kr + 1)) if opt.bias_correction else state["v"][ok]
        s = preconditioner(opt.lam, opt.eps, vh)
        target = v_target(P, th[ok], delta)
        s_ref = preconditioner(opt.lam, opt.eps, target)
        dg2 = g * g - target
        for suffix, j in (("", slice(None)), ("_active", act)):
            if j is None:
                continue
            diff = s[:, j] - s_ref[:, j]
            rec["drift" + suffix][i, ok] = np.linalg.norm(diff, axis=1) / np.linalg.norm(s_ref[:, j], axis=1)
            rec["corr_g" + suffix][i, ok] = _cosine(diff, g[:, j])
            rec["corr_g2" + suffix][i, ok] = _cosine(diff, dg2[:, j])
        rec["train_loss"][i, ok] = loss_and_diag(P, th[ok])[0]
        count[ok] += 1.0
        dm = s - s_mean[ok]
        s_mean[ok] += dm / count[ok, None]
        s_m2[ok] += dm * (s - s_mean[ok])
    advance(N - k)
    with np.errstate(all="ignore"):
        s_var = s_m2 / count[:, None]
    none = count == 0
    s_mean[none] = np.nan
    s_var[none] = np.nan
    return {"record_steps": ks, **rec, "s_mean": s_mean, "s_var": s_var,
            "active": np.zeros(0, np.int64) if act is None else act,
            "beta2": np.float64(b2), "theta": state["theta"], "v": state["v"], "initial_loss": L0,
            "diverged": div_step >= 0, "elapsed_s": np.float64(time.perf_counter() - t0)}


def summarize(obj: dict, options: dict, config: dict) -> dict:
    """Every 0-d entry, and the window means (over records and paths, NaN-free) of the recorded series."""
    out = summarize_arrays(obj, options, config)
    for name in SERIES:
        a = np.asarray(obj[name], dtype=np.float64)
        a = a[np.isfinite(a)]
        out[f"{name}_mean"] = float(a.mean()) if a.size else math.nan
    out["n_diverged"] = int(np.sum(obj["diverged"]))
    return out


PRECOND = JobKind(name="precond", run=run, canonicalize=canonicalize, dump=dump_arrays, load=load_arrays,
                  summarize=summarize)
