"""``diagsim sweep``: run a parameter sweep from a TOML config, cache every job, write the table.

    diagsim sweep --config sweep.toml [--backend serial|local|dask] [--scheduler ADDRESS] [--workers N]
                  [--out DIR] [--cache DIR] [--plot FILE] [--quick] [--dry-run]

Writes ``DIR/<name>.npz`` and ``DIR/<name>.csv`` (one row per grid point) and prints a summary. Results
are cached under ``--cache`` (default ``results/cache``) by a hash of (job config, diagsim version), so a
re-run computes only what is missing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import print_table

DEFAULT_CACHE = "results/cache"


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a parameter sweep (serial, process pool or Dask), cached",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="FILE", help="sweep TOML (see diagsim.sweep.config)")
    p.add_argument("--backend", default="serial", help="serial | local | dask (default serial)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (tcp://host:8786); "
                   "default: start a LocalCluster")
    p.add_argument("--workers", type=int, help="processes for local / LocalCluster workers "
                   "(default: the cores)")
    p.add_argument("--out", metavar="DIR", help="where the table goes (default results/sweeps/<name>)")
    p.add_argument("--cache", metavar="DIR", default=DEFAULT_CACHE,
                   help=f"result cache (default {DEFAULT_CACHE})")
    p.add_argument("--plot", metavar="FILE", help="write the phase diagram of [plot] (.png/.pdf)")
    p.add_argument("--quick", action="store_true", help="apply the config's [quick] overrides")
    p.add_argument("--retry-failed", action="store_true", help="recompute jobs that failed before")
    p.add_argument("--dry-run", action="store_true", help="print the plan (jobs, cached) and stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import DiagsimError
    from ..sweep import collect, load_sweep, plan_sweep, run_sweep

    if args.scheduler and args.backend != "dask":
        raise DiagsimError(f"--scheduler needs --backend dask (got --backend {args.backend})")
    sweep = load_sweep(args.config, quick=args.quick)
    if args.dry_run:
        plan = plan_sweep(sweep, args.cache)
        status = plan.status()
        counts = {s: sum(v == s for v in status.values()) for s in ("ok", "failed", "missing")}
        print(f"sweep {sweep.name!r}: {len(plan.jobs)} points over {', '.join(sweep.keys) or '(no grid)'} "
              f"(shape {sweep.shape}), {len(status)} jobs: {counts['ok']} cached, {counts['failed']} failed, "
              f"{counts['missing']} to compute; cache {args.cache}")
        return 0
    report = run_sweep(sweep, args.cache, backend=args.backend, workers=args.workers,
                       scheduler=args.scheduler, progress=not args.no_progress,
                       retry_failed=args.retry_failed, raise_on_crash=False)
    print(report.line())
    table = collect(sweep, args.cache, missing="nan")
    out = Path(args.out) if args.out else Path("results") / "sweeps" / sweep.name
    npz, csv = table.save(out / f"{sweep.name}.npz"), table.save(out / f"{sweep.name}.csv")
    print(f"table: {npz} and {csv} ({len(table)} rows)")
    _preview(table, sweep.keys)
    if args.plot:
        from ..sweep.plot import plot_sweep
        print(f"phase diagram: {plot_sweep(table, sweep.plot, args.plot, keys=sweep.keys)}")
    if report.crashed:
        key, typ, msg = report.crashed[0]
        raise DiagsimError(f"{len(report.crashed)} job(s) crashed (not cached; re-run to retry); first, job "
                           f"{key}: {typ}: {msg}")
    return 0


#: summary columns shown first in the printed preview, when present
PREFERRED = ("test_loss", "rel_error", "recovered", "support", "support_size", "l1", "trace_h",
             "trace_sqrt_diag_h", "train_loss", "n_diverged")


def _preview(table, keys, max_rows: int = 20, max_cols: int = 8) -> None:
    rest = [n for n in table.names if n not in ("index", "key", "status", "error", *keys)
            and table[n].dtype.kind in "fiub" and not n.endswith("_se")]
    summary = [n for n in PREFERRED if n in rest] + [n for n in rest if n not in PREFERRED]
    status = ["status"] if set(table["status"]) != {"ok"} else []
    names = (list(keys) + status + summary)[:max(max_cols, len(keys) + len(status) + 1)]
    rows = [tuple(table[n][i].item() for n in names) for i in range(min(len(table), max_rows))]
    print_table(rows, tuple(names))
    if len(table) > max_rows:
        print(f"... {len(table) - max_rows} more rows")
