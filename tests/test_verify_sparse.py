"""Check 8's helpers against independent references: the l1 statistical dimension (its closed-form
expectation against quadrature of the defining integral, minimized on a grid), the fixed-effects aggregate
(plain NumPy) and N_eff (hand-computed values)."""
from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad

from diagsim.verify.sparse_regression import fixed_effects, l1_statistical_dimension, n_eff


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
