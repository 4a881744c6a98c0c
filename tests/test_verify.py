"""``diagsim verify``: the registry, the comparison semantics, the statistics helpers, the CLI (in-process, on
cheap checks), that a wrong prediction makes a check FAIL (and the CLI exit non-zero), and the JSON shape."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diagsim.cli.main import main
from diagsim.errors import DiagsimError
from diagsim.verify import REGISTRY, CheckResult, compare, resolve, run_checks
from diagsim.verify import stats

EXPECTED = ["em-orders", "weak-error", "slow-limit", "flow-limits", "flow-measures", "extinction",
            "woodworth", "sparse-regression"]

# ---------------------------------------------------------------- registry


def test_registry_has_the_eight_checks_in_order():
    checks = resolve(None)
    assert [c.name for c in checks] == EXPECTED
    assert [c.number for c in checks] == list(range(1, 9))
    for c in checks:
        assert set(c.quick) == set(c.full), c.name  # the two presets set the same parameters
        assert c.title and callable(c.fn)


def test_resolve_by_name_or_number_and_unknown_names():
    assert [c.name for c in resolve(["7", "em-orders"])] == ["em-orders", "woodworth"]
    with pytest.raises(DiagsimError, match="unknown check 'nope'"):
        resolve(["nope"])
    with pytest.raises(DiagsimError, match="no parameter 'bogus'"):
        run_checks(["woodworth"], quick=True, overrides={"woodworth": {"bogus": 1}})
    with pytest.raises(DiagsimError, match="unknown check"):
        run_checks(["woodworth"], quick=True, overrides={"nope": {}})


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize("m, p, tol, rel, ok", [
    (1.05, 1.0, 0.1, "=", True), (1.2, 1.0, 0.1, "=", False), (0.5, 0.0, 0.4, "<=", False),
    (0.3, 0.0, 0.4, "<=", True), (-0.5, 0.0, 0.4, "<", True), (-0.3, 0.0, 0.4, "<", False),
    (0.5, 0.0, 0.4, ">", True), (0.3, 0.0, 0.4, ">", False), (-0.3, 0.0, 0.4, ">=", True),
    (math.nan, 0.0, 1.0, "=", False), (0.0, 0.0, math.inf, "=", False), (0.0, 0.0, math.nan, "<=", False)])
def test_compare(m, p, tol, rel, ok):
    assert compare(m, p, tol, rel) is ok


def test_check_result_verdict_and_json():
    r = CheckResult("x", "case", "slope", 2.0, 1.0, 0.5, "=", "4 SE",
                    numbers={"a": np.arange(3), "b": np.nan})
    assert not r.passed and r.verdict == "FAIL" and r.name == "x/case"
    assert "measured 2" in r.disagreement() and "tolerance 0.5" in r.disagreement()
    d = json.loads(json.dumps(r.to_dict()))
    assert d["numbers"] == {"a": [0, 1, 2], "b": None} and d["passed"] is False
    with pytest.raises(DiagsimError):
        CheckResult("x", "c", "q", 0, 0, 0, relation="~")


# ---------------------------------------------------------------- statistics helpers


def test_weighted_line_against_numpy():
    g = np.random.default_rng(0)
    x = np.linspace(0, 1, 7)
    se = 0.1 + g.random(7)
    y = 2.0 - 3.0 * x + se * g.standard_normal(7)
    fit = stats.weighted_line(x, y, se)
    b, a = np.polyfit(x, y, 1, w=1 / se)
    assert math.isclose(fit["a"], a, rel_tol=1e-10) and math.isclose(fit["b"], b, rel_tol=1e-10)
    # covariance: the standard formula (X^T W X)^-1
    X = np.column_stack([np.ones(7), x])
    cov = np.linalg.inv(X.T @ (X / se[:, None] ** 2))
    assert math.isclose(fit["se_a"], math.sqrt(cov[0, 0]), rel_tol=1e-10)


def test_parametric_slope_and_geometric_tail():
    h = np.array([0.1, 0.05, 0.025])
    p, se = stats.parametric_slope(h, 3 * h ** 1.5, np.zeros(3))
    assert math.isclose(p, 1.5, rel_tol=1e-12) and se == 0.0
    p, se = stats.parametric_slope(h, 3 * h, 0.05 * 3 * h, n_boot=4000)
    assert 0.02 < se < 0.1  # ~ 0.05 * sqrt(2) / log(4)
    q = 0.5
    inc = [q ** j for j in range(5)]
    assert math.isclose(stats.geometric_tail(inc), sum(q ** j for j in range(5, 200)), rel_tol=1e-12)
    assert stats.geometric_tail([1.0, 2.0]) == math.inf and stats.geometric_tail([1.0, 0.0]) == 0.0


# ---------------------------------------------------------------- checks can fail


def test_em_orders_pass_and_a_wrong_predicted_order_fails():
    over = {"paths": 1024, "n_boot": 100}
    rows = {r.case: r for r in run_checks(["em-orders"], quick=True, overrides={"em-orders": over})}
    assert set(rows) == {"gbm-strong", "gbm-weak", "ou-strong", "ou-weak"}
    assert all(r.passed for r in rows.values()), [r.disagreement() for r in rows.values() if not r.passed]
    wrong = {**over, "orders": {"gbm-strong": 1.0}}  # EM on multiplicative noise does not have strong order 1
    rows = {r.case: r for r in run_checks(["em-orders"], quick=True, overrides={"em-orders": wrong})}
    assert not rows["gbm-strong"].passed and rows["gbm-weak"].passed
    assert abs(rows["gbm-strong"].measured - 0.5) < 0.15


def _perturbed_predict(monkeypatch, shift=1e-3):
    import diagsim.predict as pred
    real = pred.predict

    def fake(problem, optimizer="sgd", **kw):
        out = real(problem, optimizer, **kw)
        out.w = out.w + shift  # a deliberately wrong reference
        return out

    monkeypatch.setattr(pred, "predict", fake)


def test_woodworth_passes_and_fails_against_a_perturbed_reference(monkeypatch):
    over = {"woodworth": {"alphas": [0.1]}}
    (r,) = run_checks(["woodworth"], quick=True, overrides=over)
    assert r.passed and r.measured < r.tolerance < 1e-6
    _perturbed_predict(monkeypatch)
    (r,) = run_checks(["woodworth"], quick=True, overrides=over)
    assert not r.passed and math.isclose(r.measured, 1e-3, rel_tol=1e-3)


def test_a_crashing_check_is_a_failing_row(monkeypatch):
    chk = REGISTRY["woodworth"]

    def boom(ctx):
        raise RuntimeError("deliberate")

    broken = type(chk)(chk.name, chk.number, chk.title, boom, chk.quick, chk.full)
    monkeypatch.setitem(REGISTRY, "woodworth", broken)
    (r,) = run_checks(["woodworth"], quick=True)
    assert not r.passed and r.error == "RuntimeError: deliberate"


# ---------------------------------------------------------------- the CLI, in-process


def test_cli_list(capsys):
    assert main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPECTED)


def test_cli_runs_a_check_writes_json_and_plots(tmp_path, capsys):
    js, plots = tmp_path / "v.json", tmp_path / "plots"
    rc = main(["verify", "--quick", "--only", "woodworth", "--json", str(js), "--plots", str(plots),
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "woodworth/alpha=0.1" in out and "PASS" in out and "passed in" in out
    doc = json.loads(js.read_text())
    assert doc["mode"] == "quick" and doc["passed"] is True and doc["checks"] == ["woodworth"]
    assert doc["n_rows"] == len(doc["rows"]) == 3
    row = doc["rows"][0]
    assert set(row) >= {"name", "check", "case", "quantity", "measured", "predicted", "tolerance", "relation",
                        "derivation", "passed", "seconds", "error", "numbers"}
    assert (plots / "woodworth.png").stat().st_size > 1000


def test_cli_exits_nonzero_and_prints_the_disagreeing_numbers(monkeypatch, capsys):
    _perturbed_predict(monkeypatch)
    rc = main(["verify", "--quick", "--only", "7", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL" in out and "FAILED (the numbers that disagree):" in out and "woodworth/alpha=" in out


def test_cli_bad_arguments(tmp_path, capsys):
    assert main(["verify", "--only", "nope"]) == 2
    assert "unknown check 'nope'" in capsys.readouterr().err
    assert main(["verify", "--only", "7", "--json", str(tmp_path / "missing" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
