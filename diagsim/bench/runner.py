"""Run the benchmark: floors, the reference ensemble, every contestant at every M, goals, JSON.

For each contestant and ensemble size M: ``prepare`` + one short call of ``cfg.warm_steps`` steps
(= warm-up/compile time), then ``cfg.repeats`` full calls of ``cfg.n_steps`` steps; the wall time is the
best of them, path-steps/s = M n_steps / wall. Reported against diagsim (``diagsim / this``: how many
times faster diagsim's CPU contestant is), against the dgemm rate measured in the same run
(% of the arithmetic floor: rate * flops_per_path_step / dgemm FLOP/s), and statistically: mean final
loss and ||w - w*||_1 with standard errors and z-scores against an independent NumPy reference
ensemble (another generator and seed, ``cfg.M_ref`` paths).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from .floor import dgemm_rate, normal_rates
from .numpy_fused import simulate_numpy
from .problems import PaperBench, SDEBench
from .zscores import summarize, zscores

#: seed of the reference ensemble (contestants use seed 1)
REF_SEED = 12345
RUN_SEED = 1


def all_contestants() -> list:
    """Every contestant, in table order (diagsim first)."""
    from .diagsim_cpu import DiagsimCPU
    from .diagsim_cuda import DiagsimCUDA
    from .numpy_fused import NumpyFused
    from .peer_diffrax import Diffrax
    from .peer_torchsde import TorchSDE
    return [DiagsimCPU(), DiagsimCUDA(), NumpyFused(), Diffrax(), TorchSDE()]


def select(contestants: list, only) -> list:
    if not only:
        return contestants
    names = {c.name for c in contestants}
    from ..errors import DiagsimError
    bad = [o for o in only if o not in names]
    if bad:
        raise DiagsimError(f"--only must name contestants among {sorted(names)}; got {bad}")
    return [c for c in contestants if c.name in only]


def environment() -> dict:
    import numba
    env = {"date": datetime.date.today().isoformat(), "diagsim": __version__,
           "python": platform.python_version(),
           "numpy": np.__version__, "numba": numba.__version__, "numba_threads": numba.get_num_threads(),
           "cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": _cpu_name()}
    from . import threads
    env["thread_limit"] = threads.LIMIT
    try:
        env["load_avg_1min"] = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        pass
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor()


def time_contestant(c, cfg: SDEBench, M: int) -> dict:
    """Warm-up, best-of-repeats wall time and final-state summary of one contestant at one M.

    ``cpu_s`` is the process CPU time of the best run (all threads, spin-waiting included): on a shared
    machine ``path_steps_per_cpu_s`` is the less load-dependent figure.
    """
    prob = cfg.problem()
    t = time.perf_counter()
    run = c.prepare(cfg, M, RUN_SEED)
    run(cfg.warm_steps)
    warm = time.perf_counter() - t
    best = np.inf
    best_cpu = np.inf
    theta = None
    for _ in range(cfg.repeats):
        t = time.perf_counter()
        c = time.process_time()
        theta = run(cfg.n_steps)
        wall = time.perf_counter() - t
        if wall < best:
            best, best_cpu = wall, time.process_time() - c
    rate = M * cfg.n_steps / best
    return {"M": M, "warmup_s": warm, "wall_s": best, "cpu_s": best_cpu, "path_steps_per_s": rate,
            "path_steps_per_cpu_s": M * cfg.n_steps / best_cpu if best_cpu > 0 else float("nan"),
            **summarize(prob, theta)}


def run_sde(cfg: SDEBench, contestants: list, log=print) -> dict:
    """The reference-problem benchmark (see the module docstring)."""
    env = environment()
    log(f"diagsim bench: reference SDE n={cfg.n} d={cfg.d} k={cfg.k} lr={cfg.lr} delta={cfg.label_noise} "
        f"dt={cfg.dt} T={cfg.T} ({cfg.n_steps} steps), M in {list(cfg.Ms)}; {env['cpu_count']} cores, "
        f"load {env.get('load_avg_1min', float('nan')):.2f}")
    gemm = dgemm_rate()
    noise = normal_rates()
    flops = cfg.flops_per_path_step()
    floors = {"dgemm_flop_per_s": gemm, "flops_per_path_step": flops,
              "arithmetic_floor_path_steps_per_s": gemm / flops, **noise,
              "numpy_noise_floor_path_steps_per_s": noise["numpy_generator_per_s"] / cfg.n}
    log(f"floors: dgemm {gemm / 1e9:.1f} GFLOP/s -> {gemm / flops:.3g} path-steps/s for {flops} FLOP; "
        f"normals/s: NumPy {noise['numpy_generator_per_s']:.3g}, diagsim Philox "
        f"{noise['diagsim_philox_per_s']:.3g} (one thread)")
    t = time.perf_counter()
    ref_theta = simulate_numpy(cfg, cfg.M_ref, REF_SEED, cfg.n_steps)
    ref = {**summarize(cfg.problem(), ref_theta), "engine": "numpy-gemm", "seed": REF_SEED,
           "wall_s": time.perf_counter() - t}
    log(f"reference: NumPy EM, {cfg.M_ref} paths, seed {REF_SEED}: loss {ref['loss_mean']:.4g} "
        f"± {ref['loss_se']:.2g}, |w-w*|_1 {ref['l1_mean']:.4g} ± {ref['l1_se']:.2g}")
    results, skipped = [], {}
    for c in contestants:
        reason = c.available()
        if reason:
            skipped[c.name] = reason
            log(f"skipping {c.name}: {reason}")
            continue
        for M in cfg.Ms:
            try:
                r = time_contestant(c, cfg, M)
            except Exception as exc:  # noqa: BLE001 - a failing peer must not stop the benchmark
                results.append({"contestant": c.name, "kind": c.kind, "M": M,
                                "error": f"{type(exc).__name__}: {exc}"})
                log(f"{c.name} M={M}: failed ({type(exc).__name__}: {exc})")
                continue
            r = {"contestant": c.name, "kind": c.kind, "description": c.description, **r, **zscores(r, ref)}
            r["pct_dgemm"] = 100.0 * r["path_steps_per_s"] * flops / gemm
            results.append(r)
            log(f"{c.name:12s} M={M:5d}: {r['path_steps_per_s']:.3g} path-steps/s "
                f"(wall {r['wall_s']:.3g} s, warm-up {r['warmup_s']:.3g} s), loss z {r['loss_z']:+.2f}, "
                f"l1 z {r['l1_z']:+.2f}")
    _ratios(results)
    try:
        env["load_avg_1min_end"] = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        pass
    return {"environment": env, "config": cfg.to_dict(), "floors": floors, "reference": ref,
            "results": results, "skipped": skipped, "goals": goals(results, floors)}


def _ratios(results: list) -> None:
    base = {r["M"]: r["path_steps_per_s"] for r in results
            if r["contestant"] == "diagsim" and "error" not in r}
    for r in results:
        if "error" not in r and r["M"] in base:
            r["diagsim_over_this"] = base[r["M"]] / r["path_steps_per_s"]


def goals(results: list, floors: dict) -> dict:
    """The speed targets: at M = 1024 >= 2e6 path-steps/s and >= 5x the better of diffrax and torchsde;
    at M = 1 faster than every peer. Entries are None when a needed contestant did not run."""
    rate = {(r["contestant"], r["M"]): r["path_steps_per_s"] for r in results if "error" not in r}
    out = {}
    d1024 = rate.get(("diagsim", 1024))
    peers1024 = [rate[(p, 1024)] for p in ("diffrax", "torchsde") if (p, 1024) in rate]
    out["M1024_rate"] = d1024
    out["M1024_rate_ge_2e6"] = None if d1024 is None else d1024 >= 2e6
    out["M1024_best_peer"] = max(peers1024) if peers1024 else None
    out["M1024_ge_5x_best_peer"] = None if (d1024 is None or not peers1024) else d1024 >= 5 * max(peers1024)
    if d1024 is not None and peers1024:
        out["M1024_speedup_vs_best_peer"] = d1024 / max(peers1024)
    cpu = {(r["contestant"], r["M"]): r.get("path_steps_per_cpu_s") for r in results if "error" not in r}
    c1024 = cpu.get(("diagsim", 1024))
    cpeers = [cpu[(p, 1024)] for p in ("diffrax", "torchsde") if cpu.get((p, 1024))]
    if c1024 and cpeers:
        out["M1024_speedup_vs_best_peer_per_cpu_s"] = c1024 / max(cpeers)
    d1 = rate.get(("diagsim", 1))
    peers1 = [v for (name, M), v in rate.items() if M == 1 and name not in ("diagsim", "diagsim-cuda")]
    out["M1_beats_every_other"] = None if (d1 is None or not peers1) else all(d1 > v for v in peers1)
    return out


def run_bench(cfg: SDEBench, paper: PaperBench | None, contestants: list, log=print) -> dict:
    """The whole benchmark: reference problem (+ paper scale when ``paper`` is given)."""
    out = run_sde(cfg, contestants, log)
    if paper is not None:
        from .paper import run_paper
        out["paper"] = run_paper(paper, log)
    return out


def save_json(results: dict, path) -> Path:
    from ..storage import write_text_atomic
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(_finite(results), indent=1, default=_json_default, allow_nan=False))


def _finite(o):
    """NaN and infinities become null (strict JSON)."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)) and not np.isfinite(o):
        return None
    return o


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
