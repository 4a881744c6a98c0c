"""The result of :func:`diagsim.simulate`, the same for every level (discrete, SDE, slow flow).

A :class:`Result` holds the record grid in steps and both time scales (t = dt k, tau = lr t; for a
discrete optimizer dt = lr, so t = lr k and tau = lr^2 k), the recorded observables per path, the final
states, the divergence report and the full configuration. ``save(path)`` writes one ``.npz`` (arrays +
the configuration as embedded JSON) and a human-readable JSON sidecar ``<path>.json``;
:func:`load_result` reads the ``.npz`` back exactly (float64 arrays bit for bit, JSON floats by repr).

For analysis, :meth:`Result.to_xarray` and :meth:`Result.to_dataframe` give the same data as labelled
arrays and as a table (:mod:`diagsim.engine.labelled`, optional extra ``analysis``); in a notebook a
result shows a short summary, and :meth:`Result.plot` draws the standard panels
(:mod:`diagsim.engine.display`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..networks.diagonal.parametrization import parametrization, w_numpy
from ..storage import read_npz, to_json, write_npz_atomic, write_text_atomic

FORMAT = "diagsim-result"
FORMAT_VERSION = 1


@dataclass(eq=False)
class Result:
    """Outcome of a run.

    Attributes
    ----------
    steps : (n_records,) int64 record steps; ``t`` = dt * steps and ``tau`` = lr * t (properties).
    records : name -> (n_records, n_paths) observables (see :mod:`diagsim.engine.recording`); NaN after a
        path diverged.
    final : name -> (n_paths, ...) final state arrays ("theta" (n_paths, 2d), optimizer moments, ...).
    final_observables : name -> (n_paths,) the observables of the final state.
    paths : (n_paths,) global path ids (the noise of path j depends only on (seed, j)).
    div_step : (n_paths,) int64, the step at which a path diverged, -1 if it did not.
    div_loss : (n_paths,) its loss there (NaN if it did not diverge).
    config : the full configuration (problem incl. data hash, optimizer, model, seed, horizon,
        record grid, versions); JSON-serializable.
    info : run bookkeeping (elapsed seconds, resumes) that is not part of the result proper.
    """

    steps: np.ndarray
    records: dict
    final: dict
    final_observables: dict
    paths: np.ndarray
    div_step: np.ndarray
    div_loss: np.ndarray
    config: dict
    info: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ derived
    @property
    def dt(self) -> float:
        return float(self.config["dt"])

    @property
    def lr(self) -> float:
        return float(self.config["lr"])

    @property
    def n_steps(self) -> int:
        return int(self.config["steps"])

    @property
    def model(self) -> str:
        return str(self.config["model"])

    @property
    def t(self) -> np.ndarray:
        """SDE time of the record steps, dt * k, shape (n_records,)."""
        return self.dt * self.steps

    @property
    def tau(self) -> np.ndarray:
        """Slow time of the record steps, lr * t, shape (n_records,)."""
        return self.lr * self.t

    @property
    def n_paths(self) -> int:
        return int(self.paths.shape[0])

    @property
    def diverged_mask(self) -> np.ndarray:
        """(n_paths,) bool, True for the paths that diverged."""
        return self.div_step >= 0

    @property
    def diverged(self) -> list[dict]:
        """One dict per diverged path: path id, step, loss and the message."""
        hint = self.config.get("divergence_hint", "")
        out = []
        for row in np.flatnonzero(self.diverged_mask):
            p, k, L = int(self.paths[row]), int(self.div_step[row]), float(self.div_loss[row])
            out.append({"path": p, "step": k, "loss": L,
                        "message": f"path {p} diverged at step {k} (loss = {L:.6g}): {hint}"})
        return out

    @property
    def theta(self) -> np.ndarray:
        """Final parameters, (n_paths, 2d)."""
        return self.final["theta"]

    @property
    def family(self) -> str:
        """The model family of the run's problem ("diagonal" for results written before there were others)."""
        return self.config.get("problem", {}).get("family", "diagonal")

    @property
    def w(self) -> np.ndarray:
        """Final w(theta), (n_paths, d) (diagonal family only: the others have :attr:`theta`)."""
        if self.family != "diagonal":
            from ..errors import DiagsimError
            raise DiagsimError(f"Result.w is the diagonal network's w(theta); this run is of model family "
                               f"{self.family!r}: use Result.theta")
        p = parametrization(self.config["problem"]["parametrization"])
        return w_numpy(p, self.final["theta"])

    def _valid(self) -> np.ndarray:
        return ~self.diverged_mask

    def mean_se(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error over the non-diverged paths of per-path values (n_paths, ...).

        The standard error is std(ddof=1) / sqrt(M); NaN when fewer than two paths remain.
        """
        v = np.asarray(values, dtype=np.float64)[self._valid()]
        if v.shape[0] == 0:
            nan = np.full(v.shape[1:], np.nan)
            return nan, nan.copy()
        mean = v.mean(axis=0)
        se = v.std(axis=0, ddof=1) / math.sqrt(v.shape[0]) if v.shape[0] > 1 else np.full(v.shape[1:], np.nan)
        return mean, se

    @property
    def w_mean(self) -> np.ndarray:
        """Ensemble mean of the final w over non-diverged paths, (d,)."""
        return self.mean_se(self.w)[0]

    @property
    def w_se(self) -> np.ndarray:
        """Standard error of :attr:`w_mean`, (d,)."""
        return self.mean_se(self.w)[1]

    # ------------------------------------------------------------------ display and analysis
    def __repr__(self) -> str:
        from .display import result_text
        return result_text(self)

    def _repr_html_(self) -> str:
        from .display import result_html
        return result_html(self)

    def plot(self, ax=None, *, observables=("test_loss", "l1", "support", "trace_h"), x: str = "step",
             band: float = 2.0, label: str | None = None, logx: bool | None = None, **line_kw):
        """Draw recorded observables against the steps (or a time scale), one panel each.

        Each panel shows the ensemble mean over the paths that did not diverge and, shaded, ``band``
        standard errors either side. Calling it again with the same ``ax`` overlays another result (e.g.
        the same optimizer at the discrete, SDE and slow-flow levels).

        Parameters
        ----------
        ax : matplotlib Axes or sequence of Axes, optional
            One Axes per observable; by default a new figure with one row of panels.
        observables : sequence of str
            Recorded observables to draw (keys of ``records``); by default the test loss, ``||w||_1``,
            the support size and the measure ``tr H``.
        x : {"step", "t", "tau"}
            The clock on the horizontal axis.
        band : float
            Half-width of the shaded band in standard errors (0: no band).
        label : str, optional
            The lines' legend label (default: optimizer and level, e.g. ``"sgd (discrete)"``).
        logx : bool, optional
            Logarithmic horizontal axis; by default when the record grid is ``"log"``.
        **line_kw
            Passed to ``Axes.plot`` (colour, line style, ...).

        Returns
        -------
        numpy.ndarray of Axes
            The panels, in the order of ``observables``.
        """
        from .display import plot_result
        return plot_result(self, ax, observables=observables, x=x, band=band, label=label, logx=logx,
                           **line_kw)

    def to_xarray(self):
        """The result as an ``xarray.Dataset`` (needs the optional extra ``analysis``).

        Dimensions ``step`` (the record grid) and ``path``; coordinates ``step``, ``t`` and ``tau`` (over
        ``step``) and the path ids ``path``. Variables: every recorded observable over ``(step, path)``,
        the final states ``final_<name>`` over ``(path, parameter)`` (``parameter`` is labelled ``u0 ...
        v{d-1}``), the final ``final_w`` over ``(path, coordinate)``, the final observables
        ``final_<observable>`` and the divergence report ``diverged_step``, ``diverged_loss`` over
        ``path``. The configuration is in the attributes (nested entries, such as ``problem``,
        ``optimizer`` and ``versions``, as JSON strings): see :mod:`diagsim.engine.labelled` for the
        names, and :func:`diagsim.engine.labelled.config_from_attrs` to read the configuration back.

        Returns
        -------
        xarray.Dataset
        """
        from .labelled import to_xarray
        return to_xarray(self)

    def to_dataframe(self, layout: str = "wide"):
        """The records as a ``pandas.DataFrame`` (needs the optional extra ``analysis``).

        Parameters
        ----------
        layout : {"wide", "long"}
            ``"wide"``: one row per record step and path, columns ``step``, ``t``, ``tau``, ``path`` and one
            column per recorded observable (named as in ``records``). ``"long"``: one row per record
            step, path and observable, columns ``step``, ``t``, ``tau``, ``path``, ``observable``,
            ``value`` (the layout seaborn's ``hue=`` and ``groupby`` expect).

        Returns
        -------
        pandas.DataFrame
            ``"wide"``: rows ordered by step, then path; ``"long"``: by observable, then step, then path.
        """
        from .labelled import to_dataframe
        return to_dataframe(self, layout)

    def summary(self) -> dict:
        """JSON-ready summary: w_mean, w_se, final observables (mean and se), horizon, divergence.
        Non-finite numbers (e.g. a standard error of one path, an infinite loss) become None."""
        out = {"model": self.model, "optimizer": self.config["optimizer"].get("optimizer"),
               "n_paths": self.n_paths, "n_diverged": int(self.diverged_mask.sum()),
               "steps": self.n_steps, "t": self.n_steps * self.dt, "tau": self.n_steps * self.dt * self.lr,
               "seed": self.config["seed"]}
        for name, val in self.final_observables.items():
            mean, se = self.mean_se(val)
            out[name] = _json_float(mean)
            out[f"{name}_se"] = _json_float(se)
        if self.family == "diagonal":
            mean, se = self.mean_se(self.w)
            out["w_mean"] = [_json_float(x) for x in mean]
            out["w_se"] = [_json_float(x) for x in se]
        else:
            out["family"] = self.family
        out["diverged"] = [{**rep, "loss": _json_float(rep["loss"])} for rep in self.diverged]
        return out

    # ------------------------------------------------------------------ i/o
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"steps": self.steps, "paths": self.paths, "div_step": self.div_step, "div_loss": self.div_loss}
        arrays.update({f"rec__{k}": v for k, v in self.records.items()})
        arrays.update({f"final__{k}": v for k, v in self.final.items()})
        arrays.update({f"obs__{k}": v for k, v in self.final_observables.items()})
        return arrays

    def save(self, path, *, sidecar: bool = True) -> Path:
        """Write ``path`` (.npz, atomically) and, with ``sidecar``, ``<path>.json`` (config + summary)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "config": self.config, "info": self.info,
                "records": list(self.records), "final": list(self.final),
                "final_observables": list(self.final_observables)}
        write_npz_atomic(path, self.to_arrays(), meta)
        if sidecar:
            side = path.with_suffix(".json")
            text = to_json({"config": self.config, "info": self.info, "summary": self.summary()}, indent=1)
            write_text_atomic(side, text + "\n")
        return path


def load_result(path) -> Result:
    """Read a result written by :meth:`Result.save`."""
    arrays, meta = read_npz(path, FORMAT, "result")
    sub = lambda prefix, names: {k: arrays[f"{prefix}__{k}"] for k in names}  # noqa: E731
    return Result(steps=arrays["steps"], records=sub("rec", meta["records"]), final=sub("final", meta["final"]),
                  final_observables=sub("obs", meta["final_observables"]), paths=arrays["paths"],
                  div_step=arrays["div_step"], div_loss=arrays["div_loss"], config=meta["config"],
                  info=meta.get("info", {}))


def _json_float(x):
    x = float(x)
    return x if math.isfinite(x) else None
