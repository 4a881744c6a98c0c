"""Generic Euler–Maruyama integrator vs a hand-fused kernel on the label-noise SGD SDE.

Reference problem (the one of `diagsim bench`): "uu-vv", n = 40, d = 100, k = 5, N(0, 1) design from seed 0,
w* = 1 on the first k coordinates, u0 = v0 = 0.1, lr = 0.01, delta = 1, dt = 0.01, T = 100, M in {1, 64, 1024}.

* generic: ``diagsim.sde`` (the integrator calls the model's drift and diffusion as first-class functions,
           on groups of 4 paths in lockstep sharing the loads of Z; see NOTES.md §7).
* fused:   the step written out by hand in one per-path kernel (below; what the integrator did before
           grouping): the same Brownian increments, the same arithmetic in the same order, so the two
           final states agree bit for bit (checked).
* noise:   the Brownian increments alone (the floor both share).

Prints path-steps per second of wall time and per CPU-second of the process (all threads; robust on a
shared, loaded machine), best of ``--repeat`` interleaved runs, and generic/fused for both. Usage::

    python benchmarks/bench_em.py [--quick] [--repeat 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from diagsim.lowlevel import rng
from diagsim.lowlevel.jit import pjit, prange
from diagsim.networks.diagonal import pathwise as K
from diagsim.networks.diagonal.parametrization import phi1
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import SGD, LabelNoise
from diagsim.sde import make_stepper


@pjit
def fused_kernel(X, paths, active, step0, n_steps, dt, scale, k0, k1, code, depth, Z, ZT, y):
    """theta += J^T (a dB - (r/n) dt), J^T x = [wu Z^T x, wv Z^T x]: one forward and one pullback per step."""
    m = X.shape[0]
    n, d = Z.shape
    inv_n = 1.0 / n
    for p in prange(m):
        if not active[p]:
            continue
        x = X[p]
        xi = np.empty(n)
        w = np.empty(d)
        r = np.empty(n)
        g = np.empty(d)
        pid = paths[p]
        for k in range(step0, step0 + n_steps):
            rng.fill_normals(k0, k1, pid, k, xi, scale)
            loss = K.forward(x, code, depth, ZT, y, w, r)
            if not np.isfinite(loss):
                active[p] = False
                break
            for j in range(n):
                xi[j] += -r[j] * inv_n * dt
            K.pullback(Z, xi, 1.0, g)
            for i in range(d):
                _, wu, wv = phi1(code, depth, x[i], x[d + i])
                bu = 0.0 * dt  # the generic integrator's b = (0 dt) + J^T xi, then x += b (two roundings:
                bv = 0.0 * dt  # x += g * wu alone would be contracted into one FMA)
                bu += g[i] * wu
                bv += g[i] * wv
                x[i] += bu
                x[d + i] += bv


@pjit
def noise_kernel(out, paths, step0, n_steps, n, scale, k0, k1):
    m = paths.shape[0]
    for p in prange(m):
        xi = np.empty(n)
        acc = 0.0
        for k in range(step0, step0 + n_steps):
            rng.fill_normals(k0, k1, paths[p], k, xi, scale)
            acc += xi[0]
        out[p] = acc


def reference_problem():
    return make_problem(40, 100, 5, design="gaussian", teacher="ones", parametrization="uu-vv",
                        init="constant", alpha=0.1, seed=0, support=range(5))


def run(quick: bool = False, repeat: int = 5, ensembles=(1, 64, 1024), T: float = 100.0) -> list[dict]:
    P = reference_problem()
    lr, delta, dt = 0.01, 1.0, 0.01
    stepper = make_stepper(P, SGD(lr=lr, noise=LabelNoise(delta)), dt=dt, seed=0)
    model = stepper.model
    k0, k1 = stepper.brownian.key
    scale = model.amplitude * math.sqrt(dt)
    code, depth = P.param.code, P.param.depth
    rows = []
    for M in ensembles:
        n_steps = int(round(T / dt))
        if quick:
            n_steps = max(100, n_steps * 8 // M) if M > 1 else 2000
        paths = np.arange(M, dtype=np.int64)

        def timed(f):
            w0, c0 = time.perf_counter(), time.process_time()
            res = f()
            return time.perf_counter() - w0, time.process_time() - c0, res

        def generic():
            st = stepper.init_state(P.theta0(M))
            act = np.ones(M, bool)
            return timed(lambda: stepper.advance(st, paths, 0, n_steps, act) or st["theta"])

        def fused():
            X = P.theta0(M)
            act = np.ones(M, bool)
            return timed(lambda: fused_kernel(X, paths, act, 0, n_steps, dt, scale, k0, k1, code, depth,
                                              P.Z, P.ZT, P.y) or X)

        def noise():
            out = np.empty(M)
            return timed(lambda: noise_kernel(out, paths, 0, n_steps, P.n, scale, k0, k1))

        for f in (generic, fused, noise):  # warm-up (compilation)
            f()
        best = {k: math.inf for k in ("generic", "fused", "noise")}
        best_cpu = dict(best)
        states = {}
        order = [("generic", generic), ("fused", fused), ("noise", noise)]
        for rep in range(repeat):
            for name, f in (order if rep % 2 == 0 else order[::-1]):
                el, cpu, X = f()
                best[name] = min(best[name], el)
                best_cpu[name] = min(best_cpu[name], cpu)
                states[name] = X
        same = bool(np.array_equal(states["generic"], states["fused"]))
        ps = M * n_steps
        row = {"M": M, "steps": n_steps,
               **{f"{k}_path_steps_per_s": ps / v for k, v in best.items()},
               **{f"{k}_path_steps_per_cpu_s": ps / v for k, v in best_cpu.items()},
               "generic_over_fused": best["fused"] / best["generic"],
               "generic_over_fused_cpu": best_cpu["fused"] / best_cpu["generic"], "bitwise_equal": same,
               "load_average": os.getloadavg()[0]}
        rows.append(row)
        print(f"M={M:5d} steps={n_steps:6d} | wall: generic {row['generic_path_steps_per_s']:.3e}  "
              f"fused {row['fused_path_steps_per_s']:.3e}  noise-only {row['noise_path_steps_per_s']:.3e}  "
              f"ratio {row['generic_over_fused']:.3f} | per CPU-s: generic "
              f"{row['generic_path_steps_per_cpu_s']:.3e}  fused {row['fused_path_steps_per_cpu_s']:.3e}  "
              f"ratio {row['generic_over_fused_cpu']:.3f} | "
              f"bitwise equal: {same} | load {row['load_average']:.1f}", flush=True)
    return rows


def single_thread(M: int = 8, n_steps: int = 5000, repeat: int = 7) -> dict:
    """ns per path-step of generic and fused on ONE thread, in thread CPU time (robust under load)."""
    import numba
    P = reference_problem()
    lr, dt = 0.01, 0.01
    stepper = make_stepper(P, SGD(lr=lr, noise=LabelNoise(1.0)), dt=dt, seed=0)
    k0, k1 = stepper.brownian.key
    scale = stepper.model.amplitude * math.sqrt(dt)
    paths = np.arange(M, dtype=np.int64)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        def generic():
            st = stepper.init_state(P.theta0(M))
            act = np.ones(M, bool)
            c = time.thread_time()
            stepper.advance(st, paths, 0, n_steps, act)
            return time.thread_time() - c

        def fused():
            X = P.theta0(M)
            act = np.ones(M, bool)
            c = time.thread_time()
            fused_kernel(X, paths, act, 0, n_steps, dt, scale, k0, k1, P.param.code, P.param.depth, P.Z, P.ZT,
                         P.y)
            return time.thread_time() - c

        generic(), fused()
        g = min(generic() for _ in range(repeat))
        f = min(fused() for _ in range(repeat))
    finally:
        numba.set_num_threads(before)
    row = {"threads": 1, "M": M, "steps": n_steps, "generic_ns_per_path_step": 1e9 * g / (M * n_steps),
           "fused_ns_per_path_step": 1e9 * f / (M * n_steps), "generic_over_fused": f / g}
    print(f"1 thread, thread CPU time, M={M}: generic {row['generic_ns_per_path_step']:.0f} ns/path-step, "
          f"fused {row['fused_ns_per_path_step']:.0f} ns/path-step, "
          f"generic/fused = {row['generic_over_fused']:.3f}",
          flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke test)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the rows to this file")
    a = ap.parse_args(argv)
    rows = run(quick=a.quick, repeat=a.repeat)
    rows.append(single_thread(n_steps=1000 if a.quick else 5000))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
