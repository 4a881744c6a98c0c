"""Plain-text tables of a benchmark result (what ``diagsim bench`` prints and docs/guide/performance.md quotes)."""
from __future__ import annotations

import math


def _f(x, fmt="{:.3g}"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return fmt.format(x)


def sde_table(res: dict) -> str:
    """Markdown table: one row per (contestant, M)."""
    head = ("| contestant | M | warm-up s | wall s | path-steps/s | per CPU-s | diagsim ÷ this | % dgemm | "
            "loss (± se) | z | ‖w−w*‖₁ (± se) | z |")
    lines = [head, "|" + "---|" * 12]
    for r in res["results"]:
        if "error" in r:
            lines.append(f"| {r['contestant']} | {r['M']} | failed: {r['error'][:60]} |" + " |" * 9)
            continue
        flag = "" if r.get("ok", True) else " **✗**"
        lines.append(
            f"| {r['contestant']} | {r['M']} | {_f(r['warmup_s'], '{:.2f}')} | {_f(r['wall_s'], '{:.3g}')} | "
            f"{_f(r['path_steps_per_s'], '{:.3g}')} | {_f(r.get('path_steps_per_cpu_s'), '{:.3g}')} | "
            f"{_f(r.get('diagsim_over_this'), '{:.2f}')} | "
            f"{_f(r['pct_dgemm'], '{:.1f}')} | "
            f"{_f(r['loss_mean'], '{:.4g}')} ± {_f(r['loss_se'], '{:.2g}')} | "
            f"{_f(r['loss_z'], '{:+.2f}')}{flag} | "
            f"{_f(r['l1_mean'], '{:.4g}')} ± {_f(r['l1_se'], '{:.2g}')} | "
            f"{_f(r['l1_z'], '{:+.2f}')}{flag} |")
    return "\n".join(lines)


def summary_lines(res: dict) -> list[str]:
    fl = res["floors"]
    ref = res["reference"]
    g = res["goals"]
    env = res["environment"]
    out = [f"{env['date']}, {env['processor']}, {env['cpu_count']} cores, "
           f"numba threads {env['numba_threads']}, "
           f"load average {env.get('load_avg_1min', float('nan')):.2f} at start, "
           f"{env.get('load_avg_1min_end', float('nan')):.2f} at end",
           f"floors: dgemm {fl['dgemm_flop_per_s'] / 1e9:.1f} GFLOP/s = "
           f"{fl['arithmetic_floor_path_steps_per_s']:.3g} path-steps/s "
           f"({fl['flops_per_path_step']} FLOP each); "
           f"normals/s per thread: NumPy {fl['numpy_generator_per_s']:.3g}, diagsim Philox "
           f"{fl['diagsim_philox_per_s']:.3g}",
           f"reference: NumPy EM, {ref['M']} paths (seed {ref['seed']}): loss {ref['loss_mean']:.4g} ± "
           f"{ref['loss_se']:.2g}, ‖w−w*‖₁ {ref['l1_mean']:.4g} ± {ref['l1_se']:.2g}; |z| > 4 is flagged ✗"]
    for name, why in res.get("skipped", {}).items():
        out.append(f"skipped {name}: {why}")
    if g.get("M1024_rate") is not None:
        out.append(f"goals at M=1024: diagsim {g['M1024_rate']:.3g} path-steps/s "
                   f"(>= 2e6: {g['M1024_rate_ge_2e6']}); "
                   f"best peer {_f(g['M1024_best_peer'])} (>= 5x: {g['M1024_ge_5x_best_peer']}; "
                   f"speed-up {_f(g.get('M1024_speedup_vs_best_peer'), '{:.2f}')} wall, "
                   f"{_f(g.get('M1024_speedup_vs_best_peer_per_cpu_s'), '{:.2f}')} per CPU-s); "
                   f"M=1 faster than every other contestant: {g['M1_beats_every_other']}")
    return out


def paper_table(res: dict) -> str:
    lines = ["| optimizer | contestant | s per 10⁶ steps | speed-up vs NumPy | timed steps | final loss |",
             "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['optimizer']} | {r['contestant']} | {r['seconds_per_1e6_steps']:.1f} | "
                     f"{_f(r.get('speedup_vs_numpy'), '{:.2f}')} | {r['timed_steps']} | "
                     f"{r['final_loss_mean']:.3g} |")
    return "\n".join(lines)
