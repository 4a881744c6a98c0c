"""Phase diagrams: a heat map of a scalar summary over two swept parameters.

:func:`phase_grid` pivots a table, :func:`phase_array` gives the same grid as a labelled
``xarray.DataArray``, :func:`plot_phase` draws it. Matplotlib and xarray are imported lazily; callers
choose the backend (scripts use Agg).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DiagsimError, check_choice
from ..optional import require
from ..storage import save_figure  # noqa: F401  (re-exported: part of this module's API)
from .table import Table

AGGS = {"mean": np.nanmean, "median": np.nanmedian, "min": np.nanmin, "max": np.nanmax}


def phase_grid(table: Table, x: str, y: str, value: str, *, where: dict | None = None,
               agg: str = "mean"):
    """Pivot: ``(xs, ys, Z)`` with ``Z[i, j]`` = agg of ``value`` over rows with y = ys[i], x = xs[j]
    (other swept parameters, e.g. seeds, are aggregated; NaN where no row has a finite value)."""
    check_choice("agg", agg, AGGS)
    t = table.where(where)
    if len(t) == 0:
        raise DiagsimError(f"no rows match where={where!r}")
    xv, yv = t[x], t[y]
    vals = np.asarray(t[value], dtype=np.float64)
    xs, ys = np.unique(xv), np.unique(yv)
    Z = np.full((len(ys), len(xs)), np.nan)
    for i, yy in enumerate(ys):
        for j, xx in enumerate(xs):
            v = vals[(xv == xx) & (yv == yy)]
            v = v[np.isfinite(v)]
            if v.size:
                Z[i, j] = AGGS[agg](v)
    return xs, ys, Z


def phase_array(table: Table, x: str, y: str, value: str, *, where: dict | None = None, agg: str = "mean"):
    """The grid of :func:`phase_grid` as an ``xarray.DataArray`` (needs the optional extra ``analysis``).

    Its dimensions are the swept parameters ``y`` and ``x`` (in that order, rows first, as in the heat
    map), with the swept values as coordinates; its name is ``value``; the attributes say how cells were
    aggregated (``agg``) and which rows were used (``where``, as a string).

    Returns
    -------
    xarray.DataArray
        Shape ``(len(ys), len(xs))``; NaN where no row has a finite value.
    """
    xr = require("xarray", "phase_array")
    xs, ys, Z = phase_grid(table, x, y, value, where=where, agg=agg)
    return xr.DataArray(Z, dims=(y, x), coords={y: ys, x: xs}, name=value,
                        attrs={"agg": agg, "where": repr(where or {})})


def _ticklabels(vals) -> list[str]:
    return [f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v) for v in vals]


def plot_phase(table: Table, x: str, y: str, value: str, *, where: dict | None = None, agg: str = "mean",
               ax=None, cmap: str = "viridis", vmin=None, vmax=None, log_value: bool = False,
               annotate: bool | None = None, title: str | None = None, label: str | None = None):
    """Heat map of ``value`` over the swept parameters ``x`` (columns) and ``y`` (rows).

    Cells are categorical (one per distinct swept value, in sorted order), so uneven grids such as
    log-spaced learning rates get equal-sized cells. ``annotate`` writes each cell's value (default: when
    the grid has at most 12 x 12 cells). Returns ``(ax, (xs, ys, Z))``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    xs, ys, Z = phase_grid(table, x, y, value, where=where, agg=agg)
    if ax is None:
        _, ax = plt.subplots()
    norm = None
    if log_value:
        pos = Z[np.isfinite(Z) & (Z > 0)]
        if pos.size:
            norm = LogNorm(vmin=vmin or pos.min(), vmax=vmax or pos.max())
    im = ax.imshow(Z, origin="lower", aspect="auto", cmap=cmap, norm=norm,
                   vmin=None if norm else vmin, vmax=None if norm else vmax, interpolation="nearest")
    ax.set_xticks(range(len(xs)), _ticklabels(xs))
    ax.set_yticks(range(len(ys)), _ticklabels(ys))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    cb = ax.figure.colorbar(im, ax=ax)
    cb.set_label(label or (value if agg == "mean" else f"{agg} {value}"))
    if annotate is None:
        annotate = len(xs) <= 12 and len(ys) <= 12
    if annotate:
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(Z[i, j]):
                    bright = float(np.ma.filled(im.norm(Z[i, j]), 0.0)) > 0.5
                    ax.text(j, i, f"{Z[i, j]:.2g}", ha="center", va="center", fontsize="x-small",
                            color="black" if bright else "white")
    if title:
        ax.set_title(title)
    return ax, (xs, ys, Z)


def plot_sweep(table: Table, plot: dict, path, *, keys: list[str]) -> Path:
    """The phase diagram a sweep's ``[plot]`` table describes (:func:`draw_sweep`), saved to ``path``."""
    import matplotlib.pyplot as plt
    fig = draw_sweep(table, plot, keys=keys)
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def draw_sweep(table: Table, plot: dict, *, keys: list[str]):
    """The figure (returned) of the phase diagram a sweep's ``[plot]`` table describes (defaults: the
    first two swept keys and the first summary column)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary_cols = [n for n in table.names if n not in ("index", "key", "status", "error", *keys)
                    and table[n].dtype.kind in "fiub"]
    x = plot.get("x") or (keys[0] if len(keys) >= 1 else None)
    y = plot.get("y") or (keys[1] if len(keys) >= 2 else None)
    value = plot.get("value") or (summary_cols[0] if summary_cols else None)
    if x is None or y is None:
        raise DiagsimError("a phase diagram needs two swept parameters: set [plot] x and y in the config")
    if value is None:
        raise DiagsimError("the table has no numeric summary column to plot; set [plot] value")
    fig, ax = plt.subplots(figsize=(5, 4))
    plot_phase(table, x, y, value, where=plot.get("where"), agg=plot.get("agg", "mean"), ax=ax,
               cmap=plot.get("cmap", "viridis"), log_value=bool(plot.get("log_value", False)),
               title=plot.get("title"))
    fig.tight_layout()
    return fig
