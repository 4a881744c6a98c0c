"""Arguments shared by several subcommands (problem definition, output) and helpers to use them."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..errors import DiagsimError
from ..networks.diagonal.problem import Problem, load_problem, make_problem


def add_problem_args(p: argparse.ArgumentParser, *, n: int = 50, d: int = 1000, k: int = 3, seed: int = 0) -> None:
    """--n --d --k --design --teacher --param --init --alpha --seed --data."""
    g = p.add_argument_group("problem")
    g.add_argument("--data", metavar="FILE", help=".npz with Z (n x d), y (n) [, w_star (d)]; "
                   "overrides the generator options")
    g.add_argument("--n", type=int, default=n, help=f"samples (default {n})")
    g.add_argument("--d", type=int, default=d, help=f"dimension (default {d})")
    g.add_argument("--k", type=int, default=k, help=f"teacher sparsity (default {k})")
    g.add_argument("--design", default="gaussian", help="gaussian | rademacher")
    g.add_argument("--teacher", default="pm1", help="pm1 | uniform | halfnormal | ones")
    g.add_argument("--support", metavar="I,J,...", help="the teacher's support: k comma-separated indices "
                   "(default: drawn at random from --seed)")
    g.add_argument("--param", default="uu-vv", help="uu-vv | uv | depth-D")
    g.add_argument("--init", default="gaussian", help="gaussian | constant")
    g.add_argument("--alpha", type=float, default=0.1, help="initialization scale (default 0.1)")
    g.add_argument("--seed", type=int, default=seed, help=f"problem seed (default {seed})")


def add_device_arg(p: argparse.ArgumentParser, default: str = "cpu") -> None:
    """--device cpu | cuda | auto: where the paths are integrated (the GPU needs the extra ``gpu``)."""
    p.add_argument("--device", default=default, help="cpu | cuda | auto: integrate the paths on the CPU or on a "
                   "GPU (numba-cuda: pip install -e '.[gpu]'); auto picks the GPU when one is present "
                   f"(default {default})")


def problem_from_args(args: argparse.Namespace) -> Problem:
    if getattr(args, "data", None):
        return load_problem(args.data, parametrization=args.param, init=args.init, alpha=args.alpha)
    return make_problem(args.n, args.d, args.k, design=args.design, teacher=args.teacher,
                        parametrization=args.param, init=args.init, alpha=args.alpha, seed=args.seed,
                        support=parse_support(getattr(args, "support", None)))


def parse_support(text):
    """``"0,1,2"`` -> [0, 1, 2] (None stays None); a one-line error for anything else."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        return [int(i) for i in text]
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise DiagsimError(f"--support must be comma-separated integer indices, e.g. 0,1,2; got {text!r}") from None


def _default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, default=_default)
    sys.stdout.write("\n")


def format_table(rows: list[tuple], headers: tuple) -> str:
    """Plain-text table with aligned columns (floats as ``%.6g``, strings as given), a rule under the
    header."""
    cells = [tuple(str(c) for c in headers)] + [tuple(_fmt(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(rows: list[tuple], headers: tuple) -> None:
    """Print :func:`format_table`."""
    print(format_table(rows, headers))


def _fmt(c) -> str:
    if isinstance(c, (float, np.floating)):
        return f"{c:.6g}"
    return str(c)
