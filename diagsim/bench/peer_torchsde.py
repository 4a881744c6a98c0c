"""Peer: torchsde, method "euler" (Ito Euler-Maruyama), batched over paths.

The SDE class gives the drift and the structured diffusion-vector product together
(``f_and_g_prod``: sigma J^T dB = sigma [2u Z^T dB, -2v Z^T dB], "general" noise with n channels); the
Brownian motion is a minimal ``BaseBrownian`` that returns fresh N(0, (tb - ta) I) increments from a
seeded ``torch.Generator`` (torchsde's default BrownianInterval is ~3x slower and not needed for a
fixed-step Euler scheme). float64, torch's default intra-op threads.
"""
from __future__ import annotations

import math

import numpy as np

from .base import missing
from .problems import SDEBench


class TorchSDE:
    name = "torchsde"
    kind = "peer"
    description = "torchsde euler, batched, structured f_and_g_prod, plain Gaussian increments"

    def available(self):
        return missing("torch", "torchsde")

    def prepare(self, cfg: SDEBench, M: int, seed: int):
        import torch
        import torchsde
        from torchsde._brownian.brownian_base import BaseBrownian

        from .threads import apply_torch
        apply_torch()

        prob = cfg.problem()
        Z = torch.from_numpy(prob.Z)
        ZT = torch.from_numpy(prob.ZT)
        y = torch.from_numpy(prob.y)
        n, d = prob.n, prob.d
        sigma = cfg.sigma

        class SDE(torch.nn.Module):
            noise_type = "general"
            sde_type = "ito"

            def f_and_g_prod(self, t, th, dB):
                u, v = th[:, :d], th[:, d:]
                r = (u * u - v * v) @ ZT - y
                q = (r * (1.0 / n)) @ Z              # grad wrt w, per path
                s = (dB * sigma) @ Z
                return (torch.cat([-2.0 * u * q, 2.0 * v * q], dim=1),
                        torch.cat([2.0 * u * s, -2.0 * v * s], dim=1))

            def f(self, t, th):  # only for torchsde's shape checks
                return self.f_and_g_prod(t, th, torch.zeros(th.shape[0], n, dtype=th.dtype))[0]

        class Increments(BaseBrownian):
            __slots__ = ("_gen", "_shape")

            def __init__(self, shape, gen):
                self._shape = shape
                self._gen = gen

            def __call__(self, ta, tb=None, return_U=False, return_A=False):
                h = float(tb - ta)
                return torch.randn(self._shape, generator=self._gen, dtype=torch.float64) * math.sqrt(h)

            def __repr__(self):
                return f"Increments(shape={self._shape})"

            dtype = property(lambda self: torch.float64)
            device = property(lambda self: torch.device("cpu"))
            shape = property(lambda self: self._shape)
            levy_area_approximation = property(lambda self: "none")

        sde = SDE()
        th0 = torch.from_numpy(prob.theta0(M))

        def run(n_steps: int) -> np.ndarray:
            gen = torch.Generator().manual_seed(seed)
            bm = Increments((M, n), gen)
            ts = torch.tensor([0.0, n_steps * cfg.dt], dtype=torch.float64)
            with torch.no_grad():
                out = torchsde.sdeint(sde, th0, ts, bm=bm, method="euler", dt=cfg.dt)
            return out[-1].numpy().copy()

        return run
