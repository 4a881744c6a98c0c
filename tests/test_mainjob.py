"""The main job (``diagsim run``, the README's first command): it computes, re-loads, resumes, refuses
stored runs of other settings, recovers from corrupt files, and draws its figure."""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from diagsim import make_problem, simulate
from diagsim.cli.main import main
from diagsim.engine.result import load_result
from diagsim.errors import StoredWorkMismatch
from diagsim.experiments.main_job import MainJobConfig, draw_main_job, run_main_job
from diagsim.optimizers import SGD, Adam, LabelNoise
from diagsim.predict import predict

#: small runs of the main job's default problem (the CLI's defaults: n = 18, d = 100, k = 4, seed 1)
CFG = MainJobConfig(adam_steps=3000, sgd_steps=2000, n_paths=2)
FLAGS = ["--adam-steps", "3000", "--sgd-steps", "2000", "--paths", "2", "--quiet"]


@pytest.fixture(scope="module")
def problem():
    return make_problem(18, 100, 4, seed=1)


def _same(a, b):
    np.testing.assert_array_equal(a.final["theta"], b.final["theta"])
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])


def _interrupt_at(step):
    def cb(k, state):
        if k >= step:
            signal.raise_signal(signal.SIGINT)
    return cb


def _run(problem, out, **kw):
    lines = []
    summary = run_main_job(problem, kw.pop("cfg", CFG), out, progress=False, log=lines.append, **kw)
    return summary, lines


def test_computes_then_loads_and_equals_direct_runs(tmp_path, problem):
    out = tmp_path / "run"
    summary, lines = _run(problem, out)
    assert any("[adam] computed" in s for s in lines) and any("[sgd] computed" in s for s in lines)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["adam.json", "adam.npz", "adam_vs_sgd.png", "sgd.json", "sgd.npz", "summary.json"]
    noise = LabelNoise(1.0)
    direct = simulate(problem, Adam(0.01, noise=noise, beta1=0.9, beta2=0.95, eps=1e-6), steps=3000, n_paths=2,
                      seed=0, record="log")
    _same(load_result(out / "adam.npz"), direct)
    direct_sgd = simulate(problem, SGD(0.05, noise=noise), steps=2000, n_paths=2, seed=0, record="log")
    _same(load_result(out / "sgd.npz"), direct_sgd)
    # both predictions start from the same neutral point (the minimum-norm interpolator), not from a run
    for name in ("adam", "sgd"):
        pred = predict(problem, name, method="auto")
        entry = summary["runs"][name]["prediction"]
        assert entry["test_loss"] == pytest.approx(float(problem.test_loss_w(pred.w)), rel=1e-12, abs=1e-30)
        assert ")" in entry["label"] and entry["label"].count("(") == entry["label"].count(")")
    assert json.loads((out / "summary.json").read_text())["runs"]["sgd"]["steps"] == 2000
    again, lines = _run(problem, out)
    assert any("[adam] loaded" in s for s in lines) and any("[sgd] loaded" in s for s in lines)
    assert again["runs"] == summary["runs"]


def test_interrupted_run_resumes_bit_for_bit(tmp_path, problem):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(problem, out, callback=_interrupt_at(1000))
    assert (out / "adam.ckpt.npz").exists() and not (out / "adam.npz").exists()
    _, lines = _run(problem, out)
    resumed = [s for s in lines if s.startswith("[adam] resumed from step")]
    assert resumed, lines
    step = int(resumed[0].split("step ")[1].split()[0])
    assert 1000 <= step < 3000
    assert not (out / "adam.ckpt.npz").exists()
    _, _ = _run(problem, tmp_path / "straight")
    _same(load_result(out / "adam.npz"), load_result(tmp_path / "straight" / "adam.npz"))


@pytest.mark.parametrize("flags, named", [
    (["--seed", "2"], "seed"),
    (["--paths", "3"], "n_paths"),
    (["--d", "50"], "problem.d"),
    (["--adam-lr", "0.02"], "lr"),
])
def test_changed_settings_refuse_the_stored_checkpoint(tmp_path, problem, capsys, flags, named):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(problem, out, callback=_interrupt_at(1000))
    before = (out / "adam.ckpt.npz").read_bytes()
    assert main(["run", "--out", str(out), *FLAGS, *flags]) == 2  # the last of a repeated flag wins
    err = capsys.readouterr().err.strip()
    assert err.startswith("diagsim run: error: checkpoint") and "\n" not in err and "Traceback" not in err
    assert named in err and "--overwrite" in err
    assert (out / "adam.ckpt.npz").read_bytes() == before  # nothing overwritten
    assert not (out / "adam.npz").exists()


def test_changed_settings_refuse_a_finished_run_unless_overwrite(tmp_path, problem, capsys):
    out = tmp_path / "run"
    _run(problem, out)
    with pytest.raises(StoredWorkMismatch, match=r"adam\.npz holds a run made with other settings.*n_paths: 3 here, 2"):
        _run(problem, out, cfg=MainJobConfig(adam_steps=3000, sgd_steps=2000, n_paths=3))
    assert main(["run", "--out", str(out), *FLAGS, "--sgd-lr", "0.04"]) == 2
    err = capsys.readouterr().err
    assert "sgd.npz holds a run made with other settings" in err and "optimizer.lr: 0.04 here, 0.05 stored" in err
    _, lines = _run(problem, out, cfg=MainJobConfig(adam_steps=3000, sgd_steps=2000, n_paths=3), overwrite=True)
    assert any("--overwrite: deleted" in s and "adam.npz" in s for s in lines)
    assert load_result(out / "adam.npz").n_paths == 3


def test_corrupt_stored_files_are_named_and_recomputed(tmp_path, problem):
    out = tmp_path / "run"
    _run(problem, out)
    good = load_result(out / "adam.npz")
    data = (out / "adam.npz").read_bytes()
    (out / "adam.npz").write_bytes(data[: len(data) // 2])
    _, lines = _run(problem, out)
    assert any("adam.npz" in s and "truncated or corrupt" in s and "computing it again" in s for s in lines), lines
    _same(load_result(out / "adam.npz"), good)
    # a truncated checkpoint holds nothing to continue from: the run starts afresh and says so
    (out / "adam.npz").unlink()
    (out / "adam.ckpt.npz").write_bytes(data[:100])
    _, lines = _run(problem, out)
    assert any("adam.ckpt.npz" in s and "starting afresh" in s for s in lines), lines
    _same(load_result(out / "adam.npz"), good)


def test_output_folder_is_checked_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--out", str(blocker), *FLAGS]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["run", "--out", str(blocker / "sub"), *FLAGS]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_figure_shows_runs_predictions_and_caption(tmp_path, problem):
    summary, _ = _run(problem, tmp_path / "run")
    results = {n: load_result(tmp_path / "run" / f"{n}.npz") for n in ("adam", "sgd")}
    preds = {n: predict(problem, n, method="auto").w for n in results}
    fig = draw_main_job(problem, results, preds, CFG)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["test loss ½‖w−w*‖²", "‖w‖₁", "support size (|wᵢ|>1e-3)", "final w"]
    title = fig._suptitle.get_text()
    for part in ("n = 18", "d = 100", "k = 4", "Adam lr 0.01", "SGD lr 0.05", "label noise ±1"):
        assert part in title
    # the plotted curves are the ensemble means of the records
    for ax, key in zip(axes[:3], ("test_loss", "l1", "support")):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for name, res in results.items():
            y = lines[f"{name} (mean ± se)"].get_ydata()
            np.testing.assert_allclose(y, np.nanmean(res.records[key], axis=1))
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "step k"
    # a predicted exact recovery (test loss ~1e-31) is named in the legend, not drawn far below the data
    ax0 = axes[0]
    low = min(np.nanmin(np.nanmean(r.records["test_loss"], axis=1)) for r in results.values())
    assert ax0.get_ylim()[0] > 1e-3 * low
    exact = [n for n in preds if problem.test_loss_w(preds[n]) < 1e-20]
    labels = [t.get_text() for t in ax0.get_legend().get_texts()]
    for n in exact:
        assert any(lab.startswith(f"{n} predicted:") and "below the axis" in lab for lab in labels)
    final = {ln.get_label(): ln for ln in axes[3].get_lines()}
    np.testing.assert_array_equal(final["w*"].get_ydata(), problem.w_star)
    np.testing.assert_allclose(final["adam (mean w)"].get_ydata(), results["adam"].w_mean)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_cli_quick_then_loaded(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["run", "--quick", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "[adam] computed" in text and "[sgd] computed" in text and "weighted-l1 LP (global)" in text
    assert main(["run", "--quick", "--out", str(out), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["adam_steps"] == 100_000 and summary["config"]["n_paths"] == 4
    assert set(summary["runs"]) == {"adam", "sgd"}


def test_data_without_teacher_says_test_loss_is_unavailable(tmp_path, capsys):
    P = make_problem(18, 100, 4, seed=1)
    from diagsim.networks.diagonal.problem import Problem
    Problem(P.Z, P.y, None, "uu-vv").save(tmp_path / "data.npz")
    assert main(["run", "--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "r"), *FLAGS]) == 0
    text = capsys.readouterr().out
    assert "n/a" in text and "neither w_star nor a test set" in text
