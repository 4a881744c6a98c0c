"""``diagsim verify``: run the theorem checks; print the measurements against the predictions.

    diagsim verify [--quick] [--only NAME ...] [--json FILE] [--plots DIR] [--list]

Prints one row per check case (check, measured, predicted, tolerance, PASS/FAIL), then, for every failure,
the numbers that disagree. Exits 1 when any check fails (0 when all pass; 2 on bad arguments).
"""
from __future__ import annotations

import json
import platform
import sys
import time

from ..errors import DiagsimError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="run every theorem check (simulation vs theory) and print a PASS/FAIL table",
        description="Run the theorem checks: Euler-Maruyama orders, discrete vs SDE weak "
                    "error, ensembles vs slow flows, flow limits vs symbolic predictions, monotone measures, "
                    "finite-time extinction, the Woodworth interpolator, and Adam vs SGD on sparse "
                    "regression (docs/theory.md §11). "
                    "Exit status 1 if any check fails.")
    p.add_argument("--quick", action="store_true", help="CI sizes (all checks in under 3 minutes on 2 cores)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these checks (names or numbers; see --list)")
    p.add_argument("--json", metavar="FILE",
                   help="write every row (with its raw numbers) as JSON ('-': stdout)")
    p.add_argument("--plots", metavar="DIR", help="write one figure per check (PNG) into DIR")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def _cell(x) -> str:
    return x if isinstance(x, str) else f"{x:.4g}"


def table(rows) -> str:
    """The verify table as text (check, measured, predicted, tolerance, verdict)."""
    head = ("check", "measured", "predicted", "tolerance", "result")
    body = []
    for r in rows:
        if r.error is not None:
            body.append((r.name, "ERROR", "", "", "FAIL"))
        else:
            body.append((r.name, _cell(r.measured), r.predicted_text(), _cell(r.tolerance), r.verdict))
    cells = [head] + body
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for j, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows) -> str:
    """The same table in Markdown, with what was measured and how the tolerance was derived."""
    out = ["| check | measured | predicted | tolerance | result | what / tolerance from |",
           "|---|---:|---:|---:|---|---|"]
    esc = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    for r in rows:
        if r.error is not None:
            out.append(f"| {r.name} | ERROR | | | **FAIL** | {esc(r.error)} |")
            continue
        v = "PASS" if r.passed else "**FAIL**"
        out.append(f"| {r.name} | {_cell(r.measured)} | {r.predicted_text()} | {_cell(r.tolerance)} | {v} | "
                   f"{esc(r.quantity)}; tolerance: {esc(r.derivation)} |")
    return "\n".join(out)


def run(args) -> int:
    from ..verify import resolve, run_checks
    if args.list:
        for c in resolve(None):
            print(f"{c.number}  {c.name:<18} {c.title}")
        return 0
    checks = resolve(args.only)  # validates names early (DiagsimError -> exit 2)
    if args.json and args.json != "-":
        from pathlib import Path
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            raise DiagsimError(f"--json: directory {str(parent)!r} does not exist")
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    rows = run_checks([c.name for c in checks], quick=args.quick, plots_dir=args.plots, log=log)
    wall = time.perf_counter() - t0
    print(table(rows))
    failed = [r for r in rows if not r.passed]
    n = len(rows)
    print(f"\n{n - len(failed)}/{n} passed in {wall:.1f} s ({'quick' if args.quick else 'full'} mode)")
    if failed:
        print("\nFAILED (the numbers that disagree):")
        for r in failed:
            print("  " + r.disagreement())
    if args.json:
        doc = {"mode": "quick" if args.quick else "full", "seconds": round(wall, 2), "passed": not failed,
               "n_rows": n, "n_failed": len(failed), "checks": [c.name for c in checks],
               "platform": {"python": platform.python_version(), "machine": platform.machine()},
               "rows": [r.to_dict() for r in rows]}
        text = json.dumps(doc, indent=1)
        if args.json == "-":
            print(text)
        else:
            try:
                with open(args.json, "w") as f:
                    f.write(text + "\n")
            except OSError as exc:
                raise DiagsimError(f"cannot write --json file {args.json!r}: {exc.strerror}") from None
    return 1 if failed else 0
