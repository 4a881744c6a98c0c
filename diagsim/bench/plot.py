"""Throughput versus ensemble size M for every contestant (log-log), with the measured floors."""
from __future__ import annotations

from pathlib import Path


def plot_throughput(res: dict, path) -> Path:
    """Draw :func:`draw_throughput` and save it to ``path``."""
    import matplotlib.pyplot as plt

    from ..storage import save_figure
    fig = draw_throughput(res)
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def draw_throughput(res: dict):
    """The figure (returned): path-steps per second against M, wall clock and per CPU-second, one line per
    contestant, with the dgemm-rate and NumPy-normals floors dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    names = []
    for r in res["results"]:
        if r["contestant"] not in names:
            names.append(r["contestant"])
    fl = res["floors"]
    for ax, key, title in ((axes[0], "path_steps_per_s", "wall clock"),
                           (axes[1], "path_steps_per_cpu_s", "per process CPU-second")):
        for name in names:
            rows = sorted((r for r in res["results"] if r["contestant"] == name and "error" not in r),
                          key=lambda r: r["M"])
            if rows:
                ax.plot([r["M"] for r in rows], [r.get(key, float("nan")) for r in rows], "o-", label=name)
        ax.axhline(fl["arithmetic_floor_path_steps_per_s"], color="k", ls="--", lw=1,
                   label="arithmetic floor (dgemm rate)")
        ax.axhline(fl["numpy_noise_floor_path_steps_per_s"], color="gray", ls=":", lw=1,
                   label="NumPy normals, one thread")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("ensemble size M (paths)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("path-steps per second")
    axes[1].legend(fontsize=8)
    cfg = res["config"]
    env = res["environment"]
    fig.suptitle(f"label-noise SGD SDE, n={cfg['n']}, d={cfg['d']}, dt={cfg['dt']}, T={cfg['T']}; "
                 f"{env['date']}, {env['cpu_count']} cores, threads {env.get('thread_limit') or 'default'}, "
                 f"load {env.get('load_avg_1min', float('nan')):.1f}", fontsize=9)
    fig.tight_layout()
    return fig
