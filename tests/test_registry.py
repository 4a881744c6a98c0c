"""Registries: every level finds an optimizer through its spec class (subclasses resolve to their parent),
an optimizer a level does not cover is a one-line error naming the level, and optimizers added through
the registries (Lion, signSGD) reach the CLI, sweeps, results and checkpoints with no other edit."""
from __future__ import annotations

import json
import signal
from dataclasses import dataclass

import numpy as np
import pytest

import diagsim
from diagsim.cli.main import main
from diagsim.engine.result import load_result
from diagsim.errors import DiagsimError
from diagsim.optimizers import OPTIMIZERS, SGD, Adam, LabelNoise, Lion, SignSGD, from_config
from diagsim.registry import SpecRegistry

SMALL = ["--n", "10", "--d", "40", "--k", "3", "--seed", "5"]


@pytest.fixture(scope="module")
def problem():
    return diagsim.make_problem(10, 40, 3, seed=5)


@dataclass(frozen=True)
class MyAdam(Adam):
    """A user's subclass: no registration anywhere."""


def test_lookup_walks_the_class_hierarchy():
    reg = SpecRegistry("the test level", "entry", "try another")
    reg.register(Adam, "adam-entry")
    reg.register(SGD, "sgd-entry")
    assert reg.lookup(MyAdam(lr=0.1)) == "adam-entry" and reg.lookup(Adam) == "adam-entry"
    reg.register(MyAdam, "mine")
    assert reg.lookup(MyAdam(lr=0.1)) == "mine" and reg.lookup(Adam(lr=0.1)) == "adam-entry"
    with pytest.raises(DiagsimError) as exc:
        reg.lookup(Lion(lr=0.1))
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("the test level has no entry for optimizer 'lion'; it covers")
    assert "adam" in msg and "rmsprop" in msg and "sgd" in msg and msg.endswith("; try another")


def test_a_subclass_runs_at_every_level_of_its_parent(problem):
    """Discrete, SDE and slow flow all accept MyAdam, with Adam's numbers."""
    kw = dict(lr=0.02, beta2=1 - 10 * 0.02 ** 2, noise=LabelNoise(0.5))
    for model, opts, horizon in (("discrete", {}, dict(steps=50)),
                                 ("sde", {"dt": 0.005, "v0": "target"}, dict(t=0.2)),
                                 ("slow-flow", {"dtau": 0.05, "start": "gradient-flow"}, dict(tau=0.1))):
        mine = diagsim.simulate(problem, MyAdam(**kw), model=model, model_options=opts, n_paths=2, seed=1,
                                **horizon)
        ref = diagsim.simulate(problem, Adam(**kw), model=model, model_options=opts, n_paths=2, seed=1,
                               **horizon)
        np.testing.assert_array_equal(mine.final["theta"], ref.final["theta"], err_msg=model)


@pytest.mark.parametrize("opt", [Lion(lr=0.01), SignSGD(lr=0.01)])
@pytest.mark.parametrize("model, words", [("sde", "the SDE level has no continuous model (SDE)"),
                                          ("slow-flow", "the slow-flow level has no continuous model")])
def test_levels_without_the_optimizer_say_so_in_one_line(problem, opt, model, words, capsys):
    with pytest.raises(DiagsimError) as exc:
        diagsim.simulate(problem, opt, steps=5, model=model)
    assert words in str(exc.value) and f"'{opt.name}'" in str(exc.value) and "\n" not in str(exc.value)
    assert main(["simulate", "--optimizer", opt.name, "--model", model, "--steps", "5", "--quiet", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("diagsim simulate: error:") and words in err
    with pytest.raises(DiagsimError, match="the prediction level has no implicit-bias prediction"):
        from diagsim.predict import predict
        predict(problem, opt)


def test_new_optimizers_are_registered_everywhere():
    assert OPTIMIZERS["lion"] is Lion and OPTIMIZERS["signsgd"] is SignSGD
    for opt in (Lion(lr=0.02, beta1=0.8, beta2=0.95, noise=LabelNoise(0.3, "gaussian")), SignSGD(lr=0.03)):
        assert from_config(json.loads(json.dumps(opt.config()))) == opt


def test_cli_runs_lion_and_signsgd_from_their_fields(problem, capsys):
    assert main(["simulate", "--optimizer", "lion", "--lr", "0.02", "--beta1", "0.8", "--beta2", "0.95",
                 "--steps", "60", "--paths", "3", "--json", "--quiet", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = diagsim.simulate(problem, Lion(lr=0.02, beta1=0.8, beta2=0.95), steps=60, n_paths=3, seed=5)
    np.testing.assert_array_equal(out["w_mean"], ref.w_mean)
    assert main(["simulate", "--optimizer", "signsgd", "--steps", "60", "--json", "--quiet", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = diagsim.simulate(problem, SignSGD(lr=SignSGD.default_lr), steps=60, seed=5)
    np.testing.assert_array_equal(out["w_mean"], ref.w_mean)
    assert main(["simulate", "--optimizer", "signsgd", "--beta1", "0.9", "--steps", "2", "--quiet", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "--beta1 does not apply to --optimizer signsgd" in err and "lion" in err
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    helptext = capsys.readouterr().out
    flat = " ".join(helptext.split())
    assert "| lion | signsgd |" in flat and "adalayer: 0.95; lion: 0.99)" in flat


def test_lion_checkpoint_resumes_bit_for_bit(tmp_path, problem):
    ck = tmp_path / "ck.npz"
    opt = Lion(lr=0.02, noise=LabelNoise(0.5))

    def ctrl_c(k, state):
        if k >= 40:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        diagsim.simulate(problem, opt, steps=100, n_paths=2, checkpoint=ck, checkpoint_every=10, callback=ctrl_c)
    res = diagsim.resume(ck)
    ref = diagsim.simulate(problem, opt, steps=100, n_paths=2)
    for k in ("theta", "m"):
        np.testing.assert_array_equal(res.final[k], ref.final[k])
    path = res.save(tmp_path / "lion.npz")
    back = load_result(path)
    assert back.config["optimizer"]["optimizer"] == "lion" and set(back.final) == {"theta", "m"}


def test_sweep_runs_lion_with_no_edit(tmp_path):
    from diagsim.sweep import collect, run_sweep
    sweep = {"sweep": {"name": "lion"},
             "base": {"problem": {"n": 10, "d": 40, "k": 3, "seed": 5},
                      "optimizer": {"optimizer": "lion", "lr": 0.02, "label_noise": 0.5},
                      "simulate": {"steps": 50, "n_paths": 2}},
             "grid": {"optimizer.beta1": [0.5, 0.9]}}
    run_sweep(sweep, tmp_path / "cache", progress=False)
    table = collect(sweep, tmp_path / "cache")
    P = diagsim.make_problem(10, 40, 3, seed=5)
    for b, loss in zip(table["optimizer.beta1"], table["train_loss"]):
        ref = diagsim.simulate(P, Lion(lr=0.02, beta1=float(b), noise=LabelNoise(0.5)), steps=50, n_paths=2)
        assert loss == pytest.approx(float(np.mean(ref.final_observables["train_loss"])), rel=1e-14)


def test_numba_cache_depends_on_the_whole_package(tmp_path):
    """A kernel is cached under a stamp of every file of the package, so an edited helper in another file
    cannot be loaded stale; functions outside the package keep Numba's own locators."""
    from numba.core.caching import CacheImpl

    from diagsim.lowlevel import jit as _jit
    from diagsim.optimizers import updates
    loc = [c for c in CacheImpl._locator_classes if c.__name__.startswith("DiagsimPackage")]
    assert len(loc) == 2
    found = None
    for cls in loc:
        found = found or cls.from_function(updates.update_sgd.py_func, updates.__file__)
    assert found is not None and found.get_source_stamp()[1] == _jit._package_stamp()
    outside = tmp_path / "mod.py"
    outside.write_text("def f():\n    return 1\n")
    ns: dict = {}
    exec(compile(outside.read_text(), str(outside), "exec"), ns)
    assert all(cls.from_function(ns["f"], str(outside)) is None for cls in loc)
