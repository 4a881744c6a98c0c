"""Contestant: diagsim's CUDA kernels (:mod:`diagsim.cuda`), only when a CUDA device is present.

One thread per path runs the same per-path step functions as the CPU kernels; the state is copied to
the device once, every step runs on the device, and the final states are copied back.
"""
from __future__ import annotations

import numpy as np

from .problems import SDEBench


class DiagsimCUDA:
    name = "diagsim-cuda"
    kind = "diagsim"
    description = "diagsim.cuda: numba-cuda kernel, one thread per path, Philox normals on the device"

    def available(self):
        from .. import cuda as dcuda
        if dcuda.simulator():
            return ("the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): it checks kernels, "
                    "it does not time them")
        return dcuda.unavailable_reason()

    def prepare(self, cfg: SDEBench, M: int, seed: int):
        from .. import cuda as dcuda

        prob = cfg.problem()
        sim = dcuda.SDELabelNoise(prob, lr=cfg.lr, label_noise=cfg.label_noise, dt=cfg.dt, seed=seed)

        def run(n_steps: int) -> np.ndarray:
            return sim.run(prob.theta0(M), np.arange(M, dtype=np.int64), 0, n_steps)

        return run
