"""Time every sharpness measure on many states on the manifold of minimizers.

Default: the paper's size d = 1000, n = 50 ("uu-vv", k = 3), M = 1000 states obtained by perturbing the
initialization at random and retracting onto Gamma (Newton retraction). Prints one line per measure
(seconds for all M states) and the total of ``evaluate`` over all default measures, with and without the
iterative (ascent-based) ones. Run:  python benchmarks/bench_measures.py [--M 1000 --d 1000 --n 50]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from diagsim import measures as S
from diagsim.networks.diagonal.manifold import retract
from diagsim.networks.diagonal.problem import make_problem


def states(M: int, d: int, n: int, param: str, seed: int = 0) -> tuple:
    p = make_problem(n, d, 3, parametrization=param, seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    th = p.theta0(M) + 0.05 * rng.standard_normal((M, 2 * d))
    return p, retract(p, th)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--M", type=int, default=1000)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--param", default="uu-vv")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many timings")
    args = ap.parse_args(argv)
    p, th = states(args.M, args.d, args.n, args.param)
    print(f"{args.param}, M = {args.M}, d = {args.d}, n = {args.n}; max |Zw - y| = "
          f"{np.abs(p.w(th) @ p.ZT - p.y).max():.1e}")
    S.evaluate(p, th[:4])  # compile / warm caches
    names = S.resolve_names("all", p)
    for name in names:
        best = min(_timed(lambda: S.evaluate(p, th, [name])) for _ in range(args.repeat))
        print(f"  {name:26s} {best:8.3f} s")
    fast = [n for n in names if n not in S.ITERATIVE]
    t_fast = min(_timed(lambda: S.evaluate(p, th, fast)) for _ in range(args.repeat))
    t_all = min(_timed(lambda: S.evaluate(p, th, "all")) for _ in range(args.repeat))
    print(f"evaluate (default set: all {len(fast)} closed-form/exact measures): {t_fast:.2f} s")
    print(f"evaluate, all {len(names)} measures (incl. ascent: {', '.join(sorted(S.ITERATIVE))}): "
          f"{t_all:.2f} s")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
