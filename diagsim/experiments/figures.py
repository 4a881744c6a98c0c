"""The paper-reproduction pipeline behind ``diagsim figures`` (the figures live in ``paper_repro/``).

Each figure is a pair ``paper_repro/<name>.toml`` + ``paper_repro/<name>.py``:

- the TOML has a ``[figure]`` table (title, description) and one or more sweeps under
  ``[sweeps.<label>]`` (each a sweep document, :mod:`diagsim.sweep.grid`, with its own ``[quick]``
  overrides). ``include = "other.toml#label"`` reuses another figure's sweep (same jobs, same cache
  entries), with the remaining keys merged over it.
- the script defines ``plot(ctx)``; it only reads cached results through ``ctx`` and draws. Running
  ``python paper_repro/<name>.py [--quick] [--cache DIR] [--out DIR]`` calls it (and fails with a clear
  message if the results are not computed yet).

:func:`make_figure` computes the figure's sweeps (cached: a second call computes nothing) and runs the
script. Figures use the Agg backend and the style file ``paper_repro/diagsim.mplstyle``; PDFs are written
with ``metadata={"CreationDate": None}`` so that identical results give identical files.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiagsimError
from ..sweep.grid import Sweep, deep_merge, read_toml, sweep_from_dict

STYLE_FILE = "diagsim.mplstyle"


# --------------------------------------------------------------------------- locating figures
def repro_dir(path=None) -> Path:
    """The ``paper_repro`` folder: ``path``, else ``$DIAGSIM_REPRO``, else next to the package (a source
    checkout), else ``./paper_repro``."""
    cands = [path, os.environ.get("DIAGSIM_REPRO"), Path(__file__).resolve().parents[2] / "paper_repro",
             Path.cwd() / "paper_repro"]
    for c in cands:
        if c and Path(c).is_dir():
            return Path(c)
    raise DiagsimError("cannot find the paper_repro folder (run from a source checkout or pass --repro DIR)")


def list_figures(root=None) -> list[str]:
    """Names of the figures: ``<name>.toml`` files with a matching ``<name>.py`` script, sorted with numbers
    compared as numbers (fig9 before fig11)."""
    root = repro_dir(root)
    names = [p.stem for p in root.glob("*.toml") if (root / f"{p.stem}.py").is_file()]
    return sorted(names, key=lambda s: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s)])


# --------------------------------------------------------------------------- figure configs
@dataclass
class FigureSpec:
    name: str
    title: str
    description: str
    sweeps: dict[str, Sweep]
    config_path: Path
    script_path: Path
    quick: bool = False
    options: dict = field(default_factory=dict)


def _read_toml(path: Path) -> dict:
    return read_toml(path, "figure config")


def _resolve_include(doc: dict, here: Path, seen: tuple = ()) -> dict:
    inc = doc.get("include")
    if inc is None:
        return doc
    if not isinstance(inc, str) or "#" not in inc:
        raise DiagsimError(f"include must be 'file.toml#sweep-label', got {inc!r}")
    fname, _, label = inc.partition("#")
    path = (here.parent / fname).resolve()
    if (path, label) in seen:
        raise DiagsimError(f"include cycle through {inc!r}")
    other = _read_toml(path).get("sweeps", {})
    if label not in other:
        raise DiagsimError(f"include {inc!r}: {path.name} has no [sweeps.{label}]")
    base = _resolve_include(other[label], path, seen + ((path, label),))
    rest = {k: v for k, v in doc.items() if k != "include"}
    return deep_merge(base, rest)


def load_figure(name_or_path, *, quick: bool = False, root=None) -> FigureSpec:
    """Read ``paper_repro/<name>.toml`` (or a path) into a :class:`FigureSpec`."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = repro_dir(root) / f"{name_or_path}.toml"
    doc = _read_toml(p)
    unknown = sorted(set(doc) - {"figure", "sweeps"})
    if unknown:
        raise DiagsimError(f"{p.name}: unknown top-level key(s) {', '.join(unknown)}; "
                           "allowed: figure, sweeps")
    fig = doc.get("figure", {})
    sweeps_doc = doc.get("sweeps", {})
    if not isinstance(sweeps_doc, dict) or not sweeps_doc:
        raise DiagsimError(f"{p.name}: needs at least one [sweeps.<label>] table")
    sweeps = {}
    for label, sd in sweeps_doc.items():
        sd = _resolve_include(sd, p)
        sd = deep_merge(sd, {"sweep": {"name": sd.get("sweep", {}).get("name", f"{p.stem}.{label}")}})
        try:
            sweeps[label] = sweep_from_dict(sd, quick=quick, source=str(p))
        except DiagsimError as exc:
            raise DiagsimError(f"{p.name} [sweeps.{label}]: {exc}") from None
    options = {k: v for k, v in fig.items() if k not in ("title", "description")}
    if quick and isinstance(fig.get("quick"), dict):
        options = deep_merge(options, fig["quick"])
    options.pop("quick", None)
    return FigureSpec(p.stem, fig.get("title", p.stem), fig.get("description", ""), sweeps, p,
                      p.with_suffix(".py"), quick, options)


# --------------------------------------------------------------------------- the script's context
class FigureContext:
    """What a figure script's ``plot(ctx)`` gets: cached results, tables, options, and ``save``."""

    def __init__(self, spec: FigureSpec, cache_dir, out_dir, formats=("pdf", "png")):
        self.spec = spec
        self.cache_dir = Path(cache_dir)
        self.out_dir = Path(out_dir)
        self.formats = tuple(formats)
        self.quick = spec.quick
        self.options = spec.options
        self.written: list[Path] = []
        self.figures: list = []  # the matplotlib figures saved, in order (for inspection in tests)

    def results(self, label: str, missing: str = "error"):
        """``[(job, result)]`` of sweep ``label`` in expansion order (see ``load_results``)."""
        from ..sweep.table import load_results
        return load_results(self._sweep(label), self.cache_dir, missing=missing)

    def table(self, label: str, missing: str = "error"):
        from ..sweep.table import collect
        return collect(self._sweep(label), self.cache_dir, missing=missing)

    def _sweep(self, label: str) -> Sweep:
        if label not in self.spec.sweeps:
            raise DiagsimError(f"figure {self.spec.name!r} has no sweep {label!r}; it has "
                               f"{', '.join(self.spec.sweeps)}")
        return self.spec.sweeps[label]

    def save(self, fig, stem: str | None = None) -> list[Path]:
        """Write ``<out>/<stem>.<fmt>`` for every format (PDF without a creation date)."""
        from ..storage import save_figure
        stem = stem or self.spec.name
        paths = [save_figure(fig, self.out_dir / f"{stem}.{fmt}") for fmt in self.formats]
        self.written += paths
        self.figures.append(fig)
        return paths

    def save_json(self, summary, stem: str | None = None) -> Path:
        """Write the figure's numbers, ``<out>/<stem>.json`` (NumPy values allowed), next to its images."""
        from ..storage import to_json, write_text_atomic
        path = write_text_atomic(self.out_dir / f"{stem or self.spec.name}.json", to_json(summary, indent=1))
        self.written.append(path)
        return path


def _use_style(root: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    style = root / STYLE_FILE
    plt.rcdefaults()
    if style.is_file():
        plt.style.use(str(style))


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"diagsim_figure_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise DiagsimError(f"cannot load figure script {str(path)!r}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "plot"):
        raise DiagsimError(f"figure script {path.name} must define plot(ctx)")
    return mod


def render_figure(spec: FigureSpec, cache_dir, out_dir, *, formats=("pdf", "png")) -> list[Path]:
    """Run the figure's script on cached results (raises if any is missing)."""
    import matplotlib.pyplot as plt
    _use_style(spec.config_path.parent)
    ctx = FigureContext(spec, cache_dir, out_dir, formats)
    try:
        _load_script(spec.script_path).plot(ctx)
    finally:
        plt.close("all")
    return ctx.written


def compute_figure(spec: FigureSpec, cache_dir, *, backend: str = "serial", workers=None, scheduler=None,
                   progress: bool = True) -> list:
    """Run every sweep of the figure (only what is not cached)."""
    from ..sweep.runner import run_sweep
    return [run_sweep(sw, cache_dir, backend=backend, workers=workers, scheduler=scheduler,
                      progress=progress) for sw in spec.sweeps.values()]


@dataclass
class FigureReport:
    """Wall-clock seconds of the compute and plot phases, CPU seconds of both (this process and its
    finished worker processes: unlike wall time, it does not grow when other programs share the cores),
    job counts, and the files written."""

    name: str
    compute_s: float
    plot_s: float
    computed: int
    cached: int
    files: list
    cpu_s: float = 0.0


def _cpu_seconds() -> float:
    import resource
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_figure(name, *, quick: bool = False, cache_dir=None, out_dir=None, root=None,
                backend: str = "serial", workers=None, scheduler=None, progress: bool = True,
                formats=("pdf", "png"), device: str | None = None) -> FigureReport:
    """Compute (cached) and draw one figure. Defaults: cache ``results/paper_repro/cache`` (quick:
    ``results/paper_repro/cache-quick``), output ``figures/full/`` (quick: ``figures/``) next to
    ``paper_repro``. ``device`` runs the figure's simulations there ("cuda", "auto"; None: as configured);
    the device is part of each job's configuration, so such results have their own cache entries."""
    root = repro_dir(root)
    spec = load_figure(name, quick=quick, root=root)
    spec.sweeps = {label: sw.on_device(device) for label, sw in spec.sweeps.items()}
    cache_dir = Path(cache_dir) if cache_dir else default_cache(root, quick)
    out_dir = Path(out_dir) if out_dir else default_out(root, quick)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    reports = compute_figure(spec, cache_dir, backend=backend, workers=workers, scheduler=scheduler,
                             progress=progress)
    t1 = time.perf_counter()
    files = render_figure(spec, cache_dir, out_dir, formats=formats)
    t2 = time.perf_counter()
    return FigureReport(spec.name, t1 - t0, t2 - t1, sum(r.computed for r in reports),
                        sum(r.cached for r in reports), files, _cpu_seconds() - c0)


def default_cache(root: Path, quick: bool) -> Path:
    """``results/paper_repro/cache-quick`` or ``.../cache`` next to the paper_repro folder."""
    return root.parent / "results" / "paper_repro" / ("cache-quick" if quick else "cache")


def default_out(root: Path, quick: bool) -> Path:
    """``figures/`` (quick) or ``figures/full/`` next to the paper_repro folder."""
    return root.parent / "figures" / ("" if quick else "full")


# --------------------------------------------------------------------------- standalone scripts
def script_main(script_file: str, argv=None) -> int:
    """``python paper_repro/<name>.py [--quick] [--cache DIR] [--out DIR]``: plot from the cache only."""
    path = Path(script_file).resolve()
    ap = argparse.ArgumentParser(prog=path.name, description=f"Draw {path.stem} from cached results "
                                 "(compute them first with `diagsim figures --only NAME`).")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cache", metavar="DIR")
    ap.add_argument("--out", metavar="DIR")
    args = ap.parse_args(argv)
    try:
        spec = load_figure(path.with_suffix(".toml"), quick=args.quick)
        cache = Path(args.cache) if args.cache else default_cache(path.parent, args.quick)
        out = Path(args.out) if args.out else default_out(path.parent, args.quick)
        for f in render_figure(spec, cache, out):
            print(f)
    except DiagsimError as exc:
        print(f"{path.name}: error: {exc}")
        return 2
    return 0
