"""The ``"simulate"`` job kind: one :func:`diagsim.simulate` run per sweep point.

Job configuration (each table optional except the horizon)::

    problem    keyword arguments of diagsim.make_problem (n, d, k, design, teacher, parametrization,
               init, alpha, seed, support), or ``data = "file.npz"`` (+ parametrization, init, alpha,
               seed) for diagsim.load_problem; the file's SHA-256 joins the config, so editing the data
               invalidates the cache. ``family = "matrix"`` (any registered model family other than the
               diagonal one, docs/guide/matrix.md) takes that family's maker's keyword arguments instead
               (for "matrix": diagsim.make_matrix_problem's m1, m2, rank, depth, width, n, kind, ...).
    optimizer  an optimizer config for diagsim.optimizers.from_config: ``optimizer = "adam"``, its
               hyperparameters, and ``noise = {kind = "label", delta = 0.5}`` or the shorthand
               ``label_noise = 0.5`` (label noise, Rademacher unless ``noise.dist`` says otherwise).
    simulate   keyword arguments of diagsim.simulate: exactly one of steps / t / tau, and n_paths, seed,
               record, n_records, model, model_options, divergence_factor, support_threshold, paths.

Canonicalization fills every default from the current signatures (make_problem, the optimizer spec,
simulate), so a result cached under a default that later changes is not reused by mistake, and the same
run spelled two ways has one key. The stored result is :meth:`diagsim.engine.result.Result.save`'s ``.npz``.

Summary columns (per job; over the paths that did not diverge): the mean and standard error
(``<name>_se``) of every final observable (train_loss, test_loss, l1, support, trace_h,
trace_sqrt_diag_h, precond/...), ``n_paths``, ``n_diverged``, and, when the teacher w* is known,
``rel_error`` = mean ||w - w*|| / ||w*||, ``recovered`` = fraction of paths with
rel_error <= ``recovery_tol`` (``[summary]`` option, default 0.1) and ``exact_support`` = fraction of
paths whose support {i : |w_i| > support_threshold} equals supp(w*).
"""
from __future__ import annotations

import hashlib
import inspect
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import DiagsimError
from .jobs import JobKind, check_sections

SECTIONS = ("problem", "optimizer", "simulate")
#: simulate() arguments a sweep may not set (objects, or handled by the sweep itself)
_SIM_EXCLUDED = {"problem", "optimizer", "theta0", "progress", "checkpoint", "checkpoint_every", "callback"}
_DATA_KEYS = ("data", "parametrization", "init", "alpha", "seed")


def _defaults(fn, exclude=()) -> dict:
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in exclude or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def canonical_problem(p: dict) -> dict:
    from ..networks.diagonal.problem import make_problem
    p = dict(p)
    if p.get("family", "diagonal") != "diagonal":
        return _canonical_family_problem(p)
    p.pop("family", None)  # the diagonal family keeps its keys (and so its cache keys) as before
    if "data" in p:
        bad = sorted(set(p) - set(_DATA_KEYS) - {"data_sha256"})
        if bad:
            raise DiagsimError(f"problem: with data = FILE only {', '.join(_DATA_KEYS)} are allowed; got "
                               f"{', '.join(bad)}")
        path = Path(str(p["data"]))
        if not path.is_file():
            raise DiagsimError(f"problem.data file {str(path)!r} does not exist")
        p["data"] = str(path)
        p["data_sha256"] = _file_sha256(path)
        return p
    allowed = _defaults(make_problem)
    bad = sorted(set(p) - set(allowed))
    if bad:
        raise DiagsimError(f"unknown problem argument(s) {', '.join(bad)}; allowed: {', '.join(allowed)} "
                           "(or data = FILE)")
    out = {**allowed, **p}
    if out.get("support") is not None:
        out["support"] = [int(i) for i in out["support"]]
    return out


def _canonical_family_problem(p: dict) -> dict:
    """A problem table of a non-diagonal family: its maker's defaults filled in, unknown keys refused."""
    from ..networks.model import family
    fam = family(str(p.pop("family")))
    allowed = _defaults(fam.make)
    bad = sorted(set(p) - set(allowed))
    if bad:
        raise DiagsimError(f"unknown problem argument(s) {', '.join(bad)} for family {fam.name!r}; allowed: "
                           f"{', '.join(allowed)}")
    return {"family": fam.name, **allowed, **p}


def canonical_optimizer(o: dict) -> dict:
    from ..optimizers.specs import from_config
    o = dict(o)
    if "optimizer" not in o:
        raise DiagsimError("optimizer.optimizer is required (e.g. optimizer = \"adam\")")
    if "label_noise" in o:
        delta = o.pop("label_noise")
        noise = dict(o.get("noise") or {})
        if noise.get("kind", "label") != "label":
            raise DiagsimError(f"optimizer.label_noise conflicts with noise.kind = {noise['kind']!r}")
        noise.update(kind="label", delta=delta)
        o["noise"] = noise
    try:
        return from_config(o).config()
    except TypeError as exc:  # an unknown hyperparameter name
        raise DiagsimError(f"optimizer {o.get('optimizer')!r}: {exc}") from None


def canonical_simulate(s: dict) -> dict:
    from ..engine.driver import simulate
    allowed = _defaults(simulate, _SIM_EXCLUDED)
    bad = sorted(set(s) - set(allowed))
    if bad:
        raise DiagsimError(f"unknown simulate argument(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    horizon = [k for k in ("steps", "t", "tau") if s.get(k) is not None]
    if len(horizon) != 1:
        raise DiagsimError(f"simulate needs exactly one of steps, t, tau; got {', '.join(horizon) or 'none'}")
    out = {**allowed, **s}
    if out.get("model_options") is None:
        out["model_options"] = {}
    return out


def canonicalize(cfg: dict) -> dict:
    check_sections(cfg, SECTIONS, "simulate")
    return {"job": "simulate", "problem": canonical_problem(cfg.get("problem", {})),
            "optimizer": canonical_optimizer(cfg.get("optimizer", {})),
            "simulate": canonical_simulate(cfg.get("simulate", {}))}


def build_problem(p: dict):
    """The :class:`~diagsim.networks.diagonal.problem.Problem` of a canonical ``problem`` table."""
    from ..networks.diagonal.problem import load_problem, make_problem
    if "family" in p:
        from ..networks.model import family
        return family(p["family"]).make(**{k: v for k, v in p.items() if k != "family"})
    if "data" in p:
        return load_problem(p["data"], **{k: p[k] for k in _DATA_KEYS[1:] if k in p})
    return make_problem(**p)


def run(cfg: dict):
    from ..engine.driver import DivergenceWarning, simulate
    from ..optimizers.specs import from_config
    problem = build_problem(cfg["problem"])
    optimizer = from_config(cfg["optimizer"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)   # recorded in the result (div_step)
        return simulate(problem, optimizer, progress=False, **cfg["simulate"])


def batchable(cfg: dict) -> bool:
    """Whether a job may share a GPU launch with others (:func:`run_many`): the discrete level on "cuda"
    (or on "auto" where that is a GPU)."""
    from ..engine.driver import resolve_device
    sim = cfg["simulate"]
    if "family" in cfg["problem"]:  # the GPU launch groups diagonal problems only
        return False
    if sim.get("model", "discrete") != "discrete" or sim.get("device") not in ("cuda", "auto"):
        return False
    try:
        return resolve_device(sim["device"], "discrete") == "cuda"
    except DiagsimError:  # the job's own run says why
        return False


def run_many(cfgs: list):
    """Run the jobs ``cfgs`` (:func:`batchable`) in this process, those that can share a launch in one
    (:func:`diagsim.engine.batched.run_plans`: jobs of one d, parametrization, optimizer family, horizon
    and record grid; n may differ), a job that shares it with no other in a launch of its own; yields
    ``(index, outcome)`` with the outcome :func:`~diagsim.sweep.jobs.execute` gives for that job alone (the
    same Result, bitwise, see :mod:`diagsim.engine.batched`; the same failure for a bad configuration or a
    run whose paths all diverge)."""
    from ..engine.batched import launch_groups, run_plans
    from ..engine.driver import DivergenceWarning, plan_run
    from ..optimizers.specs import from_config
    from .backends import _crash
    plans, where = [], []
    for i, cfg in enumerate(cfgs):
        try:
            plans.append(plan_run(build_problem(cfg["problem"]), from_config(cfg["optimizer"]), **cfg["simulate"]))
            where.append(i)
        except DiagsimError as exc:  # the error simulate gives for this job alone, before any step
            yield i, ("failed", type(exc).__name__, str(exc))
        except Exception as exc:  # noqa: BLE001 - reported as a crashed job, the sweep goes on
            yield i, _crash(exc)
    for group in launch_groups(plans):
        jobs = [where[g] for g in group]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DivergenceWarning)   # recorded in the results (div_step)
                results = run_plans([plans[g] for g in group])
        except Exception as exc:  # noqa: BLE001 - a crash of the launch is a crash of each of its jobs
            for i in jobs:
                yield i, _crash(exc)
            continue
        for i, res in zip(jobs, results):
            yield i, (("failed", type(res).__name__, str(res)) if isinstance(res, Exception) else ("ok", dump(res)))


def dump(result) -> bytes:
    with tempfile.TemporaryDirectory(prefix="diagsim-job-") as tmp:
        path = result.save(Path(tmp) / "result.npz", sidecar=False)
        return Path(path).read_bytes()


def load(path):
    from ..engine.result import load_result
    return load_result(path)


def summarize(result, options: dict, config: dict) -> dict:
    out = {"n_paths": result.n_paths, "n_diverged": int(result.diverged_mask.sum())}
    for name, val in result.final_observables.items():
        mean, se = result.mean_se(val)
        out[name] = float(mean)
        out[f"{name}_se"] = float(se)
    tol = float(options.get("recovery_tol", 0.1))
    w_star = None
    try:
        w_star = getattr(build_problem(config["problem"]), "w_star", None)  # diagonal problems only
    except DiagsimError:
        pass
    if w_star is not None and np.any(w_star != 0):
        ok = ~result.diverged_mask
        w = result.w[ok]
        rel = np.linalg.norm(w - w_star, axis=1) / np.linalg.norm(w_star)
        thr = float(options.get("support_threshold", result.config.get("support_threshold", 1e-3)))
        supp = np.abs(w) > thr
        exact = np.all(supp == (w_star != 0), axis=1)
        n = max(int(ok.sum()), 1)
        out["rel_error"] = float(rel.mean()) if rel.size else math.nan
        out["recovered"] = float((rel <= tol).sum() / n) if rel.size else math.nan
        out["exact_support"] = float(exact.sum() / n) if rel.size else math.nan
    out["elapsed_s"] = float(result.info.get("elapsed_s", math.nan))
    return out


SIMULATE = JobKind(name="simulate", run=run, canonicalize=canonicalize, dump=dump, load=load,
                   summarize=summarize, suffix=".npz", batchable=batchable, run_many=run_many)
