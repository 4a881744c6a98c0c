"""Speed of the discrete optimizers, with both baselines measured in the same run.

    python benchmarks/bench_optimizers.py            # the paper's main run: Adam, d=1000, n=50, k=3
    python benchmarks/bench_optimizers.py --quick    # seconds
    python benchmarks/bench_optimizers.py --json out.json

Measures, on this machine and in this process:

1. the dgemm rate: best of ``--repeats`` NumPy products of two 2000 x 2000 float64 matrices (all BLAS
   threads), 2 N^3 FLOP each;
2. a plain NumPy loop of the same Adam step on one path (label noise from numpy.random.Generator);
3. diagsim on 1 path (the kernel alone, and the whole ``simulate`` with its default 101 records);
4. diagsim on ensembles of M paths (default M = 64): path-steps per second and the FLOP rate counting
   2 * 2 * n * d FLOP per path-step (the products Z w and Z^T r), as a fraction of the dgemm rate.

Targets: diagsim on one path no slower per step than the NumPy loop; M = 64 at >= 25% of dgemm.
The same ratios are also measured per core from CPU time (one BLAS thread in a subprocess, one Numba
thread), which other processes on a shared machine distort much less than wall-clock rates.
Timings are best of ``--repeats`` after a warm-up call (which includes Numba's compilation or cache
load). Other processes on the machine distort all numbers alike; the load average is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def dgemm_rate(size: int, repeats: int) -> float:
    """FLOP/s of an N x N x N float64 matrix product (best of ``repeats``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size))
    b = rng.standard_normal((size, size))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * size ** 3 / best


def _timed(fn, clock=time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


_DGEMM_1T = """
import time, numpy as np
a = np.random.default_rng(0).standard_normal(({n}, {n})); b = a.copy(); a @ b
best = min((lambda t0: (a @ b, time.process_time() - t0)[1])(time.process_time()) for _ in range({r}))
print(2.0 * {n} ** 3 / best)
"""


def dgemm_rate_one_thread(size: int, repeats: int) -> float:
    """FLOP per CPU-second of dgemm with one BLAS thread (a subprocess with *_NUM_THREADS=1)."""
    import subprocess
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _DGEMM_1T.format(n=size, r=repeats)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def numpy_adam_loop(problem, steps: int, lr: float, beta1: float, beta2: float, eps: float, delta: float) -> float:
    """Seconds per step of Adam with Rademacher label noise on one path, in plain NumPy."""
    Z, y, n, d = problem.Z, problem.y, problem.n, problem.d
    rng = np.random.default_rng(1)
    theta = problem.theta0(1)[0].copy()
    m = np.zeros(2 * d)
    v = np.zeros(2 * d)

    def run():
        nonlocal theta, m, v
        for _ in range(steps):
            u, vv = theta[:d], theta[d:]
            w = u * u - vv * vv
            r = Z @ w - y - delta * (2.0 * rng.integers(0, 2, n) - 1.0)
            gw = Z.T @ r / n
            g = np.concatenate([2.0 * u * gw, -2.0 * vv * gw])
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            theta = theta - lr * m / (np.sqrt(v) + eps)
    return run


def kernel_runner(problem, opt, n_paths: int, steps: int):
    from diagsim.optimizers import make_stepper

    st = make_stepper(problem, opt, seed=0)
    state = st.init_state(problem.theta0(n_paths))
    active = np.ones(n_paths, bool)
    paths = np.arange(n_paths)
    k = [0]

    def run():
        st.advance(state, paths, k[0], steps, active)
        k[0] += steps
    return run


def best_per_step(run, steps: int, repeats: int) -> float:
    run()  # warm-up (compilation / cache load, caches)
    return min(_timed(run) for _ in range(repeats)) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few steps (seconds)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paths", type=int, nargs="+", default=[1, 2, 4, 16, 64, 256])
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)

    import numba

    import diagsim
    from diagsim.optimizers import Adam, LabelNoise

    n, d, k = 50, 1000, 3
    lr, beta1, beta2, eps, delta = 0.1, 0.9, 0.95, 1e-6, 0.5
    problem = diagsim.make_problem(n, d, k, seed=0)
    opt = Adam(lr=lr, beta1=beta1, beta2=beta2, eps=eps, noise=LabelNoise(delta))
    scale = 0.1 if args.quick else 1.0
    steps1 = int(20000 * scale)
    flop = 2.0 * 2.0 * n * d  # per path-step

    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(), "loadavg_start": os.getloadavg()[0],
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "diagsim": diagsim.__version__}
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    log("dgemm ...")
    gemm = dgemm_rate(2000, max(args.repeats, 3))
    log("numpy loop ...")
    t_np = best_per_step(numpy_adam_loop(problem, steps1 // 4, lr, beta1, beta2, eps, delta), steps1 // 4,
                         args.repeats)
    log("diagsim kernel, 1 path ...")
    t_k1 = best_per_step(kernel_runner(problem, opt, 1, steps1), steps1, args.repeats)
    log("diagsim simulate, 1 path ...")
    diagsim.simulate(problem, opt, steps=10)
    t_s1 = min(_timed(lambda: diagsim.simulate(problem, opt, steps=steps1, progress=False))
               for _ in range(args.repeats)) / steps1
    ens = []
    for M in args.paths:
        log(f"diagsim kernel, {M} paths ...")
        st = max(10, min(steps1, int(2 * steps1 / M)))
        t = best_per_step(kernel_runner(problem, opt, M, st), st, args.repeats)
        ens.append({"paths": M, "s_per_step": t, "path_steps_per_s": M / t, "gflops": flop * M / t / 1e9,
                    "frac_dgemm": flop * M / t / gemm})
    # per-core figures from CPU time (robust to other processes): one BLAS thread, one Numba thread
    log("per-core figures (CPU time) ...")
    gemm1 = dgemm_rate_one_thread(2000, max(args.repeats, 3))
    numba.set_num_threads(1)
    st64 = max(10, int(2 * steps1 / 64))
    run64 = kernel_runner(problem, opt, 64, st64)
    run64()
    t64_cpu = min(_timed(run64, time.process_time) for _ in range(args.repeats)) / st64
    run1 = kernel_runner(problem, opt, 1, steps1)
    run1()
    t1_cpu = min(_timed(run1, time.process_time) for _ in range(args.repeats)) / steps1
    np_run = numpy_adam_loop(problem, steps1 // 4, lr, beta1, beta2, eps, delta)
    np_run()
    tnp_cpu = min(_timed(np_run, time.process_time) for _ in range(args.repeats)) / (steps1 // 4)
    numba.set_num_threads(info["numba_threads"])
    percore = {"dgemm_flops_1thread": gemm1, "kernel64_cpu_s_per_path_step": t64_cpu / 64,
               "kernel1_cpu_s_per_step": t1_cpu, "numpy_cpu_s_per_step": tnp_cpu,
               "frac_dgemm_per_core": flop * 64 / t64_cpu / gemm1}
    info["loadavg_end"] = os.getloadavg()[0]

    print(f"# diagsim discrete optimizers: Adam (lr {lr}, beta1 {beta1}, beta2 {beta2}, eps {eps}), label noise "
          f"±{delta}, n = {n}, d = {d}, k = {k}")
    print(f"# {info['cpus']} CPUs, numba threads {info['numba_threads']}, load average "
          f"{info['loadavg_start']:.2f} -> {info['loadavg_end']:.2f}; numpy {info['numpy']}, numba {info['numba']}")
    print()
    print(f"dgemm rate (NumPy, 2000^3):                 {gemm / 1e9:8.1f} GFLOP/s")
    print(f"NumPy loop, 1 path:                         {t_np * 1e6:8.2f} us/step")
    print(f"diagsim kernel, 1 path:                     {t_k1 * 1e6:8.2f} us/step   "
          f"({t_np / t_k1:.2f}x the NumPy loop's speed)")
    print(f"diagsim simulate(), 1 path, 101 records:    {t_s1 * 1e6:8.2f} us/step   "
          f"({t_np / t_s1:.2f}x the NumPy loop's speed)")
    print()
    print("| paths | us/step | path-steps/s | GFLOP/s (4nd per path-step) | % of dgemm |")
    print("|---:|---:|---:|---:|---:|")
    for e in ens:
        print(f"| {e['paths']} | {e['s_per_step'] * 1e6:.1f} | {e['path_steps_per_s']:.3g} | {e['gflops']:.1f} | "
              f"{100 * e['frac_dgemm']:.1f}% |")
    print()
    print("per core, from CPU time (one BLAS thread / one Numba thread; robust to other processes):")
    print(f"  dgemm, 1 thread:                          {gemm1 / 1e9:8.1f} GFLOP/s")
    print(f"  NumPy loop, 1 path:                       {tnp_cpu * 1e6:8.2f} us/step")
    print(f"  diagsim kernel, 1 path:                   {t1_cpu * 1e6:8.2f} us/step   ({tnp_cpu / t1_cpu:.2f}x)")
    print(f"  diagsim kernel, 64 paths:                 {t64_cpu / 64 * 1e6:8.2f} us/path-step = "
          f"{flop * 64 / t64_cpu / 1e9:.1f} GFLOP/s = {100 * percore['frac_dgemm_per_core']:.1f}% of 1-thread dgemm")
    e64 = next((e for e in ens if e["paths"] == 64), None)
    print()
    print(f"target 1: 1 path no slower than NumPy: {'PASS' if t_k1 <= t_np else 'FAIL'} "
          f"({t_np / t_k1:.2f}x)")
    if e64:
        print(f"target 2: 64 paths >= 25% of dgemm:   {'PASS' if e64['frac_dgemm'] >= 0.25 else 'FAIL'} "
              f"({100 * e64['frac_dgemm']:.1f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "dgemm_flops": gemm, "numpy_s_per_step": t_np, "kernel_1_s_per_step": t_k1,
                       "simulate_1_s_per_step": t_s1, "ensembles": ens, "per_core": percore}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
