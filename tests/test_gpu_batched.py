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

