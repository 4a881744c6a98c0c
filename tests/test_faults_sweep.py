"""Fault injection for sweeps: damaged or swapped cache entries, two sweeps on one cache, claims of
live and dead sweeps, pool and Dask workers that die, SIGTERM, and the permissions of written files.

The jobs are :func:`sweep_jobs.job` (importable by name in worker processes); each call logs
``"<x> <pid>"`` to ``$SWEEP_JOB_LOG``, so a test counts executions across processes. Processes that must
run concurrently are waited on (``communicate``/``wait`` with a generous timeout), never polled.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sweep_jobs
from sweep_jobs import counts, executions, subprocess_env, write_sweep

from diagsim.errors import DiagsimError
from diagsim.sweep import Table, collect, load_table, plan_sweep, run_sweep
from diagsim.sweep.jobs import dump_arrays

TIMEOUT = 180          # seconds; a generous bound for a subprocess that should take a few


# --------------------------------------------------------------------------- helpers
def cli(cfg: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "diagsim", "sweep", "--config", str(cfg), "--cache", str(cache),
            "--out", str(out), *extra]


def reference(tmp_path: Path, cfg: Path, monkeypatch, name: str = "ref") -> tuple[Path, Table]:
    """An uninterrupted serial run of ``cfg`` in this process (into its own cache): (cache, table)."""
    monkeypatch.delenv(sweep_jobs.LOG_ENV, raising=False)
    monkeypatch.delenv(sweep_jobs.SLEEP_ENV, raising=False)
    cache = tmp_path / name
    run_sweep(cfg, cache, progress=False)
    return cache, collect(cfg, cache)


def entry_files(cache: Path) -> dict[str, bytes]:
    """The bytes of the cache's entry files (results, manifests, failure records)."""
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir()) if p.suffix in (".npz", ".json")}


def assert_tables_equal(a: Table, b: Table) -> None:
    assert a.names == b.names
    for n in a.names:
        np.testing.assert_array_equal(a[n], b[n], err_msg=n)


def assert_corrupt_then_repaired(cfg: Path, cache: Path, good: Table, bad: dict[int, str], log: Path,
                                 monkeypatch) -> None:
    """Rows ``bad`` (index -> words of the reason) are reported corrupt without values; the next
    run_sweep recomputes exactly them and the table is ``good`` again."""
    t = collect(cfg, cache, missing="nan")
    for i in range(len(t)):
        if i not in bad:
            assert t["status"][i] == "ok" and t["value"][i] == good["value"][i]
            continue
        assert t["status"][i] == "corrupt" and np.isnan(t["value"][i])
        err = t["error"][i]
        assert "\n" not in err
        assert f"entry {good['key'][i]} (job {i}, x={i})" in err, err
        assert bad[i] in err, err
        assert f"diagsim sweep --config {cfg}" in err, err
    with pytest.raises(DiagsimError) as exc:
        collect(cfg, cache)
    msg = str(exc.value)
    assert "\n" not in msg and f"{len(bad)} corrupt" in msg and f"diagsim sweep --config {cfg}" in msg, msg
    monkeypatch.setenv(sweep_jobs.LOG_ENV, str(log))
    r = run_sweep(cfg, cache, progress=False)
    assert (r.cached, r.computed, len(r.corrupt)) == (len(good) - len(bad), len(bad), len(bad))
    first = min(bad)
    assert f"{len(bad)} corrupt" in r.line() and f"entry {good['key'][first]} (job {first}" in r.line()
    assert counts(log) == {i: 1 for i in bad}
    assert_tables_equal(collect(cfg, cache), good)


# --------------------------------------------------------------------------- cache integrity
@pytest.mark.parametrize("swap", ["result", "result and manifest"])
def test_swapped_entries_are_corrupt_not_shown_and_recomputed(tmp_path, monkeypatch, swap):
    cfg, cache = write_sweep(tmp_path / "s.toml"), tmp_path / "cache"
    run_sweep(cfg, cache, progress=False)
    good = collect(cfg, cache)
    a, b = good["key"][0], good["key"][1]
    shutil.copyfile(cache / f"{a}.npz", cache / f"{b}.npz")
    reason = "SHA-256 does not match"
    if swap == "result and manifest":
        shutil.copyfile(cache / f"{a}.json", cache / f"{b}.json")
        reason = f"belongs to entry {a}"
    assert_corrupt_then_repaired(cfg, cache, good, {1: reason}, tmp_path / "log", monkeypatch)


def test_truncated_result_is_corrupt_and_recomputed(tmp_path, monkeypatch):
    cfg, cache = write_sweep(tmp_path / "s.toml"), tmp_path / "cache"
    run_sweep(cfg, cache, progress=False)
    good = collect(cfg, cache)
    p = cache / f"{good['key'][2]}.npz"
    size = p.stat().st_size
    p.write_bytes(p.read_bytes()[: size // 2])
    reason = f"has {size // 2} bytes, its manifest says {size}"
    assert_corrupt_then_repaired(cfg, cache, good, {2: reason}, tmp_path / "log", monkeypatch)


@pytest.mark.parametrize("damage", ["no manifest", "old-format manifest"])
def test_result_without_manifest_is_corrupt_and_recomputed(tmp_path, monkeypatch, damage):
    """A result whose manifest is missing (the writer was killed between the two writes) or carries no
    checksum (written by an older diagsim) is not trusted."""
    cfg, cache = write_sweep(tmp_path / "s.toml"), tmp_path / "cache"
    run_sweep(cfg, cache, progress=False)
    good = collect(cfg, cache)
    manifest = cache / f"{good['key'][3]}.json"
    if damage == "no manifest":
        manifest.unlink()
        reason = "has no manifest"
    else:
        config = json.loads(manifest.read_text())["config"]
        manifest.write_text(json.dumps(config, sort_keys=True, indent=1) + "\n")   # the old layout
        reason = "older format"
    assert_corrupt_then_repaired(cfg, cache, good, {3: reason}, tmp_path / "log", monkeypatch)


def test_corrupt_or_foreign_failure_record_is_recomputed(tmp_path, monkeypatch):
    cfg, cache = write_sweep(tmp_path / "s.toml", xs=range(3), fault="fail", fault_at=1), tmp_path / "cache"
    run_sweep(cfg, cache, progress=False)
    good = collect(cfg, cache)
    assert list(good["status"]) == ["ok", "failed", "ok"]
    k1, k2 = good["key"][1], good["key"][2]
    record = (cache / f"{k1}.error.json").read_text()
    (cache / f"{k1}.error.json").write_text(record[: len(record) // 2])         # unparsable
    for suffix in (".npz", ".json"):                                                 # job 2 never ran...
        (cache / f"{k2}{suffix}").unlink()
    (cache / f"{k2}.error.json").write_text(record)                                 # ...but job 1's failure
    t = collect(cfg, cache, missing="nan")
    assert list(t["status"]) == ["ok", "corrupt", "corrupt"]
    assert f"entry {k1} (job 1, x=1): its failure record {k1}.error.json cannot be read (not valid JSON)" \
        in t["error"][1]
    assert f"entry {k2} (job 2, x=2): its failure record {k2}.error.json belongs to entry {k1}" \
        in t["error"][2]
    assert all(f"diagsim sweep --config {cfg}" in e for e in t["error"][1:])
    log = tmp_path / "log"
    monkeypatch.setenv(sweep_jobs.LOG_ENV, str(log))
    r = run_sweep(cfg, cache, progress=False)
    assert (r.cached, r.computed, r.failed, len(r.corrupt)) == (1, 2, 1, 2)
    assert counts(log) == {1: 1, 2: 1}
    assert_tables_equal(collect(cfg, cache), good)


# --------------------------------------------------------------------------- claims
def test_two_sweeps_on_one_cache_compute_every_job_once(tmp_path, monkeypatch):
    """Two processes start the same sweep on one cache at the same time: each job runs exactly once,
    and both write the table of a serial run."""
    n = 8
    cfg, cache, log = write_sweep(tmp_path / "s.toml", xs=range(n)), tmp_path / "cache", tmp_path / "log"
    code = ("import sys; from diagsim.sweep import collect, run_sweep; "
            "r = run_sweep(sys.argv[1], sys.argv[2], progress=False); print(r.line()); "
            "collect(sys.argv[1], sys.argv[2]).save(sys.argv[3])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(cfg), str(cache), str(tmp_path / f"t{i}.npz")],
                              cwd=tmp_path, env=subprocess_env(log, sleep=0.5), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert counts(log) == {x: 1 for x in range(n)}
    computed = [int(out.split(" cached, ")[1].split(" computed")[0]) for out, _ in outs]
    assert sum(computed) == n, outs
    assert not list(cache.glob("*.claim"))
    _, ref = reference(tmp_path, cfg, monkeypatch)
    for i in range(2):
        assert_tables_equal(load_table(tmp_path / f"t{i}.npz"), ref)


def _write_claim(cache: Path, key: str, *, host: str, pid: int, age_s: float = 0.0) -> None:
    p = cache / f"{key}.claim"
    p.write_text(json.dumps({"host": host, "pid": pid, "started": "2000-01-01T00:00:00", "token": "t"}))
    if age_s:
        t = time.time() - age_s
        os.utime(p, (t, t))


def test_live_claims_are_waited_for_and_stale_ones_taken_over(tmp_path):
    """Job 0 is claimed by a dead process on this host and job 1 by a process elsewhere whose claim was
    not refreshed for longer than the timeout: both are taken over at once. Job 2 is claimed by a live
    process (this one): the sweep says it waits for it, and counts it as computed by that process when
    its entry appears."""
    cfg, cache, log = write_sweep(tmp_path / "s.toml"), tmp_path / "cache", tmp_path / "log"
    plan = plan_sweep(cfg, cache)
    keys = [j.key for j in plan.jobs]
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    host, me = socket.gethostname(), os.getpid()
    _write_claim(cache, keys[0], host=host, pid=int(dead.stdout))
    _write_claim(cache, keys[1], host="elsewhere.invalid", pid=1, age_s=120.0)
    _write_claim(cache, keys[2], host=host, pid=me)
    code = ("import sys; from diagsim.sweep import run_sweep; "
            f"r = run_sweep({str(cfg)!r}, {str(cache)!r}, claim_refresh=1.0, claim_timeout=60.0); "
            "print(r.line())")
    sweep = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(log),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(TIMEOUT, sweep.kill)
    watchdog.start()
    try:
        seen = []
        for line in sweep.stderr:                       # blocks until the sweep prints, or exits
            seen.append(line)
            if "being computed by" in line:
                break
        assert seen and f"waiting for 1 job being computed by pid {me} on {host}" in seen[-1], seen
        # play the other sweep: write job 2's entry, then drop the claim
        config = plan.jobs[2].config
        plan.cache.write_result(keys[2], config, dump_arrays(sweep_jobs.job(config)))
        (cache / f"{keys[2]}.claim").unlink()
        out, err = sweep.communicate(timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, err
    assert f"0 cached, 3 computed, 0 failed, 1 computed by other sweeps (pid {me} on {host})" in out, out
    assert counts(log) == {0: 1, 1: 1, 3: 1}
    assert not list(cache.glob("*.claim"))
    assert set(plan.status().values()) == {"ok"}


# --------------------------------------------------------------------------- dying workers
def test_local_worker_killed_by_its_job_fails_only_that_job(tmp_path, monkeypatch):
    """Job 2 SIGKILLs its worker process every time: it alone is reported (after one retry in a fresh
    worker); every other job is computed once and equals a serial run."""
    base = dict(fault="kill", fault_at=2)
    cfg, cache, log = write_sweep(tmp_path / "s.toml", xs=range(6), **base), tmp_path / "c", tmp_path / "log"
    monkeypatch.setenv(sweep_jobs.LOG_ENV, str(log))
    r = run_sweep(cfg, cache, backend="local", workers=2, progress=False, raise_on_crash=False)
    key2 = plan_sweep(cfg, cache).jobs[2].key
    assert r.computed == 5 and [c[0] for c in r.crashed] == [key2], r.crashed
    assert r.crashed[0][2] == "its worker process died (signal 9, SIGKILL) while running it"
    assert counts(log) == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1, 5: 1}
    others = write_sweep(tmp_path / "others.toml", xs=[0, 1, 3, 4, 5], **base)   # same jobs, without job 2
    ref, ref_table = reference(tmp_path, others, monkeypatch)
    assert entry_files(cache) == entry_files(ref)
    t = collect(cfg, cache, missing="nan")
    assert list(t["status"]) == ["ok", "ok", "missing", "ok", "ok", "ok"]
    np.testing.assert_array_equal(t["value"][[0, 1, 3, 4, 5]], ref_table["value"])
    with pytest.raises(DiagsimError, match=r"1 of 1 jobs crashed .*; first, entry \w+ \(job 2, x=2\): "
                                           r"WorkerDied: its worker process died \(signal 9, SIGKILL\)"):
        run_sweep(cfg, cache, backend="local", workers=2, progress=False)   # not cached: retried


def test_local_worker_killed_once_loses_nothing(tmp_path, monkeypatch):
    """Job 2 SIGKILLs its worker the first time only: it is retried and every job is computed."""
    base = dict(fault="kill-once", fault_at=2, marker=tmp_path / "marker")
    cfg, cache, log = write_sweep(tmp_path / "s.toml", xs=range(6), **base), tmp_path / "c", tmp_path / "log"
    monkeypatch.setenv(sweep_jobs.LOG_ENV, str(log))
    r = run_sweep(cfg, cache, backend="local", workers=2, progress=False)
    assert (r.computed, r.crashed) == (6, [])
    assert counts(log) == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1, 5: 1}
    assert (tmp_path / "marker").exists()
    ref, ref_table = reference(tmp_path, cfg, monkeypatch)
    assert entry_files(cache) == entry_files(ref)
    assert_tables_equal(collect(cfg, cache), ref_table)


def test_dask_worker_killed_mid_sweep_recomputes_nothing_written(tmp_path, monkeypatch):
    """On a LocalCluster of two single-threaded worker processes, the last job SIGKILLs its worker once
    the results that worker computed before are written: none of them is computed again."""
    pytest.importorskip("dask.distributed")
    base = dict(fault="kill-dask-worker-once", fault_at=5, marker=tmp_path / "marker")
    cfg, cache, log = write_sweep(tmp_path / "s.toml", xs=range(6), **base), tmp_path / "c", tmp_path / "log"
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    monkeypatch.setenv(sweep_jobs.LOG_ENV, str(log))
    monkeypatch.setenv(sweep_jobs.SLEEP_ENV, "0.05")
    r = run_sweep(cfg, cache, backend="dask", progress=False,
                  cluster_options={"processes": True, "n_workers": 2, "threads_per_worker": 1})
    assert (r.computed, r.crashed) == (6, [])
    runs = executions(log)
    killed_pid = next(pid for x, pid in runs if x == 5)
    # the worker that died had computed other jobs first: their results were on it
    assert any(pid == killed_pid for x, pid in runs if x != 5), runs
    assert counts(log) == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2}, runs
    ref, ref_table = reference(tmp_path, cfg, monkeypatch)
    assert entry_files(cache) == entry_files(ref)
    assert_tables_equal(collect(cfg, cache), ref_table)


# --------------------------------------------------------------------------- signals
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_the_sweep_like_ctrl_c(tmp_path, monkeypatch):
    """A batch scheduler's SIGTERM (sent here by job 3 to the sweep process that started its worker):
    exit status 143 with one line, the pool shut down, every written entry intact, no claim left; the
    re-run computes the rest and equals an uninterrupted run."""
    base = dict(fault="term-parent-once", fault_at=3, marker=tmp_path / "marker")
    cfg, cache, log = write_sweep(tmp_path / "s.toml", xs=range(8), **base), tmp_path / "c", tmp_path / "log"
    cmd = cli(cfg, cache, tmp_path / "out", "--backend", "local", "--workers", "2", "--no-progress")
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(log), capture_output=True, text=True,
                              timeout=TIMEOUT)
        left = [pid for _, pid in executions(log) if _alive(pid)]
    finally:
        for pid in {pid for _, pid in executions(log)}:     # leave no worker behind, whatever happened
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not left, "worker processes outlived the sweep"
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(
        "diagsim sweep: terminated by SIGTERM"), proc.stderr
    assert (tmp_path / "marker").exists()
    assert not list(cache.glob("*.claim")) and not list(cache.glob(".*.part"))
    plan = plan_sweep(cfg, cache)
    status = plan.status()
    written = sum(s == "ok" for s in status.values())
    assert set(status.values()) <= {"ok", "missing"} and status[plan.jobs[3].key] == "missing"
    again = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(log), capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert f"{written} cached, {8 - written} computed" in again.stdout
    ref, ref_table = reference(tmp_path, cfg, monkeypatch)
    assert entry_files(cache) == entry_files(ref)
    assert_tables_equal(load_table(tmp_path / "out" / "faults.npz"), ref_table)


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_cache_and_table_files_respect_the_umask(tmp_path, umask):
    cfg = write_sweep(tmp_path / "s.toml", xs=range(2), fault="fail", fault_at=1)
    cache, out = tmp_path / "cache", tmp_path / "out"
    argv = ["sweep", "--config", str(cfg), "--cache", str(cache), "--out", str(out), "--no-progress"]
    code = (f"import os; os.umask({umask:#o}); from diagsim.cli.main import main; "
            f"raise SystemExit(main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    files = sorted(cache.iterdir()) + sorted(out.iterdir())
    suffixes = Counter("".join(p.suffixes) for p in files)
    assert suffixes == {".npz": 2, ".json": 1, ".error.json": 1, ".csv": 1}, suffixes
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, (p.name, oct(p.stat().st_mode))


def test_table_write_failure_keeps_the_previous_table(tmp_path):
    """Tables are written atomically: a write that fails half-way leaves the old file as it was."""
    path = Table({"a": np.array([1.0]), "s": np.array(["ok"])}).save(tmp_path / "t.csv")
    before = path.read_bytes()
    bad = Table({"a": np.array([2.0]), "s": np.array(["\udc80"])})   # a lone surrogate cannot be encoded
    with pytest.raises(UnicodeEncodeError):
        bad.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
