"""The record of one theorem check, the registry of checks, and :func:`run_checks`.

A *check* (:class:`Check`) is a function ``fn(ctx: CheckContext) -> list[CheckResult]`` registered under a
short name ("em-orders", "weak-error", ...). Each returned :class:`CheckResult` is one row of the
``diagsim verify`` table: what was measured, what theory predicts, the tolerance and *how it was derived*
(standard errors, a fitted slope's confidence interval, an explicit model of a discretization bias), and
whether the measurement agrees. Every check has two size presets, ``quick`` (CI) and ``full``; a caller may
override any parameter (``overrides``), which is also how the tests feed a check a deliberately wrong
reference to see it fail.

An exception inside a check is not hidden: it becomes a failing row whose ``measured`` is the error message.
"""
from __future__ import annotations

import math
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import DiagsimError

#: comparison of ``measured`` with ``predicted`` (``tol`` = the tolerance):
#: "="  |measured - predicted| <= tol          "<=" measured <= predicted + tol
#: "<"  measured + tol <= predicted (significantly below)   ">" measured - tol >= predicted
RELATIONS = ("=", "<=", "<", ">=", ">")


def compare(measured: float, predicted: float, tol: float, relation: str = "=") -> bool:
    """Whether ``measured`` agrees with ``predicted`` under ``relation`` and tolerance ``tol`` (NaN fails)."""
    m, p, t = float(measured), float(predicted), float(tol)
    if not (math.isfinite(m) and math.isfinite(p) and math.isfinite(t)):
        return False  # an infinite tolerance (e.g. a flow that has not converged) decides nothing
    if relation == "=":
        return abs(m - p) <= t
    if relation == "<=":
        return m <= p + t
    if relation == "<":
        return m + t <= p
    if relation == ">=":
        return m >= p - t
    if relation == ">":
        return m - t >= p
    raise DiagsimError(f"relation must be one of {', '.join(RELATIONS)}; got {relation!r}")


@dataclass
class CheckResult:
    """One row of the verify table.

    Attributes
    ----------
    check : registry name of the check ("em-orders").
    case : the case within the check ("gbm-strong").
    quantity : what was measured, in words ("slope of log RMS error vs log dt").
    measured, predicted : the two numbers compared.
    tolerance : the allowed deviation (see ``relation``), >= 0.
    relation : one of :data:`RELATIONS`.
    derivation : how the tolerance was derived ("4 bootstrap SE + exact pre-asymptotic bias").
    passed : the verdict (``compare(measured, predicted, tolerance, relation)`` unless an error occurred).
    numbers : the raw numbers behind the verdict (per-level errors, standard errors, fits), JSON-ready.
    seconds : wall time of the case (or of its check, shared by its rows).
    error : the exception message when the check crashed (then ``passed`` is False).
    """

    check: str
    case: str
    quantity: str
    measured: float
    predicted: float
    tolerance: float
    relation: str = "="
    derivation: str = ""
    passed: bool | None = None
    numbers: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise DiagsimError(f"relation must be one of {', '.join(RELATIONS)}; got {self.relation!r}")
        if self.passed is None:
            self.passed = self.error is None and compare(self.measured, self.predicted, self.tolerance,
                                                         self.relation)
        self.passed = bool(self.passed)

    @property
    def name(self) -> str:
        return f"{self.check}/{self.case}"

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def predicted_text(self) -> str:
        return f"{self.relation} {_g(self.predicted)}"

    def tolerance_text(self) -> str:
        return _g(self.tolerance)

    def disagreement(self) -> str:
        """One line with the disagreeing numbers (for failures)."""
        if self.error is not None:
            return f"{self.name}: ERROR {self.error}"
        gap = self.measured - self.predicted
        return (f"{self.name}: {self.quantity}: measured {_g(self.measured)}, "
                f"predicted {self.predicted_text()}, "
                f"difference {_g(gap)}, tolerance {_g(self.tolerance)} ({self.derivation})")

    def to_dict(self) -> dict:
        return {"name": self.name, "check": self.check, "case": self.case, "quantity": self.quantity,
                "measured": _num(self.measured), "predicted": _num(self.predicted),
                "tolerance": _num(self.tolerance), "relation": self.relation, "derivation": self.derivation,
                "passed": self.passed, "seconds": round(float(self.seconds), 3), "error": self.error,
                "numbers": _jsonable(self.numbers)}


def _g(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.4g}"


def _num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _jsonable(o):
    import numpy as np
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.floating, float)):
        return _num(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return o


@dataclass
class CheckContext:
    """What a check function receives: its parameters (preset merged with overrides), the mode, where to
    put its figure, and a progress callback."""

    name: str
    params: dict
    quick: bool
    plots_dir: Path | None = None
    log: Callable[[str], None] = lambda msg: None

    def __getitem__(self, key):
        return self.params[key]

    def get(self, key, default=None):
        return self.params.get(key, default)

    def figure_path(self, suffix: str = "") -> Path | None:
        """``<plots_dir>/<check name><suffix>.png`` or None without ``--plots``."""
        if self.plots_dir is None:
            return None
        return self.plots_dir / f"{self.name}{suffix}.png"

    def error_row(self, case: str, quantity: str, exc: BaseException, seconds: float = 0.0) -> CheckResult:
        """A failing row for a case that raised (the error is the finding; nothing is hidden)."""
        msg = f"{type(exc).__name__}: {exc}"
        return CheckResult(self.name, case, quantity, math.nan, math.nan, math.nan, "=", "", False,
                           {"traceback": traceback.format_exc()}, seconds, msg)

    def result(self, case: str, quantity: str, measured, predicted, tolerance, *, relation: str = "=",
               derivation: str = "", numbers: dict | None = None, seconds: float = 0.0) -> CheckResult:
        return CheckResult(self.name, case, quantity, float(measured), float(predicted), float(tolerance),
                           relation, derivation, None, dict(numbers or {}), seconds)


@dataclass(frozen=True)
class Check:
    """A registered check: ``fn(ctx) -> list[CheckResult]`` with size presets."""

    name: str
    number: int
    title: str
    fn: Callable[[CheckContext], list[CheckResult]]
    quick: dict
    full: dict

    def params(self, quick: bool, overrides: dict | None = None) -> dict:
        p = dict(self.quick if quick else self.full)
        for key, val in (overrides or {}).items():
            if key not in self.full and key not in self.quick:
                allowed = ", ".join(sorted(set(self.full) | set(self.quick)))
                raise DiagsimError(f"check {self.name!r} has no parameter {key!r}; allowed: {allowed}")
            p[key] = val
        return p


#: name -> Check, in the order of the issue (filled by the check modules on import)
REGISTRY: dict[str, Check] = {}


def register(name: str, number: int, title: str, *, quick: dict, full: dict):
    """Decorator: register ``fn`` as check ``name``."""
    def deco(fn):
        REGISTRY[name] = Check(name, number, title, fn, dict(quick), dict(full))
        return fn
    return deco


@contextmanager
def numba_threads(n: int | None):
    """Temporarily set the number of Numba threads (serial parts: one path, many small kernel calls, where a
    parallel kernel's per-call synchronization costs far more than its work)."""
    import numba
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def resolve(names=None) -> list[Check]:
    """The checks selected by ``names`` (None: all). A name selects a check by its registry name or its
    number ("3"); an unknown name raises a DiagsimError listing the known ones."""
    from . import _load_all
    _load_all()
    if names is None:
        return sorted(REGISTRY.values(), key=lambda c: c.number)
    if isinstance(names, str):
        names = [names]
    out = []
    for nm in names:
        nm = str(nm).strip()
        hit = REGISTRY.get(nm) or next((c for c in REGISTRY.values() if str(c.number) == nm), None)
        if hit is None:
            raise DiagsimError(f"unknown check {nm!r}; known: {', '.join(REGISTRY)}")
        if hit not in out:
            out.append(hit)
    return sorted(out, key=lambda c: c.number)


def run_checks(names=None, quick: bool = False, plots_dir=None, *, overrides: dict | None = None,
               log: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run the selected checks and return all their rows.

    Parameters
    ----------
    names : check names or numbers (None: all, in the order of the registry).
    quick : the CI sizes (the whole set in under 3 minutes on 2 cores) instead of the full ones.
    plots_dir : write one figure per check there (created if missing; Agg backend).
    overrides : {check name: {parameter: value}} replacing preset parameters.
    log : callable receiving progress lines (e.g. ``print`` to stderr).

    Returns
    -------
    list of :class:`CheckResult`; a check that raised contributes one failing row with the error.
    """
    checks = resolve(names)
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in REGISTRY:
            raise DiagsimError(f"overrides name an unknown check {key!r}; known: {', '.join(REGISTRY)}")
    pdir = None
    if plots_dir is not None:
        pdir = Path(plots_dir)
        pdir.mkdir(parents=True, exist_ok=True)
    say = log or (lambda msg: None)
    rows: list[CheckResult] = []
    for chk in checks:
        params = chk.params(quick, overrides.get(chk.name))
        ctx = CheckContext(chk.name, params, quick, pdir, say)
        say(f"[{chk.number}] {chk.name}: {chk.title} ...")
        t0 = time.perf_counter()
        try:
            out = list(chk.fn(ctx))
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failing row, never hidden
            tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
            out = [CheckResult(chk.name, "error", chk.title, math.nan, math.nan, math.nan, "=", "",
                               False, {"traceback": traceback.format_exc()}, 0.0,
                               f"{type(exc).__name__}: {exc}" if str(exc) else tb)]
        dt = time.perf_counter() - t0
        for r in out:
            if not r.seconds:
                r.seconds = dt
        n_fail = sum(not r.passed for r in out)
        say(f"[{chk.number}] {chk.name}: {len(out) - n_fail}/{len(out)} passed in {dt:.1f} s")
        rows.extend(out)
    return rows
