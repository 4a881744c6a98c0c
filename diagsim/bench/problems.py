"""The benchmark's problems and sizes.

Reference problem: the label-noise SGD SDE of docs/theory.md §7.4,

    dtheta = -grad L(theta) dt + sqrt(lr) (label_noise / n) J(theta)^T dB_t,   B an n-dim Brownian motion,

on "uu-vv" with n = 40, d = 100, k = 5, Gaussian design from seed 0, w* = 1 on the first k coordinates,
u0 = v0 = 0.1 (``make_problem(40, 100, 5, support=range(5), teacher="ones", init="constant",
alpha=0.1, seed=0)``), lr = 0.01, label_noise = 1, Euler-Maruyama with dt = 0.01 to T = 100 (10^4
steps), ensembles M in {1, 64, 1024}.

Paper scale: Adam (lr 0.1, beta1 0.9, beta2 0.95, eps 1e-6) and label-noise SGD (lr 0.005), Rademacher
label noise delta = 0.5, d = 1000, n = 50, k = 3, M = 8 paths; time per 10^6 steps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..networks.diagonal.problem import Problem, make_problem


@dataclass(frozen=True)
class SDEBench:
    n: int = 40
    d: int = 100
    k: int = 5
    lr: float = 0.01
    label_noise: float = 1.0
    dt: float = 0.01
    T: float = 100.0
    Ms: tuple = (1, 64, 1024)
    #: paths of the independent NumPy reference ensemble
    M_ref: int = 1024
    repeats: int = 3
    #: steps of the warm-up (compile) call
    warm_steps: int = 20
    seed: int = 0

    @property
    def n_steps(self) -> int:
        return int(round(self.T / self.dt))

    @property
    def sigma(self) -> float:
        """Diffusion scale sqrt(lr) * label_noise / n."""
        return self.lr ** 0.5 * self.label_noise / self.n

    def problem(self) -> Problem:
        return make_problem(self.n, self.d, self.k, support=range(self.k), teacher="ones", init="constant",
                            alpha=0.1, seed=0)

    def flops_per_path_step(self) -> int:
        """Arithmetic of one Euler-Maruyama path-step, the two GEMMs and the elementwise work:
        w = u*u - v*v (3d), r = Z w - y (2nd), c = r dt/n - sigma dB (3n), q = Z^T c (2nd),
        t = 2q, u -= u*t, v += v*t (5d)."""
        return 4 * self.n * self.d + 8 * self.d + 3 * self.n

    def to_dict(self) -> dict:
        d = asdict(self)
        d["Ms"] = list(self.Ms)
        d["n_steps"] = self.n_steps
        return d


@dataclass(frozen=True)
class PaperBench:
    n: int = 50
    d: int = 1000
    k: int = 3
    M: int = 8
    label_noise: float = 0.5
    sgd_lr: float = 0.005
    adam_lr: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-6
    #: steps actually timed (the table reports seconds per 10^6 steps, extrapolated)
    n_steps: int = 20000
    per: int = 1_000_000

    def problem(self) -> Problem:
        return make_problem(self.n, self.d, self.k, init="gaussian", alpha=0.1, seed=0)

    def to_dict(self) -> dict:
        return asdict(self)


FULL = SDEBench()
QUICK = SDEBench(T=5.0, Ms=(1, 16), M_ref=64, repeats=1, warm_steps=5)
PAPER_FULL = PaperBench()
PAPER_QUICK = PaperBench(n_steps=200)


def configs(quick: bool) -> tuple[SDEBench, PaperBench]:
    return (QUICK, PAPER_QUICK) if quick else (FULL, PAPER_FULL)


__all__ = ["SDEBench", "PaperBench", "FULL", "QUICK", "PAPER_FULL", "PAPER_QUICK", "configs", "replace"]
