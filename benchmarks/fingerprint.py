"""Fingerprints of fixed runs: the SHA-256 of the final states and, separately, of the records of one run
per optimizer and level, so that a refactoring can show that it changed no number (run before and after,
compare).

    python benchmarks/fingerprint.py [--json FILE] [--compare FILE]

``--compare FILE`` exits 1 and names the runs whose fingerprint differs from the one stored in FILE.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np


def _sha(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def _digest(res) -> dict:
    """{"final": the final states and divergence steps, "records": the recorded observables}."""
    return {"final": _sha({**res.final, "__div_step": res.div_step}), "records": _sha(res.records)}


def runs():
    """(name, thunk) for every fixed run."""
    import diagsim
    from diagsim.optimizers import (
        GD,
        MESA,
        SAF,
        SAM,
        SGD,
        AdaGrad,
        Adalayer,
        Adam,
        AdamMini,
        LabelNoise,
        Minibatch,
        RMSProp,
    )
    P = diagsim.make_problem(30, 200, 3, seed=11)
    noise = LabelNoise(0.5)
    sim = diagsim.simulate
    disc = dict(steps=1500, n_paths=5, seed=3, record="log")
    out = [
        ("discrete/gd", lambda: sim(P, GD(lr=0.05), **disc)),
        ("discrete/sgd", lambda: sim(P, SGD(lr=0.05, noise=noise), **disc)),
        ("discrete/sgd-gaussian", lambda: sim(P, SGD(lr=0.05, noise=LabelNoise(0.5, "gaussian")), **disc)),
        ("discrete/sgd-minibatch", lambda: sim(P, SGD(lr=0.05, noise=Minibatch(7)), **disc)),
        ("discrete/adam", lambda: sim(P, Adam(lr=0.02, beta2=0.95, noise=noise), **disc)),
        ("discrete/adam-bias", lambda: sim(P, Adam(lr=0.02, bias_correction=True, noise=noise), **disc)),
        ("discrete/adame", lambda: sim(P, Adam(lr=0.02, lam=0.3, noise=noise), **disc)),
        ("discrete/rmsprop", lambda: sim(P, RMSProp(lr=0.02, noise=noise), **disc)),
        ("discrete/adam-mini", lambda: sim(P, AdamMini(lr=0.02, noise=noise), **disc)),
        ("discrete/adalayer", lambda: sim(P, Adalayer(lr=0.02, noise=Minibatch(5)), **disc)),
        ("discrete/adagrad", lambda: sim(P, AdaGrad(lr=0.05, noise=noise), **disc)),
        ("discrete/saf", lambda: sim(P, SAF(lr=0.05, delay=3, noise=noise), **disc)),
        ("discrete/mesa", lambda: sim(P, MESA(lr=0.05, noise=noise), **disc)),
    ]
    for v in ("sam", "usam", "msam", "asam", "fisher", "ssam-f", "ssam-d", "block", "rsam"):
        kw = {"m_chunks": 4} if v == "msam" else {}
        out.append((f"discrete/sam-{v}", lambda v=v, kw=kw: sim(P, SAM(lr=0.05, rho=0.05, variant=v, noise=noise, **kw),
                                                                **disc)))
    sde = dict(t=5.0, n_paths=5, seed=3, record="log", model="sde")
    out += [
        ("sde/gd", lambda: sim(P, GD(lr=0.05), **sde, model_options={"dt": 0.025})),
        ("sde/sgd", lambda: sim(P, SGD(lr=0.05, noise=noise), **sde, model_options={"dt": 0.025})),
        ("sde/adam", lambda: sim(P, Adam(lr=0.02, beta2=1 - 10 * 0.02 ** 2, noise=noise), **sde,
                                 model_options={"dt": "auto", "v0": "target"})),
        ("sde/adam-momentum", lambda: sim(P, Adam(lr=0.02, beta2=1 - 10 * 0.02 ** 2, noise=noise), **sde,
                                          model_options={"dt": "auto", "variant": "momentum", "v0": "target"})),
        ("sde/adam-mini", lambda: sim(P, AdamMini(lr=0.02, beta2=1 - 10 * 0.02 ** 2, noise=noise), **sde,
                                      model_options={"dt": "auto", "v0": "target"})),
    ]
    flow = dict(tau=0.5, model="slow-flow")
    out += [
        ("slow-flow/sgd", lambda: sim(P, SGD(lr=0.05, noise=noise), **flow,
                                      model_options={"dtau": 0.05, "start": "gradient-flow"})),
        ("slow-flow/adam", lambda: sim(P, Adam(lr=0.02, beta2=1 - 10 * 0.02 ** 2, noise=noise), **flow,
                                       model_options={"dtau": 0.05, "start": "gradient-flow"})),
    ]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="write {run: sha256} to FILE")
    ap.add_argument("--compare", metavar="FILE", help="compare with the fingerprints stored in FILE")
    args = ap.parse_args(argv)
    prints = {}
    for name, thunk in runs():
        prints[name] = _digest(thunk())
        print(f"{name:28s} final {prints[name]['final'][:16]}  records {prints[name]['records'][:16]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(prints, f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            ref = json.load(f)
        missing = [k for k in prints if k not in ref]
        status = 0
        for part in ("final", "records"):
            bad = [k for k in ref if prints.get(k, {}).get(part) != ref[k].get(part)]
            print(f"{part}: {len(ref) - len(bad)}/{len(ref)} fingerprints equal")
            if bad:
                print(f"DIFFERENT ({part}): " + ", ".join(bad))
                status = 1
        if missing:
            print(f"new runs: {', '.join(missing)}")
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
