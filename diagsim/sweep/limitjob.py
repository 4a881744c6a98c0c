"""The ``"limits"`` job kind: the implicit-bias limits of many problem seeds of one (n, d, k) cell.

A phase diagram needs ~20 problems per cell and several limits per problem; one job per cell keeps the
cache small and shares each problem between its limits (docs/theory.md §9.6-9.8).

Job configuration::

    problem    make_problem arguments (n, d, k, design, teacher, init, alpha, seed): the cell; problem
               seeds are seed, seed + 1, ..., seed + seeds - 1
    limits     seeds (default 20); which: a list of limit names (default all but "adam-slow-flow");
               max_supports (default 1e6: "lhalf-global" is NaN when C(d, n) is larger);
               adam_flow = {tau, dtau, zero_tol, kappa, tol} for "adam-slow-flow";
               lam (in [0, 1)): the AdamE exponent of "adame-local" / "adame-global", required by them
               and allowed only with them (configs without these limits keep their cache keys)
    optimizer  the Adam config whose slow flow "adam-slow-flow" integrates (default: the paper's,
               lr 0.1, beta2 0.95, eps 1e-6, no bias correction, label noise 0.5)

Limits (R is the fibre-minimized regularizer on "uu-vv", docs/theory.md §9.3):

=====================  =====================================================================================
``weighted-l1``        SGD's limit: argmin sum_i s_i |w_i| over Z w = y (LP, HiGHS)
``l1``                 plain basis pursuit argmin ||w||_1 (the theorem's setting, docs/theory.md §9.8)
``gradient-flow``      the Woodworth interpolator, the gradient-flow limit of u = v = alpha g (§9.7)
``adam-local``         Adam's eta -> 0 limit, surrogate: the local minimizer of sum_i sqrt(s_i |w_i|) that
                       reweighted l1 (majorize-minimize) reaches from the gradient-flow limit (§9.6)
``lhalf-global``       the global minimizer of sum_i sqrt(s_i |w_i|) by support enumeration (§9.6), NaN
                       when C(d, rank Z) > max_supports
``adam-slow-flow``     Adam's slow flow (§8) from the gradient-flow limit, integrated until w stops moving
                       (max|dw| <= tol max|w| over one dtau) or tau reaches ``tau``: expensive, opt-in
``adame-local``        AdamE-lam's limit, surrogate: :func:`diagsim.predict.predict` for "adame" with
                       method "local" (reweighted l1 for the weighted l_{1-lam} regularizer of §9.1-9.2)
                       started at the gradient-flow limit; lam = 0 is the weighted-l1 LP (opt-in)
``adame-global``       the same regularizer's global minimizer (predict, method "global": support
                       enumeration), NaN when C(d, rank Z) > max_supports (opt-in)
=====================  =====================================================================================

Stored arrays: ``seeds`` (S,) and, per limit L (with "-" as "_"), ``rel_error_L``, ``test_loss_L``
(1/2 ||w - w*||^2) and ``seconds_L`` (S,); in a job with ``limits.lam`` also every limit itself,
``w_L`` (S, d).

Summary columns per limit L: ``n_L`` (problems with a finite result), ``rec_L`` (how many recovered:
rel_error <= ``recovery_tol``, a ``[summary]`` option, default 0.1), ``p_L`` and its 95 % Wilson interval
``p_L_lo`` / ``p_L_hi``, ``test_loss_L`` (mean), ``rel_error_L`` (median) and ``seconds_L`` (total).
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import DiagsimError, check_int, check_interval, check_positive
from .jobs import JobKind, check_sections, dump_arrays, load_arrays
from .simjob import canonical_optimizer, canonical_problem

SECTIONS = ("problem", "limits", "optimizer")
LIMITS = ("weighted-l1", "l1", "gradient-flow", "adam-local", "lhalf-global", "adam-slow-flow", "adame-local",
          "adame-global")
DEFAULT_LIMITS = LIMITS[:5]
#: the limits that need ``limits.lam``
LAM_LIMITS = ("adame-local", "adame-global")
PAPER_ADAM = {"optimizer": "adam", "lr": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-6,
              "bias_correction": False, "label_noise": 0.5}
FLOW_DEFAULTS = {"tau": 50.0, "dtau": 0.05, "zero_tol": 1e-5, "kappa": 0.2, "tol": 1e-6}


def key(limit: str) -> str:
    """The array/column suffix of a limit name ("adam-local" -> "adam_local")."""
    return limit.replace("-", "_")


def canonicalize(cfg: dict) -> dict:
    check_sections(cfg, SECTIONS, "limits", tables=False)
    lim = dict(cfg.get("limits", {}))
    unknown = sorted(set(lim) - {"seeds", "which", "max_supports", "adam_flow", "lam"})
    if unknown:
        raise DiagsimError(f"unknown limits option(s) {', '.join(unknown)}; allowed: seeds, which, max_supports, "
                           "adam_flow, lam")
    which = lim.get("which", list(DEFAULT_LIMITS))
    if isinstance(which, str) or not all(isinstance(w, str) for w in which) or not which:
        raise DiagsimError(f"limits.which must be a non-empty list of names from {', '.join(LIMITS)}; got {which!r}")
    badw = [w for w in which if w not in LIMITS]
    if badw:
        raise DiagsimError(f"unknown limit(s) {', '.join(badw)}; allowed: {', '.join(LIMITS)}")
    flow = {**FLOW_DEFAULTS, **dict(lim.get("adam_flow", {}))}
    badf = sorted(set(flow) - set(FLOW_DEFAULTS))
    if badf:
        raise DiagsimError(f"unknown limits.adam_flow option(s) {', '.join(badf)}; allowed: "
                           f"{', '.join(FLOW_DEFAULTS)}")
    for name, val in flow.items():
        check_positive(f"limits.adam_flow.{name}", val)
    out = {"job": "limits", "problem": canonical_problem(cfg.get("problem", {})),
           "limits": {"seeds": check_int("limits.seeds", lim.get("seeds", 20)),
                      "which": [w for w in LIMITS if w in which],
                      "max_supports": check_int("limits.max_supports", lim.get("max_supports", 1_000_000)),
                      "adam_flow": {k: float(v) for k, v in flow.items()}},
           "optimizer": canonical_optimizer(cfg.get("optimizer", PAPER_ADAM))}
    if any(w in LAM_LIMITS for w in which):
        if "lam" not in lim:
            raise DiagsimError(f"limits {', '.join(LAM_LIMITS)} need limits.lam (the AdamE exponent in [0, 1))")
        out["limits"]["lam"] = float(check_interval("limits.lam", lim["lam"], 0.0, 1.0))
    elif "lam" in lim:
        raise DiagsimError(f"limits.lam is used only by {', '.join(LAM_LIMITS)}; none is in limits.which")
    if "data" in out["problem"]:
        raise DiagsimError("a limits job generates its problems (make_problem arguments); data = FILE is not allowed")
    if out["problem"].get("parametrization", "uu-vv") != "uu-vv":
        raise DiagsimError("a limits job is for the 'uu-vv' parametrization (its regularizers are written for it)")
    return out


def _adam_slow_flow(problem, optimizer, theta, opts):
    """Adam's slow flow from ``theta`` (on Gamma) until w stops moving or tau = opts['tau']."""
    from ..slowflow.stepper import make_stepper
    st = make_stepper(problem, optimizer, dtau=opts["dtau"], start="given", zero_tol=opts["zero_tol"],
                      kappa=opts["kappa"])
    state = st.init_state(theta[None])
    active = np.ones(1, bool)
    w = problem.w(state["theta"])[0]
    tau = 0.0
    while tau < opts["tau"]:
        st.advance(state, None, 0, 1, active)
        if not active[0]:
            return np.full(problem.d, np.nan)
        new = problem.w(state["theta"])[0]
        tau += opts["dtau"]
        if np.max(np.abs(new - w)) <= opts["tol"] * max(float(np.max(np.abs(new))), 1e-300):
            return new
        w = new
    return w


def solve_limits(problem, which, *, max_supports: int = 1_000_000, optimizer=None, adam_flow=None,
                 lam=None) -> dict:
    """{limit: (w (d,), seconds)} for one problem (see the module table); NaN vectors where not computed.

    ``optimizer`` (a spec) and ``adam_flow`` (options) are for "adam-slow-flow"; None: the paper's Adam.
    ``lam`` is the AdamE exponent of "adame-local" / "adame-global"."""
    from ..predict.concave import global_minimum, n_supports, reweighted_l1
    from ..predict.convex import HyperbolicEntropy, dual_newton
    from ..predict.linear import reduce_system, weighted_l1
    system = reduce_system(problem.Z, problem.y)
    s = problem.s
    out = {}
    gf = None

    def grad_flow():
        a = problem.alpha * problem.init_direction()
        sol = dual_newton(system, HyperbolicEntropy(a * a))
        return sol, a

    for name in which:
        t0 = time.perf_counter()
        if name == "weighted-l1":
            w = weighted_l1(system, s, s).w
        elif name == "l1":
            w = weighted_l1(system, np.ones_like(s), np.ones_like(s)).w
        elif name == "gradient-flow":
            gf = gf or grad_flow()
            w = gf[0]["w"]
        elif name == "adam-local":
            gf = gf or grad_flow()
            w = reweighted_l1(system, np.sqrt(s), np.sqrt(s), 0.5, gf[0]["w"])["w"]
        elif name == "lhalf-global":
            if n_supports(problem.d, system.rank) > max_supports:
                w = np.full(problem.d, np.nan)
            else:
                w = global_minimum(system, np.sqrt(s), np.sqrt(s), 0.5, max_supports=max_supports)["w"]
        elif name in LAM_LIMITS:
            from ..predict.core import predict
            if lam is None:
                raise DiagsimError(f"limit {name!r} needs lam")
            if name == "adame-global" and n_supports(problem.d, system.rank) > max_supports:
                w = np.full(problem.d, np.nan)
            elif name == "adame-global":
                w = predict(problem, "adame", lam=lam, method="global", max_supports=max_supports).w
            else:
                gf = gf or grad_flow()
                w = predict(problem, "adame", lam=lam, method="local", x0=gf[0]["w"]).w
        else:  # adam-slow-flow
            gf = gf or grad_flow()
            sol, a = gf
            if optimizer is None:
                from ..optimizers.specs import from_config
                optimizer = from_config(canonical_optimizer(PAPER_ADAM))
            theta = np.concatenate([a * np.exp(sol["zeta"] / 2.0), a * np.exp(-sol["zeta"] / 2.0)])
            w = _adam_slow_flow(problem, optimizer, theta, adam_flow or FLOW_DEFAULTS)
        out[name] = (np.asarray(w, dtype=np.float64), time.perf_counter() - t0)
    return out


def run(cfg: dict) -> dict:
    from ..networks.diagonal.problem import make_problem
    from ..optimizers.specs import from_config
    p = dict(cfg["problem"])
    lim = cfg["limits"]
    seeds = np.arange(p["seed"], p["seed"] + lim["seeds"], dtype=np.int64)
    opt = from_config(cfg["optimizer"]) if "adam-slow-flow" in lim["which"] else None
    res = {key(L): np.full((seeds.size, 3), np.nan) for L in lim["which"]}
    # a job with limits.lam (one that asks for an AdamE limit) also stores every limit's w
    ws = {key(L): np.full((seeds.size, p["d"]), np.nan) for L in lim["which"]} if "lam" in lim else {}
    for j, sd in enumerate(seeds):
        P = make_problem(**{**p, "seed": int(sd)})
        nrm = float(np.linalg.norm(P.w_star)) or 1.0
        for name, (w, sec) in solve_limits(P, lim["which"], max_supports=lim["max_supports"], optimizer=opt,
                                           adam_flow=lim["adam_flow"], lam=lim.get("lam")).items():
            res[key(name)][j] = (np.linalg.norm(w - P.w_star) / nrm, float(P.test_loss_w(w)), sec)
            if key(name) in ws:
                ws[key(name)][j] = w
    out = {"seeds": seeds, **{f"w_{k}": a for k, a in ws.items()}}
    for k, a in res.items():
        out[f"rel_error_{k}"], out[f"test_loss_{k}"], out[f"seconds_{k}"] = a[:, 0], a[:, 1], a[:, 2]
    return out


def summarize(obj: dict, options: dict, config: dict) -> dict:
    from ..verify.estimates import wilson_interval
    tol = float(options.get("recovery_tol", 0.1))
    out = {}
    for name in config["limits"]["which"]:
        k = key(name)
        rel = np.asarray(obj[f"rel_error_{k}"], dtype=np.float64)
        ok = np.isfinite(rel)
        n, rec = int(ok.sum()), int((rel[ok] <= tol).sum())
        lo, hi = wilson_interval(rec, n)
        tl = np.asarray(obj[f"test_loss_{k}"])[ok]
        out.update({f"n_{k}": n, f"rec_{k}": rec, f"p_{k}": rec / n if n else np.nan, f"p_{k}_lo": float(lo),
                    f"p_{k}_hi": float(hi), f"test_loss_{k}": float(tl.mean()) if n else np.nan,
                    f"rel_error_{k}": float(np.median(rel[ok])) if n else np.nan,
                    f"seconds_{k}": float(np.nansum(obj[f"seconds_{k}"]))})
    return out


LIMITS_JOB = JobKind(name="limits", run=run, canonicalize=canonicalize, dump=dump_arrays, load=load_arrays,
                     summarize=summarize, suffix=".npz")
