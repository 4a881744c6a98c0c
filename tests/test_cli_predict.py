"""``diagsim predict`` end to end (in-process ``main``): JSON contract, text output, --data, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from diagsim import make_problem
from diagsim.cli.main import main
from diagsim.networks.diagonal.problem import Problem
from diagsim.predict import predict

SMALL = ["--n", "5", "--d", "12", "--k", "2", "--seed", "3"]


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_contract_and_agreement_with_api(capsys):
    out = _json(capsys, ["predict", "--optimizer", "adam", *SMALL, "--json"])
    assert len(out["w"]) == 12 and all(isinstance(x, float) for x in out["w"])
    assert all(isinstance(i, int) for i in out["support"])
    assert set(out["measures"]) >= {"trace", "adam", "block"}
    assert out["method"].startswith("global (support enumeration")
    pb = make_problem(5, 12, 2, seed=3)
    np.testing.assert_allclose(out["w"], predict(pb, "adam").w, atol=1e-12)
    assert out["support"] == [i for i in range(12) if abs(out["w"][i]) > 0]


def test_adam_mini_pairs_is_adam(capsys):
    """--blocks pairs: Adam-mini with blocks {u_i, v_i} is predicted to reach Adam's limit (docs/theory.md §9.4);
    the default partition {u}, {v} is the block regularizer's."""
    pairs = _json(capsys, ["predict", "--optimizer", "adam-mini", "--blocks", "pairs", *SMALL, "--json"])
    pb = make_problem(5, 12, 2, seed=3)
    np.testing.assert_allclose(pairs["w"], predict(pb, "adam").w, atol=1e-12)
    uv = _json(capsys, ["predict", "--optimizer", "adam-mini", *SMALL, "--json"])
    np.testing.assert_allclose(uv["w"], predict(pb, "adam-mini").w, atol=1e-12)


def test_adame_text_output(capsys):
    assert main(["predict", "--optimizer", "adame", "--lam", "0.3", *SMALL]) == 0
    text = capsys.readouterr().out
    for piece in ("support (", "tr diag(H)^{1-lambda} (lam=0.3)", "method: global", "measures at w"):
        assert piece in text


def test_data_file_and_user_expression(tmp_path, capsys):
    pb = make_problem(4, 9, 2, seed=5)
    path = pb.save(tmp_path / "p.npz")
    out = _json(capsys, ["predict", "--optimizer", "sgd", "--data", str(path), "--json"])
    np.testing.assert_allclose(out["w"], predict(pb, "sgd").w, atol=1e-12)
    out = _json(capsys, ["predict", "--optimizer", "sgd", "--data", str(path), "--w-expr", "u**3 - v**3",
                         "--json"])
    assert out["parametrization"] == "u**3 - v**3" and "convex" in out["method"]


def test_default_problem_adam_is_local_with_a_note(capsys):
    out = _json(capsys, ["predict", "--optimizer", "adam", "--json"])   # d = 1000, n = 50
    assert out["method"].startswith("local") and out["global"] is False
    assert any("max_supports" in n for n in out["notes"]) and len(out["w"]) == 1000


@pytest.mark.parametrize("argv,msg", [
    (["predict", "--optimizer", "adame", *SMALL], "needs lam"),
    (["predict", "--optimizer", "adame", "--lam", "1.0", *SMALL], "lam must lie in"),
    (["predict", "--optimizer", "sgd", "--lam", "0.2", *SMALL], "lam applies"),
    (["predict", "--optimizer", "adam", "--method", "global", "--max-supports", "10", *SMALL],
     "C(12, 5) = 792"),
    (["predict", "--optimizer", "sgd", "--blocks", "pairs", *SMALL], "--blocks applies to adam-mini"),
    (["predict", "--optimizer", "adam-mini", "--blocks", "pairs", "--param", "uv", *SMALL], "'uu-vv'"),
])
def test_errors_are_one_line(capsys, argv, msg):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_infeasible_data_and_unknown_optimizer(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((3, 7))
    Z = np.vstack([Z, Z[0]])
    y = np.array([1.0, 0.0, 2.0, 5.0])          # row 4 repeats row 1 with another label
    path = Problem(Z, y, None, "uu-vv").save(tmp_path / "bad.npz")
    assert main(["predict", "--data", str(path)]) == 2
    assert "no solution" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--optimizer", "lion"])
    assert exc.value.code == 2
