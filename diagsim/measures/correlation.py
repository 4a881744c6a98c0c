"""Rank correlation of sharpness measures with generalization (Kendall tau, scipy.stats.kendalltau)."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import DiagsimError, as_float_array


def kendall_tau(measure, test_loss, *, variant: str = "b") -> tuple[float, float]:
    """Kendall's tau between a measure and the test loss over a population of trained nets.

    Parameters
    ----------
    measure, test_loss : (P,) arrays, one entry per net (P >= 2), finite.
    variant : "b" (ties adjusted, scipy's default) or "c".

    Returns (tau, p-value) from :func:`scipy.stats.kendalltau`. A positive tau means that nets with a
    larger measure have a larger test loss. (Hide & Seek report tau = -0.68 adaptive, -0.83 geodesic inv,
    -0.86 geodesic mix for 50 diagonal nets on sparse synthetic data; docs/theory.md §10.7 quotes them
    without their sign convention for "generalization", so compare magnitudes and orderings.)
    """
    a = as_float_array("measure", measure, (None,))
    b = as_float_array("test_loss", test_loss, (None,))
    if a.shape != b.shape:
        raise DiagsimError(f"measure and test_loss must have the same length, got {a.shape[0]} and "
                           f"{b.shape[0]}")
    if a.shape[0] < 2:
        raise DiagsimError(f"kendall_tau needs at least 2 nets, got {a.shape[0]}")
    if variant not in ("b", "c"):
        raise DiagsimError(f"variant must be one of 'b', 'c'; got {variant!r}")
    res = stats.kendalltau(a, b, variant=variant)
    return float(res.statistic), float(res.pvalue)


def kendall_table(measures: dict, test_loss) -> dict:
    """{name: (tau, p-value)} for every (P,) array in ``measures`` (e.g. :func:`evaluate`'s output)."""
    return {name: kendall_tau(np.asarray(vals), test_loss) for name, vals in measures.items()}
