"""``diagsim bench --quick`` end to end (correctness only: no timed assertions)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from diagsim.bench import QUICK
from diagsim.bench.base import missing
from diagsim.bench.numpy_fused import simulate_numpy
from diagsim.bench.zscores import summarize, zscores


def _bench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "diagsim", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg"})


def _check_plot_content(res):
    """The plot draws every contestant's measured rates against M on both panels, and the two floors."""
    import matplotlib.pyplot as plt

    from diagsim.bench.plot import draw_throughput
    fig = draw_throughput(res)
    assert [ax.get_title() for ax in fig.axes] == ["wall clock", "per process CPU-second"]
    for ax, key in zip(fig.axes, ("path_steps_per_s", "path_steps_per_cpu_s")):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for name in {r["contestant"] for r in res["results"]}:
            rows = sorted((r for r in res["results"] if r["contestant"] == name and "error" not in r),
                          key=lambda r: r["M"])
            np.testing.assert_array_equal(lines[name].get_xdata(), [r["M"] for r in rows])
            want = [np.nan if r.get(key) is None else r[key] for r in rows]
            np.testing.assert_allclose(np.asarray(lines[name].get_ydata(), float), want)
        assert lines["arithmetic floor (dgemm rate)"].get_ydata()[0] == \
            res["floors"]["arithmetic_floor_path_steps_per_s"]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    plt.close(fig)


def test_bench_quick_runs_and_is_statistically_consistent(tmp_path):
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    proc = _bench("--quick", "--json", str(js), "--plot", str(png))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(js.read_text())
    _check_plot_content(res)
    assert "| contestant | M |" in proc.stdout and "s per 10⁶ steps" in proc.stdout
    names = {r["contestant"] for r in res["results"]}
    assert {"diagsim", "numpy-gemm"} <= names
    assert set(res["skipped"]) | names >= {"diagsim", "diagsim-cuda", "numpy-gemm", "diffrax", "torchsde"}
    for name, why in res["skipped"].items():
        assert f"skipping {name}: {why}" in proc.stderr
    for r in res["results"]:
        assert "error" not in r, r
        assert r["finite"] and r["path_steps_per_s"] > 0 and r["warmup_s"] >= 0
        assert r["M"] in QUICK.Ms
        if r["M"] > 1:
            # every contestant integrates the same SDE: its ensemble agrees with the reference
            assert abs(r["loss_z"]) < 5 and abs(r["l1_z"]) < 5, r
        else:
            assert r["loss_z"] is None  # no standard error from one path
    d = {r["M"]: r for r in res["results"] if r["contestant"] == "diagsim"}
    assert all(d[M]["diagsim_over_this"] == 1.0 for M in d)
    assert res["floors"]["dgemm_flop_per_s"] > 0
    assert {row["contestant"] for row in res["paper"]["rows"]} == {"diagsim", "numpy-loop"}


def test_bench_only_and_bad_names():
    proc = _bench("--quick", "--only", "numpy-gemm", "--no-paper")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "numpy-gemm" in proc.stdout and "| diagsim |" not in proc.stdout
    proc = _bench("--quick", "--only", "nosuchsolver")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("diagsim bench: error: --only must name")


def test_missing_peer_message():
    assert missing("numpy") is None
    why = missing("no_such_module_xyz")
    assert "no_such_module_xyz" in why and "diagsim[peers]" in why


def test_a_wrong_noise_scale_is_flagged():
    # an Euler scheme whose noise is sqrt(2) too large (e.g. a variance-for-std mix-up) must fail the
    # z-test against the reference at T = 10 with 128 paths
    from dataclasses import replace
    cfg = replace(QUICK, T=10.0)
    prob = cfg.problem()
    ref = summarize(prob, simulate_numpy(cfg, 128, 3, cfg.n_steps))
    wrong = replace(cfg, label_noise=cfg.label_noise * math.sqrt(2.0))
    bad = summarize(prob, simulate_numpy(wrong, 128, 4, cfg.n_steps))
    good = summarize(prob, simulate_numpy(cfg, 128, 5, cfg.n_steps))
    assert zscores(good, ref)["ok"]
    zb = zscores(bad, ref)
    assert not zb["ok"] and abs(zb["loss_z"]) > 4


def test_numpy_reference_matches_closed_form_drift():
    # one step from theta0 without noise is theta0 - dt grad L (independent formula)
    from dataclasses import replace
    cfg = replace(QUICK, label_noise=0.0)
    prob = cfg.problem()
    th = simulate_numpy(cfg, 2, 0, 1)
    th0 = prob.theta0(2)
    d = prob.d
    u, v = th0[:, :d], th0[:, d:]
    r = (u * u - v * v) @ prob.Z.T - prob.y
    g = r @ prob.Z / prob.n
    expect = np.concatenate([u - cfg.dt * 2 * u * g, v + cfg.dt * 2 * v * g], axis=1)
    np.testing.assert_allclose(th, expect, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("M", [1, 3])
def test_summary_shapes(M):
    prob = QUICK.problem()
    s = summarize(prob, prob.theta0(M))
    assert s["M"] == M and np.isfinite(s["loss_mean"])
    assert (s["loss_se"] == s["loss_se"]) == (M > 1)
