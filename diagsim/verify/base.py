"""The record of one check, the registry of checks, the verdict rules, and :func:`run_checks`.

A *check* (:class:`Check`) is a function ``fn(ctx: CheckContext) -> list[CheckResult]`` registered under a
short name ("em-orders", "weak-error", ...). Each returned :class:`CheckResult` is one row of the
``diagsim verify`` output: what was measured, what is predicted or claimed, the tolerance and *how it was
derived* (standard errors, a fitted slope's confidence interval, an explicit model of a discretization bias),
and the verdict. Every check has two size presets, ``quick`` (CI) and ``full``; a caller may override any
parameter (``overrides``), which is also how the tests feed a check a deliberately wrong reference to see it
fail.

A check is of one of two kinds (:data:`CHECK_KINDS`):

* a **theorem** check tests a statement the theory proves; each of its rows (kind "theorem") PASSes or
  FAILs, and a failing row fails ``diagsim verify`` (:func:`gate_failures`);
* a **claim** check tests an empirical statement of a paper on instances fixed before any comparison. Its
  rows are the claim statements (kind "claim", made by :meth:`CheckContext.claim`), each with a verdict
  HOLDS / FAILS / NOT SIGNIFICANT from :func:`claim_verdict` and the regime it was tested in, and the
  *conditions* of its regime (kind "condition": convergence, stationarity; PASS/FAIL). Neither changes the
  exit status: a claim's verdict is a finding, reported as measured.

An exception inside a check is not hidden: it becomes a row with ``error`` set (whatever the kind), and an
error row always counts against the exit status.
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

#: kinds of a check: "theorem" rows gate the exit status, "claim" rows are reported
CHECK_KINDS = ("theorem", "claim")

#: kinds of a row: a theorem check's rows are "theorem"; a claim check's rows are "claim" (a claim
#: statement, with a claim verdict) or "condition" (a condition of the regime the claim was tested in)
ROW_KINDS = ("theorem", "claim", "condition")

#: the verdicts of a claim row (see :func:`claim_verdict`)
CLAIM_VERDICTS = ("HOLDS", "FAILS", "NOT SIGNIFICANT")

#: the rule of :func:`claim_verdict`, in words (printed under the claims table and written to the JSON)
CLAIM_RULE = ("HOLDS if the statistic lies on the claimed side of its reference by at least its tolerance, "
              "FAILS if it lies on the other side by at least its tolerance (or equals the reference with "
              "tolerance 0), NOT SIGNIFICANT otherwise")


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


def claim_verdict(mean: float, tolerance: float, direction: str, reference: float = 0.0) -> str:
    """The verdict on a directional claim about a statistic, from its value and its tolerance.

    The claim says that the statistic lies below (``direction`` "<") or above (">") ``reference``; its
    tolerance is the resolution of the measurement (in ``diagsim verify``: 4 standard errors of the
    statistic). With s = reference - mean for "<" and s = mean - reference for ">" (s > 0: on the claimed
    side), the verdict is

    * "HOLDS" when s > 0 and s >= tolerance: significantly confirmed (for tolerance > 0 this is exactly
      ``compare(mean, reference, tolerance, direction)``);
    * "FAILS" when s <= 0 and -s >= tolerance: significantly contradicted (a difference of exactly 0 with
      tolerance 0 contradicts the strict claim);
    * "NOT SIGNIFICANT" otherwise, i.e. when |s| < tolerance (and always for an infinite tolerance).

    Parameters
    ----------
    mean : the statistic (for check 8: the mean over instances of the per-instance difference of means).
    tolerance : its tolerance, >= 0 (inf decides nothing).
    direction : "<" or ">".
    reference : the value the claim compares with (0 for a difference).

    Returns
    -------
    one of :data:`CLAIM_VERDICTS`. Raises DiagsimError for a bad direction, a non-finite statistic or
    reference, or a negative or NaN tolerance (a broken measurement is an error, never a verdict).
    """
    if direction not in ("<", ">"):
        raise DiagsimError(f"a claim's direction must be '<' or '>'; got {direction!r}")
    m, t, r = float(mean), float(tolerance), float(reference)
    if not (math.isfinite(m) and math.isfinite(r)) or math.isnan(t) or t < 0:
        raise DiagsimError(f"a claim needs a finite statistic and a tolerance >= 0; got statistic {m!r}, "
                           f"reference {r!r}, tolerance {t!r}")
    if math.isinf(t):
        return "NOT SIGNIFICANT"
    s = r - m if direction == "<" else m - r
    if s > 0 and s >= t:
        return "HOLDS"
    if s <= 0 and -s >= t:
        return "FAILS"
    return "NOT SIGNIFICANT"


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
    passed : ``compare(measured, predicted, tolerance, relation)`` unless an error occurred; for a claim row,
        whether its verdict is HOLDS.
    numbers : the raw numbers behind the verdict (per-level errors, standard errors, fits), JSON-ready.
    seconds : wall time of the case (or of its check, shared by its rows).
    error : the exception message when the check crashed (then ``passed`` is False).
    kind : one of :data:`ROW_KINDS` ("theorem" by default).
    regime : for a claim row, where the claim was tested (instances, sizes, steps, statistic).
    verdict : set from the above: "PASS"/"FAIL" (theorem and condition rows; an error row FAILs), one of
        :data:`CLAIM_VERDICTS` for a claim row, "ERROR" for a claim row whose machinery raised.
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
    kind: str = "theorem"
    regime: str = ""
    verdict: str = field(init=False, default="")

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise DiagsimError(f"relation must be one of {', '.join(RELATIONS)}; got {self.relation!r}")
        if self.kind not in ROW_KINDS:
            raise DiagsimError(f"row kind must be one of {', '.join(ROW_KINDS)}; got {self.kind!r}")
        if self.kind == "claim" and self.error is None:
            if self.relation not in ("<", ">"):
                raise DiagsimError(f"a claim row states a direction, '<' or '>'; got {self.relation!r}")
            self.verdict = claim_verdict(self.measured, self.tolerance, self.relation, self.predicted)
            self.passed = self.verdict == "HOLDS"
            return
        if self.passed is None:
            self.passed = self.error is None and compare(self.measured, self.predicted, self.tolerance,
                                                         self.relation)
        self.passed = bool(self.passed) and self.error is None
        if self.kind == "claim":
            self.verdict = "ERROR"
        else:
            self.verdict = "PASS" if self.passed else "FAIL"

    @property
    def name(self) -> str:
        return f"{self.check}/{self.case}"

    @property
    def gates(self) -> bool:
        """Whether this row can change the exit status of ``diagsim verify`` (see :func:`gate_failures`)."""
        return self.kind == "theorem" or self.error is not None

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
        return {"name": self.name, "check": self.check, "case": self.case, "kind": self.kind,
                "quantity": self.quantity, "measured": _num(self.measured), "predicted": _num(self.predicted),
                "tolerance": _num(self.tolerance), "relation": self.relation, "derivation": self.derivation,
                "passed": self.passed, "verdict": self.verdict, "regime": self.regime,
                "seconds": round(float(self.seconds), 3), "error": self.error,
                "numbers": _jsonable(self.numbers)}


def gate_failures(rows) -> list[CheckResult]:
    """The rows that make ``diagsim verify`` exit 1: failing theorem rows and every row with an error (a crash
    in a claim's machinery included). Claim verdicts and conditions never do."""
    return [r for r in rows if r.gates and not r.passed]


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
    put its figure, a progress callback, and the check's kind (which decides the kind of its rows)."""

    name: str
    params: dict
    quick: bool
    plots_dir: Path | None = None
    log: Callable[[str], None] = lambda msg: None
    kind: str = "theorem"
    device: str = "cpu"

    def device_for(self, model: str) -> str:
        """Where a simulation of ``model`` runs: the context's device for the levels that run on a GPU, the
        CPU for the others (the slow flows)."""
        from ..cuda.steppers import LEVELS
        return self.device if model in LEVELS else "cpu"

    @property
    def row_kind(self) -> str:
        """The kind of a row made by :meth:`result`: "theorem", or "condition" in a claim check."""
        return "theorem" if self.kind == "theorem" else "condition"

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
                           {"traceback": traceback.format_exc()}, seconds, msg,
                           "claim" if self.kind == "claim" else "theorem")

    def result(self, case: str, quantity: str, measured, predicted, tolerance, *, relation: str = "=",
               derivation: str = "", numbers: dict | None = None, seconds: float = 0.0) -> CheckResult:
        """A theorem row (in a claim check: a condition row) comparing ``measured`` with ``predicted``."""
        return CheckResult(self.name, case, quantity, float(measured), float(predicted), float(tolerance),
                           relation, derivation, None, dict(numbers or {}), seconds, None, self.row_kind)

    def claim(self, case: str, quantity: str, measured, tolerance, *, direction: str, regime: str,
              reference: float = 0.0, derivation: str = "", numbers: dict | None = None,
              seconds: float = 0.0) -> CheckResult:
        """A claim row: the claim says ``measured`` lies on the ``direction`` side ("<" or ">") of
        ``reference``; its verdict is :func:`claim_verdict`. ``regime`` says where it was tested (instances,
        sizes, steps, statistic). Only a claim check makes claim rows."""
        if self.kind != "claim":
            raise DiagsimError(f"check {self.name!r} is a {self.kind} check; only a claim check makes "
                               "claim rows")
        return CheckResult(self.name, case, quantity, float(measured), float(reference), float(tolerance),
                           direction, derivation, None, dict(numbers or {}), seconds, None, "claim", regime)


@dataclass(frozen=True)
class Check:
    """A registered check: ``fn(ctx) -> list[CheckResult]`` with size presets and its kind (one of
    :data:`CHECK_KINDS`)."""

    name: str
    number: int
    title: str
    fn: Callable[[CheckContext], list[CheckResult]]
    quick: dict
    full: dict
    kind: str = "theorem"

    def params(self, quick: bool, overrides: dict | None = None) -> dict:
        p = dict(self.quick if quick else self.full)
        for key, val in (overrides or {}).items():
            if key not in self.full and key not in self.quick:
                allowed = ", ".join(sorted(set(self.full) | set(self.quick)))
                raise DiagsimError(f"check {self.name!r} has no parameter {key!r}; allowed: {allowed}")
            p[key] = val
        return p


#: name -> Check (filled by the check modules on import)
REGISTRY: dict[str, Check] = {}


def register(name: str, number: int, title: str, *, quick: dict, full: dict, kind: str = "theorem"):
    """Decorator: register ``fn`` as check ``name`` of ``kind`` ("theorem" or "claim")."""
    if kind not in CHECK_KINDS:
        raise DiagsimError(f"check kind must be one of {', '.join(CHECK_KINDS)}; got {kind!r}")

    def deco(fn):
        REGISTRY[name] = Check(name, number, title, fn, dict(quick), dict(full), kind)
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


def resolve(names=None, kind: str | None = None) -> list[Check]:
    """The checks selected by ``names`` (None: all) and ``kind`` (None: both kinds), in number order.

    A name selects a check by its registry name or its number ("3"); an unknown name raises a DiagsimError
    listing the known ones. With ``kind`` ("theorem" or "claim") and no names, the checks of that kind; a
    name of a check of the other kind is a contradiction and raises a DiagsimError.
    """
    from . import _load_all
    _load_all()
    if kind is not None and kind not in CHECK_KINDS:
        raise DiagsimError(f"kind must be one of {', '.join(CHECK_KINDS)}; got {kind!r}")
    if names is None:
        chosen = (c for c in REGISTRY.values() if kind is None or c.kind == kind)
        return sorted(chosen, key=lambda c: c.number)
    if isinstance(names, str):
        names = [names]
    out = []
    for nm in names:
        nm = str(nm).strip()
        hit = REGISTRY.get(nm) or next((c for c in REGISTRY.values() if str(c.number) == nm), None)
        if hit is None:
            raise DiagsimError(f"unknown check {nm!r}; known: {', '.join(REGISTRY)}")
        if kind is not None and hit.kind != kind:
            raise DiagsimError(f"check {hit.name!r} is a {hit.kind}, but only {kind}s are selected")
        if hit not in out:
            out.append(hit)
    return sorted(out, key=lambda c: c.number)


def run_checks(names=None, quick: bool = False, plots_dir=None, *, overrides: dict | None = None,
               log: Callable[[str], None] | None = None, kind: str | None = None,
               device: str = "cpu") -> list[CheckResult]:
    """Run the selected checks and return all their rows.

    Parameters
    ----------
    names : check names or numbers (None: all, in number order).
    quick : the CI sizes (the whole set in 2-3 minutes on 2 cores) instead of the full ones.
    plots_dir : write one figure per check there (created if missing; Agg backend).
    overrides : {check name: {parameter: value}} replacing preset parameters.
    log : callable receiving progress lines (e.g. ``print`` to stderr).
    kind : "theorem" or "claim": run only the checks of that kind (see :func:`resolve`).
    device : where the checks' discrete and SDE simulations run ("cpu", "cuda", "auto"; the slow flows and
        the symbolic parts run on the CPU).

    Returns
    -------
    list of :class:`CheckResult`; a check that raised contributes one row with the error (of the check's kind:
    "theorem" or "claim").
    """
    checks = resolve(names, kind)
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
        ctx = CheckContext(chk.name, params, quick, pdir, say, chk.kind, device)
        say(f"[{chk.number}] {chk.name} ({chk.kind}): {chk.title} ...")
        t0 = time.perf_counter()
        try:
            out = list(chk.fn(ctx))
            _check_row_kinds(chk, out)
        except Exception as exc:  # noqa: BLE001 - a crashing check is an error row, never hidden
            tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
            out = [CheckResult(chk.name, "error", chk.title, math.nan, math.nan, math.nan, "=", "",
                               False, {"traceback": traceback.format_exc()}, 0.0,
                               f"{type(exc).__name__}: {exc}" if str(exc) else tb, chk.kind)]
        dt = time.perf_counter() - t0
        for r in out:
            if not r.seconds:
                r.seconds = dt
        say(f"[{chk.number}] {chk.name}: {_summary(out)} in {dt:.1f} s")
        rows.extend(out)
    return rows


def _check_row_kinds(chk: Check, rows: list[CheckResult]) -> None:
    """A theorem check returns theorem rows only; a claim check claim and condition rows only."""
    allowed = ("theorem",) if chk.kind == "theorem" else ("claim", "condition")
    bad = sorted({r.kind for r in rows if r.kind not in allowed})
    if bad:
        raise DiagsimError(f"{chk.kind} check {chk.name!r} returned rows of kind {', '.join(bad)}; "
                           f"allowed: {', '.join(allowed)}")


def _summary(rows: list[CheckResult]) -> str:
    """"3/4 passed", or for a claim check its verdicts and conditions ("test-loss FAILS; conditions 6/6
    passed")."""
    cond = [r for r in rows if r.kind != "claim"]
    text = f"{sum(r.passed for r in cond)}/{len(cond)} passed"
    claims = [r for r in rows if r.kind == "claim"]
    if not claims:
        return text
    return "; ".join(f"{r.case} {r.verdict}" for r in claims) + (f"; conditions {text}" if cond else "")
