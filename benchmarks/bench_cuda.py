"""diagsim's CUDA kernels on a real GPU: throughput versus ensemble size, against the CPU in the same run.

* The reference problem of `diagsim bench` (label-noise SGD SDE, "uu-vv", n = 40, d = 100, k = 5, dt = 0.01, lr = 0.01,
  delta = 1): path-steps/s of :class:`diagsim.cuda.SDELabelNoise` for each M (host <-> device copies
  included), and of the CPU integrator (:mod:`diagsim.sde`, all Numba threads) for the M's that fit the
  time budget. Agreement: the same (seed, path, step) gives the same Brownian increments on both, so the
  final states are compared path by path (max relative difference; the device contracts a*b + c into FMAs,
  so a few ulps per step are expected), and the ensemble mean loss with its standard error.
* Paper scale (d = 1000, n = 50, k = 3, Rademacher delta = 0.5): the discrete Adam and SGD kernels on the
  GPU for several M, seconds per 10^6 steps (extrapolated from the timed steps) and path-steps/s.
* The GPU layouts: "warp" (32 lanes per path, :mod:`diagsim.cuda.warp_kernels`), "block" (256 lanes per path:
  few long paths), "thread" (one thread per path, :mod:`diagsim.cuda.thread_kernels`) and, for the SDE from
  M = 1024, "tile" (one thread per path, a block of 128 paths sharing Z through shared memory,
  :mod:`diagsim.cuda.tile_kernels`), all timed in the same run; diffrax on the same GPU (when jax-cuda and
  diffrax are installed) at the same M's.
* A whole run through ``simulate(..., device="cuda")`` at paper scale (the ensemble stays on the device,
  records computed there), against the same run on the CPU.
* The goals, printed and written with the results: the reference SDE at M = 65 536 at >= 4e8 path-steps/s
  and >= 5x diffrax's rate, and Adam at paper scale with M <= 8 at <= 15 s per 10^6 steps.

Usage::

    python benchmarks/bench_cuda.py [--Ms 1 64 1024 8192 65536] [--steps 10000] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

#: kernels compared: 32 or 256 lanes per path (diagsim.cuda.warp_kernels), one thread per path, and (the SDE
#: only) one thread per path with a block of paths sharing tiles of Z in shared memory (diagsim.cuda.tile_kernels)
LAYOUTS = ("warp", "block", "thread")
SDE_LAYOUTS = LAYOUTS + ("tile",)
#: the tile layout is timed from this M (below, too few blocks to fill a GPU)
TILE_MIN_M = 1024
#: the goals of the GPU path: path-steps/s of the reference SDE at M = 65 536; seconds per 10^6 Adam steps at
#: paper scale with M <= 8
GOAL_SDE_RATE, GOAL_PAPER_SECONDS = 4e8, 15.0
#: and the reference SDE at M = 65 536 against diffrax on the same GPU, in the same run
GOAL_DIFFRAX_RATIO = 5.0
#: the thread-per-path layout is timed up to this M (it is the slow one)
THREAD_MAX_M = 65536


def _timed(fn, repeats=2):
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def sde_rows(Ms, steps, cpu_max_M, cpu_steps, log, diffrax_max_M=0):
    from diagsim import cuda as dc
    from diagsim.bench.problems import FULL
    from diagsim.optimizers import SGD, LabelNoise
    from diagsim.sde import make_stepper

    cfg = FULL
    prob = cfg.problem()
    rows = []
    for M in Ms:
        paths = np.arange(M, dtype=np.int64)
        sim = dc.SDELabelNoise(prob, lr=cfg.lr, label_noise=cfg.label_noise, dt=cfg.dt, seed=1)
        row = {"M": M, "steps": steps}
        for layout in SDE_LAYOUTS:
            if ((layout == "thread" and M > THREAD_MAX_M) or (layout == "block" and M > 64)
                    or (layout == "tile" and M < TILE_MIN_M)):
                continue
            t = time.perf_counter()
            sim.run(prob.theta0(M), paths, 0, 5, layout=layout)
            warm = time.perf_counter() - t
            sec, th = _timed(lambda: sim.run(prob.theta0(M), paths, 0, steps, layout=layout))
            loss = prob.train_loss_w(prob.w(th))
            row.update({f"gpu_{layout}_warmup_s": warm, f"gpu_{layout}_seconds": sec,
                        f"gpu_{layout}_path_steps_per_s": M * steps / sec,
                        f"gpu_{layout}_mean_loss": float(loss.mean()),
                        f"gpu_{layout}_loss_se": float(loss.std(ddof=1) / np.sqrt(M)) if M > 1 else None})
            if layout == "warp":
                th_gpu = th
            if layout == "tile":  # the same paths as the warp layout: equal up to the device's contractions
                row["max_rel_diff_tile_warp"] = float((np.abs(th - th_gpu) / np.maximum(np.abs(th_gpu), 1e-300)).max())
        if M <= diffrax_max_M:
            row.update(diffrax_row(cfg, M, steps))
        if M <= cpu_max_M:
            st = make_stepper(prob, SGD(lr=cfg.lr, noise=LabelNoise(cfg.label_noise, "gaussian")), dt=cfg.dt,
                              seed=1, check_stability=False)

            def cpu(n):
                s = st.init_state(prob.theta0(M))
                st.advance(s, paths, 0, n, np.ones(M, bool))
                return s["theta"]

            cpu(5)
            csec, th_cpu = _timed(lambda: cpu(cpu_steps), repeats=1)
            row.update(cpu_steps=cpu_steps, cpu_seconds=csec, cpu_path_steps_per_s=M * cpu_steps / csec)
            if cpu_steps == steps:
                rel = np.abs(th_gpu - th_cpu) / np.maximum(np.abs(th_cpu), 1e-300)
                row["max_rel_diff_gpu_cpu"] = float(rel.max())
                row["cpu_mean_loss"] = float(prob.train_loss_w(prob.w(th_cpu)).mean())
        log(json.dumps(row))
        rows.append(row)
    return rows


def diffrax_row(cfg, M, steps) -> dict:
    """diffrax (JAX, GPU when jax-cuda is installed) on the reference SDE, as in `diagsim bench`."""
    from diagsim.bench.peer_diffrax import Diffrax
    peer = Diffrax()
    why = peer.available()
    if why:
        return {"diffrax_skipped": why}
    import jax
    run = peer.prepare(cfg, M, 1)
    t = time.perf_counter()
    run(5)
    warm = time.perf_counter() - t
    sec, _ = _timed(lambda: run(steps))
    return {"diffrax_backend": jax.default_backend(), "diffrax_warmup_s": warm, "diffrax_seconds": sec,
            "diffrax_path_steps_per_s": M * steps / sec}


def paper_rows(Ms, steps, log):
    from diagsim import cuda as dc
    from diagsim.bench.problems import PAPER_FULL as cfg
    from diagsim.optimizers import SGD, Adam, LabelNoise, make_stepper

    prob = cfg.problem()
    noise = LabelNoise(cfg.label_noise, "rademacher")
    specs = {"adam": Adam(lr=cfg.adam_lr, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps, noise=noise),
             "sgd": SGD(lr=cfg.sgd_lr, noise=noise)}
    rows = []
    for name, spec in specs.items():
        st = make_stepper(prob, spec, seed=0)
        for M in Ms:
            paths = np.arange(M, dtype=np.int64)

            for layout in LAYOUTS:
                if layout == "block" and M > 64:
                    continue
                n_timed = steps if layout != "thread" else max(steps // 10, 10)

                def run(n):
                    s = st.init_state(prob.theta0(M))
                    dc.advance_discrete(st, s, paths, 0, n, np.ones(M, bool), layout=layout)
                    return s["theta"]

                t = time.perf_counter()
                run(3)
                warm = time.perf_counter() - t
                sec, th = _timed(lambda: run(n_timed))
                row = {"optimizer": name, "layout": layout, "M": M, "steps": n_timed, "warmup_s": warm,
                       "seconds": sec, "seconds_per_1e6_steps": sec / n_timed * 1e6,
                       "path_steps_per_s": M * n_timed / sec,
                       "final_loss_mean": float(prob.train_loss_w(prob.w(th)).mean())}
                log(json.dumps(row))
                rows.append(row)
    return rows


def simulate_rows(M, steps, log):
    """Adam at paper scale through simulate(): the whole run on the device vs the same run on the CPU."""
    import diagsim
    from diagsim.bench.problems import PAPER_FULL as cfg
    from diagsim.optimizers import Adam, LabelNoise

    prob = cfg.problem()
    opt = Adam(lr=cfg.adam_lr, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps,
               noise=LabelNoise(cfg.label_noise, "rademacher"))
    rows = []
    for device in ("cuda", "cpu"):
        diagsim.simulate(prob, opt, steps=10, n_paths=M, device=device, progress=False)  # compile
        t = time.perf_counter()
        res = diagsim.simulate(prob, opt, steps=steps, n_paths=M, device=device, record="log", progress=False)
        sec = time.perf_counter() - t
        rows.append({"device": device, "M": M, "steps": steps, "seconds": sec,
                     "seconds_per_1e6_steps": sec / steps * 1e6, "layout": res.config["stepper"].get("device"),
                     "final_test_loss_mean": float(np.nanmean(res.final_observables["test_loss"]))})
        log(json.dumps(rows[-1]))
    th = [diagsim.simulate(prob, opt, steps=200, n_paths=M, device=dv, progress=False).final["theta"]
          for dv in ("cuda", "cpu")]
    rows.append({"max_rel_diff_gpu_cpu_200_steps": float((np.abs(th[0] - th[1]) /
                                                          np.maximum(np.abs(th[1]), 1e-300)).max())})
    log(json.dumps(rows[-1]))
    return rows


def goals(out: dict) -> list:
    """The goals against the measurements (``met`` None when not measured)."""
    big = [r for r in out["sde"] if r["M"] == 65536]
    rates = [r.get(f"gpu_{lay}_path_steps_per_s", 0.0) for r in big for lay in SDE_LAYOUTS]
    paper = [r["seconds_per_1e6_steps"] for r in out["paper"] if r["optimizer"] == "adam" and r["M"] <= 8]
    best_rate = max(rates) if rates else None
    best_paper = min(paper) if paper else None
    peer = [r["diffrax_path_steps_per_s"] for r in big if r.get("diffrax_path_steps_per_s")]
    ratio = best_rate / peer[0] if (peer and best_rate) else None
    return [{"goal": "reference SDE, M = 65 536: path-steps/s", "target": f">= {GOAL_SDE_RATE:.0e}",
             "measured": best_rate, "met": None if best_rate is None else best_rate >= GOAL_SDE_RATE},
            {"goal": "Adam, paper scale, M <= 8: seconds per 10^6 steps", "target": f"<= {GOAL_PAPER_SECONDS}",
             "measured": best_paper, "met": None if best_paper is None else best_paper <= GOAL_PAPER_SECONDS},
            {"goal": "reference SDE, M = 65 536: diagsim / diffrax path-steps/s, same GPU, same run",
             "target": f">= {GOAL_DIFFRAX_RATIO:g}", "measured": ratio,
             "met": None if ratio is None else ratio >= GOAL_DIFFRAX_RATIO}]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--Ms", type=int, nargs="+", default=[1, 64, 1024, 8192, 65536])
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--cpu-max-M", type=int, default=1024)
    ap.add_argument("--cpu-steps", type=int, default=10000)
    ap.add_argument("--diffrax-max-M", type=int, default=65536, help="time diffrax (when installed) up to this M")
    ap.add_argument("--paper-Ms", type=int, nargs="+", default=[8, 1024])
    ap.add_argument("--paper-steps", type=int, default=2000)
    ap.add_argument("--simulate-M", type=int, default=8, help="paths of the whole-run comparison (0: skip)")
    ap.add_argument("--simulate-steps", type=int, default=5000)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from diagsim import cuda as dc
    why = dc.unavailable_reason()
    if why or dc.simulator():
        raise SystemExit(f"no CUDA device: {why or 'simulator on'}")
    cu = dc._lazy.cuda()
    dev = cu.get_current_device()
    import numba
    env = {"gpu": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
           "compute_capability": list(dev.compute_capability), "numba": numba.__version__,
           "numpy": np.__version__, "python": platform.python_version(), "numba_threads": numba.get_num_threads()}
    print(json.dumps(env))
    out = {"env": env, "sde": sde_rows(a.Ms, a.steps, a.cpu_max_M, a.cpu_steps, print, a.diffrax_max_M),
           "paper": paper_rows(a.paper_Ms, a.paper_steps, print)}
    if a.simulate_M:
        out["simulate"] = simulate_rows(a.simulate_M, a.simulate_steps, print)
    out["goals"] = goals(out)
    for g in out["goals"]:
        print(f"goal: {g['goal']} {g['target']}: measured {g['measured']}, "
              f"{'met' if g['met'] else 'NOT met' if g['met'] is not None else 'not measured'}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
