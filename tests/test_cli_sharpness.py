"""``diagsim sharpness`` run in-process: JSON output against direct API calls, and one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from diagsim import measures as S
from diagsim.cli.main import main
from diagsim.networks.diagonal.manifold import retract
from diagsim.networks.diagonal.problem import make_problem

SMALL = ["--n", "6", "--d", "15", "--k", "2", "--seed", "3"]


def run_json(capsys, args):
    rc = main(["sharpness", *args, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_fresh_problem_json_matches_api(capsys):
    got = run_json(capsys, [*SMALL, "--measures", "lambda_max,trace,renyi,geodesic_mix", "--order", "0.5"])
    p = make_problem(6, 15, 2, seed=3)
    th = retract(p, p.theta0(1))
    ref = S.evaluate(p, th, ["lambda_max", "trace", "renyi", "geodesic_mix"], order=0.5)
    assert list(got) == list(ref)
    for k, v in ref.items():
        assert got[k] == pytest.approx(float(v[0]), rel=1e-12)


def test_default_is_every_measure_and_init_point(capsys):
    got = run_json(capsys, [*SMALL, "--param", "uv", "--point", "init", "--rho", "0.02"])
    assert list(got) == list(S.MEASURES)
    p = make_problem(6, 15, 2, seed=3, parametrization="uv")
    ref = S.evaluate(p, p.theta0(1), ["average", "fisher_rao"], rho=0.02)
    assert got["average"] == pytest.approx(float(ref["average"][0]), rel=1e-12)
    assert got["fisher_rao"] == pytest.approx(0.0, abs=1e-14)   # w = 0 at the initialization


def test_state_file_with_many_paths(tmp_path, capsys):
    p = make_problem(6, 15, 2, seed=3, parametrization="depth-3")
    rng = np.random.default_rng(0)
    th = retract(p, 0.5 + 0.2 * rng.standard_normal((3, p.dim)))
    np.savez(tmp_path / "states.npz", theta=th)
    got = run_json(capsys, [*SMALL, "--param", "depth-3", "--state", str(tmp_path / "states.npz"),
                            "--measures", "trace_diag_sqrt,log_pdet,average_adaptive",
                            "--rho-adaptive", "0.3"])
    ref = S.evaluate(p, th, ["trace_diag_sqrt", "log_pdet", "average_adaptive"], rho_adaptive=0.3)
    assert set(got) == {"trace_diag_sqrt", "log_pdet", "average_adaptive", "per_path"}
    for k, v in ref.items():
        assert got[k] == pytest.approx(float(np.mean(v)), rel=1e-12)
        assert got["per_path"][k] == pytest.approx(v.tolist(), rel=1e-12)


def test_state_file_holding_its_problem_and_data_flag(tmp_path, capsys):
    p = make_problem(5, 12, 2, seed=8, parametrization="uv")
    th = retract(p, p.theta0(1))[0]                       # a single (2d,) state
    p.save(tmp_path / "prob.npz")
    np.savez(tmp_path / "both.npz", theta=th, Z=p.Z, y=p.y)
    ref = S.evaluate(p, th, ["lambda_max", "worst"])
    for extra in (["--state", str(tmp_path / "both.npz")],
                  ["--data", str(tmp_path / "prob.npz"), "--state", str(tmp_path / "both.npz")]):
        got = run_json(capsys, [*extra, "--param", "uv", "--measures", "lambda_max,worst"])
        assert "per_path" not in got
        for k, v in ref.items():
            assert got[k] == pytest.approx(float(v[0]), rel=1e-10)


def test_table_output(capsys):
    assert main(["sharpness", *SMALL, "--measures", "trace,renyi_u"]) == 0
    out = capsys.readouterr().out
    assert "trace" in out and "renyi_u" in out and "max |Zw - y|" in out


@pytest.mark.parametrize("args, words", [
    (["--measures", "trace,sharpest"], ["measure must be one of", "lambda_max", "sharpest"]),
    (["--measures", "geodesic_inv", "--param", "depth-3"], ["not defined"]),
    (["--rho", "-1", "--measures", "average"], ["rho"]),
    (["--order", "2", "--measures", "trace"], ["--order", "not used"]),
    (["--n", "0"], ["n must be"]),
    (["--k", "40"], ["k must be <= d"]),
    (["--param", "uvw"], ["parametrization must be one of"]),
    (["--state", "/nonexistent/states.npz"], ["does not exist"]),
])
def test_bad_input_one_line_exit_2(args, words, capsys):
    rc = main(["sharpness", *SMALL, *args])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diagsim sharpness: error:"), err
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in err


def test_bad_state_files(tmp_path, capsys):
    p = make_problem(6, 15, 2, seed=3)
    np.savez(tmp_path / "shape.npz", theta=np.zeros((2, 7)))
    bad = p.theta0(2)
    bad[1, 4] = np.nan
    np.savez(tmp_path / "nan.npz", theta=bad)
    np.savez(tmp_path / "key.npz", states=p.theta0(1))
    for name, word in (("shape", "shape"), ("nan", "non-finite"), ("key", "no array 'theta'")):
        rc = main(["sharpness", *SMALL, "--state", str(tmp_path / f"{name}.npz")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and word in err[0], err
    got = run_json(capsys, [*SMALL, "--state", str(tmp_path / "key.npz"), "--key", "states",
                            "--measures", "trace"])
    assert got["trace"] == pytest.approx(float(S.trace(p, p.theta0(1))[0]), rel=1e-12)
