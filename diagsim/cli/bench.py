"""``diagsim bench``: time diagsim against its peers and the hardware floor on the reference problem.

    diagsim bench [--quick] [--json FILE] [--plot FILE] [--only NAME ...] [--no-paper]

Prints a Markdown table (contestant, M, warm-up, wall time, path-steps/s, diagsim ÷ this, % of the dgemm
rate, final loss and ||w - w*||_1 with standard errors and z-scores against the reference ensemble) and
the paper-scale timings. ``--quick`` runs tiny sizes (seconds; correctness only). A peer that is not
installed is skipped with a message.
"""
from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark diagsim against diffrax, torchsde, NumPy and the floors",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny T and M: finishes in seconds (for CI)")
    p.add_argument("--json", metavar="FILE", help="write all results to FILE (JSON)")
    p.add_argument("--plot", metavar="FILE", help="throughput-vs-M plot (PNG or PDF)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="contestants to run (diagsim, diagsim-cuda, numpy-gemm, diffrax, torchsde)")
    p.add_argument("--no-paper", action="store_true", help="skip the paper-scale Adam/SGD timings")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per entry (best is kept)")
    p.add_argument("--threads", type=int, default=None,
                   help="limit Numba, OpenBLAS, torch and XLA to N threads (default: library defaults)")
    p.set_defaults(func=main)


def main(args) -> int:
    from dataclasses import replace

    from ..bench import all_contestants, configs, run_bench, save_json, select
    from ..bench.report import paper_table, sde_table, summary_lines
    from ..errors import check_int
    from ..storage import check_output_file
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            check_output_file(path, f"{flag} file")
    cfg, paper = configs(args.quick)
    if args.threads is not None:
        from ..bench.threads import limit_threads
        limit_threads(check_int("threads", args.threads))
    if args.repeats is not None:
        cfg = replace(cfg, repeats=check_int("repeats", args.repeats))
    contestants = select(all_contestants(), args.only)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    res = run_bench(cfg, None if args.no_paper else paper, contestants, log)
    print(sde_table(res))
    print()
    for line in summary_lines(res):
        print(line)
    if "paper" in res:
        print()
        print(paper_table(res["paper"]))
    if args.json:
        print(f"results: {save_json(res, args.json)}")
    if args.plot:
        from ..bench.plot import plot_throughput
        print(f"plot: {plot_throughput(res, args.plot)}")
    return 0
