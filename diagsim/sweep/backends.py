"""Where jobs run: ``"serial"`` (this process), ``"local"`` (worker processes) or ``"dask"``.

Every backend receives ``(key, config)`` items and yields ``(key, outcome)`` in completion order, with
``outcome`` one of ``("ok", bytes)``, ``("failed", error type, message)`` (a deterministic DiagsimError,
cached) or ``("crashed", error type, message)`` (anything else: not cached, retried on the next run).
Workers return the result's bytes and the caller writes them to the cache before it asks for the next
outcome, so a remote Dask cluster needs no shared file system, and a result is on disk as soon as its
job finishes. Items are drawn lazily (the local backend takes one when a worker is free), so the caller
can claim each job just before it starts.

When a worker dies:

- ``local`` keeps at most ``workers`` jobs in flight, each in a worker process of its own, and knows
  which job every worker runs. If a worker dies (killed by a signal, the out-of-memory killer, a crash
  in native code), only the job it was running is affected: it is run once more in a fresh worker, and
  if that worker dies too it is reported as crashed ("its worker process died (signal 9, SIGKILL) while
  running it"). Every other job carries on.
- ``dask`` releases each future as soon as its result is written, so the scheduler forgets it: a lost
  worker costs the jobs it was running or had queued (Dask runs them again elsewhere), never results
  already written.

Interrupting the caller (Ctrl-C, or SIGTERM turned into an exception by the CLI) stops the backend: the
local workers are terminated and an owned Dask cluster is closed.

Jobs are pure functions of their configuration and all randomness is addressed by explicit seeds, so
the backend never changes a result: serial, local and dask give bit-identical cache files.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections import deque
from multiprocessing.connection import wait as wait_for
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
    """Limit Numba's and OpenBLAS's threads so that ``workers`` processes do not oversubscribe the cores
    (OpenBLAS busy-waits: two BLAS threads per worker on two loaded cores made an SVD 80 times slower)."""
    from ..lowlevel.threads import limit_threads
    limit_threads(threads)


def _worker_main(conn, ref, threads: int) -> None:
    """A local worker: run the jobs sent on ``conn`` one by one and send back their outcomes.

    The worker ignores SIGINT: on Ctrl-C the sweep process stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(threads)
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):       # the sweep process is gone
            return
        if msg is None:
            return
        key, cfg = msg
        try:
            out = execute(ref, cfg)
        except Exception as exc:  # noqa: BLE001 - reported as a crashed job, the sweep goes on
            out = _crash(exc)
        conn.send((key, out))


def _death(exitcode: int | None) -> str:
    """How a worker process ended: "signal 9, SIGKILL" or "exit code 1"."""
    if exitcode is None:
        return "unknown cause"
    if exitcode < 0:
        try:
            return f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class _Worker:
    """One worker process, the pipe to it, and the job it is running (None when idle)."""

    def __init__(self, ctx, ref, threads: int):
        self.conn, self._child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(self._child, ref, threads),
                                name="diagsim-sweep-worker")
        self.job: tuple[str, dict] | None = None

    def start(self) -> "_Worker":
        try:
            self.proc.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise DiagsimError(f"cannot send the job function to a worker process ({exc}); a custom job "
                               "function must be importable by its module name") from None
        finally:
            self._child.close()
        return self

    def run(self, job: tuple[str, dict]) -> None:
        self.job = job
        try:
            self.conn.send(job)
        except OSError:
            pass                          # the worker died while idle: reading its outcome will tell

    def stop(self, graceful: bool) -> None:
        """End the process: ask it to finish (``graceful``) or terminate it, then reap it."""
        if graceful:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def run_local(ref, items: Iterable[tuple[str, dict]], *, workers: int | None = None,
              mp_context: str = "spawn", n_items: int | None = None, **_) -> Iterator[tuple[str, tuple]]:
    """Run on ``workers`` worker processes (default: the cores), at most one job per worker at a time.

    A job whose worker dies is run once more in a fresh worker; a second death reports it as crashed,
    and no other job is touched (see the module docstring). ``n_items``, the number of items if known,
    caps the number of workers (the cores are then shared among fewer, each with more Numba threads).
    ``mp_context`` defaults to "spawn": forking a process that has already run Numba's OpenMP threading
    layer is unsafe. Custom job functions must therefore be importable by their module name.
    """
    items = iter(items)
    cores = default_workers()
    workers = max(1, min(workers or cores, n_items or workers or cores))
    threads = max(1, cores // workers)
    ctx = multiprocessing.get_context(mp_context)
    started: list[_Worker] = []          # every live worker, registered before it starts
    idle: list[_Worker] = []
    busy: dict = {}                      # connection -> _Worker (registered before the job is sent)
    retry: deque = deque()               # jobs whose worker died once
    died: set[str] = set()
    exhausted = finished = any_ready = False
    try:
        while True:
            while len(busy) < workers:
                if retry:
                    job = retry.popleft()
                else:
                    job = None if exhausted else next(items, None)
                    if job is None:
                        exhausted = True
                        break
                if idle:
                    w = idle.pop()
                else:
                    w = _Worker(ctx, ref, threads)
                    started.append(w)
                    w.start()
                busy[w.conn] = w
                w.run(job)
            if not busy:
                break
            for conn in wait_for(list(busy)):
                w = busy.pop(conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    w.stop(graceful=False)
                    started.remove(w)
                    how = _death(w.proc.exitcode)
                    if not any_ready:
                        raise DiagsimError(f"a local worker process could not start ({how}; see the messages "
                                           "above); a custom job function must be importable by its module "
                                           "name") from None
                    key, cfg = w.job
                    if key in died:
                        yield key, ("crashed", "WorkerDied",
                                    f"its worker process died ({how}) while running it")
                    else:
                        died.add(key)
                        retry.append((key, cfg))
                    continue
                if msg == ("ready",):
                    any_ready = True
                    busy[conn] = w
                    continue
                w.job = None
                idle.append(w)
                yield msg
        finished = True
    finally:
        # interrupted: terminate the workers (the results of running jobs are not wanted)
        for w in started:
            w.stop(graceful=finished)


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
                key = futures.pop(fut)
                try:
                    out = fut.result()
                except Exception as exc:  # noqa: BLE001
                    out = _crash(exc)
                yield key, out
                # written by the caller: let the scheduler forget it, so that a lost worker does not
                # recompute it (a future the client still holds is recomputed when its data is lost)
                fut.release()
                del fut, out
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        for obj in owned:
            obj.close()


RUNNERS = {"serial": run_serial, "local": run_local, "dask": run_dask}
