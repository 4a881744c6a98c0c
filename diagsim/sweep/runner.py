"""Plan a sweep (expand, canonicalize, key), run what is missing, and report.

``run_sweep`` computes only the jobs whose result is not in the cache; each result is written as soon as
its job finishes, so an interrupted sweep (Ctrl-C, a killed process, a crashed worker) loses nothing
already computed and the next call resumes where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiagsimError, check_choice, check_int
from .backends import BACKENDS, RUNNERS
from .cache import Cache, job_key
from .config import Job, Sweep, as_sweep
from .jobs import JobKind, job_ref, kind_for
from .progress import Progress


@dataclass
class Plan:
    """A sweep's jobs with their canonical configurations and keys, and the cache they live in."""

    sweep: Sweep
    kind: JobKind
    cache: Cache
    jobs: list[Job]

    @property
    def unique(self) -> dict[str, Job]:
        """The first job of every distinct key (two grid points may describe the same job)."""
        out: dict[str, Job] = {}
        for j in self.jobs:
            out.setdefault(j.key, j)
        return out

    def status(self) -> dict[str, str]:
        return {k: self.cache.status(k) for k in self.unique}


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "the base config"


def plan_sweep(sweep, cache_dir, *, job=None, quick: bool = False) -> Plan:
    """Expand ``sweep`` and canonicalize every job config (errors name the grid point)."""
    sweep = as_sweep(sweep, quick=quick)
    kind = kind_for(job if job is not None else sweep.job)
    jobs = []
    for i, (params, cfg) in enumerate(sweep.job_configs()):
        cfg["job"] = kind.name
        try:
            canon = kind.canonicalize(cfg)
        except DiagsimError as exc:
            raise DiagsimError(f"sweep {sweep.name!r}, job {i} ({_fmt_params(params)}): {exc}") from None
        jobs.append(Job(i, params, canon, job_key(canon)))
    return Plan(sweep, kind, Cache(cache_dir, kind.suffix), jobs)


@dataclass
class SweepReport:
    """What a call of :func:`run_sweep` did."""

    name: str
    total: int                  # grid points
    unique: int                 # distinct jobs (keys)
    cached: int                 # already in the cache (ok or failed) before this call
    computed: int               # run by this call and written to the cache
    failed: int                 # jobs with a recorded deterministic failure (after this call)
    crashed: list = field(default_factory=list)   # (key, error type, message), not cached
    elapsed: float = 0.0
    cache_dir: str = ""
    backend: str = "serial"

    def line(self) -> str:
        s = (f"sweep {self.name!r}: {self.total} points, {self.unique} jobs: {self.cached} cached, "
             f"{self.computed} computed, {self.failed} failed")
        if self.crashed:
            s += f", {len(self.crashed)} crashed"
        return s + f" ({self.elapsed:.1f} s, backend {self.backend}); cache {self.cache_dir}"


def run_sweep(sweep, cache_dir, *, backend: str = "serial", workers: int | None = None, scheduler=None,
              job=None, quick: bool = False, progress: bool = True, retry_failed: bool = False,
              cluster_options: dict | None = None, mp_context: str = "spawn",
              raise_on_crash: bool = True) -> SweepReport:
    """Compute every job of a sweep that is not in the cache.

    Parameters
    ----------
    sweep : a :class:`~diagsim.sweep.config.Sweep`, a dict, or the path of a TOML file.
    cache_dir : the cache folder (see :mod:`diagsim.sweep.cache`).
    backend : "serial", "local" (process pool, ``workers`` processes, default the cores) or "dask"
        (``scheduler``: an address, a ``distributed.Client``, or None for a LocalCluster).
    job : override the job kind (a name, ``"module:function"`` or a function ``f(config) -> dict``).
    quick : apply the config's ``[quick]`` overrides.
    retry_failed : recompute jobs with a recorded failure.
    raise_on_crash : raise a DiagsimError at the end if a job crashed (a non-DiagsimError exception).

    Returns
    -------
    SweepReport
    """
    check_choice("backend", backend, BACKENDS)
    if workers is not None:
        workers = check_int("workers", workers)
    t0 = time.perf_counter()
    plan = plan_sweep(sweep, cache_dir, job=job, quick=quick)
    unique = plan.unique
    status = plan.status()
    todo = [(k, unique[k].config) for k, s in status.items()
            if s == "missing" or (retry_failed and s == "failed")]
    cached = len(unique) - len(todo)
    report = SweepReport(plan.sweep.name, len(plan.jobs), len(unique), cached, 0, 0,
                         cache_dir=str(Path(cache_dir)), backend=backend)
    bar = Progress(len(unique), cached, label=plan.sweep.name, enabled=progress)
    configs = dict(todo)
    try:
        runner = RUNNERS[backend]
        for key, out in runner(job_ref(plan.kind), todo, workers=workers, scheduler=scheduler,
                               cluster_options=cluster_options, mp_context=mp_context):
            if out[0] == "ok":
                plan.cache.write_result(key, configs[key], out[1])
                report.computed += 1
                bar.update()
            elif out[0] == "failed":
                plan.cache.write_error(key, configs[key], out[2], out[1])
                report.computed += 1
                bar.update(failed=True)
            else:
                report.crashed.append((key, out[1], out[2]))
                bar.update(failed=True)
    finally:
        bar.close()
        report.elapsed = time.perf_counter() - t0
    report.failed = sum(plan.cache.status(k) == "failed" for k in unique)
    if report.crashed and raise_on_crash:
        key, typ, msg = report.crashed[0]
        raise DiagsimError(f"{len(report.crashed)} of {len(todo)} jobs crashed (not cached; re-run to "
                           f"retry); first, job {key}: {typ}: {msg}")
    return report
