"""``diagsim simulate``: flags, --config precedence, --json contents, --out, checkpoints, errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import diagsim
from diagsim.cli.main import main
from diagsim.engine.result import load_result
from diagsim.optimizers import SAM, Adam, AdamMini, LabelNoise, Minibatch

SMALL = ["--n", "10", "--d", "40", "--k", "3", "--seed", "5"]


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_matches_the_api(capsys):
    out = _json(capsys, ["simulate", "--optimizer", "adam", "--lr", "0.02", "--beta2", "0.99", "--steps", "60",
                         "--paths", "3", "--noise-seed", "4", "--json", "--quiet", *SMALL])
    for key in ("w_mean", "w_se", "train_loss", "test_loss", "n_paths", "model", "steps", "t", "tau"):
        assert key in out
    assert out["n_paths"] == 3 and out["steps"] == 60 and out["model"] == "discrete"
    assert out["t"] == pytest.approx(1.2) and out["tau"] == pytest.approx(0.024)
    problem = diagsim.make_problem(10, 40, 3, seed=5)
    res = diagsim.simulate(problem, Adam(lr=0.02, beta2=0.99), steps=60, n_paths=3, seed=4)
    np.testing.assert_array_equal(out["w_mean"], res.w_mean)
    np.testing.assert_array_equal(out["w_se"], res.w_se)
    assert out["train_loss"] == res.summary()["train_loss"]


def test_sgd_summary_and_out(tmp_path, capsys):
    path = tmp_path / "res.npz"
    assert main(["simulate", "--optimizer", "sgd", "--lr", "0.05", "--label-noise", "0.3", "--noise", "gaussian",
                 "--tau", "0.05", "--paths", "2", "--out", str(path), "--quiet", *SMALL]) == 0
    text = capsys.readouterr().out
    assert "label noise gaussian delta=0.3" in text and "train_loss" in text and "saved:" in text
    res = load_result(path)
    assert res.n_steps == 20 and res.config["optimizer"]["noise"]["dist"] == "gaussian"


def test_config_file_and_flag_precedence(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('optimizer = "adam-mini"\nlr = 0.03\nbeta2 = 0.9\nsteps = 30\npaths = 2\n'
                   '[problem]\nn = 10\nd = 40\nk = 3\nseed = 5\n[run]\nnoise = "minibatch"\nbatch-size = 4\n')
    out = _json(capsys, ["simulate", "--config", str(cfg), "--json", "--quiet"])
    problem = diagsim.make_problem(10, 40, 3, seed=5)
    ref = diagsim.simulate(problem, AdamMini(lr=0.03, beta2=0.9, noise=Minibatch(4)), steps=30, n_paths=2, seed=5)
    np.testing.assert_array_equal(out["w_mean"], ref.w_mean)
    # flags override the file
    out2 = _json(capsys, ["simulate", "--config", str(cfg), "--lr", "0.01", "--paths", "3", "--json", "--quiet"])
    ref2 = diagsim.simulate(problem, AdamMini(lr=0.01, beta2=0.9, noise=Minibatch(4)), steps=30, n_paths=3, seed=5)
    np.testing.assert_array_equal(out2["w_mean"], ref2.w_mean)
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = 0.1\n")
    assert main(["simulate", "--config", str(bad), "--steps", "3"]) == 2
    assert "unknown key(s)" in capsys.readouterr().err


def test_sam_flags(capsys):
    out = _json(capsys, ["simulate", "--optimizer", "sam", "--variant", "msam", "--m-chunks", "5", "--rho", "0.1",
                         "--lr", "0.05", "--steps", "10", "--json", "--quiet", *SMALL])
    problem = diagsim.make_problem(10, 40, 3, seed=5)
    ref = diagsim.simulate(problem, SAM(lr=0.05, rho=0.1, variant="msam", m_chunks=5, noise=LabelNoise(0.5)),
                           steps=10, seed=5)
    np.testing.assert_array_equal(out["w_mean"], ref.w_mean)
    assert out["w_se"] == [None] * 40  # one path: no standard error


def test_checkpoint_and_resume(tmp_path, capsys):
    """--resume continues a checkpoint written mid-run (step 20 of 40) and ends where the uninterrupted
    run ends."""
    import signal

    ck = tmp_path / "ck.npz"

    def ctrl_c(k, state):
        if k >= 20:
            signal.raise_signal(signal.SIGINT)

    problem = diagsim.make_problem(10, 40, 3, seed=5)
    with pytest.raises(KeyboardInterrupt):
        diagsim.simulate(problem, Adam(lr=0.02, noise=LabelNoise(0.5)), steps=40, n_paths=2, seed=5,
                         checkpoint=ck, checkpoint_every=10, callback=ctrl_c)
    with np.load(ck) as f:
        assert json.loads(str(f["__meta__"]))["step"] == 20
    again = _json(capsys, ["simulate", "--resume", str(ck), "--json", "--quiet"])
    out = _json(capsys, ["simulate", "--optimizer", "adam", "--lr", "0.02", "--steps", "40", "--paths", "2",
                         "--json", "--quiet", *SMALL])
    assert again["w_mean"] == out["w_mean"] and again["steps"] == 40


@pytest.mark.parametrize("argv, match", [
    (["--optimizer", "adamw"], "--optimizer must be one of"),
    (["--optimizer", "adam", "--beta2", "1.5"], "beta2 must lie in"),
    (["--optimizer", "sgd", "--lr", "-1"], "lr must be finite and > 0"),
    (["--optimizer", "sgd", "--beta1", "0.9"], "--beta1 does not apply to --optimizer sgd"),
    (["--optimizer", "sgd", "--noise", "minibatch", "--batch-size", "99"], "batch_size must be <= n"),
    (["--optimizer", "sgd", "--noise", "uniform"], "--noise must be one of"),
    (["--optimizer", "sam", "--variant", "xsam"], "variant must be one of"),
    (["--optimizer", "sgd", "--lr", "50"], "diverged.*lr=50 is likely too large"),
    (["--optimizer", "sgd", "--record", "sqrt"], "--record must be"),
    (["--optimizer", "sgd", "--model", "ode"], "model must be one of"),
])
def test_errors_are_one_line(argv, match, capsys):
    steps = [] if "--steps" in argv else ["--steps", "200"]
    assert main(["simulate", *argv, *steps, "--quiet", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("diagsim simulate: error:") and "\n" not in err and "Traceback" not in err
    import re
    assert re.search(match, err), err


def test_model_option_reaches_the_model(capsys):
    """--model-option KEY=VALUE (JSON-parsed) goes to the model's make_stepper; dt sets the step count."""
    pytest.importorskip("diagsim.sde")
    out = _json(capsys, ["simulate", "--optimizer", "sgd", "--lr", "0.01", "--model", "sde", "--model-option",
                         "dt=0.005", "--tau", "0.01", "--paths", "2", "--json", "--quiet", *SMALL])
    assert out["model"] == "sde" and out["steps"] == 200 and out["tau"] == pytest.approx(0.01)
    assert main(["simulate", "--model-option", "dt", "--steps", "3", "--quiet", *SMALL]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_missing_horizon_is_an_error(capsys):
    assert main(["simulate", "--quiet", *SMALL]) == 2
    assert "exactly one of steps, t, tau" in capsys.readouterr().err


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "diagsim", "simulate", "--optimizer", "sgd", "--steps", "5",
                           "--json", *SMALL], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_paths"] == 1 and proc.stderr == ""  # no progress bar in a pipe


def test_support_flag_gives_the_readme_problem(capsys):
    """The command-line equivalent of the three-levels example (docs/guide/levels.md) runs the very same problem."""
    flags = ["--n", "20", "--d", "40", "--k", "3", "--teacher", "ones", "--support", "0,1,2", "--init", "constant",
             "--alpha", "0.1", "--seed", "0"]
    out = _json(capsys, ["simulate", *flags, "--optimizer", "sgd", "--lr", "0.01", "--label-noise", "1", "--tau",
                         "0.1", "--paths", "2", "--noise-seed", "1", "--json", "--quiet"])
    P = diagsim.make_problem(20, 40, 3, teacher="ones", init="constant", alpha=0.1, seed=0, support=range(3))
    from diagsim.optimizers import SGD
    ref = diagsim.simulate(P, SGD(lr=0.01, noise=LabelNoise(1.0)), tau=0.1, n_paths=2, seed=1)
    np.testing.assert_array_equal(out["w_mean"], ref.w_mean)
    assert main(["simulate", *flags[:-2], "--support", "0,x", "--steps", "2", "--quiet"]) == 2
    assert "--support must be comma-separated" in capsys.readouterr().err
