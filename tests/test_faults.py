"""Fault injection for runs (``simulate``, ``resume``, ``diagsim simulate``): stored work is reused only
when it was made from the same configuration, errors come before any work, and signals, corrupt files and
bad paths lose nothing and return nothing wrong. (The sweep's faults: tests/test_faults_sweep.py; the
main job's: tests/test_mainjob.py.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diagsim import make_problem, resume, simulate
from diagsim.cli.main import main
from diagsim.engine.driver import HorizonWarning
from diagsim.engine.result import load_result
from diagsim.errors import DiagsimError, RunInterrupted, StoredWorkMismatch
from diagsim.optimizers import SGD, Adam, LabelNoise

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--n", "10", "--d", "40", "--k", "3", "--seed", "5"]
ADAM = ["--optimizer", "adam", "--lr", "0.02", "--steps", "400", "--paths", "2", *SMALL]


@pytest.fixture(scope="module")
def problem():
    return make_problem(10, 40, 3, seed=5)


def _same(a, b):
    np.testing.assert_array_equal(a.final["theta"], b.final["theta"])
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])


def _signal_at(step, sig=signal.SIGINT):
    def cb(k, state):
        if k >= step:
            signal.raise_signal(sig)
    return cb


def _ckpt_step(path) -> int:
    with np.load(path) as f:
        return json.loads(str(f["__meta__"]))["step"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


# --------------------------------------------------------------------------- reuse of checkpoints
def test_simulate_continues_only_a_checkpoint_of_the_same_run(tmp_path, problem):
    ck = tmp_path / "ck.npz"
    opt = Adam(lr=0.02, noise=LabelNoise(0.5))
    kw = dict(steps=400, n_paths=3, seed=2, record=10)
    with pytest.raises(KeyboardInterrupt):
        simulate(problem, opt, checkpoint=ck, checkpoint_every=3600.0, callback=_signal_at(150), **kw)
    step = _ckpt_step(ck)
    assert 150 <= step < 400
    before = ck.read_bytes()
    for change, named in ((dict(seed=3), "seed: 3 here, 2 stored"), (dict(n_paths=4), "n_paths: 4 here, 3 stored"),
                          (dict(steps=500), "steps: 500 here, 400 stored"), (dict(record=20), "record")):
        with pytest.raises(StoredWorkMismatch, match=named):
            simulate(problem, opt, checkpoint=ck, **{**kw, **change})
    with pytest.raises(StoredWorkMismatch, match="optimizer.lr: 0.03 here, 0.02 stored"):
        simulate(problem, Adam(lr=0.03, noise=LabelNoise(0.5)), checkpoint=ck, **kw)
    with pytest.raises(StoredWorkMismatch, match="problem.seed: 6 here, 5 stored"):
        simulate(make_problem(10, 40, 3, seed=6), opt, checkpoint=ck, **kw)
    from diagsim.networks.diagonal.problem import Problem
    same_description = Problem(problem.Z, problem.y + 1e-9, problem.w_star, problem.param, problem.init,
                               problem.alpha, problem.seed, dict(problem.meta))
    with pytest.raises(StoredWorkMismatch, match="problem.data_sha256"):  # other data, same description
        simulate(same_description, opt, checkpoint=ck, **kw)
    with pytest.raises(StoredWorkMismatch, match="paths: other path ids"):
        simulate(problem, opt, checkpoint=ck, **{**kw, "n_paths": 1}, paths=[0, 1, 5])
    assert ck.read_bytes() == before  # refused without touching it
    res = simulate(problem, opt, checkpoint=ck, **kw)  # the same run: continued
    assert res.info["resumed_from_step"] == step
    _same(res, simulate(problem, opt, **kw))


def test_given_theta0_is_part_of_the_identity(tmp_path, problem):
    ck = tmp_path / "ck.npz"
    th = problem.theta0(2)
    with pytest.raises(KeyboardInterrupt):
        simulate(problem, SGD(lr=0.05), steps=300, n_paths=2, theta0=th, checkpoint=ck, callback=_signal_at(100))
    with pytest.raises(StoredWorkMismatch, match="theta0_sha256"):
        simulate(problem, SGD(lr=0.05), steps=300, n_paths=2, theta0=1.5 * th, checkpoint=ck)


def test_cli_resume_with_other_flags_is_refused(tmp_path, problem, capsys):
    ck = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        simulate(problem, Adam(lr=0.02, noise=LabelNoise(0.5)), steps=400, n_paths=2, seed=5, checkpoint=ck,
                 callback=_signal_at(100))
    assert main(["simulate", "--resume", str(ck), "--steps", "900", "--paths", "6", "--lr", "0.5", "--quiet"]) == 2
    err = _err(capsys)
    assert err.startswith("diagsim simulate: error: checkpoint") and "\n" not in err
    for part in ("steps: 900 here, 400 stored", "n_paths: 6 here, 2 stored", "--steps", "--paths", "--lr",
                 "whole original command"):
        assert part in err
    # the run's whole original command with --resume continues it; so does --resume alone
    assert main(["simulate", *ADAM, "--resume", str(ck), "--json", "--quiet"]) == 0
    full = json.loads(capsys.readouterr().out)
    ref = simulate(problem, Adam(lr=0.02, noise=LabelNoise(0.5)), steps=400, n_paths=2, seed=5)
    np.testing.assert_array_equal(full["w_mean"], ref.w_mean)
    assert main(["simulate", "--resume", str(ck), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["w_mean"] == full["w_mean"]
    assert main(["simulate", "--resume", str(ck), "--checkpoint", str(tmp_path / "other.npz"), "--quiet"]) == 2
    assert "names another" in _err(capsys)
    assert main(["simulate", *ADAM, "--resume", str(tmp_path / "missing.npz"), "--quiet"]) == 2
    assert "does not exist" in _err(capsys)


# --------------------------------------------------------------------------- horizons and warnings
def test_slow_flow_reaches_the_tau_asked_for(capsys):
    assert main(["simulate", "--model", "slow-flow", "--tau", "0.5", "--json", "--quiet", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tau"] == pytest.approx(0.5, rel=1e-12) and out["steps"] >= 1


def test_a_horizon_that_is_not_whole_steps_is_announced(problem, capsys):
    with pytest.warns(HorizonWarning, match=r"tau = 1 is 1111.11 steps.*running 1111 steps, to tau = 0.9999"):
        res = simulate(problem, SGD(lr=0.03), tau=1.0)
    assert res.n_steps == 1111
    assert main(["simulate", "--lr", "0.03", "--tau", "1", "--quiet", *SMALL]) == 0
    err = capsys.readouterr().err
    assert "diagsim simulate: warning: tau = 1 is 1111.11 steps" in err


def test_cli_prints_every_warning(tmp_path, problem, capsys):
    # a checkpoint written by other package versions: the continuation warns, and the CLI says so
    ck = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        simulate(problem, SGD(lr=0.05), steps=300, n_paths=2, checkpoint=ck, callback=_signal_at(100))
    with np.load(ck) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    meta["config"]["versions"]["numba"] = "0.0.1"
    np.savez(ck, __meta__=np.array(json.dumps(meta)), **arrays)
    assert main(["simulate", "--resume", str(ck), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "diagsim simulate: warning: checkpoint" in err and "0.0.1" in err and "bit-for-bit" in err
    # the SDE's stability warning reaches the user too
    assert main(["simulate", "--model", "sde", "--model-option", "dt=0.5", "--lr", "0.5", "--steps", "2",
                 "--quiet", *SMALL]) in (0, 2)
    assert "warning:" in capsys.readouterr().err


def test_test_loss_without_teacher_or_test_set_is_explained(tmp_path, problem, capsys):
    from diagsim.networks.diagonal.problem import Problem
    Problem(problem.Z, problem.y, None, "uu-vv").save(tmp_path / "d.npz")
    assert main(["simulate", "--data", str(tmp_path / "d.npz"), "--steps", "50", "--quiet"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("test_loss "))
    assert row.split()[1:] == ["n/a", "-"]
    assert "neither w_star nor a test set" in out and "nan" not in out


# --------------------------------------------------------------------------- errors before work
@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], ["seed", ">= 0"]),
    (["--model", "slow-flow", "--model-option", "bogus=1"], ["no option 'bogus'", "dtau"]),
    (["--model", "sde", "--model-option", "dtau=1"], ["no option 'dtau'", "dt"]),
    (["--d", "100000", "--paths", "100000"], ["needs about", "GiB", "available", "fewer paths"]),
    (["--n", "1000000", "--d", "1000000"], ["needs about", "smaller n or d"]),
])
def test_bad_inputs_are_one_line_errors(argv, words, capsys):
    assert main(["simulate", "--steps", "10", "--quiet", *argv]) == 2
    err = _err(capsys)
    assert err.startswith("diagsim simulate: error:") and "\n" not in err
    for w in words:
        assert w in err, err


def test_bad_data_files_are_one_line_errors(tmp_path, capsys):
    text = tmp_path / "text.npz"
    text.write_text("Z,y\n1,2\n")
    obj = tmp_path / "obj.npz"
    np.savez(obj, Z=np.array([[object(), 1]], dtype=object), y=np.zeros(1))
    good = tmp_path / "good.npz"
    np.savez(good, Z=np.ones((3, 4)), y=np.ones(3))
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:200])
    for path, words in ((text, ["text.npz", "not an .npz file"]), (obj, ["obj.npz", "Python objects"]),
                        (trunc, ["trunc.npz", "truncated or corrupt"])):
        assert main(["simulate", "--data", str(path), "--steps", "5", "--quiet"]) == 2
        err = _err(capsys)
        assert "\n" not in err and "pickle" not in err
        for w in words:
            assert w in err, err


def test_output_paths_are_checked_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ck = tmp_path / "ck.npz"
    cases = [(["--out", str(tmp_path / "missing" / "r.npz")], "does not exist"),
             (["--out", str(tmp_path)], "is a folder"),
             (["--out", str(blocker / "r.npz")], "is a file, not a folder"),
             (["--checkpoint", str(tmp_path / "missing" / "ck.npz")], "does not exist")]
    if os.path.isdir("/proc/self"):  # no one, not even root, can create files there
        cases.append((["--out", "/proc/diagsim-test.npz"], "cannot write in the folder"))
    for flags, words in cases:
        # the run's checkpoint is written at its end at the latest: if the check came after the work, it
        # would exist
        assert main(["simulate", "--steps", "2000", "--checkpoint", str(ck), "--quiet", *SMALL, *flags]) == 2
        assert words in _err(capsys)
        assert not ck.exists()


def test_unwritable_folder_is_detected_by_a_probe(tmp_path, monkeypatch):
    """Permission bits do not stop root, so the check writes a probe file; a refused probe is an error."""
    import tempfile

    from diagsim import storage

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DiagsimError, match="cannot write in the folder.*Permission denied"):
        storage.check_output_file(tmp_path / "r.npz", "--out file")


# --------------------------------------------------------------------------- signals and kills
_SIGTERM_CLI = """
import os, signal, sys
import diagsim.engine.driver as S
from diagsim.cli.main import console_main
execute = S._Run.execute
def patched(self, **kw):
    def cb(k, state):
        if k >= 300:
            os.kill(os.getpid(), signal.SIGTERM)   # what a batch scheduler sends
    kw["callback"] = cb
    return execute(self, **kw)
S._Run.execute = patched
sys.argv = ["diagsim"] + sys.argv[1:]
sys.exit(console_main())
"""


def test_sigterm_writes_a_checkpoint_and_resumes(tmp_path, problem):
    ck = tmp_path / "ck.npz"
    argv = ["simulate", "--optimizer", "adam", "--lr", "0.02", "--steps", "1500", "--paths", "2", *SMALL,
            "--checkpoint", str(ck), "--checkpoint-every", "3600", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_CLI, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=600)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("diagsim simulate: interrupted (SIGTERM); checkpoint "
                                                           "written to")
    assert 300 <= _ckpt_step(ck) < 1500
    _same(resume(ck), simulate(problem, Adam(lr=0.02), steps=1500, n_paths=2, seed=5))


def test_sigterm_in_process_raises_run_interrupted(tmp_path, problem):
    ck = tmp_path / "ck.npz"
    with pytest.raises(RunInterrupted) as exc:
        simulate(problem, SGD(lr=0.05), steps=300, n_paths=2, checkpoint=ck, callback=_signal_at(120, signal.SIGTERM))
    assert exc.value.signum == signal.SIGTERM and exc.value.exit_status == 143 and exc.value.checkpoint == ck
    assert 120 <= _ckpt_step(ck) < 300
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored
    _same(resume(ck), simulate(problem, SGD(lr=0.05), steps=300, n_paths=2))


# --------------------------------------------------------------------------- corrupt stored files
def test_corrupt_result_and_checkpoint_are_named(tmp_path, problem, capsys):
    res = simulate(problem, SGD(lr=0.05), steps=50, n_paths=2)
    path = res.save(tmp_path / "r.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DiagsimError, match=r"result '.*r\.npz' is truncated or corrupt"):
        load_result(path)
    ck = tmp_path / "ck.npz"
    ck.write_bytes(data[:300])
    assert main(["simulate", "--resume", str(ck), "--quiet"]) == 2
    assert "checkpoint" in (err := _err(capsys)) and "truncated or corrupt" in err
    with pytest.raises(DiagsimError, match="truncated or corrupt"):
        simulate(problem, SGD(lr=0.05), steps=50, n_paths=2, checkpoint=ck)
    res.save(tmp_path / "other.npz")
    with pytest.raises(DiagsimError, match="is a 'diagsim-result' file, expected 'diagsim-checkpoint'"):
        resume(tmp_path / "other.npz")


# --------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_respect_the_umask(tmp_path, problem, mask):
    old = os.umask(mask)
    try:
        ck = tmp_path / "ck.npz"
        res = simulate(problem, SGD(lr=0.05), steps=20, checkpoint=ck)
        out = res.save(tmp_path / "r.npz")
        problem.save(tmp_path / "p.npz")
    finally:
        os.umask(old)
    for p in (ck, out, out.with_suffix(".json"), tmp_path / "p.npz"):
        assert (p.stat().st_mode & 0o777) == (0o666 & ~mask), p
