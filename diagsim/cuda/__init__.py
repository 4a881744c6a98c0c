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
    :meth:`diagsim.sde.SDEStepper.advance` on the GPU (any SDE model of diagsim.sde; the label-noise SDE
    and gradient flow on the warp-per-path kernels of :mod:`.warp`, the others one thread per path).
advance_discrete(stepper, state, paths, step0, n_steps, active, limit=None, layout="auto")
    :meth:`diagsim.optimizers.discrete.DiscreteStepper.advance` on the GPU for GD, SGD and Adam /
    RMSProp / AdamE-lambda with label noise (Rademacher or Gaussian) or none.
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

__all__ = ["available", "unavailable_reason", "simulator", "advance_sde", "advance_discrete", "normals",
           "signs", "SDELabelNoise"]

THREADS = 128


def available() -> bool:
    return unavailable_reason() is None


def _require():
    why = unavailable_reason()
    if why:
        raise DiagsimError(f"CUDA is not available: {why}")
    from . import _lazy
    return _lazy.cuda()


def _grid(M: int) -> tuple[int, int]:
    return (M + THREADS - 1) // THREADS, THREADS


def _check_common(state, paths, active, M):
    paths = np.ascontiguousarray(paths, dtype=np.int64)
    if paths.shape != (M,):
        raise DiagsimError(f"paths must have one id per row of theta ({M}), got shape {paths.shape}")
    if not isinstance(active, np.ndarray) or active.dtype != np.bool_ or active.shape != (M,):
        raise DiagsimError(f"active must be a bool array of shape ({M},)")
    return paths


LAYOUTS = ("auto", "warp", "thread")


def _layout(layout: str, covered: bool, what: str) -> str:
    from ..errors import check_choice
    layout = check_choice("layout", layout, LAYOUTS)
    if layout == "warp" and not covered:
        raise DiagsimError(f"layout='warp' covers {what}; use layout='thread' (or 'auto')")
    return "warp" if (layout == "auto" and covered) else ("thread" if layout == "auto" else layout)


def advance_sde(stepper, state: dict, paths, step0: int, n_steps: int, active: np.ndarray,
                layout: str = "auto") -> None:
    """Advance ``state`` in place on the GPU exactly as ``stepper.advance`` does on the CPU.

    ``stepper`` is a :class:`diagsim.sde.SDEStepper`; ``state``/``paths``/``active`` as in the Stepper
    protocol (host arrays; copied to the device and back). ``layout``: "warp" (32 threads per path,
    :mod:`.warp`; the label-noise SGD SDE and gradient flow with one Brownian sub-step per step), "thread"
    (one thread per path, any model) or "auto" (warp where it applies).
    """
    cuda = _require()
    from ..errors import check_int
    from ..sde import models as SM
    from . import thread_kernels as CK
    n_steps = check_int("n_steps", n_steps, minimum=0)
    model = stepper.model
    X = np.ascontiguousarray(model.pack(state), dtype=np.float64)
    M, dim = X.shape
    paths = _check_common(state, paths, active, M)
    bp = stepper.brownian
    sub = bp.substeps(stepper.dt)
    covered = (model.drift is SM._label_noise_drift and model.diffusion is SM._jt_diffusion and sub == 1)
    layout = _layout(layout, covered, "the label-noise SGD SDE and gradient flow with dt = dt_base")
    if n_steps == 0 or M == 0:
        return
    k0, k1 = bp.key
    scale = float(model.amplitude) * float(np.sqrt(bp.dt_base))
    L = int(sub).bit_length() - 1
    nn = model.n_noise
    Z, ZT, y, s, fpar, ipar = model.args
    if layout == "warp":
        from . import warp_kernels as CW
        n, d = Z.shape
        dX = cuda.to_device(X)
        dact = cuda.to_device(active)
        CW.em_label_noise_kernel()[M, CW.LANES](
            dX, cuda.to_device(paths), dact, int(step0), n_steps, float(stepper.dt), scale, np.uint64(k0),
            np.uint64(k1), cuda.to_device(Z), cuda.to_device(ZT), cuda.to_device(y), int(ipar[SM.I_CODE]),
            int(ipar[SM.I_DEPTH]), cuda.device_array((M, d)), cuda.device_array((M, n)),
            cuda.device_array((M, n)), cuda.device_array((M, d)))
        X[...] = dX.copy_to_host()
        active[...] = dact.copy_to_host()
        model.unpack(X, state)
        return
    kern = CK.em_kernel(model.drift, model.diffusion)
    dX = cuda.to_device(X)
    dact = cuda.to_device(active)
    dev = [cuda.to_device(np.ascontiguousarray(a)) for a in (Z, ZT, y, s, fpar, ipar)]
    scratch = [cuda.device_array((M, dim)), cuda.device_array((M, nn)), cuda.device_array((M, nn)),
               cuda.device_array((M, L + 1, nn)), cuda.device_array((M, max(model.n_work, 1))),
               cuda.device_array(M)]  # per-path health (the model's drift writes it)
    kern[_grid(M)](dX, cuda.to_device(paths), dact, int(step0), n_steps, float(stepper.dt), int(sub), scale,
                   np.uint64(k0), np.uint64(k1), *dev, *scratch)
    X[...] = dX.copy_to_host()
    active[...] = dact.copy_to_host()
    model.unpack(X, state)


def advance_discrete(stepper, state: dict, paths, step0: int, n_steps: int, active: np.ndarray,
                     limit=None, layout: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Advance a discrete ensemble in place on the GPU, as ``stepper.advance`` does, for the optimizers
    whose gradient is the plain noisy gradient and whose update rule is element-wise (GD, SGD, Adam,
    RMSProp, AdamE, AdaGrad) with label noise or none.

    Returns (div_step, div_loss) per path (-1 / NaN for paths that did not diverge); ``limit`` (M,) is the
    loss above which a path stops (default +inf). ``layout``: "warp" (32 threads per path, the default
    through "auto") or "thread" (one thread per path).
    """
    layout = _layout(layout, True, "the discrete optimizers")
    cuda = _require()
    from ..errors import check_int
    from ..optimizers.lowering import GRAD_PLAIN, NOISE_GAUSSIAN, NOISE_NONE, NOISE_RADEMACHER
    from ..optimizers.updates import ELEMENTWISE
    from . import warp_kernels as CW
    n_steps = check_int("n_steps", n_steps, minimum=0)
    low = stepper.low
    if (low.gradient != GRAD_PLAIN or low.update not in ELEMENTWISE
            or low.noise not in (NOISE_NONE, NOISE_RADEMACHER, NOISE_GAUSSIAN)):
        raise DiagsimError(f"the CUDA discrete kernel covers optimizers with the plain noisy gradient and an "
                           f"element-wise update (GD, SGD, Adam/RMSProp/AdamE, AdaGrad) with label noise or "
                           f"none; got {stepper.optimizer.name} with {type(stepper.optimizer.noise).__name__}")
    prob = stepper.problem
    theta = state["theta"]
    M, dim = theta.shape
    paths = _check_common(state, paths, active, M)
    n, d = prob.n, prob.d
    s1, s2, _ = stepper.kernel_slots(state)
    limit = np.full(M, np.inf) if limit is None else np.ascontiguousarray(limit, dtype=np.float64)
    div_step = np.full(M, -1, np.int64)
    div_loss = np.full(M, np.nan)
    if n_steps == 0 or M == 0:
        return div_step, div_loss
    if layout == "warp":
        kern, grid = CW.discrete_kernel(CW.LANES), (M, CW.LANES)
    else:
        kern, grid = CW.discrete_kernel(1), _grid(M)
    dth, ds1, ds2, dact = (cuda.to_device(np.ascontiguousarray(a)) for a in (theta, s1, s2, active))
    dds, ddl = cuda.to_device(div_step), cuda.to_device(div_loss)
    # W, R, XI (zeroed), WROW, PERM, C, GW, GR, UBUF  (per-path rows)
    scratch = [cuda.device_array((M, d)), cuda.device_array((M, n)), cuda.to_device(np.zeros((M, n))),
               cuda.device_array((M, n)),
               cuda.device_array((M, n), dtype=np.int64), cuda.device_array((M, n)),
               cuda.device_array((M, d)), cuda.device_array((M, dim)), cuda.device_array((M, max(n, dim)))]
    kern[grid](int(low.update), int(low.noise), cuda.to_device(low.fp), cuda.to_device(low.ip),
               cuda.to_device(low.keys), int(prob.param.code), int(prob.param.depth),
               cuda.to_device(prob.Z), cuda.to_device(prob.ZT), cuda.to_device(prob.y), dth, ds1, ds2,
               cuda.to_device(paths), int(step0), n_steps, dact, cuda.to_device(limit), dds, ddl, *scratch)
    theta[...] = dth.copy_to_host()
    s1[...] = ds1.copy_to_host()
    s2[...] = ds2.copy_to_host()
    active[...] = dact.copy_to_host()
    return dds.copy_to_host(), ddl.copy_to_host()


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
        CK.noise_kernel()[_grid(paths.shape[0])](kind, np.uint64(k0), np.uint64(k1), cuda.to_device(paths),
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
