"""``diagsim sweep``: run a parameter sweep from a TOML config, cache every job, write the table.

    diagsim sweep --config sweep.toml [--backend serial|local|dask] [--scheduler ADDRESS] [--workers N]
                  [--out DIR] [--cache DIR] [--plot FILE] [--quick] [--dry-run]

Writes ``DIR/<name>.npz`` and ``DIR/<name>.csv`` (one row per grid point) and prints a summary, then a
warning if some paths of some jobs diverged (see the n_diverged column). Results are cached under
``--cache`` (default ``results/cache``) by a hash of (job config, diagsim version), so a re-run computes
only what is missing.

Cache integrity: every entry carries a manifest (its key, configuration, diagsim version, and the
result's size and SHA-256); an entry that does not match it (copied, truncated, half-written) is
corrupt: the run says so and recomputes it, and the table never shows its values.

Several sweeps may share one cache: each job is claimed (<key>.claim) while it runs, a job another live
sweep holds is waited for ("k jobs being computed by pid P on HOST"), and a claim whose owner died, or
that was not refreshed for 5 minutes, is taken over.

--backend local: a worker process that dies (killed, out of memory) costs only the job it was running,
which is run once more and, if it dies again, reported as crashed; the other jobs carry on. Crashed
jobs are not cached: a re-run tries them again (exit status 2 while any remain).

Ctrl-C (exit status 130) and SIGTERM (exit status 143, what batch schedulers send) stop the workers or
the Dask cluster, keep every result already written and remove this sweep's claims; re-run to resume.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import numpy as np

from .common import print_table

DEFAULT_CACHE = "results/cache"


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a parameter sweep (serial, process pool or Dask), cached",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="FILE", help="sweep TOML (see diagsim.sweep.grid)")
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
    p.add_argument("--device", default=None, help="cpu | cuda | auto: run every simulation job there "
                   "(default: as the config says, the CPU if it says nothing)")
    p.set_defaults(func=main)


def main(args) -> int:
    try:
        return _main(args)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM turned into RunInterrupted by the console script
        signum = getattr(exc, "signum", signal.SIGINT)
        how = "terminated by SIGTERM" if signum == signal.SIGTERM else "interrupted"
        print(f"diagsim sweep: {how}; the results written so far are kept in {args.cache} (re-run to resume)",
              file=sys.stderr)
        return 128 + int(signum)


def _main(args) -> int:
    from ..errors import DiagsimError, check_choice
    from ..storage import check_output_dir
    from ..sweep import collect, load_sweep, plan_sweep, run_sweep
    from ..sweep.backends import BACKENDS

    check_choice("backend", args.backend, BACKENDS)
    if args.scheduler and args.backend != "dask":
        raise DiagsimError(f"--scheduler needs --backend dask (got --backend {args.backend})")
    sweep = load_sweep(args.config, quick=args.quick).on_device(args.device)
    if args.dry_run:
        plan = plan_sweep(sweep, args.cache)
        status = plan.status()
        counts = {s: sum(v == s for v in status.values()) for s in ("ok", "failed", "missing", "corrupt")}
        corrupt = f", {counts['corrupt']} corrupt (to recompute)" if counts["corrupt"] else ""
        print(f"sweep {sweep.name!r}: {len(plan.jobs)} points over {', '.join(sweep.keys) or '(no grid)'} "
              f"(shape {sweep.shape}), {len(status)} jobs: {counts['ok']} cached, {counts['failed']} failed, "
              f"{counts['missing']} to compute{corrupt}; cache {args.cache}")
        return 0
    plan_sweep(sweep, args.cache)                        # every job's config is valid...
    out = Path(args.out) if args.out else Path("results") / "sweeps" / sweep.name
    check_output_dir(out, "--out folder")                # ...and the table can be written: before any work
    report = run_sweep(sweep, args.cache, backend=args.backend, workers=args.workers,
                       scheduler=args.scheduler, progress=not args.no_progress,
                       retry_failed=args.retry_failed, raise_on_crash=False)
    print(report.line())
    table = collect(sweep, args.cache, missing="nan")
    npz, csv = table.save(out / f"{sweep.name}.npz"), table.save(out / f"{sweep.name}.csv")
    print(f"table: {npz} and {csv} ({len(table)} rows)")
    _preview(table, sweep.keys)
    warning = divergence_warning(table, sweep.keys)
    if warning:
        print(f"diagsim sweep: warning: {warning}", file=sys.stderr)
    if args.plot:
        from ..sweep.plot import plot_sweep
        print(f"phase diagram: {plot_sweep(table, sweep.plot, args.plot, keys=sweep.keys)}")
    if report.crashed:
        key, typ, msg = report.crashed[0]
        raise DiagsimError(f"{len(report.crashed)} job(s) crashed (not cached; re-run to retry); first, job "
                           f"{key}: {typ}: {msg}")
    return 0


def divergence_warning(table, keys) -> str | None:
    """One line if some paths of some jobs diverged (tables with an ``n_diverged`` column), naming the
    job with the largest diverged fraction; None otherwise."""
    if "n_diverged" not in table:
        return None
    ok = table["status"] == "ok"
    n_div = np.where(ok, np.nan_to_num(table["n_diverged"].astype(float)), 0.0)
    hit = np.flatnonzero(n_div > 0)
    if not hit.size:
        return None
    n_paths = table["n_paths"].astype(float) if "n_paths" in table else np.full(len(table), np.nan)
    frac = np.where(n_paths > 0, n_div / np.where(n_paths > 0, n_paths, 1.0), 0.0)
    i = hit[np.argmax(frac[hit])]
    params = ", ".join(f"{k}={table[k][i].item()!r}" for k in keys) or "the base config"
    of = f" of {int(n_paths[i])}" if np.isfinite(n_paths[i]) else ""
    return (f"in {hit.size} of {int(ok.sum())} jobs some paths diverged (job {int(table['index'][i])}, "
            f"{params}: {int(n_div[i])}{of} paths); see the n_diverged column")


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
