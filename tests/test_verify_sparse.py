"""Check 8's helpers against independent references: the l1 statistical dimension (its closed-form
expectation against quadrature of the defining integral, minimized on a grid), the fixed-effects aggregate
(plain NumPy), N_eff and the support size (hand-computed values); and the shape of its rows on a tiny instance
(d = 40): three claim rows (test loss, N_eff at the iterate, N_eff at Phi(theta)) before the conditions."""
from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad

from diagsim.verify import claim_verdict, run_checks
from diagsim.verify.sparse_regression import fixed_effects, l1_statistical_dimension, n_eff, support_size


def _sdim_reference(d, k):
    """inf_t k (1 + t^2) + (d - k) E[(|g| - t)_+^2] by quadrature of the expectation and a fine grid in t."""
    def tail(t):
        val, _ = quad(lambda x: (x - t) ** 2 * math.exp(-x * x / 2) / math.sqrt(2 * math.pi), t, np.inf)
        return 2.0 * val
    ts = np.linspace(0.0, 5.0, 2001)
    vals = [k * (1 + t * t) + (d - k) * tail(t) for t in ts]
    return min(vals)


def test_l1_statistical_dimension_against_quadrature():
    for d, k in [(200, 3), (100, 4), (50, 10)]:
        ref = _sdim_reference(d, k)
        # grid spacing 2.5e-3 in t at a minimum: the grid value exceeds the infimum by O(spacing^2 * f'')
        assert abs(l1_statistical_dimension(d, k) - ref) < 1e-3 * d, (d, k)
        assert l1_statistical_dimension(d, k) <= ref + 1e-9
    # limits: k = d gives d (the whole space); k = 0 gives 0
    assert abs(l1_statistical_dimension(30, 30) - 30) < 1e-9
    assert l1_statistical_dimension(30, 0) < 1e-6


def test_fixed_effects_and_n_eff():
    diff, sa, sb = np.array([-1.0, 0.5, 0.2]), np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.1, 0.2])
    m, se = fixed_effects(diff, sa, sb)
    assert m == np.mean(diff)
    assert abs(se - np.sqrt(np.sum(sa ** 2 + sb ** 2)) / 3) < 1e-15
    W = np.array([[1.0, -1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert np.allclose(n_eff(W), [2.0, 1.0, 4.0])
    assert support_size(W * 0.011).tolist() == [2, 1, 4] and support_size(W * 0.01).tolist() == [0, 1, 0]


#: a tiny regime (not check 8's): seconds instead of minutes; the instance rule and metrics are check 8's
TINY = {"d": 40, "k": 2, "instances": 1, "paths_adam": 4, "paths_sgd": 4, "tau_sgd": 32.0, "tau_adam": 20.0,
        "max_scan": 20}


def test_claim_rows_on_a_tiny_instance():
    rows = run_checks(["sparse-regression"], quick=True, overrides={"sparse-regression": TINY})
    assert all(r.error is None for r in rows), [r.error for r in rows]
    assert [(r.case, r.kind) for r in rows[:3]] == [("test-loss", "claim"), ("sparsity", "claim"),
                                                    ("sparsity-at-phi", "claim")]
    assert {r.kind for r in rows[3:]} == {"condition"} and len(rows) == 6
    for r in rows[:3]:
        assert r.relation == "<" and r.verdict == claim_verdict(r.measured, r.tolerance, "<")
        assert "d=40" in r.regime and "4 paths" in r.regime
    (p,) = rows[0].numbers["per_instance"]
    # the iterate's row is N_eff of the iterate; the new row is N_eff at Phi(theta), a different state
    assert rows[1].measured == p["adam_neff_mean"] - p["sgd_neff_mean"]
    assert rows[2].measured == p["adam_neff_phi_mean"] - p["sgd_neff_phi_mean"]
    assert math.isclose(rows[2].tolerance, 4 * math.hypot(p["adam_neff_phi_se"], p["sgd_neff_phi_se"]))
    assert p["adam_max_dist_to_phi"] > 1e-3 and not np.allclose(p["adam_neff_phi"], p["adam_neff"])
    assert "at Phi(theta)" in rows[2].quantity and "at the iterate" in rows[1].quantity
