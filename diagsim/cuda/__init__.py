"""diagsim on CUDA GPUs (optional extra ``gpu`` = numba-cuda), torch-free.

Every ``numba.cuda`` import goes through :mod:`diagsim.cuda._lazy`, so ``import diagsim`` (and this
package) works with plain numba; kernels are compiled on first use. One GPU thread advances one path by
calling the same per-path ``@jit`` functions as the CPU kernels (see :mod:`._lazy`), and all randomness
comes from :mod:`diagsim.lowlevel.rng` addressed by (seed, stream, path, step, index): a path computed on the GPU
is the path computed on the CPU — bitwise for sign noise and for everything under the CUDA simulator; on
a real device normals may differ in the last ulps (FMA contraction by the device compiler).

Public API
----------
available() / unavailable_reason()
    whether kernels can run here (a device, or the simulator with NUMBA_ENABLE_CUDASIM=1).
advance_sde(stepper, state, paths, step0, n_steps, active, layout="auto")
    ``SDEStepper.advance`` (:class:`diagsim.sde.SDEStepper`) on the GPU (any SDE model of diagsim.sde; the
    label-noise SDE and gradient flow on the warp-per-path kernels of :mod:`.warp_kernels` or, for large
    ensembles, the tile kernel of :mod:`.tile_kernels`; the others one thread per path).
advance_discrete(stepper, state, paths, step0, n_steps, active, limit=None, layout="auto")
    :meth:`diagsim.optimizers.discrete.DiscreteStepper.advance_checked` on the GPU, every optimizer.
steppers.on_device(stepper)
    the device stepper that ``simulate(..., device="cuda")`` runs: the ensemble stays on the GPU for the
    whole run (:mod:`.steppers`).
normals(seed, stream, paths, steps, n, scale=1.0) / signs(...)
    the counter-based variates of :func:`diagsim.lowlevel.rng.normals` / :func:`diagsim.lowlevel.rng.signs`,
    drawn on the device (same shape (len(paths), len(steps), n)).
SDELabelNoise(problem, lr, label_noise, dt, seed)
    the benchmark's label-noise SGD SDE with device-resident data: ``run(theta0, paths, step0, n_steps)``.
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError
from ._lazy import simulator, unavailable_reason
from .steppers import LAYOUTS, grid  # noqa: F401  (LAYOUTS: part of this package's API)

__all__ = ["available", "unavailable_reason", "simulator", "advance_sde", "advance_discrete", "normals",
           "signs", "SDELabelNoise"]

def available() -> bool:
    return unavailable_reason() is None


def _require():
    why = unavailable_reason()
    if why:
        raise DiagsimError(f"CUDA is not available: {why}")
    from . import _lazy
    return _lazy.cuda()


def _check_common(state, paths, active, M):
    paths = np.ascontiguousarray(paths, dtype=np.int64)
    if paths.shape != (M,):
        raise DiagsimError(f"paths must have one id per row of theta ({M}), got shape {paths.shape}")
    if not isinstance(active, np.ndarray) or active.dtype != np.bool_ or active.shape != (M,):
        raise DiagsimError(f"active must be a bool array of shape ({M},)")
    return paths


def advance_sde(stepper, state: dict, paths, step0: int, n_steps: int, active: np.ndarray,
                layout: str = "auto") -> None:
    """Advance ``state`` in place on the GPU exactly as ``stepper.advance`` does on the CPU.

    ``stepper`` is a :class:`diagsim.sde.SDEStepper`; ``state``/``paths``/``active`` as in the Stepper
    protocol (host arrays, copied to the device and back: for whole runs, ``simulate(..., device="cuda")``
    keeps them there). ``layout``: "warp" (32 threads per path, :mod:`.warp_kernels`; the label-noise SGD
    SDE and gradient flow with one Brownian sub-step per step), "block" (256 threads per path), "tile" (one
    thread per path, a block of paths sharing tiles of Z in shared memory, :mod:`.tile_kernels`; the same
    SDEs), "thread" (one thread per path, any model) or "auto" (see
    :func:`.steppers.choose_layout`: tile from ``steppers.TILE_MIN_PATHS`` (8192) paths, else warp, where
    they apply).
    """
    from ..errors import check_int
    from .steppers import CudaSDEStepper
    n_steps = check_int("n_steps", n_steps, minimum=0)
    paths = _check_common(state, paths, active, state["theta"].shape[0])
    dev = CudaSDEStepper(stepper, layout, state["theta"].shape[0])
    dev.advance(state, paths, step0, n_steps, active)
    dev.sync(state)


def advance_discrete(stepper, state: dict, paths, step0: int, n_steps: int, active: np.ndarray,
                     limit=None, layout: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Advance a discrete ensemble in place on the GPU, as ``stepper.advance_checked`` does on the CPU,
    for every discrete optimizer (see :func:`.warp_kernels.discrete_kernel` for the layouts).

    Returns (div_step, div_loss) per path (-1 / NaN for paths that did not diverge); ``limit`` (M,) is the
    loss above which a path stops (default +inf). ``layout``: "warp" (32 threads per path), "thread" (one
    thread per path) or "auto" (warp where it applies). Host arrays, copied each call.
    """
    from ..errors import check_int
    from .steppers import CudaDiscreteStepper
    n_steps = check_int("n_steps", n_steps, minimum=0)
    M = state["theta"].shape[0]
    paths = _check_common(state, paths, active, M)
    limit = np.full(M, np.inf) if limit is None else np.ascontiguousarray(limit, dtype=np.float64)
    div_step = np.full(M, -1, np.int64)
    div_loss = np.full(M, np.nan)
    dev = CudaDiscreteStepper(stepper, layout, M)
    dev.advance_checked(state, paths, step0, n_steps, active, limit, div_step, div_loss)
    dev.sync(state)
    return div_step, div_loss


def _noise(kind: int, seed: int, stream, paths, steps, n: int, scale: float) -> np.ndarray:
    cuda = _require()
    from ..lowlevel import rng
    from . import thread_kernels as CK
    k0, k1 = rng.key_for(seed, stream)
    paths = np.ascontiguousarray(paths, dtype=np.int64)
    steps = range(steps) if isinstance(steps, int) else steps
    if steps.step != 1:
        raise DiagsimError("steps must be a contiguous range")
    out = cuda.device_array((paths.shape[0], len(steps), int(n)))
    if out.size:
        CK.noise_kernel()[grid(paths.shape[0])](kind, np.uint64(k0), np.uint64(k1), cuda.to_device(paths),
                                                 steps.start, float(scale), out)
    return out.copy_to_host()


def normals(seed: int, stream, paths, steps, n: int, scale: float = 1.0) -> np.ndarray:
    """:func:`diagsim.lowlevel.rng.normals` computed on the device, shape (len(paths), len(steps), n)."""
    return _noise(0, seed, stream, paths, steps, n, scale)


def signs(seed: int, stream, paths, steps, n: int, scale: float = 1.0) -> np.ndarray:
    """:func:`diagsim.lowlevel.rng.signs` computed on the device, shape (len(paths), len(steps), n)."""
    return _noise(1, seed, stream, paths, steps, n, scale)


class SDELabelNoise:
    """The label-noise SGD SDE (docs/theory.md §7.4) on the GPU, for the benchmark.

    ``run(theta0, paths, step0, n_steps) -> theta`` integrates from theta0 (M, 2d) and returns the final
    states; Brownian increments are those of ``diagsim.sde`` with the same ``seed`` (stream "brownian").
    """

    def __init__(self, problem, *, lr: float, label_noise: float, dt: float, seed: int = 0):
        _require()
        from ..optimizers import SGD, LabelNoise
        from ..sde import make_stepper
        self.stepper = make_stepper(problem, SGD(lr=lr, noise=LabelNoise(label_noise, "gaussian")), dt=dt,
                                    seed=seed, check_stability=False)

    def run(self, theta0, paths, step0: int, n_steps: int, layout: str = "auto") -> np.ndarray:
        state = self.stepper.init_state(theta0)
        active = np.ones(state["theta"].shape[0], dtype=bool)
        advance_sde(self.stepper, state, paths, step0, n_steps, active, layout=layout)
        return state["theta"]
