"""The ``"predict"`` job kind: the predicted limit point (:func:`diagsim.predict.predict`) per sweep point.

Job configuration::

    problem    as for the "simulate" job (make_problem arguments, or data = FILE)
    predict    optimizer = "sgd" | "adam" | "rmsprop" | "adame" | "adam-mini" | "adalayer" | "gd",
               lam, method ("auto" | "global" | "local"), max_supports, support_tol
               (keyword arguments of diagsim.predict.predict; defaults filled in)
    optimizer  alternatively, a full optimizer config (as in the "simulate" job; only what the
               prediction depends on matters, but every field enters the cache key)

Stored arrays: ``w`` (d,), ``support`` (indices), ``theta`` (2d,) or empty, scalars ``objective``,
``residual``, ``is_global``, ``test_loss`` (``problem.test_loss_w(w)``), ``l1``, ``support_size``,
``measure_<name>`` (the fibre-minimized measures at w: trace = min tr H, adam = min tr diag(H)^{1/2}, ...),
and the strings ``method``, ``measure``, ``regularizer``, ``notes``.

Summary columns: test_loss, l1, support_size, objective, is_global, the ``measure_*`` values and, when w*
is known, rel_error, recovered (rel_error <= ``recovery_tol``, default 0.1) and exact_support.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import DiagsimError
from .jobs import JobKind, check_sections, dump_arrays, load_arrays
from .simjob import build_problem, canonical_optimizer, canonical_problem

SECTIONS = ("problem", "predict", "optimizer")


def _predict_defaults() -> dict:
    from ..predict import predict
    out = {}
    for p in inspect.signature(predict).parameters.values():
        if p.name in ("problem", "x0", "parametrization"):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def canonicalize(cfg: dict) -> dict:
    check_sections(cfg, SECTIONS, "predict", tables=False)
    pr = dict(cfg.get("predict", {}))
    allowed = _predict_defaults()
    unknown = sorted(set(pr) - set(allowed))
    if unknown:
        raise DiagsimError(f"unknown predict argument(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    out = {"job": "predict", "problem": canonical_problem(cfg.get("problem", {}))}
    if "optimizer" in cfg:
        if "optimizer" in pr:
            raise DiagsimError("give the optimizer either as predict.optimizer (a name) or as an [optimizer] "
                               "table, not both")
        out["optimizer"] = canonical_optimizer(cfg["optimizer"])
        pr.pop("optimizer", None)
        allowed.pop("optimizer")
    elif not isinstance(pr.get("optimizer", "sgd"), str):
        raise DiagsimError(f"predict.optimizer must be a name such as 'sgd' or 'adam'; got "
                           f"{pr['optimizer']!r}")
    out["predict"] = {**allowed, **pr}
    return out


def run(cfg: dict) -> dict:
    from ..optimizers.specs import from_config
    from ..predict import predict
    problem = build_problem(cfg["problem"])
    kw = dict(cfg["predict"])
    opt = from_config(cfg["optimizer"]) if "optimizer" in cfg else kw.pop("optimizer")
    kw.pop("optimizer", None)
    pred = predict(problem, opt, **kw)
    w = pred.w
    out = {"w": w, "support": np.asarray(pred.support, dtype=np.int64),
           "theta": np.zeros(0) if pred.theta is None else np.asarray(pred.theta, dtype=np.float64),
           "objective": float(pred.objective), "residual": float(pred.residual),
           "is_global": bool(pred.is_global),
           "test_loss": float(problem.test_loss_w(w)), "l1": float(np.abs(w).sum()),
           "support_size": int(np.asarray(pred.support).size),
           "method": np.array(pred.method), "measure": np.array(pred.measure),
           "regularizer": np.array(pred.regularizer), "notes": np.array("; ".join(pred.notes))}
    for k, v in pred.measures.items():
        out[f"measure_{k}"] = float(v)
    return out


def summarize(obj: dict, options: dict, config: dict) -> dict:
    out = {}
    for k in ("test_loss", "l1", "support_size", "objective", "residual", "is_global"):
        out[k] = np.asarray(obj[k]).item()
    out.update({k: np.asarray(v).item() for k, v in obj.items()
                if k.startswith("measure_") and np.ndim(v) == 0 and np.asarray(v).dtype.kind == "f"})
    try:
        w_star = build_problem(config["problem"]).w_star
    except DiagsimError:
        w_star = None
    if w_star is not None and np.any(w_star != 0):
        w = obj["w"]
        rel = float(np.linalg.norm(w - w_star) / np.linalg.norm(w_star))
        out["rel_error"] = rel
        out["recovered"] = float(rel <= float(options.get("recovery_tol", 0.1)))
        supp = np.zeros(w.shape, bool)
        supp[obj["support"]] = True
        out["exact_support"] = float(np.array_equal(supp, w_star != 0))
    return out


PREDICT = JobKind(name="predict", run=run, canonicalize=canonicalize, dump=dump_arrays, load=load_arrays,
                  summarize=summarize, suffix=".npz")
