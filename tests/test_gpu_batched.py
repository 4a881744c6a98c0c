"""Many runs in one launch (diagsim.engine.batched.simulate_many) on the CUDA simulator.

Every job's Result must be bitwise what simulate() gives for that job alone (a path's numbers and noise
do not depend on the other paths of the launch); incompatible jobs are a one-line error before any step.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r'''
    import json, warnings
    import numpy as np
    import diagsim
    from diagsim.optimizers import SAM, SGD, Adam, LabelNoise, Minibatch

    def same(a, b):
        ok = a.final.keys() == b.final.keys() and all(np.array_equal(a.final[k], b.final[k]) for k in a.final)
        ok = ok and a.records.keys() == b.records.keys() and all(
            np.array_equal(a.records[k], b.records[k], equal_nan=True) for k in a.records)
        return bool(ok and np.array_equal(a.div_step, b.div_step)
                    and np.array_equal(a.div_loss, b.div_loss, equal_nan=True))

    # three problems of one d and three different n (the launch pads the first and the third to n = 9)
    probs = [diagsim.make_problem(n, 5, 2, seed=s) for n, s in ((6, 3), (9, 4), (4, 5))]
    out = {}
    # three parameter sets of one family, two seeds, three paths each; the third job's learning rate makes
    # some of its paths diverge. Adam / SGD: label noise (n draws per step, mean over n), warp layout;
    # minibatch: a shuffle of 0..n-1 per step; msam: one thread per path, chunks of the rows of a minibatch
    cases = {"adam": [Adam(lr=0.02, noise=LabelNoise(0.5)), Adam(lr=0.01, beta1=0.8, noise=LabelNoise(0.3)),
                      Adam(lr=0.03, noise=LabelNoise(0.5))],
             "sgd": [SGD(lr=0.05, noise=LabelNoise(0.5)), SGD(lr=0.1, noise=LabelNoise(0.2)),
                     SGD(lr=10.0, noise=LabelNoise(0.5))],
             "minibatch": [SGD(lr=0.05, noise=Minibatch(3)), SGD(lr=0.1, noise=Minibatch(2)),
                           SGD(lr=10.0, noise=Minibatch(3))],
             "msam": [SAM(lr=0.05, variant="msam", m_chunks=2, noise=Minibatch(4)),
                      SAM(lr=0.1, rho=0.02, variant="msam", m_chunks=2, noise=Minibatch(4)),
                      SAM(lr=10.0, variant="msam", m_chunks=2, noise=Minibatch(4))]}
    seeds = [1, 2, 1]
    kw = dict(steps=6, n_paths=3, record=3)
    for name, opts in cases.items():
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            many = diagsim.simulate_many(probs, opts, seed=seeds, device="cuda", **kw)
            rows = []
            for g in range(3):
                try:
                    alone = diagsim.simulate(probs[g], opts[g], seed=seeds[g], device="cuda", **kw)
                except diagsim.DivergenceError as exc:
                    alone = exc
                if isinstance(alone, Exception) or isinstance(many[g], Exception):
                    ok = type(alone) is type(many[g]) and same(alone.result, many[g].result)
                else:
                    ok = same(alone, many[g])
                res = alone.result if isinstance(alone, Exception) else alone
                rows.append({"same": ok, "diverged": int((res.div_step >= 0).sum()),
                             "moved": float(np.abs(res.final["theta"] - probs[g].theta0(3)).max())})
        out[name] = rows
    # the jobs differ from each other: a job run with another job's problem is not the same
    a = diagsim.simulate(probs[0], cases["adam"][0], seed=1, device="cuda", **kw)
    b = diagsim.simulate(probs[1], cases["adam"][0], seed=1, device="cuda", **kw)
    out["distinct"] = not np.array_equal(a.final["theta"], b.final["theta"])
    print("RESULT " + json.dumps(out))
''')


@pytest.mark.cudasim
def test_simulate_many_equals_each_job_alone_on_the_simulator():
    pytest.importorskip("numba.cuda")
    res = _run(SCRIPT)
    for name in ("adam", "sgd", "minibatch", "msam"):
        assert all(r["same"] and r["moved"] > 0 for r in res[name]), (name, res[name])
        assert res[name][2]["diverged"] > 0 or name == "adam", (name, res[name])
        assert res[name][0]["diverged"] == 0 and res[name][1]["diverged"] == 0, (name, res[name])  # in its job
    assert res["distinct"]


ERRORS = textwrap.dedent(r'''
    import json
    import diagsim
    import diagsim.engine.batched as B
    from diagsim.errors import DiagsimError
    from diagsim.optimizers import SAF, SGD, Adam, LabelNoise, Minibatch
    ran = []
    B._execute_many = lambda runs: ran.append(len(runs))  # nothing may reach the launch but compatible jobs
    P, Q = diagsim.make_problem(6, 5, 2, seed=3), diagsim.make_problem(6, 7, 2, seed=3)
    R = diagsim.make_problem(8, 5, 2, seed=3)
    sgd = SGD(lr=0.05, noise=LabelNoise(0.5))
    cases = [([P, Q], sgd, {}), ([P, R], SAF(lr=0.05), {}), ([P, P], [sgd, Adam(lr=0.01, noise=LabelNoise(0.5))], {}),
             ([P, P], [sgd, SGD(lr=0.05, noise=Minibatch(3))], {}), ([P, P], sgd, {"model": "sde"}),
             ([P, P], sgd, {"device": "cpu"}),
             ([P, P], [sgd], {}), ([], sgd, {})]
    out = {"errors": []}
    for problems, opts, extra in cases:
        try:
            B.simulate_many(problems, opts, steps=3, n_paths=2, **extra)
            out["errors"].append(None)
        except DiagsimError as exc:
            out["errors"].append(str(exc))
    out["ran_before"] = list(ran)
    B.simulate_many([P, P], [sgd, SGD(lr=0.1, noise=LabelNoise(0.2))], seed=[1, 2], steps=3, n_paths=2)
    B.simulate_many([P, R], sgd, steps=3, n_paths=2)  # different n, the same d: one launch
    B.simulate_many([P, P], SAF(lr=0.05), steps=3, n_paths=2)  # SAF with one n
    out["ran"] = ran
    print("RESULT " + json.dumps(out))
''')


def _run(script: str) -> dict:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])


@pytest.mark.cudasim
def test_simulate_many_refuses_jobs_that_cannot_share_a_launch():
    """Before any step: one line naming the job and the difference."""
    pytest.importorskip("numba.cuda")
    res = _run(ERRORS)
    patterns = [r"^simulate_many: job 1 cannot share a launch with job 0: its d is 7, not 5$",
                r"^simulate_many: job 1 cannot share a launch with job 0: its optimizer state shapes \(SAF's buffer "
                r"has one entry per sample: the same n\) is \(.*\(\d+, 8\)\), not \(.*\(\d+, 6\)\)$",
                r"^simulate_many: job 1 .* its optimizer family",
                r"^simulate_many: job 1 .* its optimizer family",
                r"^simulate_many covers the discrete level",
                r"^simulate_many runs its jobs in one launch on device='cuda'",
                r"^simulate_many: 2 problems but 1 optimizers",
                r"^simulate_many needs at least one problem"]
    assert len(res["errors"]) == len(patterns)
    for msg, pattern in zip(res["errors"], patterns):
        assert msg is not None and re.search(pattern, msg) and "\n" not in msg, (msg, pattern)
    assert res["ran_before"] == [] and res["ran"] == [2, 2, 2]  # compatible jobs reach the launch, the others never


SWEEP = textwrap.dedent(r'''
    import dataclasses, json, sys, warnings
    from pathlib import Path
    import numpy as np
    import diagsim
    import diagsim.engine.batched as B
    import diagsim.sweep.simjob as SJ
    from diagsim.optimizers import from_config
    from diagsim.sweep import run_sweep
    from diagsim.sweep.cache import Cache

    tmp = Path(sys.argv[1])
    # 2 n x 2 seeds x 2 learning rates, one d: the lr = 50 jobs diverge on every path (a cached failure)
    raw = {"sweep": {"name": "mixed-n"},
           "base": {"problem": {"d": 5, "k": 2, "seed": 3},
                    "optimizer": {"optimizer": "sgd", "lr": 0.05, "label_noise": 0.5},
                    "simulate": {"steps": 6, "n_paths": 3, "record": 3, "device": "cuda"}},
           "grid": {"problem.n": [5, 8], "simulate.seed": [1, 2], "optimizer.lr": [0.05, 50.0]}}
    launches, alone = [], []
    execute_many, run_alone = B._execute_many, SJ.run
    B._execute_many = lambda runs: launches.append(len(runs)) or execute_many(runs)
    SJ.SIMULATE = dataclasses.replace(SJ.SIMULATE, run=lambda cfg: alone.append(1) or run_alone(cfg))
    rep = run_sweep(raw, tmp / "many", progress=False)
    out = {"launches": list(launches), "alone": len(alone), "computed": rep.computed, "failed": rep.failed}
    # the same sweep one job at a time (the backend, simulate alone per job) into another cache
    SJ.SIMULATE = dataclasses.replace(SJ.SIMULATE, run_many=None)
    del launches[:]
    rep1 = run_sweep(raw, tmp / "one", progress=False)
    out["one"] = {"launches": list(launches), "alone": len(alone), "computed": rep1.computed}
    # a later one-by-one run of the sweep finds every entry the batched run wrote
    out["rerun_computed"] = run_sweep(raw, tmp / "many", progress=False).computed

    def same(a, b):
        ok = a.final.keys() == b.final.keys() and all(np.array_equal(a.final[k], b.final[k]) for k in a.final)
        ok = ok and a.records.keys() == b.records.keys() and all(
            np.array_equal(a.records[k], b.records[k], equal_nan=True) for k in a.records)
        ok = ok and a.config == b.config and np.array_equal(a.steps, b.steps)
        return bool(ok and np.array_equal(a.div_step, b.div_step)
                    and np.array_equal(a.div_loss, b.div_loss, equal_nan=True))

    many, one = Cache(tmp / "many", ".npz"), Cache(tmp / "one", ".npz")
    names = sorted(p.name for p in (tmp / "many").iterdir() if not p.name.startswith("."))
    out["same_files"] = names == sorted(p.name for p in (tmp / "one").iterdir() if not p.name.startswith("."))
    rows = []
    for path in sorted((tmp / "many").glob("*.json")):
        doc = json.loads(path.read_text())
        ref = json.loads((tmp / "one" / path.name).read_text())
        key, cfg = doc["key"], doc["config"]
        row = {"n": cfg["problem"]["n"], "lr": cfg["optimizer"]["lr"], "status": many.check(key, cfg).status}
        if "message" in doc:  # a failure record: the same as the one-by-one run's, and as simulate's alone
            try:
                diagsim.simulate(diagsim.make_problem(**cfg["problem"]), from_config(cfg["optimizer"]),
                                 progress=False, **cfg["simulate"])
                direct = None
            except diagsim.DivergenceError as exc:
                direct = str(exc)
            row["same"] = doc == ref and doc["message"] == direct and doc["error"] == "DivergenceError"
        else:
            a = diagsim.load_result(many.result_path(key))
            b = diagsim.load_result(one.result_path(key))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = diagsim.simulate(diagsim.make_problem(**cfg["problem"]), from_config(cfg["optimizer"]),
                                     progress=False, **cfg["simulate"])
            row["same"] = same(a, b) and same(a, c) and {k: v for k, v in doc.items() if k != "result"} == \
                {k: v for k, v in ref.items() if k != "result"}
            row["moved"] = float(np.abs(a.final["theta"] - diagsim.make_problem(**cfg["problem"]).theta0(3)).max())
        rows.append(row)
    out["rows"] = rows
    print("RESULT " + json.dumps(out))
''')


@pytest.mark.cudasim
def test_device_sweep_runs_its_jobs_in_one_launch_with_the_entries_of_one_by_one_runs(tmp_path):
    """A sweep with --device cuda over 2 n x 2 seeds x 2 learning rates: one launch for all 8 jobs (the
    launch pads the n = 5 jobs to n = 8), and every cache entry (result, manifest, failure record) is what
    the one-by-one run of each job writes, and what simulate gives alone."""
    pytest.importorskip("numba.cuda")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SWEEP, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    assert res["launches"] == [8] and res["alone"] == 0, res
    assert (res["computed"], res["failed"]) == (8, 4), res
    assert res["one"] == {"launches": [], "alone": 8, "computed": 8}, res["one"]
    assert res["rerun_computed"] == 0 and res["same_files"]
    rows = res["rows"]
    assert len(rows) == 8 and {(r["n"], r["lr"]) for r in rows} == {(n, lr) for n in (5, 8) for lr in (0.05, 50.0)}
    for r in rows:
        assert r["same"], r
        assert (r["status"] == "failed") == (r["lr"] == 50.0) and (r["lr"] == 50.0 or r["moved"] > 0), r
