"""The three levels of diagsim side by side on one small problem: discrete optimizer, its SDE, its slow flow.

Problem: "uu-vv", n = 20, d = 40, k = 3 (w* = 1 on the first 3 coordinates), N(0, 1) design from seed 0,
u0 = v0 = 0.1. Label noise delta = 1 (c = delta^2/n = 0.05).

* SGD, lr = 0.01: the discrete optimizer (Rademacher label noise) and its label-noise SDE (Euler–Maruyama,
  dt = lr) over 16 paths, and the slow flow -(c/4) P grad tr H from the gradient-flow limit of theta0.
  Plotted: tr H against slow time tau = lr^2 k (ensemble mean, band = +-2 standard errors).
* Adam, lr = 0.01, beta1 = 0.9, 1 - beta2 = C lr^2 with C = 10, eps = 1e-8, v0 = 0.01: the discrete
  optimizer, the Adam SDE of the paper's regime, and the adaptive slow flow with v following
  dv/dtau = C (c diag H - v) from v0. Plotted: tr diag(H)^(1/2).

Usage: ``python figures/three_levels.py [--quick] [--out figures/three_levels.png]``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diagsim import make_problem, simulate  # noqa: E402
from diagsim.optimizers import SGD, Adam, LabelNoise  # noqa: E402


def runs(quick: bool):
    P = make_problem(20, 40, 3, design="gaussian", teacher="ones", parametrization="uu-vv", init="constant",
                     alpha=0.1, seed=0, support=range(3))
    lr, delta, M = 0.01, 1.0, (4 if quick else 16)
    tau_sgd, tau_adam = (1.0, 0.2) if quick else (8.0, 1.0)
    sgd = SGD(lr=lr, noise=LabelNoise(delta))
    adam = Adam(lr=lr, noise=LabelNoise(delta), beta1=0.9, beta2=1 - 10 * lr ** 2, eps=1e-8, v0=0.01)
    out = {}
    common = dict(n_paths=M, seed=1, progress=False, n_records=81)
    for name, opt, tau, key, flow_opts in [
            ("SGD", sgd, tau_sgd, "trace_h", {"start": "gradient-flow"}),
            ("Adam", adam, tau_adam, "trace_sqrt_diag_h", {"start": "gradient-flow", "v": "ode", "v0": 0.01})]:
        for level, opts in [("discrete", {}), ("sde", {"dt": lr}), ("slow-flow", flow_opts)]:
            t0 = time.perf_counter()
            r = simulate(P, opt, tau=tau, model=level, model_options=opts, **common)
            vals = np.asarray(r.records[key])
            mean = vals.mean(axis=1)
            se = vals.std(axis=1, ddof=1) / np.sqrt(vals.shape[1]) if vals.shape[1] > 1 else 0 * mean
            out[(name, level)] = (r.tau, mean, se, key)
            print(f"{name:4s} {level:9s} tau={tau:<4g} steps={r.n_steps:7d}  {key}: {mean[0]:.3f} -> {mean[-1]:.3f}"
                  f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def plot(out, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"discrete": dict(color="C0", lw=2.2), "sde": dict(color="C1", lw=1.4, ls="--"),
              "slow-flow": dict(color="k", lw=1.2, ls=":")}
    for ax, name, label in [(axes[0], "SGD", "tr H"), (axes[1], "Adam", r"tr diag$(H)^{1/2}$")]:
        for level in ("discrete", "sde", "slow-flow"):
            tau, mean, se, _ = out[(name, level)]
            ax.plot(tau, mean, label=level, **styles[level])
            if np.any(se > 0):
                ax.fill_between(tau, mean - 2 * se, mean + 2 * se, color=styles[level]["color"], alpha=0.15, lw=0)
        ax.set_xlabel(r"slow time $\tau = \eta^2 k$")
        ax.set_ylabel(label)
        ax.set_title(f"{name}, label noise: discrete / SDE / slow flow")
        ax.legend(frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, metadata={"Software": None})
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short horizons, 4 paths (a smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".png")))
    a = ap.parse_args(argv)
    plot(runs(a.quick), a.out)


if __name__ == "__main__":
    main()
