"""Ensemble statistics of a final state and z-scores against a reference ensemble.

For final states theta (M, 2d): per path the training loss L = (1/2n) ||Z w - y||^2 and the distance
||w - w*||_1; their ensemble means with standard errors std / sqrt(M) (ddof = 1). The z-score of a
contestant against the reference is (mean - mean_ref) / sqrt(se^2 + se_ref^2): |z| > 4 flags an ensemble
whose law differs from the reference's (a wrong noise scale, Stratonovich instead of Ito, ...). With
M = 1 there is no standard error and no z-score (NaN).
"""
from __future__ import annotations

import math

import numpy as np

from ..networks.diagonal.problem import Problem

#: |z| above this marks a contestant as statistically wrong
Z_FLAG = 4.0


def summarize(prob: Problem, theta: np.ndarray) -> dict:
    """Means and standard errors of the final loss and of ||w - w*||_1 over the ensemble."""
    theta = np.asarray(theta, dtype=np.float64)
    w = prob.w(theta)
    loss = prob.train_loss_w(w)
    l1 = np.abs(w - prob.w_star).sum(axis=1)
    M = theta.shape[0]
    out = {"M": M, "finite": bool(np.all(np.isfinite(theta)))}
    for name, x in (("loss", loss), ("l1", l1)):
        out[f"{name}_mean"] = float(np.mean(x))
        out[f"{name}_se"] = float(np.std(x, ddof=1) / math.sqrt(M)) if M > 1 else float("nan")
    return out


def zscores(s: dict, ref: dict) -> dict:
    """z-scores of the summary ``s`` against the reference summary ``ref``."""
    out = {}
    for name in ("loss", "l1"):
        se2 = s[f"{name}_se"] ** 2 + ref[f"{name}_se"] ** 2
        diff = s[f"{name}_mean"] - ref[f"{name}_mean"]
        out[f"{name}_z"] = diff / math.sqrt(se2) if se2 > 0 else float("nan")
    out["ok"] = bool(s["finite"] and all(not (abs(z) > Z_FLAG) for z in out.values() if isinstance(z, float)))
    return out
