"""Contestant: diagsim on the CPU, the public SDE stepper of ``simulate(..., model="sde")``.

``diagsim.sde.make_stepper(problem, SGD(lr, LabelNoise(delta)), dt=dt, seed=seed)``: the label-noise SGD
SDE integrated by the generic Euler-Maruyama kernel (``prange`` over paths, Philox normals addressed by
(path, step)), advanced by one ``advance`` call over all steps (no recording).
"""
from __future__ import annotations

import numpy as np

from .problems import SDEBench


class DiagsimCPU:
    name = "diagsim"
    kind = "diagsim"
    description = "diagsim.sde stepper: Numba EM kernel, prange over paths, Philox normals"

    def available(self):
        try:
            from ..sde import make_stepper  # noqa: F401
        except ImportError as exc:
            return f"diagsim.sde is not available ({exc})"
        return None

    def prepare(self, cfg: SDEBench, M: int, seed: int):
        from ..optimizers import SGD, LabelNoise
        from ..sde import make_stepper

        prob = cfg.problem()
        stepper = make_stepper(prob, SGD(lr=cfg.lr, noise=LabelNoise(cfg.label_noise, "gaussian")), dt=cfg.dt,
                               seed=seed, check_stability=False)
        paths = np.arange(M, dtype=np.int64)
        theta0 = prob.theta0(M)

        def run(n_steps: int) -> np.ndarray:
            state = stepper.init_state(theta0)
            active = np.ones(M, dtype=bool)
            stepper.advance(state, paths, 0, n_steps, active)
            return state["theta"]

        return run
