"""benchmarks/bench_paper_scale.py in a very short run: its JSON has every key, the NumPy baseline agrees with
diagsim (with the same label noise and without noise), and the projection adds up (no timed assertions)."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import bench_paper_scale
        yield bench_paper_scale
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))


def test_quick_run_writes_every_key_and_the_numpy_loop_agrees(bench, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert bench.main(["--quick", "--steps", "20", "--repeats", "1", "--ns", "10", "--paths", "1", "4",
                       "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"info", "config", "agreement", "dgemm_1000_gflops_cpu", "results", "record", "projection"} <= set(res)
    # the NumPy loop is the same algorithm: rounding differences only (diagsim fuses a*b + c)
    assert set(res["agreement"]) == {"adam/noise", "adam/noiseless", "sgd/noise", "sgd/noiseless"}
    assert all(v < 1e-10 for v in res["agreement"].values()), res["agreement"]
    assert [(r["optimizer"], r["n"], r["M"]) for r in res["results"]] == [
        ("adam", 10, 1), ("adam", 10, 4), ("sgd", 10, 1), ("sgd", 10, 4)]
    for r in res["results"]:
        assert r["flop_per_step"] == 4 * r["n"] * 1000 * r["M"]
        for who in ("diagsim", "numpy", "floor"):
            assert r[who]["us_per_path_step_cpu"] > 0 and len(r[who]["cpu_s_per_step"]) == 1
        assert r["diagsim_over_numpy"] == pytest.approx(r["diagsim"]["us_per_path_step_cpu"]
                                                        / r["numpy"]["us_per_path_step_cpu"])
        assert r["diagsim_over_floor"] > 0 and r["diagsim_over_peak"] > 0
    p = res["projection"]
    assert p["n"] == [10, 15, 20, 25, 30, 40, 50, 60] and p["from_M"] == 4
    # one measured n: every n of the figure costs what n = 10 costs
    t = {r["optimizer"]: r["diagsim"]["us_per_path_step_cpu"] for r in res["results"] if r["M"] == 4}
    want = sum(8 * 2 * 4 * 1e7 * t[o] * 1e-6 / 60 for o in t)
    assert p["diagsim"]["cpu_minutes"] == pytest.approx(want)
    assert "| optimizer | n | M |" in capsys.readouterr().out


def test_interpolation_in_n(bench):
    assert bench._interp([10, 50], [1.0, 5.0], 30) == pytest.approx(3.0)
    assert bench._interp([10, 50], [1.0, 5.0], 60) == pytest.approx(6.0)  # extended linearly
    assert bench._interp([10, 25, 50], [1.0, 2.0, 4.0], 40) == pytest.approx(3.2)
    assert np.isclose(bench._interp([25], [2.0], 60), 2.0)
