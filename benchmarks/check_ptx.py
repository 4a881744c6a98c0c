"""Compile diagsim's CUDA kernels to PTX without a GPU (a check that they type and lower for a device).

The CUDA simulator runs kernels as Python; this script instead runs numba-cuda's real compiler (NVVM) on
every kernel ``simulate(..., device="cuda")`` can launch: the discrete kernel with one lane, 32 lanes and
256 lanes per path (each optimizer family: plain gradient, SAM, SAF, MESA; element-wise and block update
rules), the EM kernels (the label-noise SDE's warp kernel and its tile kernel, with Z staged once and in
tiles; the thread kernel for every SDE model's drift and diffusion), the records, the divergence check and
the noise kernel, for the compute capabilities given (default 8.0 and 9.0: A100, H100/H200). It reports
the PTX size and how many double-precision FMAs NVVM contracted (why a device's last bits may differ from
the CPU's) and exits 1 if a kernel does not compile. Needs the NVVM/NVRTC libraries, e.g.::

    pip install --target /tmp/cudalibs --no-deps nvidia-nvvm nvidia-cuda-nvrtc nvidia-cuda-runtime \\
        nvidia-cuda-cccl nvidia-nvjitlink
    LD_LIBRARY_PATH=/tmp/cudalibs/nvidia/cu13/lib PYTHONPATH=/tmp/cudalibs python benchmarks/check_ptx.py

Without a driver, numba-cuda asks the (absent) current device for its compute capability when it
compiles a device function; the script answers with the capability being compiled for.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback

import numba
import numba.cuda.dispatcher as _dispatcher
import numpy as np
from numba import cuda

from diagsim import make_problem
from diagsim.cuda import thread_kernels as CK
from diagsim.cuda import tile_kernels as CT
from diagsim.cuda import warp_kernels as CW
from diagsim.cuda.steppers import TILE_DOUBLES, TILE_PATHS
from diagsim.engine.recording import OBSERVABLES, observe_arguments
from diagsim.optimizers import MESA, SAF, SAM, SGD, Adam, AdamMini, LabelNoise
from diagsim.optimizers import make_stepper as discrete_stepper
from diagsim.sde import make_stepper as sde_stepper

_CC = [(8, 0)]


class _Device:
    @property
    def compute_capability(self):
        return _CC[0]


_dispatcher.get_current_device = lambda: _Device()


def _types(args):
    return tuple(numba.typeof(a) for a in args)


def kernels():
    """(name, python kernel, example arguments) of every kernel."""
    prob = make_problem(6, 5, 2, seed=3)
    M, n, d = 3, prob.n, prob.d
    dim = 2 * d
    z = np.zeros
    out = []
    for lanes in (1, CW.LAYOUT_LANES["warp"], CW.LAYOUT_LANES["block"]):
        opts = {"adam": Adam(lr=0.01, noise=LabelNoise(0.5)), "saf": SAF(lr=0.05), "mesa": MESA(lr=0.05)}
        if lanes == 1:
            opts.update({"sam": SAM(lr=0.05, variant="ssam-f"), "adam-mini": AdamMini(lr=0.01)})
        for name, opt in opts.items():
            ds = discrete_stepper(prob, opt, seed=2)
            low = ds.low
            s1, s2, buf = ds.kernel_slots(ds.init_state(prob.theta0(M)))
            nb = max(low.block_size.shape[0], 1)
            blocks = low.blocks if low.blocks.size else z(1, np.int64)
            bsize = low.block_size if low.block_size.size else np.ones(1)
            args = [int(low.gradient), int(low.update), int(low.noise), low.fp[None], low.ip[None], low.keys[None],
                    blocks, bsize, 0, 2, np.array([n]), prob.Z[None], prob.ZT[None], prob.y[None], z(M, np.int64),
                    z((M, dim)), s1,
                    s2, buf, np.arange(M), 0, 5, np.ones(M, bool), z(M),
                    z(M, np.int64), z(M), z((M, d)), z((M, n)), z((M, n)), z((M, n)), z((M, n)), z((M, n), np.int64),
                    z((M, n)), z((M, d)), z((M, dim)), z((M, dim)), z((M, max(n, dim))), z((M, nb)), z((M, d)),
                    z((M, d)), z((M, dim)), z((M, dim)), z((M, dim), np.int64), z((M, dim), np.int64)]
            out.append((f"discrete {name}, {lanes} lane(s) per path", CW.discrete_kernel(lanes), args))
    C = 1 - 10 * 0.02 ** 2
    for name, opt, kw in (("sgd-label-noise", SGD(lr=0.05, noise=LabelNoise(0.5)), {"dt": 0.05}),
                          ("adam", Adam(lr=0.02, beta2=C, noise=LabelNoise(0.5)), {"dt": 0.005, "v0": "target"}),
                          ("adam-momentum", Adam(lr=0.02, beta2=C, noise=LabelNoise(0.5)),
                           {"dt": 0.005, "v0": "target", "variant": "momentum"}),
                          ("adam-mini", AdamMini(lr=0.02, beta2=C, noise=LabelNoise(0.5)),
                           {"dt": 0.005, "v0": "target"})):
        m = sde_stepper(prob, opt, seed=7, check_stability=False, **kw).model
        args = [z((M, m.dim)), np.arange(M), np.ones(M, bool), 0, 4, 0.05, 1, 0.1, np.uint64(1), np.uint64(2),
                *m.args, z((M, m.dim)), z((M, m.n_noise)), z((M, m.n_noise)), z((M, 1, m.n_noise)),
                z((M, max(m.n_work, 1))), z(M)]
        out.append((f"EM thread kernel ({name})", CK.em_kernel(m.drift, m.diffusion), args))
    m = sde_stepper(prob, SGD(lr=0.05, noise=LabelNoise(0.5)), seed=7, dt=0.05, check_stability=False).model
    for lanes in (CW.LAYOUT_LANES["warp"], CW.LAYOUT_LANES["block"]):
        args = [z((M, m.dim)), np.arange(M), np.ones(M, bool), 0, 4, 0.05, 0.1, np.uint64(1), np.uint64(2), prob.Z,
                prob.ZT, prob.y, 0, 2, z((M, d)), z((M, n)), z((M, n)), z((M, d))]
        out.append((f"EM label-noise kernel, {lanes} lanes per path", CW.em_label_noise_kernel(lanes), args))
    for tp, td in ((TILE_PATHS, TILE_DOUBLES), (TILE_PATHS, 2 * d)):  # all of Z staged once; tiles of 2 rows
        args = [z((M, m.dim)), np.arange(M), np.ones(M, bool), 0, 4, 0.05, 0.1, np.uint64(1), np.uint64(2), prob.Z,
                prob.y, 0, 2, z((m.dim, M)), z((d, M)), z((n, M)), z((n, M)), z((d, M))]
        out.append((f"EM label-noise tile kernel, {tp} paths x {td} doubles", CT.em_label_noise_tile_kernel(tp, td),
                    args))
    args = [z((M, dim)), *observe_arguments(prob, 1e-3), z((M, d)), z((M, n)), z((M, d)), z((M, dim)),
            z((M, len(OBSERVABLES)))]
    out.append(("records (observe_row)", CK.observe_kernel(), args))
    args = [z((M, dim)), 0, 2, prob.ZT, prob.y, z(M), np.ones(M, bool), z(M, np.int64), z(M), 4, z((M, d)),
            z((M, n))]
    out.append(("divergence check", CK.check_kernel(), args))
    out.append(("noise (Philox normals / signs)", CK.noise_kernel(),
                [0, np.uint64(1), np.uint64(2), np.arange(M), 0, 1.0, z((M, 2, 5))]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", nargs="+", default=["8.0", "9.0"], help="compute capabilities (default 8.0 9.0)")
    ap.add_argument("--json", help="write the report to this file")
    a = ap.parse_args(argv)
    rows, failed = [], 0
    for cc_text in a.cc:
        cc = tuple(int(x) for x in cc_text.split("."))
        _CC[0] = cc
        for name, kern, args in kernels():
            try:
                ptx, _ = cuda.compile_ptx(kern.py_func, _types(args), cc=cc)
                row = {"cc": cc_text, "kernel": name, "ptx_chars": len(ptx), "fma_f64": ptx.count("fma.rn.f64")}
                print(f"sm_{cc[0]}{cc[1]}  {name:45s} PTX {len(ptx):8d} chars, {row['fma_f64']:5d} fma.rn.f64")
            except Exception as exc:  # noqa: BLE001 - report every kernel, then fail
                failed += 1
                row = {"cc": cc_text, "kernel": name, "error": f"{type(exc).__name__}: {exc}"}
                print(f"sm_{cc[0]}{cc[1]}  {name:45s} FAILED: {row['error'][:300]}")
                traceback.print_exc(limit=3)
            rows.append(row)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(f"{len(rows) - failed}/{len(rows)} kernels compiled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
