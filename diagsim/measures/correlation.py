"""Rank correlation of sharpness measures with generalization (Kendall tau, scipy.stats.kendalltau), with
paired bootstrap intervals over the population of nets (docs/theory.md §10.7)."""
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


def kendall_bootstrap(measures: dict, test_loss, *, n_resamples: int = 2000, conf: float = 0.95,
                      seed: int = 0) -> dict:
    """Kendall's tau-b of every measure with the test loss, with paired percentile-bootstrap intervals.

    Parameters
    ----------
    measures : {name: (P,) finite array}, one entry per net; test_loss : (P,) finite, P >= 2.
    n_resamples : B, the number of bootstrap resamples; conf : the interval's level; seed : the resamples'
        seed (``numpy.random.SeedSequence(seed)``).

    Every resample draws P nets with replacement, ``numpy.random.default_rng(SeedSequence(seed))
    .integers(0, P, size=(B, P))``, the same draws for every measure (so differences between measures are
    paired). A resample in which tau is undefined (a constant measure or test loss) gives NaN and is
    left out of the percentiles.

    Returns {"tau": {name: tau on all nets}, "lo", "hi": {name: the (1 - conf)/2 and (1 + conf)/2
    percentiles of the resampled taus}, "samples": {name: (B,) resampled taus}, "n": P, "n_resamples": B}.
    """
    from ..errors import check_int, check_interval
    b = as_float_array("test_loss", test_loss, (None,))
    P = b.shape[0]
    if P < 2:
        raise DiagsimError(f"kendall_bootstrap needs at least 2 nets, got {P}")
    B = check_int("n_resamples", n_resamples)
    conf = check_interval("conf", conf, 0.0, 1.0)
    if conf <= 0:
        raise DiagsimError(f"conf must lie in (0, 1), got {conf!r}")
    seed = check_int("seed", seed, minimum=0)
    cols = {name: as_float_array(f"measure {name!r}", m, (P,)) for name, m in measures.items()}
    idx = np.random.default_rng(np.random.SeedSequence(seed)).integers(0, P, size=(B, P))
    q = (100 * (1 - conf) / 2, 100 * (1 + conf) / 2)
    out = {"tau": {}, "lo": {}, "hi": {}, "samples": {}, "n": P, "n_resamples": B}
    for name, a in cols.items():
        out["tau"][name] = _tau_or_nan(a, b)
        s = np.array([_tau_or_nan(a[i], b[i]) for i in idx])
        out["samples"][name] = s
        ok = s[np.isfinite(s)]
        lo, hi = np.percentile(ok, q) if ok.size else (np.nan, np.nan)
        out["lo"][name], out["hi"][name] = float(lo), float(hi)
    return out


def _tau_or_nan(a: np.ndarray, b: np.ndarray) -> float:
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(stats.kendalltau(a, b).statistic)


def paired_interval(samples_a, samples_b, *, conf: float = 0.95, absolute: bool = True) -> tuple[float, float]:
    """Percentile interval of |tau_a| - |tau_b| (or tau_a - tau_b) over paired bootstrap resamples."""
    a, b = np.asarray(samples_a, dtype=np.float64), np.asarray(samples_b, dtype=np.float64)
    diff = (np.abs(a) - np.abs(b)) if absolute else (a - b)
    diff = diff[np.isfinite(diff)]
    if not diff.size:
        return float("nan"), float("nan")
    lo, hi = np.percentile(diff, (100 * (1 - conf) / 2, 100 * (1 + conf) / 2))
    return float(lo), float(hi)


def verdict(lo: float, hi: float) -> str:
    """"holds" when an interval of a difference lies above 0, "fails" below 0, else "not significant"."""
    if lo > 0:
        return "holds"
    if hi < 0:
        return "fails"
    return "not significant"
