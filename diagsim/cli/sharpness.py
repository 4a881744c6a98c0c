"""``diagsim sharpness``: evaluate sharpness measures at saved states or at a fresh problem's start.

Where the states come from:

* ``--state FILE``: an .npz holding ``theta`` (shape (M, 2d) or (2d,); another array name with ``--key``).
  The problem is ``--data FILE`` or the generator options (``--n --d --k --seed ...``), which must be the
  problem the states belong to; if neither ``--data`` is given and FILE itself holds ``Z`` and ``y``, the
  problem is read from FILE.
* no ``--state``: the problem's initialization theta_0 (w = 0), moved onto the manifold of minimizers
  Gamma = {Z w = y} by the Newton retraction (``--point manifold``, the default, so that every measure is
  evaluated where it is defined), or left as it is (``--point init``).

Prints a table (mean over paths, and std / min / max when M > 1), or with ``--json`` one JSON object
``{measure: mean over paths}`` plus, when M > 1, ``"per_path": {measure: [M values]}``; non-finite values
are written as null.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .. import measures as S
from ..errors import DiagsimError
from ..networks.diagonal.manifold import retract
from ..networks.diagonal.problem import load_problem
from .common import add_problem_args, print_json, print_table, problem_from_args

POINTS = ("manifold", "init")


def register(sub) -> None:
    p = sub.add_parser(
        "sharpness",
        help="evaluate sharpness measures (lambda_max, tr H, tr diag(H)^1/2, Renyi, geodesic, ...)",
        description=__doc__.split("\n\n")[0] + " Measures: " + ", ".join(S.MEASURES) + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("states")
    g.add_argument("--state", metavar="FILE", help=".npz with theta of shape (M, 2d) or (2d,)")
    g.add_argument("--key", default="theta", help="array name of the states in --state (default theta)")
    g.add_argument("--point", choices=POINTS, default="manifold",
                   help="without --state: the retracted initialization (manifold, default) or theta_0 (init)")
    m = p.add_argument_group("measures")
    m.add_argument("--measures", metavar="LIST",
                   help="comma-separated measure names, or 'all' (the default: every measure defined "
                        "for the parametrization, including the ascent-based worst, worst_adaptive, "
                        "geodesic_inv)")
    m.add_argument("--rho", type=float,
                   help="Euclidean radius / std of average and worst case (default 0.05)")
    m.add_argument("--rho-adaptive", type=float,
                   help="radius of the adaptive and geodesic measures (default 0.1)")
    m.add_argument("--lam", type=float, help="lambda of tr diag(H)^(1-lambda) (default 0.25)")
    m.add_argument("--order", type=float, help="Renyi order alpha > 0, 1 = Shannon, inf allowed (default 2)")
    m.add_argument("--hessian", choices=("gn", "full"),
                   help="lambda_max / trace of the Gauss-Newton part (gn, = H on Gamma; default) or full H")
    m.add_argument("--n-random", type=int, help="random restarts of the ascent-based measures (default 0)")
    m.add_argument("--steps", type=int, help="iteration cap of the ascent-based measures (default 100)")
    m.add_argument("--ascent-seed", type=int, help="seed of the random restarts (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_problem_args(p)
    p.set_defaults(func=run)


def _options(args, names) -> dict:
    given = {"rho": args.rho, "rho_adaptive": args.rho_adaptive, "lam": args.lam, "order": args.order,
             "hessian": args.hessian, "n_random": args.n_random, "steps": args.steps,
             "seed": args.ascent_seed}
    usable = set().union(*S.measure_options(names).values())
    opts = {k: v for k, v in given.items() if v is not None}
    for k in opts:
        if k not in usable:
            flag = "--" + ("ascent-seed" if k == "seed" else k.replace("_", "-"))
            raise DiagsimError(f"{flag} is not used by the selected measures ({', '.join(names)})")
    return opts


def load_states(path, key: str = "theta") -> np.ndarray:
    """The array ``key`` of the .npz at ``path`` as float64 (validation against the problem comes later)."""
    path = Path(path)
    if not path.exists():
        raise DiagsimError(f"state file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            if key not in f:
                raise DiagsimError(f"state file {str(path)!r} has no array {key!r} "
                                   f"(found {sorted(f.files)}); use --key")
            a = np.asarray(f[key])
    except DiagsimError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise DiagsimError(f"state file {str(path)!r} is not a readable .npz ({exc})") from None
    if a.dtype.kind not in "fiu":
        raise DiagsimError(f"states {key!r} in {str(path)!r} must be numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def _problem_and_states(args):
    if args.state:
        theta = load_states(args.state, args.key)
        if not args.data:
            with np.load(args.state, allow_pickle=False) as f:
                has_problem = "Z" in f and "y" in f
            if has_problem:
                problem = load_problem(args.state, parametrization=args.param, init=args.init,
                                       alpha=args.alpha)
                return problem, theta, f"states {args.key!r} of {args.state} (problem from the same file)"
        return problem_from_args(args), theta, f"states {args.key!r} of {args.state}"
    problem = problem_from_args(args)
    theta0 = problem.theta0(1)
    if args.point == "init":
        return problem, theta0, "initialization theta_0"
    return problem, retract(problem, theta0), "initialization retracted onto Gamma (Newton)"


def _clean(x: float):
    return float(x) if math.isfinite(x) else None


def run(args) -> int:
    problem, theta, where = _problem_and_states(args)
    theta = problem.check_theta(theta, "theta (states)")
    names = S.resolve_names(args.measures or "all", problem)
    opts = _options(args, names)
    values = S.evaluate(problem, theta, names, **opts)
    M = theta.shape[0]
    if args.json:
        out = {k: _clean(float(np.mean(v))) for k, v in values.items()}
        if M > 1:
            out["per_path"] = {k: [_clean(float(x)) for x in v] for k, v in values.items()}
        print_json(out)
        return 0
    r = problem.w(theta) @ problem.ZT - problem.y
    desc = problem.describe()
    print(f"# problem: {desc['parametrization']}, n = {problem.n}, d = {problem.d}"
          + (f", k = {desc['k']}, {desc.get('design')} design, seed {desc['seed']}" if "k" in desc else "")
          + f"; {where}; M = {M}; max |Zw - y| = {np.abs(r).max():.2e}")
    if opts:
        print("# options: " + ", ".join(f"{k} = {v}" for k, v in opts.items()))
    if M == 1:
        print_table([(k, float(v[0])) for k, v in values.items()], ("measure", "value"))
    else:
        print_table([(k, float(np.mean(v)), float(np.std(v, ddof=1)), float(np.min(v)), float(np.max(v)))
                     for k, v in values.items()], ("measure", "mean", "std", "min", "max"))
    return 0
