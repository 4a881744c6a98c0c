"""``diagsim run``: the main job — Adam vs SGD with label noise on a sparse-regression problem, against
the implicit-bias predictions (weighted l1 for SGD, weighted l_{1/2} for Adam). See diagsim.experiments.main_job."""
from __future__ import annotations

import argparse

from ..errors import check_int, check_positive
from ..experiments.main_job import MainJobConfig, run_main_job
from .common import add_device_arg, add_problem_args, print_json, print_table, problem_from_args


def register(sub) -> None:
    p = sub.add_parser("run", help="main job: Adam vs SGD with label noise vs the predictions",
                       description=__doc__)
    p.add_argument("--quick", action="store_true", help="short runs (seconds), for a smoke test")
    p.add_argument("--out", default="diagsim-run", help="output folder (default ./diagsim-run)")
    p.add_argument("--paths", type=int, help="paths per optimizer (default 8; quick 4)")
    p.add_argument("--adam-steps", type=int, help="Adam steps (default 1000000; quick 100000)")
    p.add_argument("--sgd-steps", type=int, help="SGD steps (default 1000000; quick 100000)")
    p.add_argument("--adam-lr", type=float, help="Adam lr (0.01)")
    p.add_argument("--sgd-lr", type=float, help="SGD lr (0.05)")
    p.add_argument("--label-noise", type=float, help="label-noise delta (1.0)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_arg(p)
    p.add_argument("--overwrite", action="store_true",
                   help="delete runs stored in the output folder with other settings (default: refuse them)")
    add_problem_args(p, n=18, d=100, k=4, seed=1)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cfg = MainJobConfig()
    if args.quick:
        cfg = cfg.quick()
    kw = dict(cfg.__dict__)
    for flag, key, check in (("paths", "n_paths", check_int), ("adam_steps", "adam_steps", check_int),
                             ("sgd_steps", "sgd_steps", check_int), ("adam_lr", "adam_lr", check_positive),
                             ("sgd_lr", "sgd_lr", check_positive),
                             ("label_noise", "label_noise", check_positive)):
        v = getattr(args, flag)
        if v is not None:
            kw[key] = check(f"--{flag.replace('_', '-')}", v)
    kw["device"] = args.device
    cfg = MainJobConfig(**kw)
    problem = problem_from_args(args)
    log = (lambda *a, **k: None) if args.json else print
    summary = run_main_job(problem, cfg, args.out, progress=False if args.quiet else None, log=log,
                           overwrite=args.overwrite)
    if args.json:
        print_json(summary)
        return 0
    rows = []
    na = "note" in summary
    for name, r in summary["runs"].items():
        pr = r.get("prediction", {})
        test = "n/a" if na else f"{r['test_loss']:.4g} ± {r['test_loss_se']:.2g}"
        rows.append((name, test, f"{r['l1']:.4g}", f"{r['support']:.1f}", f"{r['trace_h']:.4g}",
                     f"{r['trace_sqrt_diag_gn']:.4g}", "n/a" if na else f"{pr.get('test_loss', float('nan')):.4g}",
                     len(pr.get("support", [])), f"{pr.get('distance_mean', float('nan')):.3g}",
                     pr.get("label", "-")))
    print()
    print_table(rows, ("optimizer", "test loss (mean ± se)", "‖w‖₁", "support", "tr H", "tr diag(H)^½ (GN)",
                       "predicted test loss", "pred. support", "‖w − w_pred‖", "prediction"))
    if na:
        print(f"\n{summary['note']}")
    print(f"\nresults, summary.json and the figure are in {args.out}/ ({summary['figure']})")
    return 0
