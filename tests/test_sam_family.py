"""Figure 8 (the SAM family on sparse regression): the quick figure against direct runs, the gradient
evaluations per step against an instrumented count, and the verdict rule on constructed cases."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from quick_figure import quick_figure

import diagsim
from diagsim.experiments.figures import repro_dir
from diagsim.optimizers import GD, MESA, SAF, SAM, NoNoise

REPRO = repro_dir()
NAME = "fig8_sam_family"
#: the quick problem, as written in fig8_sam_family.toml ([sweeps.base] with its [quick] overrides)
QUICK_PROBLEM = dict(n=10, d=20, k=2, design="gaussian", teacher="pm1", parametrization="uu-vv",
                     init="constant", seed=1)
QUICK_STEPS, LR = 20_000, 0.05


def _script():
    spec = importlib.util.spec_from_file_location("fig8_script", REPRO / f"{NAME}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    rep, js, out, tmp = quick_figure(NAME, tmp_path_factory, REPRO)
    return rep, js, out


def _direct(alpha, opt, n_paths=1):
    """The end point of one configuration run by diagsim.simulate, its numbers computed here from w."""
    problem = diagsim.make_problem(**QUICK_PROBLEM, alpha=alpha)
    res = diagsim.simulate(problem, opt, steps=QUICK_STEPS, n_paths=n_paths, seed=0, progress=False)
    w = res.w
    assert not res.diverged_mask.any()
    return {"train_loss": np.mean(0.5 * np.mean((w @ problem.Z.T - problem.y) ** 2, axis=1)),
            "test_loss": np.mean(0.5 * np.sum((w - problem.w_star) ** 2, axis=1)),
            "l1": np.mean(np.abs(w).sum(axis=1)), "support": np.mean((np.abs(w) > 1e-3).sum(axis=1))}


@pytest.mark.parametrize("method,alpha,rho,opt,n_paths", [
    ("1-SAM", 0.1, 0.1, SAM(lr=LR, rho=0.1, variant="msam", m_chunks=10, noise=NoNoise()), 1),
    ("n-SAM", 0.01, 0.01, SAM(lr=LR, rho=0.01, noise=NoNoise()), 1),
    ("SSAM-D", 0.1, 0.01, SAM(lr=LR, rho=0.01, variant="ssam-d", noise=NoNoise()), 3),
    ("GD", 0.01, None, GD(lr=LR), 1),
    ("MESA", 0.1, None, MESA(lr=LR, noise=NoNoise()), 1),
])
def test_quick_figure_end_points_are_direct_runs(quick, method, alpha, rho, opt, n_paths):
    rep, summary, out = quick
    assert (out / f"{NAME}.png").stat().st_size > 10_000 and (out / f"{NAME}.pdf").is_file()
    assert {k: summary["problem"][k] for k in QUICK_PROBLEM} == QUICK_PROBLEM
    assert summary["steps"] == QUICK_STEPS and summary["lr"] == LR
    [run] = [r for r in summary["runs"] if r["method"] == method and r["alpha"] == alpha and r["rho"] == rho]
    assert run["n_paths"] == n_paths
    ref = _direct(alpha, opt, n_paths)
    for key, val in ref.items():
        assert run[key] == pytest.approx(val, rel=1e-10, abs=1e-14), key
    assert run["converged"] == bool(ref["train_loss"] <= summary["options"]["converged_train_loss"])


def test_quick_figure_has_every_method_and_cell(quick):
    _, summary, _ = quick
    methods = {r["method"] for r in summary["runs"]}
    assert methods == set(_script().COLORS)
    assert len(summary["runs"]) == 3 * 2 + 10 * 2 * 2          # (GD, SAF, MESA) x alphas + SAM x alphas x rhos
    assert len(summary["verdicts"]) == 2 * 2 * 2                 # alphas x rhos x quantities
    assert summary["n_not_converged"] == sum(not r["converged"] for r in summary["runs"])


# --------------------------------------------------------------------------- gradient evaluations
CONFIGS = [{"optimizer": "gd"}, {"optimizer": "saf"}, {"optimizer": "mesa"}] + [
    {"optimizer": "sam", "variant": v, "m_chunks": m}
    for v, m in [("sam", 1), ("usam", 1), ("msam", 3), ("msam", 6), ("asam", 1), ("fisher", 1), ("ssam-f", 1),
                 ("ssam-d", 1), ("block", 1), ("rsam", 1)]]


def _spec(cfg):
    if cfg["optimizer"] == "gd":
        return GD(lr=0.05)
    if cfg["optimizer"] == "saf":
        return SAF(lr=0.05, delay=2, noise=NoNoise())
    if cfg["optimizer"] == "mesa":
        return MESA(lr=0.05, noise=NoNoise())
    return SAM(lr=0.05, rho=0.05, variant=cfg["variant"], m_chunks=cfg["m_chunks"], noise=NoNoise())


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.get('variant', c['optimizer'])}{c.get('m_chunks', '')}")
def test_gradient_evaluations_match_an_instrumented_count(monkeypatch, cfg):
    """Run the plain-NumPy reference of tests/test_optimizers.py with its J^T c product counted: every
    (point theta, data row) whose per-example gradient it forms, counted once (a repeated one at the same
    point is the same evaluation, e.g. m-SAM's chunk gradients at theta and the full gradient there)."""
    import test_optimizers as T
    seen = set()
    real = T.jt

    def counted(theta, param, Z, c):
        for row in np.atleast_2d(Z):
            seen.add((theta.tobytes(), row.tobytes()))
        return real(theta, param, Z, c)

    monkeypatch.setattr(T, "jt", counted)
    problem = diagsim.make_problem(n=6, d=5, k=2, seed=3)
    theta0 = T._theta0(problem, 1)[0]
    steps = 4
    T.reference(problem, _spec(cfg), theta0, 0, steps)
    measured = len(seen) / (problem.n * steps)
    assert measured == _script().grad_evals_per_step(cfg)


# --------------------------------------------------------------------------- verdict rule
def test_ordering_verdict_on_constructed_cases():
    v = _script().ordering_verdict
    assert v((1.0, True), (2.0, True), (3.0, True)) == "holds"
    assert v((2.0, True), (2.0, True), (2.0, True)) == "holds"        # ties satisfy <=
    assert v((2.5, True), (2.0, True), (3.0, True)) == "fails"        # 1-SAM above n-SAM
    assert v((1.0, True), (3.5, True), (3.0, True)) == "fails"        # n-SAM above GD
    assert v((1.0, False), (2.0, True), (3.0, True)) == "n/a"
    assert v((3.0, True), (2.0, True), (1.0, False)) == "n/a"


def test_verdict_table_on_constructed_runs():
    s = _script()

    def run(method, alpha, rho, l1, test, conv=True):
        return {"method": method, "alpha": alpha, "rho": rho, "l1": l1, "test_loss": test, "converged": conv}

    runs = [run("GD", 0.1, None, 3.0, 0.5), run("SAF", 0.1, None, 9.0, 9.0),
            run("1-SAM", 0.1, 0.01, 1.0, 0.6), run("n-SAM", 0.1, 0.01, 2.0, 0.4),
            run("1-SAM", 0.1, 0.1, 1.0, 0.1), run("n-SAM", 0.1, 0.1, 2.0, 0.2, conv=False)]
    got = {(x["rho"], x["quantity"]): x["verdict"] for x in s.verdicts(runs)}
    assert got == {(0.01, "l1"): "holds", (0.01, "test_loss"): "fails",
                   (0.1, "l1"): "n/a", (0.1, "test_loss"): "n/a"}
