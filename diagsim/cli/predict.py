"""``diagsim predict``: the limit point an optimizer's implicit bias selects, and the measures there.

Examples::

    diagsim predict --optimizer sgd                      # weighted basis pursuit (LP)
    diagsim predict --optimizer adam --n 6 --d 16        # global weighted l_1/2 by support enumeration
    diagsim predict --optimizer adame --lam 0.25 --json
    diagsim predict --optimizer adam-mini --blocks pairs  # one block per pair {u_i, v_i}: Adam's l_1/2
    diagsim predict --optimizer sgd --w-expr "u**3 - v**3"
    diagsim predict --optimizer adam --data mydata.npz --method local
    diagsim predict --optimizer sgd --data matrix.npz --json     # A (n, m1, m2), y: weighted nuclear norm
"""
from __future__ import annotations

import argparse
import textwrap

import numpy as np

from ..errors import DiagsimError
from ..networks.matrix import is_matrix_data, load_matrix_problem
from ..predict import DEFAULT_MAX_SUPPORTS, METHODS, NAMES, predict
from ..symbolic import MEASURES
from .common import add_problem_args, print_json, print_table, problem_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predicted limit point of an optimizer (symbolic implicit bias + LP / enumeration)",
        description=textwrap.fill(
                    "Predict the interpolator an optimizer converges to: SGD with label noise minimizes tr H "
                    "(weighted basis pursuit), Adam tr diag(H)^{1/2} (weighted l_1/2), AdamE-lambda "
                    "tr diag(H)^{1-lambda}, Adam-mini/Adalayer the block measure, gradient flow (gd) the "
                    "Woodworth hyperbolic-entropy interpolator. Prints the predicted w (non-zeros), its "
                    "support and the fibre-minimized value of each measure. With --data holding A (n, m1, m2) "
                    "and y (matrix sensing / completion, optional W_star): SGD's limit on a depth-2 "
                    "factorization, the minimizer of a weighted nuclear norm (cvxpy).", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join("  " + line.strip() for line in __doc__.splitlines()
                                          if line.strip().startswith("diagsim predict")))
    p.add_argument("--optimizer", default="sgd", choices=NAMES, help="optimizer (default sgd)")
    p.add_argument("--lam", type=float, default=None,
                   help="lambda of AdamE (required for adame; optional for adam/rmsprop, default 0.5)")
    p.add_argument("--method", default="auto", choices=METHODS,
                   help="non-convex cases: global (support enumeration), local (reweighted l1 from the "
                        "minimum-norm interpolator) or auto (global when at most --max-supports supports, "
                        "else local; default)")
    p.add_argument("--max-supports", type=int, default=DEFAULT_MAX_SUPPORTS,
                   help=f"largest C(d, n) the global method enumerates (default {DEFAULT_MAX_SUPPORTS:g})")
    p.add_argument("--blocks", default="uv", choices=("uv", "pairs"),
                   help="the partition of adam-mini / adalayer: uv (blocks {u}, {v}; default) or pairs "
                        "(blocks {u_i, v_i})")
    p.add_argument("--w-expr", metavar="EXPR", default=None,
                   help="a user parametrization w(u, v) as a SymPy expression, e.g. 'u**3 - v**3' "
                        "(overrides --param for the prediction)")
    add_problem_args(p)
    g = p.add_argument_group("matrix data (--data with A, y)")
    g.add_argument("--depth", type=int, default=2, help="factorization depth L (default 2; the prediction "
                   "exists at depth 2 only)")
    g.add_argument("--width", type=int, default=None, help="factorization width (default max(m1, m2))")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    if getattr(args, "data", None) and is_matrix_data(args.data):
        return _run_matrix(args)
    if args.blocks != "uv" and args.optimizer not in ("adam-mini", "adalayer"):
        raise DiagsimError(f"--blocks applies to adam-mini and adalayer only; got --optimizer {args.optimizer}")
    problem = problem_from_args(args)
    optimizer = args.optimizer
    if args.blocks == "pairs":  # the spec carries the partition (its lr and noise level do not enter the bias)
        from ..optimizers.specs import OPTIMIZERS, LabelNoise
        optimizer = OPTIMIZERS[args.optimizer](lr=0.1, blocks=tuple(range(problem.d)) * 2, noise=LabelNoise(1.0))
    pred = predict(problem, optimizer, lam=args.lam, method=args.method, max_supports=args.max_supports,
                   parametrization=args.w_expr)
    if args.json:
        out = pred.to_dict()
        out["problem"] = problem.describe()
        print_json(out)
        return 0
    desc = problem.describe()
    print(f"problem: n={desc['n']} d={desc['d']} parametrization={pred.parametrization} "
          f"({desc.get('source', 'generated')}, seed={desc['seed']})")
    print(f"optimizer: {pred.optimizer}   measure: {pred.measure}")
    print(f"regularizer: {pred.regularizer}")
    print(f"method: {pred.method}")
    for note in pred.notes:
        print(f"note: {note}")
    print(f"support ({len(pred.support)}): {pred.support.tolist()}")
    w_star = problem.w_star
    rows = []
    show = pred.support
    if len(show) > 40:
        show = show[np.argsort(-np.abs(pred.w[show]))[:40]]
    for i in sorted(show.tolist()):
        rows.append((i, float(pred.w[i])) + ((float(w_star[i]),) if w_star is not None else ()))
    if len(show) < len(pred.support):
        print(f"(showing the {len(show)} largest of {len(pred.support)} non-zeros)")
    print_table(rows, ("i", "w_i") + (("w*_i",) if w_star is not None else ()))
    print("measures at w (minimum over the fibre of w):")
    names = {**MEASURES, "woodworth": "sum_i a_i^2 q(w_i / a_i^2)"}
    lam_txt = f" (lam={args.lam:g})" if args.lam is not None else ""
    mrows = [(names[k] + (lam_txt if k == "adame" else ""), v) for k, v in pred.measures.items()]
    print_table(mrows, ("measure", "value"))
    print(f"max|Zw - y| = {pred.residual:.3g}")
    if w_star is not None:
        print(f"||w - w*||_inf = {float(np.max(np.abs(pred.w - w_star))):.3g}")
    return 0


def _run_matrix(args) -> int:
    problem = load_matrix_problem(args.data, depth=args.depth, width=args.width, alpha=args.alpha)
    pred = predict(problem, args.optimizer, lam=args.lam, method=args.method, parametrization=args.w_expr)
    W_star = problem.W_star
    err = None if W_star is None else float(np.sum((pred.W - W_star) ** 2))
    if args.json:
        out = pred.to_dict()
        out["problem"] = problem.describe()
        out["error_fro2"] = err
        print_json(out)
        return 0
    desc = problem.describe()
    print(f"problem: {desc['kind']} n={desc['n']} m1={desc['m1']} m2={desc['m2']} depth={desc['depth']} "
          f"width={desc['width']} ({desc['source']})")
    print(f"optimizer: {pred.optimizer}   measure: {pred.measure}")
    print(f"regularizer: {pred.regularizer}")
    print(f"method: {pred.method}   status: {pred.status}")
    for note in pred.notes:
        print(f"note: {note}")
    print_table([("weighted nuclear norm", pred.objective), ("tr H at the balanced factors", pred.trace_gn),
                 ("||W||_*", pred.nuclear_norm), ("rank W", pred.rank),
                 ("duality gap", pred.details["duality_gap"]), ("max|<A_j, W> - y_j|", pred.residual)]
                + ([("||W - W*||_F^2", err)] if err is not None else []), ("quantity", "value"))
    print("top singular values of W: " + ", ".join(f"{s:.6g}" for s in pred.singular_values[:8]))
    return 0
