"""Compile diagsim's CUDA kernels to PTX without a GPU (a check that they type and lower for a device).

The CUDA simulator runs kernels as Python; this script instead runs numba-cuda's real compiler (NVVM) on
the EM kernel (label-noise SGD SDE model) and on the discrete SGD/Adam kernel, for compute capability 8.0,
and reports the PTX size and how many double-precision FMAs NVVM contracted (why device normals may
differ from the CPU's in the last ulps). Needs the NVVM/NVRTC libraries, e.g.::

    pip install --target /tmp/cudalibs --no-deps nvidia-nvvm nvidia-cuda-nvrtc nvidia-cuda-runtime \
        nvidia-cuda-cccl nvidia-nvjitlink
    LD_LIBRARY_PATH=/tmp/cudalibs/nvidia/cu13/lib PYTHONPATH=/tmp/cudalibs python benchmarks/check_ptx.py

Without a driver, numba-cuda asks the (absent) current device for its compute capability when it
compiles a device function; the script answers (8, 0) for it.
"""
from __future__ import annotations

import numba
import numba.cuda.dispatcher as _dispatcher
import numpy as np
from numba import cuda

from diagsim import make_problem
from diagsim.cuda import thread_kernels as CK
from diagsim.optimizers import SGD, Adam, LabelNoise
from diagsim.optimizers import make_stepper as discrete_stepper
from diagsim.sde import make_stepper as sde_stepper


class _Device:
    compute_capability = (8, 0)


_dispatcher.get_current_device = lambda: _Device()


def main():
    prob = make_problem(6, 5, 2, seed=3)
    M = 3
    st = sde_stepper(prob, SGD(lr=0.05, noise=LabelNoise(0.5)), dt=0.05, seed=7, check_stability=False)
    m = st.model
    args = [np.zeros((M, m.dim)), np.arange(M), np.ones(M, bool), 0, 4, 0.05, 1, 0.1, np.uint64(1),
            np.uint64(2), *m.args, np.zeros((M, m.dim)), np.zeros((M, m.n_noise)), np.zeros((M, m.n_noise)),
            np.zeros((M, 1, m.n_noise)), np.zeros((M, m.n_work)), np.zeros(M)]
    ptx, _ = cuda.compile_ptx(CK.em_kernel(m.drift, m.diffusion).py_func,
                              tuple(numba.typeof(a) for a in args), cc=(8, 0))
    print(f"EM kernel (sgd-label-noise): PTX {len(ptx)} chars, {ptx.count('fma.rn.f64')} fma.rn.f64")
    ds = discrete_stepper(prob, Adam(lr=0.01, noise=LabelNoise(0.5)), seed=2)
    low = ds.low
    n, d = prob.n, prob.d
    z = np.zeros
    args = [1, 1, low.fp, low.ip, low.keys, 0, 2, prob.Z, prob.ZT, prob.y, z((M, 2 * d)), z((M, 2 * d)),
            z((M, 2 * d)), np.arange(M), 0, 5, np.ones(M, bool), z(M), z(M, np.int64), z(M), z((M, d)),
            z((M, n)), z(M), z((M, n)), z((M, n)), z((M, n), np.int64), z((M, n)), z((M, d)), z((M, 2 * d)),
            z((M, max(n, 2 * d)))]
    ptx, _ = cuda.compile_ptx(CK.discrete_kernel().py_func, tuple(numba.typeof(a) for a in args), cc=(8, 0))
    print(f"discrete kernel (SGD/Adam): PTX {len(ptx)} chars, {ptx.count('fma.rn.f64')} fma.rn.f64")
    args = [0, np.uint64(1), np.uint64(2), np.arange(M), 0, 1.0, z((M, 2, 5))]
    ptx, _ = cuda.compile_ptx(CK.noise_kernel().py_func, tuple(numba.typeof(a) for a in args), cc=(8, 0))
    print(f"noise kernel (Philox normals/signs): PTX {len(ptx)} chars, {ptx.count('fma.rn.f64')} fma.rn.f64")


if __name__ == "__main__":
    main()
