"""Throughput versus ensemble size M for every contestant (log-log), with the measured floors."""
from __future__ import annotations

from pathlib import Path


def plot_throughput(res: dict, path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    names = []
    for r in res["results"]:
        if r["contestant"] not in names:
            names.append(r["contestant"])
    for name in names:
        rows = sorted((r for r in res["results"] if r["contestant"] == name and "error" not in r),
                      key=lambda r: r["M"])
        if rows:
            ax.plot([r["M"] for r in rows], [r["path_steps_per_s"] for r in rows], "o-", label=name)
    fl = res["floors"]
    ax.axhline(fl["arithmetic_floor_path_steps_per_s"], color="k", ls="--", lw=1,
               label="arithmetic floor (dgemm rate)")
    ax.axhline(fl["numpy_noise_floor_path_steps_per_s"], color="gray", ls=":", lw=1,
               label="NumPy normals, one thread")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("ensemble size M (paths)")
    ax.set_ylabel("path-steps per second")
    cfg = res["config"]
    ax.set_title(f"label-noise SGD SDE, n={cfg['n']}, d={cfg['d']}, dt={cfg['dt']}, "
                 f"{res['environment']['date']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    kw = {"metadata": {"CreationDate": None}} if path.suffix == ".pdf" else {}
    fig.savefig(path, **kw)
    plt.close(fig)
    return path
