"""The three levels of diagsim side by side on one small problem: discrete optimizer, its SDE, its slow flow.

Problem: "uu-vv", n = 20, d = 40, k = 3 (w* = 1 on the first 3 coordinates), N(0, 1) design from seed 0,
u0 = v0 = 0.1. Label noise delta = 1 (c = delta^2/n = 0.05).

* SGD, lr = 0.01: the discrete optimizer (Rademacher label noise) and its label-noise SDE (Euler–Maruyama,
  dt = lr) over 16 paths, and the slow flow -(c/4) P grad tr H from the gradient-flow limit of theta0.
  Plotted: tr H against slow time tau = lr^2 k (ensemble mean, band = +-2 standard errors).
* Adam, lr = 0.005, beta1 = 0.9, 1 - beta2 = C lr^2 with C = 10, eps = 1e-8, v0 = 0.1: the discrete
  optimizer, the Adam SDE of the paper's regime (dt = lr), and the adaptive slow flow with v following
  dv/dtau = C (c diag H - v) from v0. Plotted: tr diag(H)^(1/2) evaluated with the Gauss-Newton part of H,
  2 sum_i sqrt(s_i)(|u_i| + |v_i|) (exact on Gamma; the recorded ``trace_sqrt_diag_h`` uses the exact diag H,
  whose residual term sqrt(|2 (Z^T r)_i / n|) at the dead coordinates adds a noise floor of order lr^(1/4)
  off Gamma), and ||w||_1.

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
    delta, M = 1.0, (4 if quick else 16)
    tau_sgd, tau_adam = (1.0, 0.1) if quick else (8.0, 0.6)
    sgd = SGD(lr=0.01, noise=LabelNoise(delta))
    adam = Adam(lr=0.005, noise=LabelNoise(delta), beta1=0.9, beta2=1 - 10 * 0.005 ** 2, eps=1e-8, v0=0.1)
    out = {}
    common = dict(n_paths=M, seed=1, progress=False, n_records=81)
    sqrt_s = np.sqrt(P.s)

    def gn_measure(theta):
        """2 sum_i sqrt(s_i) (|u_i| + |v_i|): tr diag(H)^(1/2) with H's Gauss-Newton part (exact on Gamma)."""
        return 2 * (sqrt_s * (np.abs(theta[:, :P.d]) + np.abs(theta[:, P.d:]))).sum(axis=1)

    for name, opt, tau, keys, flow_opts in [
            ("SGD", sgd, tau_sgd, ("trace_h",), {"start": "gradient-flow", "dtau": 0.1}),
            ("Adam", adam, tau_adam, ("gn_sqrt", "l1"),
             {"start": "gradient-flow", "v": "ode", "v0": 0.1, "dtau": 0.005})]:
        for level, opts in [("discrete", {}), ("sde", {"dt": opt.lr}), ("slow-flow", flow_opts)]:
            t0 = time.perf_counter()
            seen = {}

            def grab(step, state, seen=seen):
                seen[int(step)] = gn_measure(state["theta"])

            r = simulate(P, opt, tau=tau, model=level, model_options=opts, callback=grab, **common)
            for key in keys:
                if key == "gn_sqrt":
                    idx = [k for k in r.steps if int(k) in seen]
                    tau_k = np.asarray(idx, dtype=float) * r.dt * r.lr
                    vals = np.array([seen[int(k)] for k in idx])
                else:
                    tau_k, vals = r.tau, np.asarray(r.records[key])
                mean = vals.mean(axis=1)
                se = vals.std(axis=1, ddof=1) / np.sqrt(vals.shape[1])
                out[(name, level, key)] = (tau_k, mean, se)
                print(f"{name:4s} {level:9s} tau={tau:<4g} steps={r.n_steps:7d}  {key}: {mean[0]:.3f} -> "
                      f"{mean[-1]:.3f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def plot(out, path):
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    styles = {"discrete": dict(color="C0", lw=2.2), "sde": dict(color="C1", lw=1.4, ls="--"),
              "slow-flow": dict(color="k", lw=1.2, ls=":")}
    panels = [(axes[0], "SGD", "trace_h", "tr H"),
              (axes[1], "Adam", "gn_sqrt", r"tr diag$(H)^{1/2}$ = $2\sum_i \sqrt{s_i}(|u_i|+|v_i|)$"),
              (axes[2], "Adam", "l1", r"$\|w\|_1$")]
    for ax, name, key, label in panels:
        for level in ("discrete", "sde", "slow-flow"):
            tau, mean, se = out[(name, level, key)]
            ax.plot(tau, mean, label=level, **styles[level])
            if np.any(se > 0):
                ax.fill_between(tau, mean - 2 * se, mean + 2 * se, color=styles[level]["color"], alpha=0.15,
                                lw=0)
        ax.set_xlabel(r"slow time $\tau = \eta^2 k$")
        ax.set_ylabel(label)
        ax.set_title(f"{name} with label noise")
        ax.legend(frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short horizons, 4 paths (a smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".png")))
    a = ap.parse_args(argv)
    plot(runs(a.quick), a.out)


if __name__ == "__main__":
    main()
