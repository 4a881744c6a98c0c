"""Bitwise and speed check of the diagonal family across the model-abstraction change.

Runs a few fixed diagonal runs through ``simulate`` (discrete SGD with label noise, Adam, Adam-mini; the
label-noise SDE and the Adam SDE; SGD's and Adam's slow flows), prints a SHA-256 of every run's final
state and records, and times each run (best of ``--repeat``, after one warm-up that compiles).

    python benchmarks/model_family_check.py --out benchmarks/model_family_before.json

Run it on the code before and after a change: equal hashes mean the diagonal runs are bitwise unchanged.
``--compare BEFORE.json`` prints the time ratios (after / before) and whether every hash matches.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time

import numpy as np

from diagsim import simulate
from diagsim.networks.diagonal.problem import make_problem
from diagsim.optimizers import SGD, Adam, AdamMini, LabelNoise


def runs():
    P = make_problem(n=20, d=60, k=3, alpha=0.1, seed=3)
    noise = LabelNoise(0.5)
    return {
        "discrete-sgd": lambda: simulate(P, SGD(lr=0.01, noise=noise), steps=2000, n_paths=4, seed=7,
                                         progress=False),
        "discrete-adam": lambda: simulate(P, Adam(lr=0.01, beta2=0.99, noise=noise), steps=2000, n_paths=4,
                                          seed=7, progress=False),
        "discrete-adam-mini": lambda: simulate(P, AdamMini(lr=0.01, beta2=0.99, noise=noise), steps=2000,
                                               n_paths=4, seed=7, progress=False),
        "sde-sgd": lambda: simulate(P, SGD(lr=0.01, noise=noise), steps=1000, n_paths=4, seed=7, model="sde",
                                    model_options={"dt": "auto"}, progress=False),
        "sde-adam": lambda: simulate(P, Adam(lr=0.01, beta2=0.9999, noise=noise), steps=1000, n_paths=4, seed=7,
                                     model="sde", model_options={"dt": "auto", "v0": "target"}, progress=False),
        "slowflow-sgd": lambda: simulate(P, SGD(lr=0.01, noise=noise), steps=5, model="slow-flow",
                                         model_options={"dtau": 0.05}, progress=False),
        "slowflow-adam": lambda: simulate(P, Adam(lr=0.01, noise=noise), steps=2, model="slow-flow",
                                          model_options={"dtau": 0.001}, progress=False),
    }


def digest(res) -> str:
    h = hashlib.sha256()
    for name in sorted(res.final):
        h.update(name.encode())
        h.update(np.ascontiguousarray(res.final[name], dtype=np.float64).tobytes())
    for name in sorted(res.records):
        h.update(name.encode())
        h.update(np.ascontiguousarray(res.records[name], dtype=np.float64).tobytes())
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the JSON here")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", help="a JSON written by an earlier run: print ratios and hash equality")
    ap.add_argument("--only", action="append", help="run only this one (repeatable)")
    a = ap.parse_args(argv)
    out = {}
    for name, fn in runs().items():
        if a.only and name not in a.only:
            continue
        res = fn()  # warm-up (compilation)
        best = np.inf
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            res = fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = {"sha256": digest(res), "seconds": best}
        print(f"{name:20s} {out[name]['sha256'][:16]}  {best:.4f} s", flush=True)
    if a.compare:
        with open(a.compare) as f:
            before = json.load(f)["runs"]
        same = all(before[k]["sha256"] == out[k]["sha256"] for k in out if k in before)
        for k in (k for k in out if k in before):
            print(f"{k:20s} same hash: {before[k]['sha256'] == out[k]['sha256']}  time ratio after/before: "
                  f"{out[k]['seconds'] / before[k]['seconds']:.3f}")
        print("all hashes identical:", same)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"runs": out}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
