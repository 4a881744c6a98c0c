"""``diagsim verify``: the registry, the comparison semantics, the claim verdict rule, the statistics helpers,
the CLI (in-process, on cheap checks), that a wrong prediction makes a check FAIL (and the CLI exit non-zero),
that claims are reported without gating (on fake checks swapped into the registry), and the JSON shape."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diagsim.cli.main import main
from diagsim.errors import DiagsimError
from diagsim.verify import (
    REGISTRY,
    Check,
    CheckResult,
    base,
    claim_verdict,
    compare,
    gate_failures,
    resolve,
    run_checks,
)
from diagsim.verify import estimates as stats

EXPECTED = ["em-orders", "weak-error", "slow-limit", "flow-limits", "flow-measures", "extinction",
            "woodworth", "sparse-regression"]

# ---------------------------------------------------------------- registry


def test_registry_has_the_eight_checks_in_order():
    checks = resolve(None)
    assert [c.name for c in checks] == EXPECTED
    assert [c.number for c in checks] == list(range(1, 9))
    assert [c.kind for c in checks] == ["theorem"] * 7 + ["claim"]
    assert [c.name for c in resolve(None, "claim")] == ["sparse-regression"]
    assert [c.name for c in resolve(None, "theorem")] == EXPECTED[:7]
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


# ---------------------------------------------------------------- the claim verdict rule


@pytest.mark.parametrize("mean, tol, direction, verdict", [
    (-1.0, 0.5, "<", "HOLDS"), (-0.5, 0.5, "<", "HOLDS"), (-0.49, 0.5, "<", "NOT SIGNIFICANT"),
    (0.0, 0.5, "<", "NOT SIGNIFICANT"), (0.49, 0.5, "<", "NOT SIGNIFICANT"), (0.5, 0.5, "<", "FAILS"),
    (3.0, 0.5, "<", "FAILS"),
    (1.0, 0.5, ">", "HOLDS"), (0.5, 0.5, ">", "HOLDS"), (0.2, 0.5, ">", "NOT SIGNIFICANT"),
    (-0.2, 0.5, ">", "NOT SIGNIFICANT"), (-0.5, 0.5, ">", "FAILS"),
    # tolerance 0 (an exact statistic): any difference decides; equality contradicts a strict claim
    (-1e-12, 0.0, "<", "HOLDS"), (1e-12, 0.0, "<", "FAILS"), (0.0, 0.0, "<", "FAILS"),
    (0.0, 0.0, ">", "FAILS"),
    # an infinite tolerance decides nothing
    (-5.0, math.inf, "<", "NOT SIGNIFICANT"),
    # check 8's quick-run numbers of docs/verify.md before the split: test loss, N_eff
    (0.1541, 1.236, "<", "NOT SIGNIFICANT"), (4.461, 2.712, "<", "FAILS")])
def test_claim_verdict_on_hand_made_inputs(mean, tol, direction, verdict):
    assert claim_verdict(mean, tol, direction) == verdict


def test_claim_verdict_reference_and_agreement_with_compare():
    assert claim_verdict(1.2, 0.1, ">", reference=1.0) == "HOLDS"
    assert claim_verdict(1.2, 0.1, "<", reference=1.0) == "FAILS"
    assert claim_verdict(1.05, 0.1, "<", reference=1.0) == "NOT SIGNIFICANT"
    # for tolerance > 0: HOLDS is the comparison a theorem row would make, FAILS its mirror image
    g = np.random.default_rng(0)
    for m, t in zip(g.normal(0, 2, 500), g.exponential(1, 500)):
        for d, anti in (("<", ">"), (">", "<")):
            v = claim_verdict(m, t, d)
            assert (v == "HOLDS") == compare(m, 0.0, t, d), (m, t, d)
            assert (v == "FAILS") == compare(m, 0.0, t, anti), (m, t, d)
            assert (v == "NOT SIGNIFICANT") == (abs(m) < t), (m, t, d)


@pytest.mark.parametrize("mean, tol, direction", [
    (math.nan, 1.0, "<"), (math.inf, 1.0, "<"), (0.0, math.nan, "<"), (0.0, -1.0, "<"), (0.0, 1.0, "="),
    (0.0, 1.0, "<=")])
def test_claim_verdict_rejects_broken_inputs(mean, tol, direction):
    with pytest.raises(DiagsimError):
        claim_verdict(mean, tol, direction)


def test_claim_rows_carry_their_verdict_and_never_gate():
    hold = CheckResult("c", "x", "q", -2.0, 0.0, 1.0, "<", kind="claim", regime="r")
    fail = CheckResult("c", "y", "q", 2.0, 0.0, 1.0, "<", kind="claim", regime="r")
    ns = CheckResult("c", "z", "q", 0.5, 0.0, 1.0, ">", kind="claim")
    cond = CheckResult("c", "w", "q", 5.0, 0.0, 1.0, "=", kind="condition")
    theo = CheckResult("t", "v", "q", 5.0, 0.0, 1.0, "=")
    crash = CheckResult("c", "error", "q", math.nan, math.nan, math.nan, "=", error="boom", kind="claim")
    assert [r.verdict for r in (hold, fail, ns, cond, theo, crash)] == [
        "HOLDS", "FAILS", "NOT SIGNIFICANT", "FAIL", "FAIL", "ERROR"]
    assert hold.passed and not fail.passed and not ns.passed
    assert gate_failures([hold, fail, ns, cond]) == []
    assert gate_failures([hold, fail, ns, cond, theo, crash]) == [theo, crash]
    d = hold.to_dict()
    assert d["kind"] == "claim" and d["verdict"] == "HOLDS" and d["regime"] == "r"
    with pytest.raises(DiagsimError, match="direction"):
        CheckResult("c", "x", "q", 0.0, 0.0, 1.0, "=", kind="claim")
    with pytest.raises(DiagsimError, match="kind"):
        CheckResult("c", "x", "q", 0.0, 0.0, 1.0, kind="lemma")


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


def test_cli_runs_a_check_writes_json_and_plots(tmp_path, capsys, monkeypatch):
    from diagsim.verify import plotting
    drawn = []
    save = plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, path: (drawn.append((fig, path)), save(fig, path))[-1])
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
    # the figure shows, per alpha, the flow's large coordinates ending on the dashed Woodworth values
    ((fig, path),) = drawn
    assert path == plots / "woodworth.png" and path.is_file()
    assert len(fig.axes) == 3
    for ax, r in zip(fig.axes, doc["rows"]):
        alpha = r["numbers"]["alpha"]
        assert ax.get_title() == f"gradient flow, alpha = {alpha:g}" and ax.get_xscale() == "log"
        w_gf, w_ww = np.asarray(r["numbers"]["w_gf"]), np.asarray(r["numbers"]["w_woodworth"])
        solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        big = np.flatnonzero(np.abs(w_gf) > 1e-3 * np.abs(w_gf).max())
        assert len(solid) == len(dashed) == big.size > 0
        np.testing.assert_allclose([ln.get_ydata()[-1] for ln in solid], w_gf[big], rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal([ln.get_ydata()[0] for ln in dashed], w_ww[big])


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


# ---------------------------------------------------------------- theorems gate, claims are reported (fakes)


def _theorem(measured):
    """A fake theorem check with one row: ``measured`` = 0 within 1 (passes for |measured| <= 1)."""
    return "theorem", lambda ctx: [ctx.result("case", "a number", measured, 0.0, 1.0)]


def _claim(mean, condition=0.0):
    """A fake claim check: one claim row ("mean < 0", tolerance 1) and one condition row (= 0 within 1)."""
    return "claim", lambda ctx: [
        ctx.claim("effect", "mean difference", mean, 1.0, direction="<", regime="2 fake instances, 8 paths",
                  derivation="4 SE"),
        ctx.result("converged", "drift", condition, 0.0, 1.0)]


def _crash(kind):
    def fn(ctx):
        raise RuntimeError("deliberate")
    return kind, fn


@pytest.fixture
def fakes(monkeypatch):
    """Replace the registry by fake checks: ``fakes(name=(kind, fn), ...)`` numbers them 1, 2, ... in order
    and returns the list of check names run (appended as they run)."""
    resolve(None)  # import the real check modules first, so that they do not register into the fake registry
    ran = []

    def install(**checks):
        reg = {}
        for number, (name, (kind, fn)) in enumerate(checks.items(), 1):
            def wrapped(ctx, fn=fn):
                ran.append(ctx.name)
                return fn(ctx)
            reg[name] = Check(name, number, f"fake {name}", wrapped, {}, {}, kind)
        monkeypatch.setattr(base, "REGISTRY", reg)
        return ran
    return install


def _verify(capsys, *args):
    rc = main(["verify", "--quiet", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_a_failing_theorem_row_exits_1(fakes, capsys):
    fakes(good=_theorem(0.5), bad=_theorem(3.0), effect=_claim(-5.0))
    rc, out, _ = _verify(capsys)
    assert rc == 1
    assert "bad/case" in out.split("FAILED (the numbers that disagree):")[1]
    assert "theorems: 1/2 passed" in out and "exit status 1" in out


def test_a_failing_claim_does_not_change_the_exit_status(fakes, capsys):
    ran = fakes(good=_theorem(0.5), against=_claim(3.0), unclear=_claim(0.2, condition=7.0))
    rc, out, _ = _verify(capsys)
    assert rc == 0 and ran == ["good", "against", "unclear"]
    theorems, claims = out.split("CLAIMS:")
    assert "THEOREMS:" in theorems and "good/case" in theorems and "against/" not in theorems
    lines = {ln.split()[0]: ln for ln in claims.splitlines() if ln.split() and "/" in ln.split()[0]}
    assert lines["against/effect"].split()[1] == "claim" and lines["against/effect"].endswith("FAILS")
    assert lines["unclear/effect"].endswith("NOT SIGNIFICANT")
    assert lines["unclear/converged"].split()[1] == "condition"
    assert lines["unclear/converged"].endswith("FAIL")
    assert "tested in: 2 fake instances, 8 paths" in claims and "verdict rule: HOLDS if" in claims
    assert "condition FAILED: unclear/converged" in claims
    assert "claims: 1 FAILS, 1 NOT SIGNIFICANT" in out and "exit status 0" in out
    assert "FAILED (the numbers that disagree)" not in out


@pytest.mark.parametrize("kind", ["claim", "theorem"])
def test_a_crash_exits_1_whatever_the_kind(fakes, capsys, kind):
    fakes(good=_theorem(0.5), fine=_claim(-5.0), broken=_crash(kind))
    rc, out, _ = _verify(capsys)
    assert rc == 1
    assert "broken/error: ERROR RuntimeError: deliberate" in out
    (row,) = [r for r in run_checks(["broken"]) if r.check == "broken"]
    assert row.kind == kind and row.error == "RuntimeError: deliberate" and row.gates


def test_theorems_only_and_claims_only_select_the_right_checks(fakes, capsys):
    ran = fakes(t1=_theorem(0.0), c1=_claim(-5.0), t2=_theorem(0.0), c2=_claim(5.0))
    rc, out, _ = _verify(capsys, "--theorems-only")
    assert rc == 0 and ran == ["t1", "t2"] and "CLAIMS:" not in out and "THEOREMS:" in out
    ran.clear()
    rc, out, _ = _verify(capsys, "--claims-only")
    assert rc == 0 and ran == ["c1", "c2"] and "THEOREMS:" not in out and "CLAIMS:" in out
    ran.clear()
    rc, out, _ = _verify(capsys, "--claims-only", "--only", "4", "c1")
    assert rc == 0 and ran == ["c1", "c2"]
    ran.clear()
    assert main(["verify", "--list", "--claims-only"]) == 0 and ran == []
    out = capsys.readouterr().out
    assert [ln.split()[1:3] for ln in out.splitlines()] == [["c1", "claim"], ["c2", "claim"]]
    assert main(["verify", "--list", "--theorems-only"]) == 0
    out = capsys.readouterr().out
    assert [ln.split()[1:3] for ln in out.splitlines()] == [["t1", "theorem"], ["t2", "theorem"]]


def test_bad_kind_combinations_are_one_line_errors(fakes, capsys):
    ran = fakes(t1=_theorem(0.0), c1=_claim(-5.0))
    rc, out, err = _verify(capsys, "--theorems-only", "--claims-only")
    assert rc == 2 and err.count("\n") == 1 and "exclude each other" in err
    rc, out, err = _verify(capsys, "--theorems-only", "--only", "t1", "c1")
    assert rc == 2 and err.count("\n") == 1 and "'c1' is a claim" in err
    rc, out, err = _verify(capsys, "--claims-only", "--only", "1")
    assert rc == 2 and "'t1' is a theorem" in err
    assert ran == []


def test_json_has_every_rows_kind_and_the_claim_verdicts(fakes, capsys, tmp_path):
    fakes(good=_theorem(0.5), against=_claim(3.0))
    js = tmp_path / "v.json"
    rc, _, _ = _verify(capsys, "--json", str(js))
    doc = json.loads(js.read_text())
    assert rc == 0 and doc["exit_status"] == 0 and doc["passed"] is True and doc["selection"] == "all"
    assert [(r["name"], r["kind"], r["verdict"]) for r in doc["rows"]] == [
        ("good/case", "theorem", "PASS"), ("against/effect", "claim", "FAILS"),
        ("against/converged", "condition", "PASS")]
    (c,) = doc["claims"]
    assert c["name"] == "against/effect" and c["verdict"] == "FAILS" and c["measured"] == 3.0
    assert c["relation"] == "<" and c["tolerance"] == 1.0 and c["regime"] == "2 fake instances, 8 paths"
    assert doc["kinds"] == {"good": "theorem", "against": "claim"} and doc["verdict_rule"].startswith("HOLDS")


def test_row_kinds_must_match_the_check_kind(fakes):
    fakes(thm=("theorem", lambda ctx: [ctx.claim("x", "q", -5.0, 1.0, direction="<", regime="r")]),
          odd=("theorem", lambda ctx: [CheckResult("odd", "x", "q", -5.0, 0.0, 1.0, "<", kind="claim")]))
    rows = run_checks()
    assert [r.error is not None for r in rows] == [True, True]
    assert "only a claim check makes claim rows" in rows[0].error
    assert "returned rows of kind claim" in rows[1].error
    assert gate_failures(rows) == rows
