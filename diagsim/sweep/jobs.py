"""Job kinds: what one sweep point computes, how it is stored, and how it is reduced to table columns.

A job is a pure function of its configuration. A :class:`JobKind` bundles

- ``canonicalize(config) -> config``: validate and fill defaults, so the cache key does not depend on
  spelling (``lr = 1`` vs ``1.0``, omitted defaults). Errors here stop a sweep before anything runs.
- ``run(config) -> object``: the computation (runs in a worker process).
- ``dump(object) -> bytes`` and ``load(path) -> object``: the cache file format (``suffix``).
- ``summarize(object, options, config) -> {column: scalar}``: the row of the sweep's table
  (``options`` is the sweep's ``[summary]`` table, ``config`` the job's canonical configuration).
- optionally ``batchable(config) -> bool`` and ``run_many(configs)``: jobs that gain from running together
  in this process (simulations on the GPU: one launch for many jobs). ``run_many`` yields
  ``(index, outcome)`` for every config, each outcome what :func:`execute` gives for that job alone.

Built-in kinds: ``"simulate"`` (:func:`diagsim.simulate` on a generated or loaded problem; see
:mod:`diagsim.sweep.simjob`),
``"predict"`` (the predicted limit, :mod:`diagsim.sweep.predjob`) and ``"limits"`` (several implicit-bias
limits for many problem seeds of one (n, d, k) cell, for phase diagrams; :mod:`diagsim.sweep.limitjob`) and
``"population"`` (one network trained to a target loss, then every sharpness measure at its end point, for
rank correlations with the test loss; :mod:`diagsim.sweep.popjob`) and ``"precond"`` (a discrete Adam run
that records how its preconditioner follows the quasi-static one over a window; :mod:`diagsim.sweep.precondjob`).
Any function ``f(config) -> {name: array}`` is a job kind too
(:func:`kind_for`): its results are stored as ``.npz`` and its 0-d entries become columns.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import DiagsimError
from ..storage import load_npz, npz_bytes


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[dict], Any]
    canonicalize: Callable[[dict], dict]
    dump: Callable[[Any], bytes]
    load: Callable[[Any], Any]
    summarize: Callable[[Any, dict, dict], dict]
    suffix: str = ".npz"
    batchable: Callable[[dict], bool] | None = None
    run_many: Callable[[list], Any] | None = None


# --------------------------------------------------------------------------- arrays <-> .npz
def check_sections(cfg: dict, sections, kind: str, *, tables: bool = True) -> None:
    """One-line errors for a job configuration with a section its kind does not know, or (``tables``) a
    section that is not a table."""
    bad = sorted(set(cfg) - set(sections) - {"job"})
    if bad:
        raise DiagsimError(f"unknown section(s) {', '.join(bad)} in a {kind} job; allowed: {', '.join(sections)}")
    if tables:
        for sec in sections:
            if not isinstance(cfg.get(sec, {}), dict):
                raise DiagsimError(f"{sec} must be a table")


def dump_arrays(obj) -> bytes:
    """A mapping of arrays (or numbers) as the bytes of an uncompressed ``.npz`` that ``np.load`` reads.

    Deterministic: entries in the mapping's order with a fixed timestamp, so equal arrays give equal
    bytes (``np.savez`` stamps the current time into the zip)."""
    if not hasattr(obj, "items"):
        raise DiagsimError(f"a job function must return a dict of arrays, got {type(obj).__name__}")
    return npz_bytes(obj)


def load_arrays(path) -> dict:
    return load_npz(path, "cache entry")


def summarize_arrays(obj: dict, options: dict, config: dict) -> dict:
    """Every 0-d numeric entry becomes a column."""
    out = {}
    for k, v in obj.items():
        a = np.asarray(v)
        if a.ndim == 0 and (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            out[k] = a.item()
    return out


def _identity(cfg: dict) -> dict:
    return cfg


# --------------------------------------------------------------------------- registry
_BUILTIN = {"simulate": ("diagsim.sweep.simjob", "SIMULATE"),
            "predict": ("diagsim.sweep.predjob", "PREDICT"),
            "limits": ("diagsim.sweep.limitjob", "LIMITS_JOB"),
            "population": ("diagsim.sweep.popjob", "POPULATION"),
            "precond": ("diagsim.sweep.precondjob", "PRECOND")}


def function_name(fn: Callable) -> str:
    """``module:qualname`` of a top-level function (what identifies a custom job kind in its config)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        raise DiagsimError(f"a custom job must be a top-level function (picklable by name), got {fn!r}")
    return f"{mod}:{qual}"


def kind_for(job: str | Callable | JobKind) -> JobKind:
    """The :class:`JobKind` for a built-in name, a ``module:function`` string, or a function."""
    if isinstance(job, JobKind):
        return job
    if callable(job):
        return JobKind(name=function_name(job), run=job, canonicalize=_identity, dump=dump_arrays,
                       load=load_arrays, summarize=summarize_arrays)
    if not isinstance(job, str):
        raise DiagsimError(f"job must be a job kind name or a function, got {job!r}")
    if job in _BUILTIN:
        mod, attr = _BUILTIN[job]
        return getattr(importlib.import_module(mod), attr)
    if ":" in job:
        mod, _, attr = job.partition(":")
        try:
            obj = importlib.import_module(mod)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            raise DiagsimError(f"job {job!r}: cannot import {attr!r} from module {mod!r}") from None
        return kind_for(obj)
    raise DiagsimError(f"job must be one of {', '.join(map(repr, _BUILTIN))} or 'module:function'; "
                       f"got {job!r}")


def job_ref(kind: JobKind):
    """What a worker receives to rebuild the kind: the name (built-ins) or the function itself."""
    return kind.name if kind.name in _BUILTIN else kind.run


def execute(ref, config: dict):
    """Run one job in a worker: ``("ok", bytes)`` or ``("failed", error type, message)``.

    A :class:`~diagsim.errors.DiagsimError` (bad input, every path diverged) is a deterministic outcome
    of the configuration and is returned as a failure to be cached; any other exception propagates.
    """
    kind = kind_for(ref)
    try:
        obj = kind.run(config)
    except DiagsimError as exc:
        return ("failed", type(exc).__name__, str(exc))
    return ("ok", kind.dump(obj))
