"""Plan a sweep (expand, canonicalize, key), run what is missing, and report.

:func:`run_sweep` checks every entry of the cache (:meth:`~diagsim.sweep.cache.Cache.check`: a result is
reused only if its manifest and checksum prove it was made from this job's configuration), computes the
jobs whose entry is missing or corrupt (and, with ``retry_failed``, those that failed), and writes each
result as soon as its job finishes. An interrupted sweep (Ctrl-C, SIGTERM, a killed process, a dead
worker) therefore loses nothing already written, and the next call resumes where it stopped.

Several sweeps may run on one cache at once. Each job is claimed just before it starts
(:class:`~diagsim.sweep.cache.Claims`); a job claimed by another live sweep is left to it, and waited
for once this sweep has run everything else: the progress output says "k jobs being computed by pid P
on HOST", and the report counts them as computed by other sweeps. If such a claim goes stale (its owner
died, or stopped refreshing it for ``claim_timeout`` seconds), this sweep takes the job over. No job is
computed twice while its first owner is alive, and no entry is ever half-written.

Simulations on the GPU (``device = "cuda"``, the discrete level) do not go to the backend: they run in
this process, the jobs that can share a launch in one (:func:`diagsim.sweep.simjob.run_many`,
:func:`diagsim.engine.batched.simulate_many`), and each result is written to the cache under its own key,
bitwise what the job gives alone.
"""
from __future__ import annotations

import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.progress import SweepProgress
from ..errors import DiagsimError, check_choice, check_int, check_positive
from ..storage import check_output_dir
from .backends import BACKENDS, RUNNERS
from .cache import Cache, Claim, Claims, EntryState, job_key
from .grid import Job, Sweep, as_sweep
from .jobs import JobKind, job_ref, kind_for

#: seconds between two looks at the jobs another sweep is computing
WAIT_POLL = 0.25


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

    def check(self) -> dict[str, EntryState]:
        """The verified cache state of every distinct job (see :meth:`Cache.check`)."""
        return {k: self.cache.check(k, j.config) for k, j in self.unique.items()}

    def status(self) -> dict[str, str]:
        """"ok", "failed", "missing" or "corrupt" for every distinct job."""
        return {k: st.status for k, st in self.check().items()}

    def describe(self, key: str) -> str:
        """``entry <key> (job <index>, <swept values>)``: which entry and which grid point."""
        j = self.unique[key]
        return f"entry {key} (job {j.index}, {_fmt_params(j.params)})"

    def repair_command(self) -> str:
        """What recomputes missing or corrupt entries of this sweep."""
        src = self.sweep.source
        return f"diagsim sweep --config {src}" if src else "run_sweep(...) or diagsim sweep --config FILE"


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
    cached: int                 # verified in the cache (ok or failed) before this call
    computed: int               # run by this call and written to the cache
    failed: int                 # jobs with a recorded deterministic failure (after this call)
    crashed: list = field(default_factory=list)   # (key, error type, message), not cached
    elapsed: float = 0.0
    cache_dir: str = ""
    backend: str = "serial"
    corrupt: list = field(default_factory=list)   # one line per corrupt entry found (all recomputed)
    by_others: int = 0          # computed meanwhile by other sweeps sharing the cache
    others: list = field(default_factory=list)    # those sweeps that this one waited for ("pid P on HOST")

    def __repr__(self) -> str:
        return f"<diagsim SweepReport: {self.line()}>"

    def _repr_html_(self) -> str:
        import html
        counts = [("grid points", self.total), ("jobs", self.unique), ("cached", self.cached),
                  ("computed", self.computed), ("failed", self.failed), ("crashed", len(self.crashed)),
                  ("computed by other sweeps", self.by_others), ("corrupt entries recomputed", len(self.corrupt))]
        rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in counts)
        return (f"<div><strong>diagsim SweepReport</strong>: sweep {html.escape(repr(self.name))}, backend "
                f"{html.escape(self.backend)}, {self.elapsed:.1f} s, cache {html.escape(self.cache_dir)}"
                f"<table><tbody>{rows}</tbody></table></div>")

    def line(self) -> str:
        s = (f"sweep {self.name!r}: {self.total} points, {self.unique} jobs: {self.cached} cached, "
             f"{self.computed} computed, {self.failed} failed")
        if self.by_others:
            s += f", {self.by_others} computed by other sweeps"
            if self.others:
                s += f" ({', '.join(self.others)})"
        if self.crashed:
            s += f", {len(self.crashed)} crashed"
        s += f" ({self.elapsed:.1f} s, backend {self.backend}); cache {self.cache_dir}"
        if self.corrupt:
            n = len(self.corrupt)
            s += f"; {n} corrupt entr{'y' if n == 1 else 'ies'} recomputed, first: {self.corrupt[0]}"
        return s


def run_sweep(sweep, cache_dir, *, backend: str = "serial", workers: int | None = None, scheduler=None,
              job=None, quick: bool = False, progress: bool = True, retry_failed: bool = False,
              cluster_options: dict | None = None, mp_context: str = "spawn",
              raise_on_crash: bool = True, claim_refresh: float = 30.0,
              claim_timeout: float = 300.0) -> SweepReport:
    """Compute every job of a sweep whose cache entry is missing or corrupt.

    Parameters
    ----------
    sweep : a :class:`~diagsim.sweep.grid.Sweep`, a dict, or the path of a TOML file.
    cache_dir : the cache folder (see :mod:`diagsim.sweep.cache`); checked to be writable before any
        job runs.
    backend : "serial", "local" (worker processes, ``workers`` of them, default the cores) or "dask"
        (``scheduler``: an address, a ``distributed.Client``, or None for a LocalCluster).
    job : override the job kind (a name, ``"module:function"`` or a function ``f(config) -> dict``).
    quick : apply the config's ``[quick]`` overrides.
    retry_failed : recompute jobs with a recorded failure.
    raise_on_crash : raise a DiagsimError at the end if a job crashed (a non-DiagsimError exception, or
        a worker process that died twice while running it).
    claim_refresh, claim_timeout : seconds between two refreshes of this sweep's claims, and the age
        after which another sweep's unrefreshed claim is stale (see :mod:`diagsim.sweep.cache`).

    Returns
    -------
    SweepReport
    """
    check_choice("backend", backend, BACKENDS)
    if workers is not None:
        workers = check_int("workers", workers)
    claim_refresh = check_positive("claim_refresh", claim_refresh)
    claim_timeout = check_positive("claim_timeout", claim_timeout)
    if claim_timeout <= claim_refresh:
        raise DiagsimError(f"claim_timeout ({claim_timeout:g} s) must exceed claim_refresh "
                           f"({claim_refresh:g} s), or the claims of live sweeps would look stale")
    t0 = time.perf_counter()
    plan = plan_sweep(sweep, cache_dir, job=job, quick=quick)
    states = plan.check()
    status = {k: st.status for k, st in states.items()}
    todo = [k for k, s in status.items() if s in ("missing", "corrupt") or (retry_failed and s == "failed")]
    _check_devices(plan, todo)
    report = SweepReport(plan.sweep.name, len(plan.jobs), len(status), len(status) - len(todo), 0, 0,
                         cache_dir=str(Path(cache_dir)), backend=backend,
                         corrupt=[f"{plan.describe(k)}: {st.reason}" for k, st in states.items()
                                  if st.status == "corrupt"])
    bar = SweepProgress(len(status), report.cached, label=plan.sweep.name, enabled=progress)
    if report.corrupt:
        bar.note(f"{len(report.corrupt)} corrupt cache entries will be recomputed; first, "
                 f"{report.corrupt[0]}")

    def backend_run(items, n_items):
        return RUNNERS[backend](job_ref(plan.kind), items, workers=workers, scheduler=scheduler,
                                cluster_options=cluster_options, mp_context=mp_context, n_items=n_items)
    try:
        if todo:
            check_output_dir(plan.cache.root, "cache folder")
            with Claims(plan.cache.root, refresh=claim_refresh, timeout=claim_timeout) as claims:
                _compute(plan, todo, status, claims, report, bar, backend_run)
    finally:
        bar.close()
        report.elapsed = time.perf_counter() - t0
    report.failed = sum(s == "failed" for s in status.values())
    if report.crashed and raise_on_crash:
        key, typ, msg = report.crashed[0]
        raise DiagsimError(f"{len(report.crashed)} of {len(todo)} jobs crashed (not cached; re-run to "
                           f"retry); first, {plan.describe(key)}: {typ}: {msg}")
    return report


def _check_devices(plan: Plan, todo: list[str]) -> None:
    """Jobs to run on a GPU need one here: checked before any work, so that a missing GPU is an error now,
    not a failure cached for every job."""
    n = sum(plan.unique[k].config.get("simulate", {}).get("device") == "cuda" for k in todo)
    if n:
        from ..cuda import _lazy
        why = _lazy.unavailable_reason()
        if why:
            raise DiagsimError(f"{n} job(s) of sweep {plan.sweep.name!r} run on device 'cuda', but CUDA is not "
                               f"available: {why}")


def _compute(plan: Plan, todo: list[str], status: dict, claims: Claims, report: SweepReport, bar: SweepProgress,
             backend_run) -> None:
    """Compute ``todo``: claim each job as the backend takes it, store its outcome, release the claim;
    then wait for the jobs other sweeps hold, taking over those whose claims go stale."""
    configs = {k: plan.unique[k].config for k in todo}
    planned = dict(status)
    waiting: dict[str, Claim] = {}

    def done_elsewhere(key: str) -> bool:
        """Whether another sweep has written the entry of ``key`` since this call planned it."""
        st = plan.cache.check(key, configs[key])
        if st.status == "ok" or (st.status == "failed" and planned[key] != "failed"):
            status[key] = st.status
            report.by_others += 1
            bar.update(failed=st.status == "failed")
            return True
        return False

    def claimed(keys):
        for key in keys:
            owner = claims.claim(key)
            if owner is not None:
                waiting[key] = owner
            elif done_elsewhere(key):
                claims.release(key)
            else:
                yield key, configs[key]

    kind = plan.kind
    pending = list(todo)
    while pending:
        together = [k for k in pending if kind.run_many is not None and kind.batchable(configs[k])]
        if together:  # in this process, many jobs per GPU launch (see JobKind.run_many)
            keys = [key for key, _ in claimed(together)]
            for i, out in kind.run_many([configs[key] for key in keys]):
                _store(plan, keys[i], configs[keys[i]], out, status, report, bar)
                claims.release(keys[i])
        shared = set(together)
        rest = [k for k in pending if k not in shared]
        if rest:
            with closing(backend_run(claimed(rest), len(rest))) as outcomes:
                for key, out in outcomes:
                    _store(plan, key, configs[key], out, status, report, bar)
                    claims.release(key)
        pending = _wait_for_others(waiting, claims, done_elsewhere, report, bar)


def _store(plan: Plan, key: str, config: dict, out: tuple, status: dict, report: SweepReport,
           bar: SweepProgress) -> None:
    if out[0] == "ok":
        plan.cache.write_result(key, config, out[1])
        report.computed += 1
        status[key] = "ok"
        bar.update()
    elif out[0] == "failed":
        plan.cache.write_error(key, config, out[2], out[1])
        report.computed += 1
        status[key] = "failed"
        bar.update(failed=True)
    else:
        report.crashed.append((key, out[1], out[2]))
        bar.update(failed=True)


def _wait_for_others(waiting: dict[str, Claim], claims: Claims, done_elsewhere, report: SweepReport,
                     bar: SweepProgress) -> list[str]:
    """Wait until the jobs other sweeps hold are written, or some of them are free to compute (their
    claim was dropped or went stale): return those (empty once every job is written)."""
    announced = ""
    while waiting:
        free = []
        for key, owner in list(waiting.items()):
            if done_elsewhere(key):
                del waiting[key]
                if owner.owner not in report.others:
                    report.others.append(owner.owner)
                continue
            current = claims.read(key)
            if current is None or claims.is_stale(current):
                free.append(key)
                del waiting[key]
            else:
                waiting[key] = current
        if free:
            return free
        if waiting:
            groups = Counter(c.owner for c in waiting.values())
            note = "waiting for " + ", ".join(f"{n} job{'s' if n != 1 else ''} being computed by {who}"
                                              for who, n in groups.items())
            if note != announced:
                bar.note(note)
                announced = note
            time.sleep(WAIT_POLL)
    return []
