"""The run driver: result contents, time scales, record grids, reproducibility (serial = parallel,
replay, adding paths), checkpoint / resume (killed process, interrupt, crash), divergence, save / load."""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diagsim
from diagsim.engine.driver import DivergenceWarning, resume, simulate
from diagsim.engine.recording import record_steps
from diagsim.engine.result import load_result
from diagsim.errors import DiagsimError, DivergenceError
from diagsim.optimizers import SAF, SAM, SGD, Adam, LabelNoise, Minibatch

simulate_module = importlib.import_module("diagsim.engine.driver")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def problem():
    return diagsim.make_problem(10, 40, 3, seed=5)


def _same(r1, r2, records=True):
    assert r1.final.keys() == r2.final.keys()
    for k in r1.final:
        np.testing.assert_array_equal(r1.final[k], r2.final[k], err_msg=k)
    if records:
        assert r1.records.keys() == r2.records.keys()
        for k in r1.records:
            np.testing.assert_array_equal(r1.records[k], r2.records[k], err_msg=k)
    np.testing.assert_array_equal(r1.steps, r2.steps)
    np.testing.assert_array_equal(r1.div_step, r2.div_step)


# --------------------------------------------------------------------------- result contents
def test_result_contents_and_time_scales(problem):
    opt = Adam(lr=0.02)
    res = simulate(problem, opt, steps=200, n_paths=3, seed=4, record=50)
    np.testing.assert_array_equal(res.steps, [0, 50, 100, 150, 200])
    np.testing.assert_allclose(res.t, 0.02 * res.steps, rtol=1e-15)
    np.testing.assert_allclose(res.tau, 0.02 ** 2 * res.steps, rtol=1e-15)
    for name in ("train_loss", "test_loss", "l1", "support", "trace_h", "trace_sqrt_diag_h",
                 "precond/v_mean", "precond/precond_mean"):
        assert res.records[name].shape == (5, 3), name
    assert res.final["theta"].shape == (3, 80) and res.final["m"].shape == (3, 80)
    cfg = res.config
    assert cfg["optimizer"]["optimizer"] == "adam" and cfg["model"] == "discrete" and cfg["seed"] == 4
    assert cfg["steps"] == 200 and cfg["t"] == pytest.approx(4.0) and cfg["tau"] == pytest.approx(0.08)
    assert set(cfg["versions"]) == {"diagsim", "numpy", "numba", "python"}
    assert len(cfg["problem"]["data_sha256"]) == 64 and cfg["problem"]["n"] == 10
    json.dumps(cfg)

    # observables of the final state against an independent NumPy computation
    th = res.final["theta"]
    u, v = th[:, :40], th[:, 40:]
    w = u * u - v * v
    Z, y = problem.Z, problem.y
    r = w @ Z.T - y
    gw = r @ Z / 10
    s = (Z * Z).mean(axis=0)
    dh = np.concatenate([4 * s * u * u + 2 * gw, 4 * s * v * v - 2 * gw], axis=1)
    expect = {"train_loss": 0.5 * (r * r).mean(axis=1), "test_loss": 0.5 * ((w - problem.w_star) ** 2).sum(axis=1),
              "l1": np.abs(w).sum(axis=1), "support": (np.abs(w) > 1e-3).sum(axis=1),
              "trace_h": dh.sum(axis=1), "trace_sqrt_diag_h": np.sqrt(np.maximum(dh, 0)).sum(axis=1),
              "precond/v_mean": res.final["v"].mean(axis=1)}
    for name, val in expect.items():
        np.testing.assert_allclose(res.final_observables[name], val, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(res.records[name][-1], val, rtol=1e-10, err_msg=name)
    # initial record: theta_0 of the problem, w = 0
    np.testing.assert_allclose(res.records["train_loss"][0], 0.5 * np.mean(y * y))
    np.testing.assert_array_equal(res.records["l1"][0], 0.0)
    summ = res.summary()
    assert len(summ["w_mean"]) == 40 and len(summ["w_se"]) == 40 and summ["n_paths"] == 3
    np.testing.assert_allclose(summ["w_mean"], w.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(summ["w_se"], w.std(axis=0, ddof=1) / np.sqrt(3), rtol=1e-10, atol=1e-15)


def test_horizon_in_steps_t_or_tau(problem):
    opt = SGD(lr=0.05)
    a = simulate(problem, opt, steps=40, record=[0, 40])
    b = simulate(problem, opt, t=2.0, record=[0, 40])
    c = simulate(problem, opt, tau=0.1, record=[0, 40])
    assert a.n_steps == b.n_steps == c.n_steps == 40
    _same(a, b)
    _same(a, c)
    with pytest.raises(DiagsimError, match="exactly one of steps, t, tau"):
        simulate(problem, opt, steps=4, t=1.0)
    with pytest.raises(DiagsimError, match="exactly one"):
        simulate(problem, opt)
    with pytest.raises(DiagsimError, match="tau"):
        simulate(problem, opt, tau=-1.0)


def test_record_grids():
    np.testing.assert_array_equal(record_steps(10, 4), [0, 4, 8, 10])
    np.testing.assert_array_equal(record_steps(100, None, 5), [0, 25, 50, 75, 100])
    g = record_steps(10 ** 7, "log", 50)
    assert g[0] == 0 and g[-1] == 10 ** 7 and np.all(np.diff(g) > 0) and 40 <= g.size <= 50
    ratios = g[-10:][1:] / g[-10:][:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)  # log-spaced
    np.testing.assert_array_equal(record_steps(10, [5, 0, 5]), [0, 5])
    with pytest.raises(DiagsimError, match="record steps must lie"):
        record_steps(10, [11])
    with pytest.raises(DiagsimError, match="record must be"):
        record_steps(10, "sqrt")
    with pytest.raises(DiagsimError, match="exceeds"):
        record_steps(10 ** 7, 1, n_paths=64)  # memory bound


# --------------------------------------------------------------------------- reproducibility
def test_replay_and_added_paths_are_bitwise(problem):
    opt = SGD(lr=0.05, noise=LabelNoise(0.5))
    full = simulate(problem, opt, steps=120, n_paths=6, seed=9, record=30)
    alone = simulate(problem, opt, steps=120, paths=[4], seed=9, record=30)
    for k in full.final:
        np.testing.assert_array_equal(alone.final[k][0], full.final[k][4])
    for k in full.records:
        np.testing.assert_array_equal(alone.records[k][:, 0], full.records[k][:, 4], err_msg=k)
    more = simulate(problem, opt, steps=120, n_paths=9, seed=9, record=30)
    for k in full.final:
        np.testing.assert_array_equal(more.final[k][:6], full.final[k])
    other_seed = simulate(problem, opt, steps=120, n_paths=6, seed=10, record=30)
    assert not np.array_equal(other_seed.final["theta"], full.final["theta"])


_SCRIPT = """
import sys, numpy as np, diagsim
from diagsim.optimizers import {opt_import}
problem = diagsim.make_problem(10, 40, 3, seed=5)
res = diagsim.simulate(problem, {opt}, steps={steps}, n_paths={paths}, seed=3, record={record}{extra})
res.save(sys.argv[1])
"""


def _script(opt="Adam(lr=0.02)", opt_import="Adam", steps=150, paths=5, record=25, extra=""):
    return textwrap.dedent(_SCRIPT.format(opt=opt, opt_import=opt_import, steps=steps, paths=paths,
                                          record=record, extra=extra))


def test_serial_equals_parallel(tmp_path, problem):
    out = tmp_path / "serial.npz"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _script(), str(out)], check=True, env=env, cwd=ROOT, timeout=300)
    serial = load_result(out)
    parallel = simulate(problem, Adam(lr=0.02), steps=150, n_paths=5, seed=3, record=25)
    _same(serial, parallel)


# --------------------------------------------------------------------------- checkpoints
def test_resume_after_kill_equals_uninterrupted(tmp_path, problem):
    """The process kills itself (SIGKILL: no handler runs) after its checkpoint of step 100 was written and
    before the one of step 120: deterministic, no waiting on the clock."""
    ck = tmp_path / "run.ckpt.npz"
    opt = "SAF(lr=0.05, delay=3)"
    extra = (f", checkpoint={str(ck)!r}, checkpoint_every=20, "
             "callback=lambda k, s: __import__('os').kill(__import__('os').getpid(), 9) if k >= 110 else None")
    proc = subprocess.run([sys.executable, "-c", _script(opt, "SAF", 4000, 3, 100, extra),
                           str(tmp_path / "never.npz")], cwd=ROOT, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    with np.load(ck) as f:
        step = json.loads(str(f["__meta__"]))["step"]
    assert step == 100 and not (tmp_path / "never.npz").exists()
    resumed = resume(ck)
    assert resumed.info["resumes"] == 1 and resumed.info["resumed_from_step"] == 100
    straight = simulate(problem, SAF(lr=0.05, delay=3), steps=4000, n_paths=3, seed=3, record=100)
    _same(resumed, straight)


def test_interrupt_writes_checkpoint_and_resumes(tmp_path, problem):
    ck = tmp_path / "int.npz"
    opt = SAM(lr=0.05, variant="ssam-d", noise=Minibatch(3))
    kw = dict(steps=300, n_paths=3, seed=2, record=7)

    def ctrl_c(k, state):
        if k >= 100:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        simulate(problem, opt, checkpoint=ck, checkpoint_every=3600.0, callback=ctrl_c, **kw)
    with np.load(ck) as f:
        meta = json.loads(str(f["__meta__"]))
    assert 100 <= meta["step"] < 300 and not meta["complete"]
    _same(resume(ck), simulate(problem, opt, **kw))
    # the finished checkpoint returns the same result again
    _same(resume(ck), simulate(problem, opt, **kw))


def test_crash_keeps_last_checkpoint(tmp_path, problem):
    ck = tmp_path / "crash.npz"
    opt = Adam(lr=0.02, bias_correction=True)

    def crash(k, state):
        if k >= 130:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        simulate(problem, opt, steps=250, n_paths=2, seed=1, record="log", checkpoint=ck, checkpoint_every=50,
                 callback=crash)
    with np.load(ck) as f:
        assert json.loads(str(f["__meta__"]))["step"] == 100
    _same(resume(ck), simulate(problem, opt, steps=250, n_paths=2, seed=1, record="log"))


# --------------------------------------------------------------------------- divergence
def test_divergence_is_reported_and_others_go_on(problem):
    opt = SGD(lr=0.05)
    th0 = problem.theta0(3)
    th0[1] *= 30.0  # far out: this path explodes
    with pytest.warns(DivergenceWarning, match=r"path 1 diverged|path 1 at step \d+.*lr=0.05 is likely too large"):
        res = simulate(problem, opt, steps=200, n_paths=3, seed=0, theta0=th0, record=10)
    (rep,) = res.diverged
    assert rep["path"] == 1 and 0 <= rep["step"] < 200
    assert "lr=0.05 is likely too large" in rep["message"]
    assert not np.isfinite(rep["loss"]) or rep["loss"] > 1e6
    k = rep["step"]
    after = res.steps > k
    assert np.all(np.isnan(res.records["train_loss"][after, 1]))
    assert np.all(np.isfinite(res.records["train_loss"][:, [0, 2]]))
    assert np.isnan(res.final_observables["train_loss"][1])
    # the other paths are exactly those of a run without the diverging one
    ok = simulate(problem, opt, steps=200, paths=[0, 2], seed=0, theta0=th0[[0, 2]], record=10)
    np.testing.assert_array_equal(ok.final["theta"], res.final["theta"][[0, 2]])
    assert res.summary()["n_diverged"] == 1 and len(res.w_mean) == 40


def test_all_diverged_raises(problem):
    with pytest.raises(DivergenceError, match=r"all 2 paths diverged: path 0 at step \d+.*lr=\S+ is likely too large"):
        simulate(problem, SGD(lr=5.0), steps=500, n_paths=2)
    with pytest.raises(DivergenceError, match="rho"):
        simulate(problem, SAM(lr=0.01, rho=0.05), steps=10, n_paths=1, divergence_factor=1e-3)


# --------------------------------------------------------------------------- i/o and errors
def test_save_load_round_trip(tmp_path, problem):
    res = simulate(problem, Adam(lr=0.02, noise=Minibatch(4)), steps=60, n_paths=2, seed=1, record="log")
    p = res.save(tmp_path / "r.npz")
    assert (tmp_path / "r.json").exists()
    back = load_result(p)
    _same(res, back)
    assert back.config == res.config and back.info == res.info
    for k in res.final_observables:
        np.testing.assert_array_equal(back.final_observables[k], res.final_observables[k])
    np.testing.assert_array_equal(back.div_loss, res.div_loss)
    np.testing.assert_array_equal(back.t, res.t)
    side = json.loads((tmp_path / "r.json").read_text())
    assert side["config"]["optimizer"]["noise"] == {"kind": "minibatch", "batch_size": 4}
    with pytest.raises(DiagsimError, match="does not exist"):
        load_result(tmp_path / "nope.npz")


def test_argument_errors(problem, monkeypatch):
    opt = SGD(lr=0.1)
    with pytest.raises(DiagsimError, match="model must be one of"):
        simulate(problem, opt, steps=3, model="ode")
    monkeypatch.setitem(simulate_module.MODELS, "sde", "diagsim._no_such_module")
    with pytest.raises(ModuleNotFoundError, match="diagsim._no_such_module"):  # a broken install is not hidden
        simulate(problem, opt, steps=3, model="sde")
    with pytest.raises(DiagsimError, match="n_paths"):
        simulate(problem, opt, steps=3, n_paths=0)
    with pytest.raises(DiagsimError, match="paths must be distinct"):
        simulate(problem, opt, steps=3, paths=[1, 1])
    with pytest.raises(DiagsimError, match="theta0"):
        simulate(problem, opt, steps=3, n_paths=2, theta0=np.zeros((3, 80)))
    with pytest.raises(DiagsimError, match="seed"):
        simulate(problem, opt, steps=3, seed=-1)
    with pytest.raises(DiagsimError, match="optimizer"):
        simulate(problem, "sgd", steps=3)
    with pytest.raises(DiagsimError, match="checkpoint_every"):
        simulate(problem, opt, steps=3, checkpoint_every=-1)


def test_simulate_has_one_spelling(problem):
    """diagsim.simulate is the function, whatever was imported before (its module is diagsim.engine.driver)."""
    import diagsim.engine.driver  # noqa: F401
    assert diagsim.simulate is diagsim.engine.driver.simulate
    res = diagsim.simulate(problem, SGD(lr=0.1), steps=2)
    assert res.n_steps == 2 and callable(diagsim.resume)
