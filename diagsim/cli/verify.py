"""``diagsim verify``: run the checks; print the theorems' table, then the claims' table.

    diagsim verify [--quick] [--only NAME ...] [--theorems-only | --claims-only] [--json FILE] [--plots DIR]
                   [--list] [--quiet]

Theorem rows (statements the theory proves) print first, one per case (check, measured, predicted,
tolerance, PASS/FAIL). Claim rows (a paper's empirical statements) print after them in their own table with
a verdict HOLDS / FAILS / NOT SIGNIFICANT (:func:`diagsim.verify.claim_verdict`), the conditions of their
regime (PASS/FAIL) and the regime they were tested in. Exits 1 when a theorem row fails or any check crashes
(a claim's included), 0 otherwise, whatever the claims' verdicts; 2 on bad arguments.
"""
from __future__ import annotations

import json
import platform
import sys
import textwrap
import time

from ..errors import DiagsimError
from .common import add_device_arg, format_table

THEOREMS_TITLE = "THEOREMS: statements the theory proves (a failing row fails the command)"
CLAIMS_TITLE = "CLAIMS: a paper's empirical statements (reported; they never change the exit status)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="run the theorem checks (PASS/FAIL, gating) and the claims (reported verdicts)",
        description="Run the theorem checks, statements the theory proves: Euler-Maruyama orders, discrete "
                    "vs SDE weak error, ensembles vs slow flows, flow limits vs symbolic predictions, "
                    "monotone measures, finite-time extinction, the Woodworth interpolator. Then the "
                    "claims, a paper's empirical statements tested on instances fixed in advance (Adam vs "
                    "SGD with label noise on sparse regression), each with a verdict HOLDS / FAILS / NOT "
                    "SIGNIFICANT: HOLDS if the statistic lies on the claimed side by at least its "
                    "tolerance (4 standard errors), FAILS if on the other side by at least it, NOT "
                    "SIGNIFICANT otherwise. Exit status 1 if a theorem row fails or any check crashes; "
                    "claim verdicts never change it. See docs/verify.md.")
    p.add_argument("--quick", action="store_true", help="CI sizes (all checks in 2-3 minutes on 2 cores)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these checks (names or numbers; see --list)")
    p.add_argument("--theorems-only", action="store_true",
                   help="run only the theorem checks (with --only: the names must be theorems)")
    p.add_argument("--claims-only", action="store_true",
                   help="run only the claims (with --only: the names must be claims)")
    p.add_argument("--json", metavar="FILE",
                   help="write every row (with its kind, verdict and raw numbers) and the claim verdicts "
                        "as JSON ('-': stdout)")
    p.add_argument("--plots", metavar="DIR", help="write one figure per check (PNG) into DIR")
    p.add_argument("--list", action="store_true", help="list the checks (number, name, kind) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_device_arg(p)
    p.set_defaults(func=run)


def _cell(x) -> str:
    return x if isinstance(x, str) else f"{x:.4g}"


def _cells(r) -> tuple:
    """(measured, predicted, tolerance, verdict) of a row, as text."""
    if r.error is not None:
        return ("ERROR", "", "", r.verdict)
    return (_cell(r.measured), r.predicted_text(), _cell(r.tolerance), r.verdict)


def table(rows) -> str:
    """The theorems' table as text (check, measured, predicted, tolerance, PASS/FAIL)."""
    return format_table([(r.name,) + _cells(r) for r in rows],
                        ("check", "measured", "predicted", "tolerance", "result"))


def claims_table(rows) -> str:
    """The claims' table as text: the claim rows (verdict HOLDS / FAILS / NOT SIGNIFICANT), then the
    conditions of their regimes (PASS/FAIL), with the kind of each row."""
    order = [r for r in rows if r.kind == "claim"] + [r for r in rows if r.kind != "claim"]
    return format_table([(r.name, r.kind) + _cells(r) for r in order],
                        ("claim", "kind", "measured", "claimed", "tolerance", "verdict"))


def claims_details(rows, titles: dict, width: int = 110) -> str:
    """Per claim check: its title, the regime, what each claim row measured and how its tolerance was derived,
    the conditions that failed, and the verdict rule (lines wrapped at ``width``)."""
    from ..verify import CLAIM_RULE

    def para(text: str, indent: str = "  ") -> str:
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_on_hyphens=False)

    out = []
    for check in dict.fromkeys(r.check for r in rows):
        mine = [r for r in rows if r.check == check]
        out.append(para(f"{check}: {titles.get(check, '')}".rstrip(), ""))
        for regime in dict.fromkeys(r.regime for r in mine if r.regime):
            out.append(para(f"tested in: {regime}"))
        for r in mine:
            if r.error is not None:
                out.append(para(f"{r.case}: ERROR {r.error}"))
            elif r.kind == "claim":
                out.append(para(f"{r.case} ({r.verdict}): {r.quantity}; tolerance: {r.derivation}"))
        for r in mine:
            if r.kind == "condition" and not r.passed:
                out.append(para(f"condition FAILED: {r.disagreement()}"))
    out.append(para(f"verdict rule: {CLAIM_RULE}.", ""))
    return "\n".join(out)


def markdown_table(rows) -> str:
    """The rows as one Markdown table, with their kind, what was measured and how the tolerance was
    derived."""
    out = ["| check | kind | measured | predicted | tolerance | result | what / tolerance from |",
           "|---|---|---:|---:|---:|---|---|"]
    esc = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    for r in rows:
        m, p, t, v = _cells(r)
        v = v if v in ("PASS", "HOLDS") else f"**{v}**"
        what = esc(r.error) if r.error is not None else f"{esc(r.quantity)}; tolerance: {esc(r.derivation)}"
        out.append(f"| {r.name} | {r.kind} | {m} | {esc(p)} | {t} | {v} | {what} |")
    return "\n".join(out)


def summary(rows) -> str:
    """One line: theorem rows passed, claim verdicts, conditions passed."""
    from ..verify import CLAIM_VERDICTS
    parts = []
    theo = [r for r in rows if r.kind == "theorem"]
    if theo:
        parts.append(f"theorems: {sum(r.passed for r in theo)}/{len(theo)} passed")
    claims = [r for r in rows if r.kind == "claim"]
    if claims:
        counts = [(v, sum(r.verdict == v for r in claims)) for v in CLAIM_VERDICTS + ("ERROR",)]
        parts.append("claims: " + ", ".join(f"{c} {v}" for v, c in counts if c))
    cond = [r for r in rows if r.kind == "condition"]
    if cond:
        parts.append(f"conditions: {sum(r.passed for r in cond)}/{len(cond)} passed")
    return "; ".join(parts)


def _kind(args) -> str | None:
    if args.theorems_only and args.claims_only:
        raise DiagsimError("--theorems-only and --claims-only exclude each other; give at most one")
    return "theorem" if args.theorems_only else "claim" if args.claims_only else None


def run(args) -> int:
    from ..verify import CLAIM_RULE, gate_failures, resolve, run_checks
    kind = _kind(args)
    if args.list:
        for c in resolve(args.only, kind):
            print(f"{c.number}  {c.name:<18} {c.kind:<8} {c.title}")
        return 0
    checks = resolve(args.only, kind)  # validates names early (DiagsimError -> exit 2)
    if args.json and args.json != "-":
        from pathlib import Path
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            raise DiagsimError(f"--json: directory {str(parent)!r} does not exist")
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    from ..engine.driver import resolve_device
    device = resolve_device(args.device, "discrete")  # checked before any work
    rows = run_checks([c.name for c in checks], quick=args.quick, plots_dir=args.plots, log=log, device=device)
    wall = time.perf_counter() - t0
    mode = "quick" if args.quick else "full"
    theo = [r for r in rows if r.kind == "theorem"]
    claim_rows = [r for r in rows if r.kind != "theorem"]
    blocks = []
    if theo:
        blocks.append(f"{THEOREMS_TITLE}\n{table(theo)}")
    if claim_rows:
        titles = {c.name: c.title for c in checks}
        blocks.append(f"{CLAIMS_TITLE}\n{claims_table(claim_rows)}\n\n{claims_details(claim_rows, titles)}")
    print("\n\n".join(blocks))
    failed = gate_failures(rows)
    status = 1 if failed else 0
    print(f"\n{summary(rows)} in {wall:.1f} s ({mode} mode); exit status {status}")
    if failed:
        print("\nFAILED (the numbers that disagree):")
        for r in failed:
            print("  " + r.disagreement())
    if args.json:
        keys = ("name", "check", "verdict", "measured", "predicted", "relation", "tolerance", "quantity",
                "regime", "error")
        claims = [{k: r.to_dict()[k] for k in keys} for r in rows if r.kind == "claim"]
        doc = {"mode": mode, "device": device, "seconds": round(wall, 2), "passed": not failed, "exit_status": status,
               "selection": kind or "all", "n_rows": len(rows), "n_failed": len(failed),
               "n_theorem_rows": len(theo), "checks": [c.name for c in checks],
               "kinds": {c.name: c.kind for c in checks}, "claims": claims, "verdict_rule": CLAIM_RULE,
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
    return status
