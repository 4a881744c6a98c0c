"""How a :class:`~diagsim.engine.result.Result` shows itself: a short text and HTML summary (what a
notebook prints) and the standard panels of a run against its steps.

Matplotlib is imported only by :func:`plot_result`.
"""
from __future__ import annotations

import html

import numpy as np

from ..errors import DiagsimError, check_choice

#: axis labels of the recorded observables (the others are labelled by their names)
LABELS = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "l1": "‖w‖₁",
    "support": "support size",
    "trace_h": "tr H",
    "trace_sqrt_diag_h": "tr diag(H)^½",
    "trace_sqrt_diag_gn": "tr diag(H)^½ (Gauss–Newton)",
}
#: the panels of :meth:`Result.plot` by default: test loss, ||w||_1, support size and a measure (tr H)
PANELS = ("test_loss", "l1", "support", "trace_h")
#: the clocks a run can be plotted against
CLOCKS = ("step", "t", "tau")


def title(result) -> str:
    """One line: level, optimizer and its learning rate, paths, steps and both clocks, divergences."""
    opt = result.config["optimizer"].get("optimizer", "?")
    n_div = int(result.diverged_mask.sum())
    t_end = result.n_steps * result.dt
    return (f"{result.model} {opt} (lr={result.lr:g}), {result.n_paths} path{'s' * (result.n_paths != 1)} x "
            f"{result.n_steps} steps (t = {t_end:g}, tau = {t_end * result.lr:g}), {len(result.steps)} records"
            + (f", {n_div} diverged" if n_div else ""))


def final_rows(result) -> list[tuple[str, float, float]]:
    """``(observable, mean, standard error)`` of every final observable over the paths that did not
    diverge (:meth:`~diagsim.engine.result.Result.mean_se`)."""
    rows = []
    for name, values in result.final_observables.items():
        mean, se = result.mean_se(values)
        rows.append((name, float(mean), float(se)))
    return rows


def _pm(mean: float, se: float) -> tuple[str, str]:
    return f"{mean:.6g}", ("-" if not np.isfinite(se) else f"{se:.2g}")


def result_text(result) -> str:
    """The text of ``repr(result)``."""
    rows = final_rows(result)
    width = max((len(n) for n, _, _ in rows), default=0)
    lines = [f"<diagsim Result: {title(result)}>"]
    if rows:
        lines.append("final state, mean ± se over the paths that did not diverge:")
        for name, mean, se in rows:
            m, s = _pm(mean, se)
            lines.append(f"  {name:<{width}}  {m} ± {s}")
    return "\n".join(lines)


def result_html(result) -> str:
    """The HTML a notebook shows for a result: the title line and a table of the final observables."""
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{m}</td><td>{s}</td></tr>"
                   for name, m, s in ((n, *_pm(mean, se)) for n, mean, se in final_rows(result)))
    return (f"<div><strong>diagsim Result</strong>: {html.escape(title(result))}"
            f"<table><thead><tr><th>final observable</th><th>mean</th><th>± se</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def plot_result(result, ax=None, *, observables=PANELS, x: str = "step", band: float = 2.0, label=None,
                logx: bool | None = None, **line_kw):
    """Draw the ensemble mean of recorded observables against a clock, one panel each; see
    :meth:`diagsim.engine.result.Result.plot`."""
    check_choice("x", x, CLOCKS)
    observables = (observables,) if isinstance(observables, str) else tuple(observables)
    for name in observables:
        if name not in result.records:
            raise DiagsimError(f"observable {name!r} was not recorded; recorded: {', '.join(result.records)}")
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(1, len(observables), figsize=(3.2 * len(observables), 2.8), squeeze=False,
                             layout="constrained")
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if axes.size != len(observables):
        raise DiagsimError(f"ax must hold one Axes per observable ({len(observables)}), got {axes.size}")
    if label is None:
        label = f"{result.config['optimizer'].get('optimizer', '?')} ({result.model})"
    clock = {"step": result.steps, "t": result.t, "tau": result.tau}[x]
    if logx is None:
        logx = result.config.get("record") == "log"
    for a, name in zip(axes, observables):
        mean, se = result.mean_se(np.asarray(result.records[name]).T)
        (line,) = a.plot(clock, mean, label=label, **line_kw)
        if band and result.n_paths > 1:
            a.fill_between(clock, mean - band * se, mean + band * se, color=line.get_color(), alpha=0.2,
                           linewidth=0)
        a.set_xlabel({"step": "step", "t": "t = dt·k", "tau": "τ = lr·t"}[x])
        a.set_ylabel(LABELS.get(name, name))
        if logx:
            a.set_xscale("log")
    return axes
