"""Sweeps: grid expansion, the result cache (re-runs compute nothing, interrupted sweeps resume),
backends agree bitwise, tables, phase diagrams, CLI errors.

The machinery is tested with a small stand-in job defined here (a pure function of its config); the
real ``simulate`` job has its own tests at the end (skipped until diagsim.simulate exists).
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from diagsim.errors import DiagsimError
from diagsim.sweep import collect, job_key, load_results, load_table, phase_grid, plan_sweep, run_sweep, sweep_from_dict
from diagsim.sweep.cache import canonical_json

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the stand-in job
INTERRUPT_AT: int | None = None   # serial backend: raise KeyboardInterrupt when problem.n equals this


def standin_job(config: dict) -> dict:
    """Pure function of its config: seeded normals scaled by lr; logs each call to config["log"]."""
    p, o = config["problem"], config["optimizer"]
    if INTERRUPT_AT is not None and p["n"] == INTERRUPT_AT:
        raise KeyboardInterrupt
    if o.get("fail"):
        raise DiagsimError(f"every path diverged (lr={o['lr']})")
    if o.get("crash"):
        raise RuntimeError("a bug")
    if config.get("log"):
        with open(config["log"], "a") as f:
            f.write(json.dumps([p["n"], o["lr"], p["seed"]]) + "\n")
    if o.get("sleep"):
        time.sleep(o["sleep"])
    rng = np.random.default_rng(np.random.SeedSequence([p["seed"], p["n"]]))
    x = o["lr"] * rng.standard_normal(p["n"])
    return {"value": float(x.sum()), "abs_mean": float(np.abs(x).mean()), "trace": np.cumsum(x),
            "n_seen": p["n"], "name": np.array(o["name"])}


def standin_sweep(log=None, **over) -> dict:
    raw = {
        "sweep": {"name": "standin"},
        "base": {"problem": {"n": 5, "seed": 0}, "optimizer": {"name": "sgd", "lr": 0.1}},
        "grid": {"problem.n": [3, 4, 5], "problem.seed": {"range": [2]}},
        "zip": [{"optimizer.name": ["sgd", "adam"], "optimizer.lr": [0.5, 2.0]}],
    }
    if log is not None:
        raw["base"]["log"] = str(log)
    raw.update(over)
    return raw


def log_lines(path) -> list:
    return Path(path).read_text().splitlines() if Path(path).exists() else []


# --------------------------------------------------------------------------- expansion
def test_grid_expansion_is_cartesian_times_zip_last_axis_fastest():
    sw = sweep_from_dict(standin_sweep())
    assert sw.keys == ["problem.n", "problem.seed", "optimizer.name", "optimizer.lr"]
    assert sw.shape == (3, 2, 2) and len(sw) == 12
    points = list(sw.points())
    expect = [{"problem.n": n, "problem.seed": s, "optimizer.name": name, "optimizer.lr": lr}
              for n, s, (name, lr) in itertools.product([3, 4, 5], [0, 1], [("sgd", 0.5), ("adam", 2.0)])]
    assert points == expect
    cfgs = [c for _, c in sw.job_configs()]
    assert cfgs[3] == {"problem": {"n": 3, "seed": 1}, "optimizer": {"name": "adam", "lr": 2.0},
                       "job": "simulate"}
    # the base config is not mutated by the expansion
    assert sw.base == {"problem": {"n": 5, "seed": 0}, "optimizer": {"name": "sgd", "lr": 0.1}}


def test_value_generators_and_quick_overrides():
    raw = {"base": {"a": {"x": 1}},
           "grid": {"a.lr": {"logspace": [-3, -1, 3]}, "a.k": {"range": [1, 7, 3]}},
           "quick": {"grid": {"a.k": [9]}, "base": {"a": {"y": 2}}}}
    sw = sweep_from_dict(raw)
    np.testing.assert_allclose([p["a.lr"] for p in sw.points()][::2], [1e-3, 1e-2, 1e-1], rtol=1e-15)
    assert sorted({p["a.k"] for p in sw.points()}) == [1, 4]
    q = sweep_from_dict(raw, quick=True)
    assert q.shape == (3, 1) and q.base == {"a": {"x": 1, "y": 2}}
    assert {p["a.k"] for p in q.points()} == {9}
    assert sweep_from_dict({"base": {"a": {"x": 1}}}).shape == () and len(sweep_from_dict({})) == 1


@pytest.mark.parametrize("raw, match", [
    ({"grid": {"a.b": 3}}, r"grid\['a.b'\] must be a list"),
    ({"grid": {"a.b": []}}, "must not be empty"),
    ({"grid": {"a..b": [1]}}, "dotted paths"),
    ({"zip": [{"a.x": [1, 2], "a.y": [1]}]}, "equal lengths"),
    ({"grid": {"a.x": [1]}, "zip": {"a.x": [2]}}, "overlaps"),
    ({"grid": {"a": [1], "a.x": [2]}}, "overlaps"),
    ({"grid": {"job": ["x"]}}, "reserved"),
    ({"grdi": {}}, "unknown top-level key"),
    ({"sweep": {"nmae": "x"}}, r"unknown key\(s\) 'nmae' in \[sweep\]"),
    ({"sweep": {"name": "a b"}}, "sweep.name"),
    ({"grid": {"a.x": {"linspace": [0, 1]}}}, "start, stop, num"),
    ({"plot": {"z": 1}}, r"in \[plot\]"),
])
def test_bad_configs_raise_one_line_errors(raw, match):
    with pytest.raises(DiagsimError, match=match) as e:
        sweep_from_dict(raw)
    assert "\n" not in str(e.value)


def test_keys_are_pure_functions_of_config_and_version():
    a = {"x": 1.0, "y": {"b": [1, 2], "a": "s"}}
    b = {"y": {"a": "s", "b": [1, 2]}, "x": 1.0}
    assert job_key(a) == job_key(b)
    assert job_key(a) != job_key({**a, "x": 1.0 + 1e-16 * 4})
    assert job_key(a) != job_key(a, version="0.0.0")
    assert canonical_json(a) == '{"x":1.0,"y":{"a":"s","b":[1,2]}}'


# --------------------------------------------------------------------------- caching
def test_second_run_computes_nothing(tmp_path):
    log = tmp_path / "calls.log"
    raw = standin_sweep(log)
    r1 = run_sweep(raw, tmp_path / "cache", job=standin_job, progress=False)
    assert (r1.total, r1.unique, r1.cached, r1.computed, r1.failed) == (12, 12, 0, 12, 0)
    assert len(log_lines(log)) == 12
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    r2 = run_sweep(raw, tmp_path / "cache", job=standin_job, progress=False)
    assert (r2.cached, r2.computed) == (12, 0)
    assert len(log_lines(log)) == 12                       # the job function was not called again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == files
    # growing the grid computes only the new points
    raw["grid"]["problem.n"] = [3, 4, 5, 6]
    r3 = run_sweep(raw, tmp_path / "cache", job=standin_job, progress=False)
    assert (r3.total, r3.cached, r3.computed) == (16, 12, 4)
    assert len(log_lines(log)) == 16


def test_cached_results_equal_direct_calls_and_table(tmp_path):
    raw = standin_sweep()
    run_sweep(raw, tmp_path, job=standin_job, progress=False)
    results = load_results(raw, tmp_path, job=standin_job)
    assert len(results) == 12
    for job, res in results:
        direct = standin_job(job.config)
        assert set(res) == set(direct)
        for k in direct:
            np.testing.assert_array_equal(res[k], direct[k])
    t = collect(raw, tmp_path, job=standin_job)
    assert t.names[:3] == ["index", "key", "status"]
    assert len(t) == 12 and set(t["status"]) == {"ok"}
    assert t["problem.n"].dtype == np.int64 and t["optimizer.lr"].dtype == np.float64
    assert t["optimizer.name"].dtype.kind == "U"
    for i, (job, _) in enumerate(results):
        assert t["value"][i] == standin_job(job.config)["value"]
        assert t["n_seen"][i] == job.params["problem.n"]
    # npz round trip is exact; csv keeps the types and values (floats written as repr)
    for suffix in (".npz", ".csv"):
        back = load_table(t.save(tmp_path / f"table{suffix}"))
        assert back.names == t.names
        for n in t.names:
            np.testing.assert_array_equal(back[n], t[n])
            assert back[n].dtype.kind == t[n].dtype.kind


def test_duplicate_points_share_one_job(tmp_path):
    raw = {"base": {"problem": {"n": 3, "seed": 0}, "optimizer": {"name": "a", "lr": 1.0}},
           "grid": {"optimizer.lr": [1.0, 1.0, 2.0]}}
    r = run_sweep(raw, tmp_path, job=standin_job, progress=False)
    assert (r.total, r.unique, r.computed) == (3, 2, 2)
    t = collect(raw, tmp_path, job=standin_job)
    assert t["key"][0] == t["key"][1] != t["key"][2]
    assert t["value"][0] == t["value"][1]


def test_interrupted_sweep_resumes_and_equals_uninterrupted(tmp_path):
    global INTERRUPT_AT
    raw = standin_sweep()
    INTERRUPT_AT = 5                    # the third value of problem.n: jobs 0..7 finish first
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(raw, tmp_path / "a", job=standin_job, progress=False)
    finally:
        INTERRUPT_AT = None
    done = sorted(p.name for p in (tmp_path / "a").glob("*.npz"))
    assert len(done) == 8
    assert not list((tmp_path / "a").glob("*.part"))
    r = run_sweep(raw, tmp_path / "a", job=standin_job, progress=False)
    assert (r.cached, r.computed) == (8, 4)
    run_sweep(raw, tmp_path / "b", job=standin_job, progress=False)
    files_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_killed_process_loses_nothing_computed(tmp_path, monkeypatch):
    """A serial CLI sweep whose job 3 SIGKILLs the sweep process itself (the first time): the entries of
    jobs 0-2 are on disk and verified, and the re-run computes exactly jobs 3-7 (taking over the dead
    process's claim) and equals an uninterrupted run."""
    import sweep_jobs
    cfg = sweep_jobs.write_sweep(tmp_path / "s.toml", xs=range(8), fault="kill-once", fault_at=3,
                                 marker=tmp_path / "marker")
    cache, log = tmp_path / "c", tmp_path / "log"
    cmd = [sys.executable, "-m", "diagsim", "sweep", "--config", str(cfg), "--cache", str(cache),
           "--out", str(tmp_path / "o"), "--no-progress"]
    env = sweep_jobs.subprocess_env(log)
    killed = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    plan = plan_sweep(cfg, cache)
    status = plan.status()
    assert [status[j.key] for j in plan.jobs] == ["ok"] * 3 + ["missing"] * 5
    assert [p.stem for p in cache.glob("*.claim")] == [plan.jobs[3].key]     # the dead process's claim
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3 cached, 5 computed" in out.stdout
    assert sweep_jobs.counts(log) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1, 6: 1, 7: 1}
    monkeypatch.delenv(sweep_jobs.LOG_ENV, raising=False)
    run_sweep(cfg, tmp_path / "uninterrupted", progress=False)
    assert _cache_bytes(cache) == _cache_bytes(tmp_path / "uninterrupted")
    t, ref = load_table(tmp_path / "o" / "faults.npz"), collect(cfg, tmp_path / "uninterrupted")
    assert t.names == ref.names
    for n in t.names:
        np.testing.assert_array_equal(t[n], ref[n])


def test_failures_are_cached_and_crashes_are_not(tmp_path):
    log = tmp_path / "calls.log"
    raw = {"base": {"problem": {"n": 3, "seed": 0}, "optimizer": {"name": "a", "lr": 1.0}, "log": str(log)},
           "grid": {"optimizer.fail": [False, True]}}
    r = run_sweep(raw, tmp_path / "c", job=standin_job, progress=False)
    assert (r.computed, r.failed) == (2, 1)
    t = collect(raw, tmp_path / "c", job=standin_job)
    assert list(t["status"]) == ["ok", "failed"]
    assert np.isnan(t["value"][1]) and np.isfinite(t["value"][0])
    assert t["error"][1] == "every path diverged (lr=1.0)" and t["error"][0] == ""
    r = run_sweep(raw, tmp_path / "c", job=standin_job, progress=False)
    assert (r.cached, r.computed, r.failed) == (2, 0, 1)
    crash = {**raw, "grid": {"optimizer.crash": [False, True]}}
    with pytest.raises(DiagsimError, match=r"1 of 2 jobs crashed .* RuntimeError: a bug"):
        run_sweep(crash, tmp_path / "d", job=standin_job, progress=False)
    r = run_sweep(crash, tmp_path / "d", job=standin_job, progress=False, raise_on_crash=False)
    assert (r.cached, r.computed, len(r.crashed)) == (1, 0, 1)     # the crash was retried, not cached
    with pytest.raises(DiagsimError, match="1 of 2 jobs .* not in the cache"):
        collect(crash, tmp_path / "d", job=standin_job)
    assert list(collect(crash, tmp_path / "d", job=standin_job, missing="nan")["status"]) == ["ok", "missing"]


# --------------------------------------------------------------------------- backends
def _cache_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_serial_and_local_backends_give_identical_files(tmp_path):
    raw = standin_sweep()
    run_sweep(raw, tmp_path / "serial", job=standin_job, progress=False)
    r = run_sweep(raw, tmp_path / "local", job=standin_job, backend="local", workers=2, progress=False)
    assert r.computed == 12
    assert _cache_bytes(tmp_path / "serial") == _cache_bytes(tmp_path / "local")


def test_dask_backend_local_cluster(tmp_path, monkeypatch):
    """Two single-threaded worker processes (they inherit PYTHONPATH, so they import this module)."""
    pytest.importorskip("dask.distributed")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), str(ROOT),
                                                      os.environ.get("PYTHONPATH", "")]))
    raw = standin_sweep()
    run_sweep(raw, tmp_path / "serial", job=standin_job, progress=False)
    r = run_sweep(raw, tmp_path / "dask", job=standin_job, backend="dask", progress=False,
                  cluster_options={"processes": True, "n_workers": 2, "threads_per_worker": 1})
    assert r.computed == 12
    assert _cache_bytes(tmp_path / "serial") == _cache_bytes(tmp_path / "dask")


def test_dask_missing_or_bad_backend_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(DiagsimError, match="backend must be one of"):
        run_sweep(standin_sweep(), tmp_path, job=standin_job, backend="mpi")
    import builtins
    real_import = builtins.__import__

    def no_dask(name, *a, **k):
        if name == "dask" or name.startswith("dask."):
            raise ImportError("no dask")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(DiagsimError, match=r"needs dask.distributed.*diagsim\[distributed\]"):
        run_sweep(standin_sweep(), tmp_path, job=standin_job, backend="dask", progress=False)


# --------------------------------------------------------------------------- tables and plots
def test_phase_grid_aggregates_over_other_parameters(tmp_path):
    raw = standin_sweep()
    run_sweep(raw, tmp_path, job=standin_job, progress=False)
    t = collect(raw, tmp_path, job=standin_job)
    xs, ys, Z = phase_grid(t, "problem.n", "optimizer.name", "abs_mean")
    assert list(xs) == [3, 4, 5] and list(ys) == ["adam", "sgd"]
    for i, name in enumerate(ys):
        for j, n in enumerate(xs):
            rows = [standin_job(job.config)["abs_mean"]
                    for job, _ in load_results(raw, tmp_path, job=standin_job)
                    if job.params["problem.n"] == n and job.params["optimizer.name"] == name]
            assert len(rows) == 2 and Z[i, j] == pytest.approx(np.mean(rows), rel=1e-15)


def test_phase_plot_writes_a_figure(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from diagsim.sweep.plot import plot_sweep
    raw = standin_sweep()
    run_sweep(raw, tmp_path, job=standin_job, progress=False)
    t = collect(raw, tmp_path, job=standin_job)
    spec = {"x": "problem.n", "y": "optimizer.lr", "value": "abs_mean"}
    out = plot_sweep(t, spec, tmp_path / "p.png", keys=sweep_from_dict(raw).keys)
    assert out.is_file()
    _check_phase_figure(t, spec, sweep_from_dict(raw).keys)
    with pytest.raises(DiagsimError, match="no column 'nope'"):
        plot_sweep(t, {"x": "problem.n", "y": "nope"}, tmp_path / "q.png", keys=[])


def _check_phase_figure(table, spec, keys):
    """The heat map shows the phase grid's mean values at the swept coordinates, labelled."""
    import matplotlib.pyplot as plt

    from diagsim.sweep.plot import draw_sweep
    fig = draw_sweep(table, spec, keys=keys)
    ax = fig.axes[0]
    xs, ys, Z = phase_grid(table, spec["x"], spec["y"], spec["value"])
    np.testing.assert_allclose(np.ma.filled(ax.images[0].get_array(), np.nan), Z)
    np.testing.assert_allclose([float(t.get_text()) for t in ax.get_xticklabels()], xs, rtol=5e-3)
    np.testing.assert_allclose([float(t.get_text()) for t in ax.get_yticklabels()], ys, rtol=5e-3)
    assert ax.get_xlabel() == spec["x"] and ax.get_ylabel() == spec["y"]
    assert fig.axes[1].get_ylabel() == spec["value"]  # the colour bar
    plt.close(fig)


# --------------------------------------------------------------------------- CLI
JOB_REF = f"{standin_job.__module__}:standin_job"


def _cli(argv, capsys):
    from diagsim.cli.main import main
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_sweep_runs_writes_table_and_plot(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(textwrap.dedent(f"""
        [sweep]
        name = "cli-demo"
        job = "{JOB_REF}"
        [base.problem]
        n = 3
        seed = 0
        [base.optimizer]
        name = "sgd"
        lr = 0.1
        [grid]
        "problem.n" = [2, 3]
        "optimizer.lr" = [0.1, 1.0, 10.0]
        [plot]
        value = "abs_mean"
    """))
    rc, out, err = _cli(["sweep", "--config", str(cfg), "--cache", str(tmp_path / "c"), "--out",
                         str(tmp_path / "o"), "--plot", str(tmp_path / "phase.png"), "--no-progress"], capsys)
    assert rc == 0, err
    assert "6 points, 6 jobs: 0 cached, 6 computed, 0 failed" in out
    t = load_table(tmp_path / "o" / "cli-demo.csv")
    assert len(t) == 6 and (tmp_path / "o" / "cli-demo.npz").exists()
    assert (tmp_path / "phase.png").is_file()
    _check_phase_figure(t, {"x": "problem.n", "y": "optimizer.lr", "value": "abs_mean"},
                        ["problem.n", "optimizer.lr"])
    rc, out, _ = _cli(["sweep", "--config", str(cfg), "--cache", str(tmp_path / "c"), "--dry-run"], capsys)
    assert rc == 0 and "6 cached" in out and "0 to compute" in out


@pytest.mark.parametrize("text, match", [
    ("[grid]\n'a.b' = 3\n", r"grid\['a.b'\] must be a list"),
    ("[grid\n", "not valid TOML"),
    ("[sweep]\njob = 'nosuchmodule:f'\n", "cannot import"),
    ("[sweep]\njob = 'bogus'\n", "job must be one of"),
    ("[base.optimizer]\noptimizer = 'adam'\nlr = 0\n", "lr must be finite and > 0"),
])
def test_cli_bad_config_is_one_line_error(tmp_path, capsys, text, match):
    import re
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    rc, _, err = _cli(["sweep", "--config", str(cfg), "--cache", str(tmp_path / "c")], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("diagsim sweep: error: ")
    assert re.search(match, lines[0]), lines[0]


def test_cli_missing_config_and_bad_flags(tmp_path, capsys):
    rc, _, err = _cli(["sweep", "--config", str(tmp_path / "nope.toml")], capsys)
    assert rc == 2 and "does not exist" in err
    cfg = tmp_path / "ok.toml"
    cfg.write_text("[base.problem]\nn = 3\n")
    rc, _, err = _cli(["sweep", "--config", str(cfg), "--scheduler", "tcp://x:1"], capsys)
    assert rc == 2 and "--scheduler needs --backend dask" in err
    rc, _, err = _cli(["sweep", "--config", str(cfg), "--backend", "mpi"], capsys)
    assert rc == 2 and "backend must be one of 'serial', 'local', 'dask'" in err


# --------------------------------------------------------------------------- the real job kinds
SIM_RAW = {
    "base": {"problem": {"n": 8, "d": 12, "k": 2, "seed": 3},
             "optimizer": {"optimizer": "sgd", "lr": 0.05, "label_noise": 0.5},
             "simulate": {"steps": 300, "n_paths": 2, "record": 50}},
    "zip": {"optimizer.optimizer": ["sgd", "adam"], "optimizer.lr": [0.05, 0.01]},
}


def test_simulate_job_canonical_config_fills_defaults():
    from diagsim.networks.diagonal.problem import make_problem
    from diagsim.optimizers import Adam, LabelNoise
    plan = plan_sweep(SIM_RAW, "unused")
    cfg = plan.jobs[1].config
    assert cfg["job"] == "simulate"
    assert cfg["optimizer"] == Adam(lr=0.01, noise=LabelNoise(0.5)).config()
    assert cfg["problem"]["design"] == "gaussian" and cfg["problem"]["alpha"] == 0.1
    assert cfg["simulate"]["model"] == "discrete" and cfg["simulate"]["seed"] == 0
    # the same job spelled differently (explicit defaults, int lr, noise table) has the same key
    raw2 = {"base": {"problem": {"n": 8, "d": 12, "k": 2, "seed": 3, "design": "gaussian"},
                     "optimizer": {"optimizer": "adam", "lr": 0.01, "beta2": 0.95,
                                   "noise": {"kind": "label", "delta": 0.5}},
                     "simulate": {"steps": 300, "n_paths": 2, "record": 50, "model": "discrete"}}}
    assert plan_sweep(raw2, "unused").jobs[0].key == plan.jobs[1].key
    assert make_problem(**cfg["problem"]).n == 8


@pytest.mark.parametrize("over, match", [
    ({"optimizer.lr": [-1.0]}, r"job 0 \(optimizer.lr=-1.0\): lr must be finite and > 0"),
    ({"optimizer.betaa": [0.9]}, "optimizer 'sgd'"),
    ({"simulate.stpes": [10]}, "unknown simulate argument"),
    ({"problem.nn": [10]}, "unknown problem argument"),
    ({"simulate.t": [1.0]}, "exactly one of steps, t, tau"),
])
def test_simulate_job_bad_values_fail_before_running(tmp_path, over, match):
    raw = {**SIM_RAW, "zip": [], "grid": over}
    with pytest.raises(DiagsimError, match=match):
        run_sweep(raw, tmp_path, progress=False)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_simulate_sweep_matches_direct_runs_and_backends_agree(tmp_path):
    from diagsim import load_result, make_problem, simulate
    from diagsim.optimizers import from_config
    r = run_sweep(SIM_RAW, tmp_path / "s", progress=False)
    assert r.computed == 2
    results = load_results(SIM_RAW, tmp_path / "s")
    for job, res in results:
        c = job.config
        direct = simulate(make_problem(**c["problem"]), from_config(c["optimizer"]), progress=False,
                          **c["simulate"])
        np.testing.assert_array_equal(res.final["theta"], direct.final["theta"])
        for k in direct.records:
            np.testing.assert_array_equal(res.records[k], direct.records[k])
    run_sweep(SIM_RAW, tmp_path / "l", backend="local", workers=2, progress=False)
    for p in sorted((tmp_path / "s").glob("*.npz")):
        a, b = load_result(p), load_result(tmp_path / "l" / p.name)
        np.testing.assert_array_equal(a.final["theta"], b.final["theta"])
        for k in a.records:
            np.testing.assert_array_equal(a.records[k], b.records[k])
        assert {k: v for k, v in a.config.items() if k != "versions"} == \
               {k: v for k, v in b.config.items() if k != "versions"}
    t = collect(SIM_RAW, tmp_path / "s")
    for i, (job, res) in enumerate(results):
        w_star = make_problem(**job.config["problem"]).w_star
        rel = np.linalg.norm(res.w - w_star, axis=1) / np.linalg.norm(w_star)
        assert t["rel_error"][i] == pytest.approx(rel.mean(), rel=1e-12)
        test = np.mean(0.5 * np.sum((res.w - w_star) ** 2, axis=1))
        assert t["test_loss"][i] == pytest.approx(test, rel=1e-12)
        assert t["n_diverged"][i] == 0


def test_diverging_simulate_job_is_a_cached_failure(tmp_path):
    raw = {**SIM_RAW, "zip": [], "grid": {"optimizer.lr": [0.05, 50.0]}}
    r = run_sweep(raw, tmp_path, progress=False)
    assert (r.computed, r.failed) == (2, 1)
    t = collect(raw, tmp_path)
    assert list(t["status"]) == ["ok", "failed"]
    assert "diverged" in t["error"][1] and np.isnan(t["test_loss"][1])


def test_predict_job_matches_predict(tmp_path):
    from diagsim.networks.diagonal.problem import make_problem
    from diagsim.predict import predict
    raw = {"sweep": {"job": "predict"}, "base": {"problem": {"n": 6, "d": 12, "k": 2, "seed": 5}},
           "grid": {"predict.optimizer": ["sgd", "adam"]}}
    run_sweep(raw, tmp_path, progress=False)
    t = collect(raw, tmp_path)
    P = make_problem(6, 12, 2, seed=5)
    for i, (job, res) in enumerate(load_results(raw, tmp_path)):
        pred = predict(P, job.params["predict.optimizer"])
        np.testing.assert_array_equal(res["w"], pred.w)
        assert t["test_loss"][i] == 0.5 * np.sum((pred.w - P.w_star) ** 2)
        assert t["measure_trace"][i] == pred.measures["trace"]


def test_cli_reports_crashed_jobs_after_writing_the_table(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(textwrap.dedent(f"""
        [sweep]
        name = "crashy"
        job = "{JOB_REF}"
        [base.problem]
        n = 3
        seed = 0
        [base.optimizer]
        name = "sgd"
        lr = 0.1
        [grid]
        "optimizer.crash" = [false, true]
    """))
    rc, out, err = _cli(["sweep", "--config", str(cfg), "--cache", str(tmp_path / "c"), "--out",
                         str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 2 and "1 job(s) crashed" in err and "RuntimeError: a bug" in err
    t = load_table(tmp_path / "o" / "crashy.npz")
    assert list(t["status"]) == ["ok", "missing"]


def diverging_job(config: dict) -> dict:
    """A job kind whose summary has n_diverged: job x reports DIVERGED.get(x, 0) of 8 paths diverged."""
    return {"value": float(config["x"]), "n_paths": 8, "n_diverged": DIVERGED.get(config["x"], 0)}


DIVERGED = {1: 2, 3: 7}


@pytest.mark.parametrize("job, warning", [
    ("diverging_job", "diagsim sweep: warning: in 2 of 4 jobs some paths diverged "
                      "(job 3, x=3: 7 of 8 paths); see the n_diverged column"),
    ("standin_job", None),                                  # no n_diverged column: nothing to say
])
def test_cli_warns_when_paths_diverged(tmp_path, capsys, job, warning):
    cfg = tmp_path / "d.toml"
    cfg.write_text(textwrap.dedent(f"""
        [sweep]
        name = "div"
        job = "{standin_job.__module__}:{job}"
        [base]
        problem = {{n = 3, seed = 0}}
        optimizer = {{name = "sgd", lr = 0.1}}
        [grid]
        x = [0, 1, 2, 3]
    """))
    rc, out, err = _cli(["sweep", "--config", str(cfg), "--cache", str(tmp_path / "c"), "--out",
                         str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 0, err
    assert [line for line in err.splitlines() if "warning" in line] == ([warning] if warning else [])
