"""Figures of ``diagsim verify --plots DIR``: one PNG per check, Agg backend, no timestamps in metadata."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.6, height: float = 3.6):
    """A new (fig, axes) pair on the Agg backend (axes flattened to a list)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, list(axes.ravel())


def save(fig, path: Path | None) -> None:
    """Write ``fig`` to ``path`` (PNG, stable metadata) and close it; no-op without a path."""
    import matplotlib.pyplot as plt
    if path is not None:
        from ..storage import save_figure
        fig.tight_layout()
        save_figure(fig, path, dpi=110)
    plt.close(fig)


def loglog_fit(ax, h, e, se=None, *, slope=None, predicted=None, label="", marker="o", color=None) -> None:
    """Error against step size on log-log axes with the fitted slope and, dashed, the predicted one."""
    h = np.asarray(h, dtype=float)
    e = np.abs(np.asarray(e, dtype=float))
    line = ax.errorbar(h, e, yerr=None if se is None else np.asarray(se, dtype=float), fmt=marker, ms=4,
                       capsize=2, color=color,
                       label=f"{label} (slope {slope:.3g})" if slope is not None else label)
    c = line[0].get_color()
    gm_h, gm_e = np.exp(np.mean(np.log(h))), np.exp(np.mean(np.log(e)))
    hh = np.geomspace(h.min(), h.max(), 20)
    if slope is not None:
        ax.plot(hh, gm_e * (hh / gm_h) ** slope, "-", color=c, lw=1)
    if predicted is not None:
        ax.plot(hh, gm_e * (hh / gm_h) ** predicted, "--", color=c, lw=1, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
