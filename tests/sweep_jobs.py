"""Job functions for the sweep fault-injection tests, importable by name in worker processes
(``tests/`` must be on ``sys.path`` or ``PYTHONPATH``).

``job(config)`` is a pure function of ``config["x"]`` and ``config["seed"]``. Before computing, it appends
the line ``"<x> <pid>"`` to the file named by the environment variable ``SWEEP_JOB_LOG`` (when set), so
a test can count how often each job ran, in which process. ``config["fault"]`` applies to the job whose
``x`` equals ``config["fault_at"]``; a fault ending in ``-once`` fires only while the file
``config["marker"]`` does not exist (it creates it first):

- ``"kill"`` / ``"kill-once"``: SIGKILL the process running the job;
- ``"term-parent-once"``: SIGTERM the parent process (the sweep that started this pool worker), then
  block until killed;
- ``"kill-dask-worker-once"``: wait until this Dask worker holds no other task's result (the sweep has
  written and released them all), then SIGKILL the worker process;
- ``"fail"``: raise a DiagsimError (a deterministic failure, which the sweep caches).

The environment variable ``SWEEP_JOB_SLEEP`` makes every job take that many seconds longer (for tests
where two sweeps must overlap); it is not part of the configuration, so the keys do not change.

The helpers at the end write such sweeps as TOML files, build the environment of a subprocess that
runs one, and read the execution log back.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np

from diagsim.errors import DiagsimError

LOG_ENV = "SWEEP_JOB_LOG"
SLEEP_ENV = "SWEEP_JOB_SLEEP"
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _log(x) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as f:     # one short line per O_APPEND write: atomic across processes
            f.write(f"{x} {os.getpid()}\n")


def _first_time(config: dict) -> bool:
    marker = Path(config["marker"])
    if marker.exists():
        return False
    marker.write_text("fired\n")
    return True


def _wait_until_worker_holds_no_results(limit_s: float = 30.0) -> None:
    """Block until this Dask worker's data store is empty, i.e. every result it computed was released
    by the client (bounded, so that a sweep that never releases them still gets its worker killed)."""
    from distributed import get_worker
    data = get_worker().data
    deadline = time.monotonic() + limit_s
    while len(data) and time.monotonic() < deadline:
        time.sleep(0.01)


def job(config: dict) -> dict:
    x = int(config["x"])
    _log(x)
    fault = config.get("fault", "") if x == config.get("fault_at") else ""
    if fault == "kill" or (fault == "kill-once" and _first_time(config)):
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "term-parent-once" and _first_time(config):
        os.kill(os.getppid(), signal.SIGTERM)
        while True:
            signal.pause()
    if fault == "kill-dask-worker-once" and _first_time(config):
        _wait_until_worker_holds_no_results()
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "fail":
        raise DiagsimError(f"job x={x} fails by design")
    if os.environ.get(SLEEP_ENV):
        time.sleep(float(os.environ[SLEEP_ENV]))
    rng = np.random.default_rng(np.random.SeedSequence([int(config["seed"]), x]))
    z = rng.standard_normal(16)
    return {"value": float(z.sum()), "trace": np.cumsum(z), "x": x}


# --------------------------------------------------------------------------- helpers for the tests
def write_sweep(path: Path, xs=range(4), **base) -> Path:
    """Write a TOML sweep of :func:`job` over ``x in xs`` with ``base`` in every job's configuration."""
    lines = ["[sweep]", 'name = "faults"', 'job = "sweep_jobs:job"', "[base]", "seed = 7"]
    lines += [f"{k} = {json.dumps(str(v) if isinstance(v, Path) else v)}" for k, v in base.items()]
    lines += ["[grid]", f"x = {json.dumps(list(xs))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def subprocess_env(log: Path | None = None, sleep: float | None = None) -> dict:
    """This process's environment with tests/ and the repository on PYTHONPATH, jobs logging to ``log``
    and taking ``sleep`` seconds longer."""
    path = os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    env.pop(LOG_ENV, None)
    env.pop(SLEEP_ENV, None)
    if log is not None:
        env[LOG_ENV] = str(log)
    if sleep is not None:
        env[SLEEP_ENV] = str(sleep)
    return env


def executions(log: Path) -> list[tuple[int, int]]:
    """``(x, pid)`` of every logged execution of :func:`job`, in order."""
    if not Path(log).exists():
        return []
    return [tuple(int(v) for v in line.split()) for line in Path(log).read_text().splitlines()]


def counts(log: Path) -> dict[int, int]:
    """How many times each ``x`` was executed."""
    return dict(Counter(x for x, _ in executions(log)))
