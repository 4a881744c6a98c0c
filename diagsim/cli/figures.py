"""``diagsim figures``: reproduce the paper's figures (``paper_repro/``): compute the cached sweeps, then
run each figure's plotting script.

    diagsim figures [--quick] [--only NAME[,NAME]] [--out DIR] [--cache DIR] [--backend serial|local|dask]

``--quick`` runs every figure end to end at small size (minutes on a laptop); without it, the full-size
configs (see paper_repro/README.md for their runtimes). Re-running only redraws: results are cached.
"""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("figures", help="reproduce the paper's figures (paper_repro/), cached",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: every figure end to end, fast")
    p.add_argument("--only", metavar="NAME", help="comma-separated figure names (default: all)")
    p.add_argument("--out", metavar="DIR", help="where figures go (default figures/ with --quick, "
                   "else figures/full/)")
    p.add_argument("--cache", metavar="DIR", help="result cache (default results/paper_repro/cache[-quick])")
    p.add_argument("--repro", metavar="DIR", help="the paper_repro folder (default: found automatically)")
    p.add_argument("--backend", default="serial", help="serial | local | dask (default serial)")
    p.add_argument("--workers", type=int, help="processes for --backend local/dask")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address")
    p.add_argument("--format", default="pdf,png", help="comma-separated output formats (default pdf,png)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.add_argument("--device", default=None, help="cpu | cuda | auto: run the figures' simulations there "
                   "(default: as configured, the CPU)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import DiagsimError
    from ..experiments.figures import list_figures, load_figure, make_figure, repro_dir

    root = repro_dir(args.repro)
    names = list_figures(root)
    if args.list:
        for n in names:
            spec = load_figure(n, root=root)
            print(f"{n}: {spec.title}")
        return 0
    if args.only:
        want = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [w for w in want if w not in names]
        if bad:
            raise DiagsimError(f"--only: unknown figure(s) {', '.join(bad)}; available: {', '.join(names)}")
        names = want
    formats = tuple(f.strip().lstrip(".") for f in args.format.split(",") if f.strip())
    for f in formats:
        if f not in ("pdf", "png", "svg"):
            raise DiagsimError(f"--format must be a list of pdf, png, svg; got {f!r}")
    from ..experiments.figures import default_out
    from ..storage import check_output_dir
    check_output_dir(args.out or default_out(root, args.quick), "--out folder")
    if args.cache:
        check_output_dir(args.cache, "--cache folder")
    total = 0.0
    for n in names:
        rep = make_figure(n, quick=args.quick, cache_dir=args.cache, out_dir=args.out, root=root,
                          backend=args.backend, workers=args.workers, scheduler=args.scheduler,
                          progress=not args.no_progress, formats=formats, device=args.device)
        total += rep.compute_s + rep.plot_s
        print(f"{n}: {rep.computed} jobs computed, {rep.cached} cached; compute {rep.compute_s:.1f} s, "
              f"plot {rep.plot_s:.1f} s (CPU {rep.cpu_s:.1f} s) -> {', '.join(str(f) for f in rep.files)}")
    print(f"{len(names)} figure(s) in {total:.1f} s")
    return 0
