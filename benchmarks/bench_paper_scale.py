"""Speed of the discrete steppers at the paper's scale (figure 6), against a plain NumPy loop of the same
algorithm and against the BLAS floor of its two products, all timed in the same run.

    python benchmarks/bench_paper_scale.py                 # n in {10, 25, 50, 60}, M in {1, 4, 8}
    python benchmarks/bench_paper_scale.py --quick         # seconds
    python benchmarks/bench_paper_scale.py --profile       # also: where diagsim's path-step goes
    python benchmarks/bench_paper_scale.py --json FILE     # default benchmarks/bench-paper-scale-<date>.json

The setting is paper_repro/fig6_paper_scale.toml's: ``make_problem(n, 1000, 3, design="rademacher",
teacher="uniform", init="gaussian", alpha=0.1)`` ("uu-vv"), full-batch Adam (lr 0.1, beta1 0.9, beta2 0.95,
eps 1e-6, no bias correction) and SGD (lr 0.005), Rademacher label noise delta = 0.5. For every
(optimizer, n, M) three contestants advance M paths:

* ``diagsim``: the discrete stepper (``make_stepper(...).advance``, the kernel ``simulate`` runs);
* ``numpy``: a plain NumPy loop of the same step for all M paths at once: W = U*U - V*V, R = W Z^T - y
  (one (M, d) x (d, n) product), C = (R - xi) / n, GW = C Z (one (M, n) x (n, d) product), the chain rule
  and the Adam / SGD update; label noise from ``numpy.random.Generator``;
* ``floor``: the two products alone (``matmul`` into preallocated outputs, nothing else): what a step of
  this algorithm cannot go below with NumPy/BLAS. FLOP per step: 4 n d M (2 n d per product and path).

Timing: one BLAS thread and one Numba thread (the figure's sweep runs one single-threaded worker per core;
set when this file is run as a script), after a warm-up call (compilation / cache load). The contestants
of one (optimizer, n, M) are timed interleaved (diagsim, numpy, floor, diagsim, numpy, floor, ...) and the
median of ``--repeats`` is kept, so that a load that varies during the run hits all three alike; both the
thread CPU time (``time.thread_time``: what the figure's CPU-minutes are) and the wall time are recorded.
The ratios diagsim / numpy and diagsim / floor are per path-step times (> 1: diagsim slower); diagsim / peak
compares with 4 n d M FLOP at the rate of a large one-thread dgemm (1000^3), the arithmetic floor.

Before timing, the NumPy loop is checked against diagsim: a few steps from the same start with the same
label noise fed (``diagsim.lowlevel.rng.signs`` of the stepper's stream) and without noise; the states agree
to rounding (diagsim contracts a*b + c into fused multiply-adds, NumPy does not).

The projection: CPU-minutes of figure 6's runs (n in {10, 15, 20, 25, 30, 40, 50, 60}, both optimizers,
2 problem seeds x 4 paths, 10^7 steps each) from the M = 4 times, interpolated linearly in n.
Results: benchmarks/NOTES.md, "Paper scale (d = 1000) on this machine".
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread, one Numba thread (set before NumPy and Numba load)
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

D, K_SPARSE, DELTA = 1000, 3, 0.5
PROBLEM = dict(design="rademacher", teacher="uniform", init="gaussian", alpha=0.1)
HYPER = {"adam": dict(lr=0.1, beta1=0.9, beta2=0.95, eps=1e-6), "sgd": dict(lr=0.005)}
FIG_NS = (10, 15, 20, 25, 30, 40, 50, 60)
FIG_RUNS = dict(seeds=2, paths=4, steps=10_000_000)


def make_problem(n: int, seed: int = 1):
    import diagsim
    return diagsim.make_problem(n, D, K_SPARSE, seed=seed, **PROBLEM)


def make_optimizer(name: str, noise: bool = True):
    from diagsim.optimizers import SGD, Adam, LabelNoise, NoNoise
    nz = LabelNoise(DELTA) if noise else NoNoise()
    if name == "adam":
        return Adam(**HYPER["adam"], bias_correction=False, noise=nz)
    return SGD(**HYPER["sgd"], noise=nz)


# --------------------------------------------------------------------------- the contestants
def diagsim_runner(problem, opt, M: int, seed: int = 0):
    """run(steps): advance M paths of diagsim's stepper by ``steps`` (continuing); run.state the state."""
    from diagsim.optimizers import make_stepper
    st = make_stepper(problem, opt, seed=seed)
    state = st.init_state(problem.theta0(M))
    active = np.ones(M, bool)
    paths = np.arange(M, dtype=np.int64)
    k = [0]

    def run(steps):
        st.advance(state, paths, k[0], steps, active)
        k[0] += steps
    run.state = state
    return run


def numpy_runner(problem, name: str, M: int, delta: float = DELTA, noise=None, seed: int = 0):
    """run(steps): the same algorithm in plain NumPy, all M paths at once. ``noise``: None draws the label
    noise from numpy.random.Generator(seed); else an (M, >= steps, n) array of xi fed in step order."""
    Z, ZT, y = problem.Z, problem.ZT, problem.y
    n, d = Z.shape
    th = problem.theta0(M).copy()
    m = np.zeros_like(th)
    v = np.zeros_like(th)
    gen = np.random.default_rng(seed)
    h = HYPER[name]
    lr = h["lr"]
    k = [0]

    def run(steps):
        nonlocal th, m, v
        for _ in range(steps):
            if noise is not None:
                xi = noise[:, k[0], :]
            elif delta:
                xi = delta * (2.0 * gen.integers(0, 2, size=(M, n)) - 1.0)
            else:
                xi = 0.0
            U, V = th[:, :d], th[:, d:]
            W = U * U - V * V
            R = W @ ZT - y                      # (M, d) x (d, n): the forward product of every path
            C = (R - xi) * (1.0 / n)
            GW = C @ Z                          # (M, n) x (n, d): Z^T c of every path
            g = np.concatenate([GW * (2.0 * U), GW * (-2.0 * V)], axis=1)
            if name == "adam":
                m = h["beta1"] * m + (1.0 - h["beta1"]) * g
                v = h["beta2"] * v + (1.0 - h["beta2"]) * g * g
                th = th - lr * m / (np.sqrt(v) + h["eps"])
            else:
                th = th - lr * g
            k[0] += 1
        run.state = {"theta": th, "m": m, "v": v}
    run.state = {"theta": th, "m": m, "v": v}
    return run


def floor_runner(problem, M: int):
    """run(steps): only the two products of a step, W Z^T and C Z for M paths, into preallocated outputs."""
    Z, ZT = problem.Z, problem.ZT
    n, d = Z.shape
    g = np.random.default_rng(0)
    W = g.standard_normal((M, d))
    C = g.standard_normal((M, n))
    R = np.empty((M, n))
    GW = np.empty((M, d))

    def run(steps):
        for _ in range(steps):
            np.matmul(W, ZT, out=R)
            np.matmul(C, Z, out=GW)
    return run


# --------------------------------------------------------------------------- checks
def _rel_diff(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def agreement(n: int, M: int = 3, steps: int = 20) -> dict:
    """Max relative difference of theta (and of Adam's m, v) between the NumPy loop and diagsim after
    ``steps`` steps: with diagsim's label noise fed to NumPy, and without noise."""
    from diagsim.lowlevel import rng
    problem = make_problem(n)
    out = {}
    for name in ("adam", "sgd"):
        xi = rng.signs(0, "label_noise", np.arange(M), range(steps), n, DELTA)
        for tag, noise, fed in (("noise", True, xi), ("noiseless", False, None)):
            ds = diagsim_runner(problem, make_optimizer(name, noise), M)
            ds(steps)
            nr = numpy_runner(problem, name, M, delta=DELTA if noise else 0.0, noise=fed)
            nr(steps)
            diff = _rel_diff(nr.state["theta"], ds.state["theta"])
            if name == "adam":
                diff = max(diff, _rel_diff(nr.state["m"], ds.state["m"]), _rel_diff(nr.state["v"], ds.state["v"]))
            out[f"{name}/{tag}"] = diff
    return out


# --------------------------------------------------------------------------- timing
def _time(run, steps: int) -> tuple[float, float]:
    """(thread CPU seconds, wall seconds) per step of run(steps)."""
    w0, c0 = time.perf_counter(), time.thread_time()
    run(steps)
    return (time.thread_time() - c0) / steps, (time.perf_counter() - w0) / steps


def time_interleaved(runners: dict, steps: dict, repeats: int) -> dict:
    """{name: {"cpu": [...], "wall": [...]}} per step; the runners take turns, ``repeats`` rounds."""
    for name, run in runners.items():
        run(max(2, steps[name] // 20))  # warm-up: compilation / cache load, caches
    out = {name: {"cpu": [], "wall": []} for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            c, w = _time(run, steps[name])
            out[name]["cpu"].append(c)
            out[name]["wall"].append(w)
    return out


def dgemm_rate(size: int = 1000, repeats: int = 3) -> float:
    """FLOP per thread CPU-second of a size^3 float64 product (best of ``repeats``; this process's BLAS
    threads: one when run as a script)."""
    g = np.random.default_rng(0)
    a = g.standard_normal((size, size))
    b = g.standard_normal((size, size))
    a @ b
    return 2.0 * size ** 3 / min(_time(lambda _: a @ b, 1)[0] for _ in range(repeats))


def _interp(xs, ys, x: float) -> float:
    """Piecewise-linear in x through the points (xs sorted), extended linearly beyond them."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if xs.size == 1:
        return float(ys[0])
    i = int(np.clip(np.searchsorted(xs, x) - 1, 0, xs.size - 2))
    return float(ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i]))


def projection(rows: list, M: int = 4) -> dict:
    """CPU-minutes of figure 6's runs per contestant, from the per path-step CPU times at M paths."""
    runs = FIG_RUNS["seeds"] * FIG_RUNS["paths"] * FIG_RUNS["steps"]  # path-steps per (optimizer, n)
    out = {"n": list(FIG_NS), **FIG_RUNS, "from_M": M}
    for who in ("diagsim", "numpy", "floor"):
        total = 0.0
        per_opt = {}
        for name in HYPER:
            pts = sorted((r["n"], r[who]["us_per_path_step_cpu"]) for r in rows if r["optimizer"] == name
                         and r["M"] == M)
            if not pts:
                continue
            mins = sum(_interp([p[0] for p in pts], [p[1] for p in pts], n) * 1e-6 * runs for n in FIG_NS) / 60
            per_opt[name] = mins
            total += mins
        out[who] = {"cpu_minutes": total, "per_optimizer": per_opt}
    return out


def record_cost(n: int, M: int = 4, repeats: int = 5) -> dict:
    """CPU seconds of one record (the observables and Adam's preconditioner statistics that ``simulate``
    computes at every record step) for M paths, and per path-step at one record per 1000 steps."""
    from diagsim.engine.recording import observe
    from diagsim.optimizers import make_stepper
    problem = make_problem(n)
    st = make_stepper(problem, make_optimizer("adam"))
    state = st.init_state(problem.theta0(M))

    def rec(_):
        observe(problem, state["theta"], extra=st.preconditioner_stats(state))
    rec(1)
    t = float(np.median([_time(rec, 1)[0] for _ in range(repeats)]))
    return {"n": n, "M": M, "s_per_record_cpu": t, "us_per_path_step_at_1000": t / (1000 * M) * 1e6}


# --------------------------------------------------------------------------- main
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n in {10, 50}, M in {1, 4}, 500 steps (seconds)")
    ap.add_argument("--steps", type=int, help="steps per timed call (default 20000; --quick 500)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is kept (default 3)")
    ap.add_argument("--ns", type=int, nargs="+", help="sample sizes (default 10 25 50 60)")
    ap.add_argument("--paths", type=int, nargs="+", help="ensemble sizes M (default 1 4 8)")
    ap.add_argument("--optimizers", nargs="+", choices=sorted(HYPER), default=["adam", "sgd"])
    ap.add_argument("--profile", action="store_true", help="also time the pieces of diagsim's step")
    ap.add_argument("--json", metavar="FILE", help="default benchmarks/bench-paper-scale-<date>.json")
    args = ap.parse_args(argv)

    import numba

    import diagsim

    ns = args.ns or ([10, 50] if args.quick else [10, 25, 50, 60])
    Ms = args.paths or ([1, 4] if args.quick else [1, 4, 8])
    steps = args.steps or (500 if args.quick else 20_000)
    threads0 = numba.get_num_threads()
    numba.set_num_threads(1)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    info = {"cpu": _cpu_name(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
            "numba_threads": 1, "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "diagsim": diagsim.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    try:
        log("agreement of the NumPy loop with diagsim ...")
        checks = agreement(ns[0])
        log("dgemm rate ...")
        gemm0 = dgemm_rate()
        rows = []
        for name in args.optimizers:
            for n in ns:
                problem = make_problem(n)
                for M in Ms:
                    log(f"{name} n={n} M={M} ...")
                    runners = {"diagsim": diagsim_runner(problem, make_optimizer(name), M),
                               "numpy": numpy_runner(problem, name, M),
                               "floor": floor_runner(problem, M)}
                    t = time_interleaved(runners, dict.fromkeys(runners, steps), args.repeats)
                    flop = 4.0 * n * D * M
                    row = {"optimizer": name, "n": n, "M": M, "flop_per_step": flop}
                    for who, tt in t.items():
                        c, w = float(np.median(tt["cpu"])), float(np.median(tt["wall"]))
                        row[who] = {"us_per_path_step_cpu": c / M * 1e6, "us_per_path_step_wall": w / M * 1e6,
                                    "gflops_cpu": flop / c / 1e9, "cpu_s_per_step": tt["cpu"],
                                    "wall_s_per_step": tt["wall"]}
                    for who in ("numpy", "floor"):
                        row[f"diagsim_over_{who}"] = (row["diagsim"]["us_per_path_step_cpu"]
                                                      / row[who]["us_per_path_step_cpu"])
                        row[f"diagsim_over_{who}_wall"] = (row["diagsim"]["us_per_path_step_wall"]
                                                           / row[who]["us_per_path_step_wall"])
                    sub = sum(np.isfinite(a).all() and int(np.sum((a != 0) & (np.abs(a) < np.finfo(float).tiny)))
                              for a in runners["diagsim"].state.values())
                    row["diagsim_subnormals_at_end"] = int(sub)
                    rows.append(row)
        log("cost of a record ...")
        rec = record_cost(ns[-1])
        gemm1 = dgemm_rate()
        prof = profile(ns, steps, args.repeats) if args.profile else None
    finally:
        numba.set_num_threads(threads0)
    info["loadavg_end"] = os.getloadavg()
    peak = max(gemm0, gemm1)
    for r in rows:  # the arithmetic floor: 4 n d M FLOP at the rate of a large one-thread dgemm
        r["peak_us_per_path_step"] = r["flop_per_step"] / peak / r["M"] * 1e6
        r["diagsim_over_peak"] = r["diagsim"]["us_per_path_step_cpu"] / r["peak_us_per_path_step"]
    proj = projection(rows) if 4 in Ms else None
    res = {"info": info, "config": {"d": D, "k": K_SPARSE, "delta": DELTA, "problem": PROBLEM, "hyper": HYPER,
                                    "steps": steps, "repeats": args.repeats, "ns": ns, "Ms": Ms,
                                    "quick": args.quick},
           "agreement": checks, "dgemm_1000_gflops_cpu": [gemm0 / 1e9, gemm1 / 1e9], "results": rows,
           "record": rec, "projection": proj, "profile": prof}
    _print(res)
    path = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     f"bench-paper-scale-{datetime.date.today().isoformat()}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    log(f"wrote {path}")
    return 0


def _print(res: dict) -> None:
    info = res["info"]
    print(f"# paper scale: d = {D}, k = {K_SPARSE}, Rademacher design, label noise {DELTA}; "
          f"{res['config']['steps']} steps x {res['config']['repeats']} interleaved rounds (median)")
    print(f"# {info['cpu']}, {info['cpus']} CPUs, 1 Numba / BLAS thread, load average "
          f"{info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f}; numpy {info['numpy']}, "
          f"numba {info['numba']}")
    print("# agreement NumPy loop vs diagsim (max relative difference of the state): "
          + ", ".join(f"{k} {v:.1e}" for k, v in res["agreement"].items()))
    g = res["dgemm_1000_gflops_cpu"]
    print(f"# dgemm 1000^3, one thread: {g[0]:.1f} / {g[1]:.1f} GFLOP/s (start / end)")
    print()
    print("| optimizer | n | M | diagsim µs/path-step | NumPy loop | dgemm floor | diagsim ÷ NumPy | "
          "diagsim ÷ floor | diagsim GFLOP/s | floor GFLOP/s | diagsim ÷ peak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["results"]:
        print(f"| {r['optimizer']} | {r['n']} | {r['M']} | {r['diagsim']['us_per_path_step_cpu']:.2f} | "
              f"{r['numpy']['us_per_path_step_cpu']:.2f} | {r['floor']['us_per_path_step_cpu']:.2f} | "
              f"{r['diagsim_over_numpy']:.2f} | {r['diagsim_over_floor']:.2f} | "
              f"{r['diagsim']['gflops_cpu']:.1f} | {r['floor']['gflops_cpu']:.1f} | {r['diagsim_over_peak']:.1f} |")
    rec = res["record"]
    print()
    print(f"a record (observables + preconditioner stats, n = {rec['n']}, M = {rec['M']}): "
          f"{rec['s_per_record_cpu'] * 1e6:.0f} µs = {rec['us_per_path_step_at_1000']:.4f} µs per path-step "
          "at one record per 1000 steps")
    p = res["projection"]
    if p:
        print(f"figure 6 ({len(p['n'])} n x 2 optimizers x {p['seeds']} seeds x {p['paths']} paths x "
              f"{p['steps']:.0e} steps), CPU-minutes: " + ", ".join(
                  f"{who} {p[who]['cpu_minutes']:.0f} ("
                  + ", ".join(f"{k} {v:.0f}" for k, v in p[who]['per_optimizer'].items()) + ")"
                  for who in ("diagsim", "numpy", "floor")))
    if res.get("profile"):
        print()
        print("| profile (1 thread, thread CPU time) | " + " | ".join(f"n={k}" for k in res["profile"]["ns"])
              + " |")
        print("|---|" + "---:|" * len(res["profile"]["ns"]))
        for piece, vals in res["profile"]["pieces"].items():
            print(f"| {piece} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")


# --------------------------------------------------------------------------- profile
def profile(ns, steps: int, repeats: int, M: int = 4) -> dict:
    """µs per path-step of the pieces of diagsim's step at M paths (one thread): the whole step with and
    without label noise, and the pieces alone in Numba loops that call the kernel's own functions."""
    from diagsim.optimizers import make_stepper
    from diagsim.optimizers.lowering import lower

    loops = _piece_loops()
    pieces = {}
    for n in ns:
        problem = make_problem(n)
        low = lower(problem, make_optimizer("adam"), 0)
        th = problem.theta0(M)
        st = make_stepper(problem, make_optimizer("adam")).init_state(th)
        runners = {
            "adam step": diagsim_runner(problem, make_optimizer("adam"), M),
            "adam step, no noise": diagsim_runner(problem, make_optimizer("adam", False), M),
            "sgd step": diagsim_runner(problem, make_optimizer("sgd"), M),
            "sgd step, no noise": diagsim_runner(problem, make_optimizer("sgd", False), M),
            "products (forward_group + pullback_group)":
                lambda s, P=problem: loops["products"](P.Z, P.ZT, P.y, th.copy(), P.param.code, M, s),
            "w_of + coefficients + chain":
                lambda s, P=problem: loops["chain"](P.ZT, th.copy(), P.param.code, M, s),
            "adam update": lambda s: loops["update"](st["theta"], st["m"], st["v"], low.fp, low.ip, s),
            "label noise (draw_noise)": lambda s, n=n: loops["noise"](low.keys, M, n, DELTA, s),
        }
        t = time_interleaved(runners, dict.fromkeys(runners, steps), repeats)
        for name, tt in t.items():
            pieces.setdefault(name, []).append(float(np.median(tt["cpu"])) / M * 1e6)
    steps_sum = ("products (forward_group + pullback_group)", "w_of + coefficients + chain",
                 "label noise (draw_noise)")
    pieces["adam step: rest (step minus the pieces)"] = [
        a - u - sum(pieces[p][i] for p in steps_sum)
        for i, (a, u) in enumerate(zip(pieces["adam step"], pieces["adam update"]))]
    return {"ns": list(ns), "M": M, "pieces": pieces}


def _piece_loops() -> dict:
    """Numba loops that call the kernel's own functions (diagsim.optimizers.step_loop) piece by piece over
    M paths, as the step does; the values they compute do not matter."""
    from diagsim.lowlevel.jit import jit
    from diagsim.networks.diagonal import pathwise as K
    from diagsim.networks.diagonal.grouped import forward_group, pullback_group, w_of
    from diagsim.optimizers.lowering import NOISE_RADEMACHER
    from diagsim.optimizers.step_loop import coefficients, draw_noise
    from diagsim.optimizers.updates import update_adam

    @jit
    def products(Z, ZT, y, TH, code, M, steps):
        n, d = Z.shape
        W = np.empty((M, d))
        R = np.empty((M, n))
        GW = np.empty((M, d))
        loss = np.empty(M)
        for s in range(M):
            w_of(TH[s], code, 2, W[s])
        for _ in range(steps):
            forward_group(ZT, y, W, M, R, loss)
            pullback_group(Z, R, M, GW)
        return GW[0, 0]

    @jit
    def chain(ZT, TH, code, M, steps):
        d, n = ZT.shape
        W = np.empty((M, d))
        R = np.ones((M, n))
        XI = np.zeros((M, n))
        WROW = np.full((M, n), 1.0 / n)
        C = np.empty((M, n))
        GW = np.full((M, d), 1e-3)
        GR = np.empty((M, 2 * d))
        for _ in range(steps):
            for s in range(M):
                w_of(TH[s], code, 2, W[s])
                coefficients(R[s], XI[s], WROW[s], 0.0, R[s], C[s])
                K.chain(TH[s], code, 2, GW[s], GR[s])
        return GR[0, 0] + W[0, 0]

    @jit
    def update(theta, m, v, fp, ip, steps):
        M, dim = theta.shape
        G = np.empty((M, dim))
        for s in range(M):
            for i in range(dim):
                G[s, i] = 1e-3 * ((i % 7) - 3)
        for k in range(steps):
            for s in range(M):
                update_adam(theta[s], m[s], v[s], G[s], fp, ip, k)
        return theta[0, 0]

    @jit
    def noise(keys, M, n, delta, steps):
        XI = np.zeros((M, n))
        WROW = np.empty((M, n))
        PERM = np.empty((M, n), np.int64)
        ubuf = np.empty(n)
        acc = 0.0
        for k in range(steps):
            for s in range(M):
                draw_noise(NOISE_RADEMACHER, keys, delta, 0, s, k, XI[s], WROW[s], PERM[s], ubuf)
            acc += XI[0, 0]
        return acc

    return {"products": products, "chain": chain, "update": update, "noise": noise}


if __name__ == "__main__":
    sys.exit(main())
