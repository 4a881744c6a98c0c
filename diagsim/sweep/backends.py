"""Where jobs run: ``"serial"`` (this process), ``"local"`` (a process pool) or ``"dask"``.

Every backend receives ``(key, config)`` items and yields ``(key, outcome)`` in completion order, with
``outcome`` one of ``("ok", bytes)``, ``("failed", error type, message)`` (a deterministic DiagsimError,
cached) or ``("crashed", error type, message)`` (anything else: not cached, retried on the next run).
Workers return the result's bytes and the caller writes them to the cache, so a remote Dask cluster
needs no shared file system, and a result is on disk as soon as its job finishes.

Jobs are pure functions of their configuration and all randomness is addressed by explicit seeds, so
the backend never changes a result: serial, local and dask give bit-identical cache files.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterable, Iterator

from ..errors import DiagsimError
from .jobs import execute

BACKENDS = ("serial", "local", "dask")


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _crash(exc: BaseException) -> tuple:
    return ("crashed", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


def run_serial(ref, items: Iterable[tuple[str, dict]], **_) -> Iterator[tuple[str, tuple]]:
    for key, cfg in items:
        try:
            out = execute(ref, cfg)
        except Exception as exc:  # noqa: BLE001 - reported as a crashed job, the sweep goes on
            out = _crash(exc)
        yield key, out


def _init_worker(threads: int) -> None:
    """Limit Numba's threads so that ``workers`` processes do not oversubscribe the cores."""
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)


def run_local(ref, items: Iterable[tuple[str, dict]], *, workers: int | None = None,
              mp_context: str = "spawn", **_) -> Iterator[tuple[str, tuple]]:
    """A ``ProcessPoolExecutor`` with ``workers`` processes (default: the cores).

    ``mp_context`` defaults to "spawn": forking a process that has already run Numba's OpenMP threading
    layer is unsafe. Custom job functions must therefore be importable by their module name.
    """
    items = list(items)
    if not items:
        return
    cores = default_workers()
    workers = min(workers or cores, len(items))
    threads = max(1, cores // workers)
    ctx = multiprocessing.get_context(mp_context)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads,))
    finished = False
    try:
        pending = {pool.submit(execute, ref, cfg): key for key, cfg in items}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                key = pending.pop(fut)
                try:
                    out = fut.result()
                except Exception as exc:  # noqa: BLE001 - a job's bug or a dead worker
                    out = _crash(exc)
                yield key, out
        finished = True
    finally:
        # interrupted: drop the queue and do not wait for running jobs (their results are not wanted)
        pool.shutdown(wait=finished, cancel_futures=True)


def _dask():
    try:
        from dask import distributed
    except ImportError:
        raise DiagsimError("backend 'dask' needs dask.distributed, which is not installed; "
                           "pip install 'diagsim[distributed]' (or use --backend local)") from None
    return distributed


def run_dask(ref, items: Iterable[tuple[str, dict]], *, workers: int | None = None, scheduler=None,
             cluster_options: dict | None = None, **_) -> Iterator[tuple[str, tuple]]:
    """Run on a Dask cluster.

    ``scheduler``: an address ("tcp://host:8786") to connect to, an existing ``distributed.Client``, or
    None to start a ``LocalCluster`` with ``workers`` single-threaded workers (``cluster_options`` are
    passed to it, e.g. ``{"processes": False}``). Workers need diagsim installed; they return result
    bytes, so no shared file system is needed.
    """
    items = list(items)
    if not items:
        return
    distributed = _dask()
    owned = []
    try:
        if scheduler is None:
            opts = {"n_workers": workers or default_workers(), "threads_per_worker": 1,
                    "dashboard_address": None}
            opts.update(cluster_options or {})
            cluster = distributed.LocalCluster(**opts)
            owned.append(cluster)
            client = distributed.Client(cluster)
            owned.insert(0, client)
        elif isinstance(scheduler, str):
            try:
                client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise DiagsimError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
            owned.append(client)
        else:
            client = scheduler
        import uuid
        tag = uuid.uuid4().hex[:8]
        futures = {client.submit(execute, ref, cfg, key=f"diagsim-{key}-{tag}", pure=False): key
                   for key, cfg in items}
        try:
            for fut in distributed.as_completed(list(futures)):
                key = futures[fut]
                try:
                    out = fut.result()
                except Exception as exc:  # noqa: BLE001
                    out = _crash(exc)
                yield key, out
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        for obj in owned:
            obj.close()


RUNNERS = {"serial": run_serial, "local": run_local, "dask": run_dask}
