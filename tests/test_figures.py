"""The paper-reproduction pipeline: figure configs parse, one figure runs end to end in --quick mode,
a second run only redraws (nothing recomputed) and gives byte-identical files, and scripts refuse to
plot results that are not computed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diagsim.errors import DiagsimError
from diagsim.experiments.figures import list_figures, load_figure, make_figure, repro_dir
from diagsim.sweep import plan_sweep

ROOT = Path(__file__).resolve().parents[1]
REPRO = ROOT / "paper_repro"


def test_every_figure_has_config_script_and_readme_row():
    names = list_figures(REPRO)
    assert names == ["fig1_trajectories", "fig2_sample_size", "fig3_sharpness", "fig4_phase", "fig5_adam_phase",
                     "fig6_paper_scale", "fig7_sharpness_correlation", "fig8_sam_family",
                     "fig9_adame_lambda", "fig10_beta2_scaling", "fig11_adam_mini", "fig12_three_levels",
                     "fig13_matrix_factorization"]
    readme = (REPRO / "README.md").read_text()
    assert (REPRO / "diagsim.mplstyle").is_file()
    for n in names:
        assert f"{n}.toml" in readme and f"{n}.py" in readme


@pytest.mark.parametrize("quick", [False, True])
def test_figure_configs_expand_and_canonicalize(quick):
    for n in list_figures(REPRO):
        spec = load_figure(n, quick=quick, root=REPRO)
        for label, sw in spec.sweeps.items():
            plan = plan_sweep(sw, "unused")          # every job config is valid
            assert len(plan.jobs) >= 2, (n, label)
    # figure 3 draws the very runs of figure 1: same jobs, same cache entries
    f1, f3 = load_figure("fig1_trajectories", root=REPRO), load_figure("fig3_sharpness", root=REPRO)
    keys = lambda spec, label: [j.key for j in plan_sweep(spec.sweeps[label], "unused").jobs]  # noqa: E731
    assert keys(f1, "runs") == keys(f3, "runs") and keys(f1, "limits") == keys(f3, "limits")


def test_quick_figure_end_to_end_then_cached_and_stable(tmp_path):
    rep = make_figure("fig1_trajectories", quick=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "out",
                      root=REPRO, progress=False)
    assert rep.computed == 4 and rep.cached == 0
    pngs = sorted((tmp_path / "out").glob("*.png"))
    pdfs = sorted((tmp_path / "out").glob("*.pdf"))
    assert [p.name for p in pngs] == ["fig1_trajectories.png"] and len(pdfs) == 1
    before = {p.name: p.read_bytes() for p in pngs + pdfs}
    rep2 = make_figure("fig1_trajectories", quick=True, cache_dir=tmp_path / "cache",
                       out_dir=tmp_path / "out", root=REPRO, progress=False)
    assert rep2.computed == 0 and rep2.cached == 4
    assert {p.name: p.read_bytes() for p in pngs + pdfs} == before   # no dates: identical files
    # what the figure shows is what the runs computed: Adam ends closer to w* than SGD on this problem
    from diagsim.experiments.figures import FigureContext
    spec = load_figure("fig1_trajectories", quick=True, root=REPRO)
    ctx = FigureContext(spec, tmp_path / "cache", tmp_path)
    t, lim = ctx.table("runs"), ctx.table("limits")
    assert set(t["status"]) == {"ok"} and np.all(np.isfinite(t["test_loss"]))
    test = dict(zip(t["optimizer.optimizer"], t["test_loss"]))
    pred = dict(zip(lim["predict.optimizer"], lim["rel_error"]))
    assert pred["adam"] < 1e-6 < 0.5 < pred["sgd"]     # the l_1/2 limit is w*, the l1 limit is not
    assert test["adam"] < 0.1 * test["sgd"]
    _check_fig1_content(ctx, spec)


def _check_fig1_content(ctx, spec):
    """What the figure draws: three panels with their labels, the ensemble means of the cached records,
    and the predicted limits as dashed lines at the predicted values."""
    import matplotlib.pyplot as plt

    from diagsim.experiments.figures import _load_script, _use_style
    _use_style(REPRO)
    ctx.save = lambda fig, stem=None: ctx.figures.append(fig)  # draw without writing files
    _load_script(spec.script_path).plot(ctx)
    (fig,) = ctx.figures
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["test loss", "$\\ell_1$ norm", "support size"]
    assert all(ax.get_xscale() == "log" and ax.get_xlabel() == "step" for ax in axes)
    assert "n = 18" in fig._suptitle.get_text() and "[quick]" in fig._suptitle.get_text()
    runs = ctx.results("runs")
    for ax, obs in zip(axes, ("test_loss", "l1", "support")):
        solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        assert len(solid) == len(runs)
        for ln, (_job, res) in zip(solid, runs):
            keep = res.steps > 0
            np.testing.assert_array_equal(ln.get_xdata(), res.steps[keep])
            np.testing.assert_allclose(ln.get_ydata(), np.nanmean(res.records[obs][keep], axis=1))
    limits = {job.config["predict"]["optimizer"]: r for job, r in ctx.results("limits")}
    dashed = [ln for ln in axes[1].get_lines() if ln.get_linestyle() == "--"]
    assert sorted(float(ln.get_ydata()[0]) for ln in dashed) == sorted(float(r["l1"]) for r in limits.values())
    plt.close(fig)


def test_paper_scale_figure_quick_scores_are_the_cached_records(tmp_path):
    """Figure 6 (quick): its JSON scores are the mean over paths of each run's last ``score_window``
    recorded test losses, recomputed here from the cached results; the markers drawn are those scores."""
    import json

    import matplotlib.pyplot as plt

    from diagsim.experiments.figures import FigureContext
    rep = make_figure("fig6_paper_scale", quick=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "out",
                      root=REPRO, progress=False)
    assert rep.computed == 12 and rep.cached == 0
    summary = json.loads((tmp_path / "out" / "fig6_paper_scale.json").read_text())
    window = summary["score_window"]
    spec = load_figure("fig6_paper_scale", quick=True, root=REPRO)
    assert window == spec.options["score_window"] == 20
    ctx = FigureContext(spec, tmp_path / "cache", tmp_path)
    got = {(r["optimizer"], r["n"], r["seed"]): r["score"] for r in summary["rows"] if "score" in r}
    runs = ctx.results("runs")
    assert len(got) == len(runs) == 6
    for job, res in runs:
        cfg = job.config
        assert cfg["problem"]["design"] == "rademacher" and cfg["problem"]["teacher"] == "uniform"
        tl = res.records["test_loss"]
        assert tl.shape[0] == cfg["simulate"]["steps"] // cfg["simulate"]["record"] + 1
        want = float(np.mean(tl[-window:], axis=0).mean())
        key = (cfg["optimizer"]["optimizer"], cfg["problem"]["n"], cfg["problem"]["seed"])
        assert got[key] == pytest.approx(want, rel=1e-12)
    # the markers of the left panel are exactly those scores
    from diagsim.experiments.figures import _load_script, _use_style
    _use_style(REPRO)
    ctx.save = lambda fig, stem=None: ctx.figures.append(fig)
    ctx.out_dir = tmp_path / "redraw"
    ctx.out_dir.mkdir()
    _load_script(spec.script_path).plot(ctx)
    (fig,) = ctx.figures
    markers = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "o"]
    drawn = sorted(float(y) for ln in markers for y in ln.get_ydata())
    assert drawn == pytest.approx(sorted(got.values()), rel=1e-12)
    plt.close(fig)


def test_script_reads_cache_only(tmp_path):
    out = subprocess.run([sys.executable, str(REPRO / "fig2_sample_size.py"), "--quick", "--cache",
                          str(tmp_path / "empty"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120, env={"MPLBACKEND": "Agg",
                                                                           "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert "not in the cache" in out.stdout and "compute them first" in out.stdout
    assert not (tmp_path / "o").exists()


def test_cli_figures_list_and_errors(capsys):
    from diagsim.cli.main import main
    assert main(["figures", "--list", "--repro", str(REPRO)]) == 0
    assert "fig4_phase" in capsys.readouterr().out
    assert main(["figures", "--only", "fig9", "--repro", str(REPRO)]) == 2
    assert "unknown figure(s) fig9" in capsys.readouterr().err
    assert main(["figures", "--format", "jpg", "--repro", str(REPRO)]) == 2


def test_figure_config_errors(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("[figure]\ntitle = 'x'\n")
    with pytest.raises(DiagsimError, match=r"needs at least one \[sweeps.<label>\]"):
        load_figure(bad)
    bad.write_text("[sweeps.a]\ninclude = 'y.toml#b'\n")
    with pytest.raises(DiagsimError, match="does not exist"):
        load_figure(bad)
    bad.write_text("[sweeps.a.grid]\n'p.q' = 1\n")
    with pytest.raises(DiagsimError, match=r"x.toml \[sweeps.a\]: grid\['p.q'\] must be a list"):
        load_figure(bad)
    assert repro_dir(REPRO) == REPRO


def test_example_sweeps_parse():
    from diagsim.sweep import load_sweep
    files = sorted((REPRO / "sweeps").glob("*.toml"))
    assert files
    for f in files:
        sw = load_sweep(f)
        assert len(plan_sweep(sw, "unused").jobs) == len(sw) >= 2
        assert sw.plot.get("x") in sw.keys and sw.plot.get("y") in sw.keys
