"""``diagsim correlate``: train a population of networks from a TOML config and print Kendall's tau of every
sharpness measure with the test loss (bootstrap intervals over networks) and the published claims' verdicts.

    diagsim correlate --config FILE [--quick] [--cache DIR] [--backend serial|local|dask] [--workers N]
                      [--resamples B] [--conf C] [--bootstrap-seed S] [--json FILE]

FILE is either a sweep of ``job = "population"`` jobs (diagsim.sweep.popjob; one network per grid point) or
a figure config with several such sweeps under ``[sweeps.<label>]`` (e.g.
paper_repro/fig7_sharpness_correlation.toml, whose ``[figure]`` table gives the bootstrap options). Every
job is cached under ``--cache`` (default results/cache), so a re-run only recomputes the analysis. The
analysis is diagsim.experiments.correlate.summarize_population: networks that did not reach the target
loss are excluded and counted.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import print_table

DEFAULT_CACHE = "results/cache"


def register(sub) -> None:
    p = sub.add_parser("correlate", help="Kendall tau of every sharpness measure with the test loss over a "
                       "population of trained networks", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="FILE", help="population sweep or figure TOML")
    p.add_argument("--quick", action="store_true", help="apply the config's [quick] overrides")
    p.add_argument("--cache", metavar="DIR", default=DEFAULT_CACHE, help=f"result cache (default {DEFAULT_CACHE})")
    p.add_argument("--backend", default="serial", help="serial | local | dask (default serial)")
    p.add_argument("--workers", type=int, help="processes for --backend local/dask")
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default: the config's, else 2000)")
    p.add_argument("--conf", type=float, help="interval level (default: the config's, else 0.95)")
    p.add_argument("--bootstrap-seed", type=int, help="bootstrap seed (default: the config's, else 0)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def _populations(path: Path, quick: bool):
    """({label: Sweep}, analysis options from the file) of a sweep or figure TOML."""
    from ..errors import DiagsimError
    from ..experiments.figures import load_figure
    from ..sweep import load_sweep
    from ..sweep.grid import read_toml
    doc = read_toml(path, "--config file")
    if "sweeps" in doc:
        spec = load_figure(path, quick=quick)
        sweeps, options = spec.sweeps, dict(spec.options)
    else:
        sw = load_sweep(path, quick=quick)
        sweeps, options = {sw.name: sw}, {}
    for label, sw in sweeps.items():
        if sw.job != "population":
            raise DiagsimError(f"sweep {label!r} of {path.name} has job = {sw.job!r}; diagsim correlate needs "
                               "job = \"population\"")
    return sweeps, options


def main(args) -> int:
    from ..errors import check_choice
    from ..experiments.correlate import check_analysis_options, population_rows, summarize_population
    from ..storage import check_output_file, to_json, write_text_atomic
    from ..sweep import load_results, plan_sweep, run_sweep
    from ..sweep.backends import BACKENDS

    check_choice("backend", args.backend, BACKENDS)
    sweeps, options = _populations(Path(args.config), args.quick)
    for key, val in (("n_resamples", args.resamples), ("conf", args.conf), ("bootstrap_seed", args.bootstrap_seed)):
        if val is not None:
            options[key] = val
    opts = check_analysis_options(options)
    for sw in sweeps.values():
        plan_sweep(sw, args.cache)                 # every job's config is valid, before any work
    if args.json:
        check_output_file(args.json, "--json file")
    out = {}
    for label, sw in sweeps.items():
        run_sweep(sw, args.cache, backend=args.backend, workers=args.workers, progress=not args.no_progress)
        s = summarize_population(population_rows(load_results(sw, args.cache)), **opts)
        out[label] = s
        print(f"\n{label}: {s['n_converged']} of {s['n_jobs']} networks converged, {s['n_excluded']} excluded "
              f"({s['n_diverged']} diverged); tau = Kendall tau-b (measure, test loss), "
              f"{100 * s['conf']:g} % bootstrap intervals over {s['n_resamples']} resamples")
        print_table([(n, t["tau"], t["lo"], t["hi"], t["p_value"]) for n, t in s["tau"].items()],
                    ("measure", "tau", "lo", "hi", "p"))
        hs = s["claims"]["hide_and_seek"]
        for name in ("worst_adaptive", "geodesic_inv", "geodesic_mix"):
            c = hs[name]
            if "tau" in c:
                print(f"  {c['label']}: published {c['paper']:+.2f}, here {name} {c['tau']:+.2f} "
                      f"[{c['lo']:+.2f}, {c['hi']:+.2f}]: magnitude {c['magnitude']}")
        for geo in ("geodesic_inv", "geodesic_mix"):
            c = hs.get(f"{geo}_beats_adaptive")
            if c:
                print(f"  |tau| {geo} > |tau| worst_adaptive: {c['verdict']} "
                      f"(difference [{c['diff_lo']:+.3f}, {c['diff_hi']:+.3f}])")
        if "renyi_strongest" in s["claims"]:
            print(f"  Renyi sharpness ranks better than every other measure: "
                  f"{s['claims']['renyi_strongest']['verdict']}")
    if args.json:
        print(f"\nJSON: {write_text_atomic(args.json, to_json(out, indent=1))}")
    return 0
