"""Sweep configurations: a base job configuration plus a grid of overrides, expanded into jobs.

A sweep is written as a TOML file (or the equivalent dict)::

    [sweep]
    name = "adam-vs-sgd"          # used for file names
    job = "simulate"              # the job kind (see diagsim.sweep.jobs); default "simulate"

    [base.problem]                # keyword arguments of diagsim.make_problem
    n = 40
    d = 200
    k = 3
    [base.optimizer]              # an optimizer config (diagsim.optimizers.from_config);
    optimizer = "adam"            #   `label_noise = delta` is short for noise = {kind="label", delta=...}
    lr = 0.1
    label_noise = 0.5
    [base.simulate]               # keyword arguments of diagsim.simulate
    steps = 20000
    n_paths = 4

    [grid]                        # cartesian product over these (dotted paths into the job config)
    "problem.n" = [20, 30, 40]
    "simulate.seed" = {range = [0, 3]}          # also {linspace = [a, b, num]}, {logspace = [a, b, num]}

    [[zip]]                       # zipped lists (equal lengths): one more axis of the product
    "optimizer.optimizer" = ["sgd", "adam"]
    "optimizer.lr" = [0.005, 0.1]

    [summary]                     # options of the job kind's summarizer (e.g. recovery_tol)
    [plot]                        # phase diagram for `diagsim sweep --plot`: x, y, value, where

    [quick]                       # deep-merged over everything above by `--quick` (tables merge,
    base.simulate.steps = 1000    #   lists and scalars replace)

The jobs are the cartesian product of the grid axes (in file order) and the zip groups, the last axis
varying fastest. Job i's configuration is ``base`` with the overrides of its grid point set, plus
``"job": <kind>``; the job kind canonicalizes it (fills defaults, validates) so the cache key
(:mod:`diagsim.sweep.cache`) does not depend on how a value was spelled.
"""
from __future__ import annotations

import copy
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DiagsimError

TOP_KEYS = ("sweep", "base", "grid", "zip", "summary", "plot", "quick")
SWEEP_KEYS = ("name", "job", "description")
PLOT_KEYS = ("x", "y", "value", "where", "agg", "log_value", "title", "cmap")


@dataclass(frozen=True)
class Job:
    """One point of a sweep.

    Attributes
    ----------
    index : position in the sweep's expansion order.
    params : the swept values of this point, ``{dotted key: value}``.
    config : the full canonical job configuration (a JSON-serializable dict, includes ``"job"``).
    key : the cache key, a pure function of (config, diagsim version).
    """

    index: int
    params: dict
    config: dict
    key: str


@dataclass
class Sweep:
    """A parsed, validated sweep (see the module docstring for the format).

    Attributes
    ----------
    name : str
    job : str, the job kind
    base : dict, the base job configuration (without ``"job"``)
    axes : list of axes; an axis is a list of dotted keys and a list of value tuples (one per point)
    summary, plot : option dicts
    source : the file it was read from (or None)
    """

    name: str
    job: str
    base: dict
    axes: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    plot: dict = field(default_factory=dict)
    description: str = ""
    source: str | None = None

    @property
    def keys(self) -> list[str]:
        """The swept dotted keys, in expansion order."""
        return [k for keys, _ in self.axes for k in keys]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of points along each axis."""
        return tuple(len(points) for _, points in self.axes)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def on_device(self, device: str | None) -> "Sweep":
        """The same sweep with every simulation run on ``device`` ("cpu", "cuda", "auto"; None: as
        configured). Only ``simulate`` jobs run simulations; the others are returned unchanged. The device is
        part of a job's configuration, so a sweep on another device has its own cache entries."""
        if device is None or self.job != "simulate":
            return self
        from dataclasses import replace
        return replace(self, base=deep_merge(self.base, {"simulate": {"device": device}}))

    def points(self):
        """Yield ``{dotted key: value}`` for every grid point, in expansion order."""
        for combo in itertools.product(*(points for _, points in self.axes)):
            params = {}
            for (keys, _), values in zip(self.axes, combo):
                params.update(zip(keys, values))
            yield params

    def job_configs(self):
        """Yield ``(params, raw job config)`` (not yet canonicalized)."""
        for params in self.points():
            cfg = copy.deepcopy(self.base)
            for k, v in params.items():
                set_dotted(cfg, k, v)
            cfg["job"] = self.job
            yield params, cfg


# --------------------------------------------------------------------------- dotted paths
def set_dotted(cfg: dict, key: str, value) -> None:
    """``cfg["a"]["b"] = value`` for ``key = "a.b"`` (creating intermediate tables)."""
    parts = key.split(".")
    d = cfg
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise DiagsimError(f"grid key {key!r}: {p!r} is a value in the base config, not a table")
        d = nxt
    d[parts[-1]] = value


def get_dotted(cfg: dict, key: str, default=None):
    d = cfg
    for p in key.split("."):
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def deep_merge(base: dict, over: dict) -> dict:
    """A copy of ``base`` with ``over`` merged in: tables merge recursively, other values replace."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------- parsing
def _scalar_ok(v) -> bool:
    return isinstance(v, (bool, int, float, str)) or v is None or (
        isinstance(v, (list, dict)) and _json_ok(v))


def _json_ok(v) -> bool:
    if isinstance(v, dict):
        return all(isinstance(k, str) and _json_ok(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_json_ok(x) for x in v)
    return isinstance(v, (bool, int, float, str)) or v is None


def _values(where: str, key: str, spec) -> list:
    """The list of values of one swept key (a list, or a {range|linspace|logspace = [...]} table)."""
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in ("range", "linspace", "logspace"):
            raise DiagsimError(f"{where}[{key!r}] must be a list of values or a table with one of "
                               f"range, linspace, logspace; got {spec!r}")
        kind, args = next(iter(spec.items()))
        if not isinstance(args, list) or not all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                                 for a in args):
            raise DiagsimError(f"{where}[{key!r}].{kind} must be a list of numbers, got {args!r}")
        if kind == "range":
            if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
                raise DiagsimError(f"{where}[{key!r}].range must be [stop], [start, stop] or "
                                   f"[start, stop, step] integers, got {args!r}")
            vals = list(range(*args))
        else:
            if len(args) != 3 or not isinstance(args[2], int) or args[2] < 1:
                raise DiagsimError(f"{where}[{key!r}].{kind} must be [start, stop, num] with integer "
                                   f"num >= 1, got {args!r}")
            f = np.linspace if kind == "linspace" else np.logspace
            vals = [float(x) for x in f(args[0], args[1], args[2])]
    elif isinstance(spec, list):
        vals = spec
    else:
        raise DiagsimError(f"{where}[{key!r}] must be a list of values, got {spec!r}")
    if not vals:
        raise DiagsimError(f"{where}[{key!r}] must not be empty")
    for v in vals:
        if not _scalar_ok(v):
            raise DiagsimError(f"{where}[{key!r}] has a value that is not a number, string, bool, "
                               f"list or table: {v!r}")
    return list(vals)


def _check_key(where: str, key) -> str:
    if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
        raise DiagsimError(f"{where} keys must be dotted paths into the job config such as "
                           f"'optimizer.lr'; got {key!r}")
    return key


def sweep_from_dict(raw: dict, *, quick: bool = False, source: str | None = None,
                    job: str | None = None) -> Sweep:
    """Parse and validate a sweep given as a dict (the TOML document).

    Parameters
    ----------
    raw : the document (see the module docstring).
    quick : deep-merge the ``[quick]`` table over the document first.
    job : override the job kind (e.g. a custom job's name).
    """
    if not isinstance(raw, dict):
        raise DiagsimError(f"a sweep config must be a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise DiagsimError(f"unknown top-level key(s) {', '.join(map(repr, unknown))} in the sweep config; "
                           f"allowed: {', '.join(TOP_KEYS)}")
    if quick:
        q = raw.get("quick", {})
        if not isinstance(q, dict):
            raise DiagsimError("[quick] must be a table of overrides")
        if "quick" in q:
            raise DiagsimError("[quick] must not contain another [quick]")
        raw = deep_merge({k: v for k, v in raw.items() if k != "quick"}, q)
    head = raw.get("sweep", {})
    if not isinstance(head, dict):
        raise DiagsimError("[sweep] must be a table with name, job, description")
    bad = sorted(set(head) - set(SWEEP_KEYS))
    if bad:
        raise DiagsimError(f"unknown key(s) {', '.join(map(repr, bad))} in [sweep]; allowed: "
                           f"{', '.join(SWEEP_KEYS)}")
    name = head.get("name") or (Path(source).stem if source else "sweep")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise DiagsimError(f"sweep.name must be letters, digits, '-', '_' or '.', got {name!r}")
    kind = job or head.get("job", "simulate")
    if not isinstance(kind, str):
        raise DiagsimError(f"sweep.job must be a string naming the job kind, got {kind!r}")

    base = raw.get("base", {})
    if not isinstance(base, dict) or not _json_ok(base):
        raise DiagsimError("[base] must be a table of tables of numbers, strings, bools and lists")
    if "job" in base:
        raise DiagsimError("base.job is reserved; set the job kind with [sweep] job = ...")

    axes: list = []
    seen: dict[str, str] = {}

    def claim(key: str, where: str) -> None:
        if key == "job" or key.startswith("job."):
            raise DiagsimError(f"{where} key {key!r} is reserved; set the job kind with [sweep] job = ...")
        for other in seen:
            if key == other or key.startswith(other + ".") or other.startswith(key + "."):
                raise DiagsimError(f"{where} key {key!r} overlaps {other!r} already swept in {seen[other]}")
        seen[key] = where

    grid = raw.get("grid", {})
    if not isinstance(grid, dict):
        raise DiagsimError("[grid] must be a table: dotted key = list of values")
    for key, spec in grid.items():
        _check_key("grid", key)
        claim(key, "grid")
        axes.append(([key], [(v,) for v in _values("grid", key, spec)]))

    zips = raw.get("zip", [])
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list) or not all(isinstance(z, dict) for z in zips):
        raise DiagsimError("zip must be a table or an array of tables ([[zip]]): dotted key = list")
    for i, group in enumerate(zips):
        where = f"zip[{i}]"
        if not group:
            raise DiagsimError(f"{where} is empty")
        cols = {}
        for key, spec in group.items():
            _check_key(where, key)
            claim(key, where)
            cols[key] = _values(where, key, spec)
        lens = {k: len(v) for k, v in cols.items()}
        if len(set(lens.values())) != 1:
            raise DiagsimError(f"{where} lists must have equal lengths, got "
                               + ", ".join(f"{k}: {n}" for k, n in lens.items()))
        axes.append((list(cols), list(zip(*cols.values()))))

    summary = raw.get("summary", {})
    if not isinstance(summary, dict):
        raise DiagsimError("[summary] must be a table of summarizer options")
    plot = raw.get("plot", {})
    if not isinstance(plot, dict):
        raise DiagsimError("[plot] must be a table with x, y, value[, where, agg, log_x, log_y]")
    bad = sorted(set(plot) - set(PLOT_KEYS))
    if bad:
        raise DiagsimError(f"unknown key(s) {', '.join(map(repr, bad))} in [plot]; allowed: "
                           f"{', '.join(PLOT_KEYS)}")
    return Sweep(name=name, job=kind, base=copy.deepcopy(base), axes=axes, summary=dict(summary),
                 plot=dict(plot), description=str(head.get("description", "")), source=source)


def read_toml(path, what: str = "config") -> dict:
    """A TOML file as a dict; a missing or invalid file is a one-line DiagsimError that names ``what``
    ("sweep config", "figure config", "--config") and the path."""
    path = Path(path)
    if not path.is_file():
        raise DiagsimError(f"{what} {str(path)!r} does not exist")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise DiagsimError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None


def load_sweep(path, *, quick: bool = False, job: str | None = None) -> Sweep:
    """Read a sweep from a TOML file (see the module docstring); errors are one-line DiagsimErrors."""
    raw = read_toml(path, "sweep config")
    return sweep_from_dict(raw, quick=quick, source=str(path), job=job)


def as_sweep(sweep: Any, *, quick: bool = False) -> Sweep:
    """Accept a :class:`Sweep`, a dict or a path."""
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, dict):
        return sweep_from_dict(sweep, quick=quick)
    if isinstance(sweep, (str, Path)):
        return load_sweep(sweep, quick=quick)
    raise DiagsimError(f"sweep must be a Sweep, a dict or a path to a TOML file; got {type(sweep).__name__}")
