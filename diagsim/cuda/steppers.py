"""The GPU as a device of the steppers: ``simulate(..., device="cuda")`` runs these.

A device stepper wraps the CPU stepper of its level (:class:`diagsim.optimizers.discrete.DiscreteStepper`,
:class:`diagsim.sde.SDEStepper`) and implements the same protocol (:mod:`diagsim.engine.stepper`), so the
driver gives the same :class:`~diagsim.engine.result.Result`, checkpoints, resumes and divergence reports
on either device. What differs is where the ensemble lives:

* the problem's arrays are copied to the device once, when the stepper is made;
* the state is copied to the device at the first step and stays there: every chunk of steps runs on the
  device (the same per-entry functions as the CPU kernels, :mod:`.warp_kernels` / :mod:`.thread_kernels`),
  the divergence check too, and so do the records (:func:`.thread_kernels.observe_kernel`, with the
  function the CPU records with). Only the per-path bookkeeping (active, divergence step and loss: a few
  numbers per path) crosses the bus every chunk;
* the host's copy of the state is brought up to date only when the driver asks for it (:meth:`DeviceStepper.sync`):
  for a checkpoint, the final result, a user's callback, and the preconditioner statistics (their second
  moments, not theta, are copied at those record steps).

Numbers: under the CUDA simulator the kernels run the CPU's compiled arithmetic, so a run is bitwise the
CPU's; on a device the compiler may fuse multiply-adds elsewhere than the CPU does, so trajectories agree
to rounding (about 1e-12 relative over thousands of steps) and noise draws bitwise (signs) or to a few
ulps (normals).
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError
from . import _lazy

THREADS = 128


def grid(M: int) -> tuple[int, int]:
    """Launch configuration of a one-thread-per-path kernel for M paths."""
    return (M + THREADS - 1) // THREADS, THREADS


class DeviceStepper:
    """The base of the device steppers: the wrapped CPU stepper, the problem on the device, the state's device
    copy keyed by the state dict it mirrors, records and divergence checks on the device."""

    def __init__(self, host, layout: str = "auto"):
        why = _lazy.unavailable_reason()
        if why:
            raise DiagsimError(f"CUDA is not available: {why}")
        self.cuda = _lazy.cuda()
        self.host = host
        self.level = host.level
        self.problem = host.problem
        self.dt = host.dt
        self.lr = host.lr
        self.layout = layout
        P = self.problem
        c = self.cuda
        self.d_Z, self.d_ZT, self.d_y, self.d_s = (c.to_device(np.ascontiguousarray(a)) for a in (P.Z, P.ZT, P.y, P.s))
        self._key = None          # id of the state dict the device copy mirrors
        self._dev: dict = {}      # its arrays on the device
        self._host_stale = False  # True once the device has stepped past the host's copy
        self._scratch: dict = {}

    # ------------------------------------------------------------------ protocol
    def init_state(self, theta0):
        return self.host.init_state(theta0)

    def config(self) -> dict:
        cfg = self.host.config()
        cfg["device"] = {"kind": "cuda", "layout": self.layout, "simulator": _lazy.simulator()}
        return cfg

    def divergence_hint(self) -> str:
        hint = getattr(self.host, "divergence_hint", None)
        return hint() if callable(hint) else f"lr={self.lr:g} is likely too large"

    def preconditioner_stats(self, state) -> dict:
        if "v" not in state:
            return self.host.preconditioner_stats(state)
        self._download(state, ["v"])  # the second moments only; theta stays on the device
        return self.host.preconditioner_stats(state)

    def advance(self, state, paths, step0, n_steps, active) -> None:
        M = state["theta"].shape[0]
        self.advance_checked(state, paths, step0, n_steps, active, np.full(M, np.inf), np.full(M, -1, np.int64),
                             np.full(M, np.nan))

    # ------------------------------------------------------------------ the device copy
    def _arrays(self, state) -> dict:
        """The device copy of ``state``, uploaded when ``state`` is not the dict it mirrors."""
        if self._key != id(state):
            self._dev = {k: self.cuda.to_device(np.ascontiguousarray(v)) for k, v in self._device_layout(state).items()}
            self._key = id(state)
            self._host_stale = False
        return self._dev

    def _device_layout(self, state) -> dict:
        return dict(state)

    def _download(self, state, names=None) -> None:
        if self._key != id(state) or not self._host_stale:
            return
        for k in (names or list(state)):
            state[k][...] = self._dev[k].copy_to_host()
        if names is None:
            self._host_stale = False

    def sync(self, state) -> None:
        """Bring the host's copy of ``state`` up to date with the device's."""
        self._download(state)

    def _scratch_rows(self, M: int, shapes: dict) -> dict:
        """Per-path scratch on the device, (M, *shape) float64 (int64 for names in ``ints``), reused."""
        key = (M, tuple(sorted(shapes.items())))
        if key not in self._scratch:
            self._scratch[key] = {name: self.cuda.device_array((M, *shape), dtype=dt)
                                  for name, (shape, dt) in shapes.items()}
        return self._scratch[key]

    def _scratch_cols(self, M: int, lengths: dict) -> dict:
        """Per-path scratch on the device stored by column, (length, M) float64 (the tile layout: thread p's
        entry i at [i, p], next to thread p + 1's), reused."""
        key = ("cols", M, tuple(sorted(lengths.items())))
        if key not in self._scratch:
            self._scratch[key] = {name: self.cuda.device_array((length, M)) for name, length in lengths.items()}
        return self._scratch[key]

    def _bookkeeping(self, paths, active, limit, div_step, div_loss):
        c = self.cuda
        return (c.to_device(np.ascontiguousarray(paths, dtype=np.int64)), c.to_device(active),
                c.to_device(np.ascontiguousarray(limit, dtype=np.float64)), c.to_device(div_step),
                c.to_device(div_loss))

    @staticmethod
    def _returned(active, div_step, div_loss, d_active, d_div_step, d_div_loss) -> None:
        active[...] = d_active.copy_to_host()
        div_step[...] = d_div_step.copy_to_host()
        div_loss[...] = d_div_loss.copy_to_host()

    def _theta(self, state):
        return self._arrays(state)["theta"]

    def check_divergence(self, state, k, active, limit, div_step, div_loss) -> None:
        """The driver's divergence check of the current state at step k, on the device."""
        d_paths, d_active, d_limit, d_div_step, d_div_loss = self._bookkeeping(
            np.zeros(active.shape[0], np.int64), active, limit, div_step, div_loss)
        self._check_on_device(self._theta(state), int(k), d_active, d_limit, d_div_step, d_div_loss)
        self._returned(active, div_step, div_loss, d_active, d_div_step, d_div_loss)

    def _check_on_device(self, theta, k, d_active, d_limit, d_div_step, d_div_loss) -> None:
        from . import thread_kernels as CK
        M = theta.shape[0]
        P = self.problem
        sc = self._scratch_rows(M, {"CW": ((P.d,), np.float64), "CR": ((P.n,), np.float64)})
        CK.check_kernel()[grid(M)](theta, int(P.param.code), int(P.param.depth), self.d_ZT, self.d_y, d_limit,
                                    d_active, d_div_step, d_div_loss, k, sc["CW"], sc["CR"])

    # ------------------------------------------------------------------ records on the device
    def observe(self, state, support_threshold: float) -> dict:
        """The records of :func:`diagsim.engine.recording.observe`, computed on the device."""
        from ..engine.recording import OBSERVABLES, observables_from_rows, observe_arguments
        from . import thread_kernels as CK
        theta = self._theta(state)
        M = theta.shape[0]
        n, d = self.problem.n, self.problem.d
        args = list(observe_arguments(self.problem, support_threshold))
        c = self.cuda
        # (code, depth, Z, ZT, y, s, rs, w_star, Zt, yt, kind, threshold): the data on the device
        args[2:6] = [self.d_Z, self.d_ZT, self.d_y, self.d_s]
        args[6:10] = [c.to_device(a) for a in args[6:10]]
        sc = self._scratch_rows(M, {"W": ((d,), np.float64), "R": ((n,), np.float64), "GW": ((d,), np.float64),
                                    "DIAG": ((2 * d,), np.float64), "OUT": ((len(OBSERVABLES),), np.float64)})
        if M:
            CK.observe_kernel()[grid(M)](theta, *args, sc["W"], sc["R"], sc["GW"], sc["DIAG"], sc["OUT"])
        rows = sc["OUT"].copy_to_host() if M else np.zeros((0, len(OBSERVABLES)))
        return observables_from_rows(rows, self.preconditioner_stats(state))


def choose_layout(layout: str, spread: bool, M: int, d: int, what: str, tile: bool = False,
                  tile_what: str = "") -> str:
    """The layout of a run: ``layout`` if given ("warp", "block", "thread", "tile"), else, when the kernel can
    spread a path over threads (``spread``):

    * "tile" for large ensembles, M >= ``TILE_MIN_PATHS`` (8192), when the kernel has a tile variant
      (``tile``): a block of paths shares the rows of Z through shared memory (:mod:`.tile_kernels`);
    * "block" for a few long paths (d >= 512 and M <= 64: one block of threads per path);
    * "warp" otherwise;

    and "thread" when it cannot spread a path (docs/guide/gpu.md, "Coverage and layouts")."""
    from ..errors import check_choice
    check_choice("layout", layout, LAYOUTS)
    if layout in ("warp", "block") and not spread:
        raise DiagsimError(f"layout={layout!r} does not cover {what}; use layout='thread' or 'auto'")
    if layout == "tile" and not tile:
        raise DiagsimError(f"layout='tile' does not cover {tile_what or what}; use layout='auto'")
    if layout != "auto":
        return layout
    if not spread:
        return "thread"
    if tile and M >= TILE_MIN_PATHS:
        return "tile"
    return "block" if (d >= 512 and M <= 64) else "warp"


#: the layouts of the device steppers ("auto" chooses, see :func:`choose_layout`)
LAYOUTS = ("auto", "warp", "block", "thread", "tile")

#: the tile layout (:mod:`.tile_kernels`): paths (threads) per block, doubles of Z in a block's shared memory
#: (32 KiB), and the ensemble size from which "auto" chooses it (below, the warp layout keeps more of the
#: GPU busy: M / TILE_PATHS blocks are too few to fill an H100's 132 multiprocessors)
TILE_PATHS = 128
TILE_DOUBLES = 4096
TILE_MIN_PATHS = 8192


def stack_jobs(steppers) -> tuple:
    """The job-stacked arguments of :func:`.warp_kernels.discrete_kernel` for the jobs of ``steppers`` (device
    steppers of one optimizer family), host arrays: the optimizers' ``FP``, ``IP``, ``KEYS`` (G, .), the
    jobs' sample counts ``NS`` (G,) and their data ``ZS`` (G, n, d), ``ZTS`` (G, d, n), ``YS`` (G, n) with n
    the largest sample count, a smaller job's rows past its own n zero (the kernel never reads them)."""
    lows = [st.host.low for st in steppers]
    probs = [st.problem for st in steppers]
    G, n, d = len(probs), max(P.n for P in probs), probs[0].d
    ZS, ZTS, YS = np.zeros((G, n, d)), np.zeros((G, d, n)), np.zeros((G, n))
    for g, P in enumerate(probs):
        ZS[g, :P.n] = P.Z
        ZTS[g, :, :P.n] = P.ZT
        YS[g, :P.n] = P.y
    NS = np.array([P.n for P in probs], dtype=np.int64)
    return (np.stack([lo.fp for lo in lows]), np.stack([lo.ip for lo in lows]), np.stack([lo.keys for lo in lows]),
            NS, ZS, ZTS, YS)


class CudaDiscreteStepper(DeviceStepper):
    """The discrete optimizers on the GPU (every optimizer of the discrete registry; see
    :func:`.warp_kernels.discrete_kernel` for which spread a path over threads). ``n_paths`` (the ensemble
    size, when known) chooses the layout under ``layout="auto"``."""

    def __init__(self, host, layout: str = "auto", n_paths: int = 1024):
        from .warp_kernels import runs_on_warps
        low = host.low
        layout = choose_layout(layout, runs_on_warps(low.gradient, low.update), n_paths, host.problem.d,
                               f"{host.optimizer.name} (the SAM family and Adam-mini run one thread per path)",
                               tile=False, tile_what="the discrete optimizers (it runs the label-noise SGD SDE and "
                               "gradient flow)")
        super().__init__(host, layout)
        c = self.cuda
        self.d_blocks = c.to_device(low.blocks if low.blocks.size else np.zeros(1, np.int64))
        self.d_bsize = c.to_device(low.block_size if low.block_size.size else np.ones(1))
        #: the job-stacked arguments of the kernel (FP, IP, KEYS, NS, ZS, ZTS, YS) for this one run: G = 1
        self.stacked = tuple(c.to_device(a) for a in stack_jobs([self]))

    def advance_checked(self, state, paths, step0, n_steps, active, limit, div_step, div_loss) -> None:
        dev = self._arrays(state)
        s1, s2, buf = (dev.get(name) for name in self._slot_names())
        M = state["theta"].shape[0]
        if n_steps == 0 or M == 0:
            return
        d_paths, d_active, d_limit, d_div_step, d_div_loss = self._bookkeeping(paths, active, limit, div_step, div_loss)
        self.launch(self.stacked, self.cuda.to_device(np.zeros(M, np.int64)), dev["theta"], s1, s2, buf, d_paths,
                    step0, n_steps, d_active, d_limit, d_div_step, d_div_loss)
        self._host_stale = True
        self._returned(active, div_step, div_loss, d_active, d_div_step, d_div_loss)

    def launch(self, stacked, d_job, theta, s1, s2, buf, d_paths, step0, n_steps, d_active, d_limit, d_div_step,
               d_div_loss) -> None:
        """One launch of the discrete kernel over the rows of ``theta`` (device arrays), path p running job
        ``d_job[p]`` of the job-stacked arguments ``stacked`` (:func:`stack_jobs`, on the device; see
        :func:`.warp_kernels.discrete_kernel`)."""
        from . import warp_kernels as CW
        low, P = self.host.low, self.problem
        M, dim = theta.shape
        n, d = stacked[4].shape[1], P.d  # the launch's largest n: per-sample scratch rows fit every job
        nb = max(int(low.block_size.shape[0]), 1)
        f8, i8 = np.float64, np.int64
        sc = self._scratch_rows(M, {"W": ((d,), f8), "R": ((n,), f8), "R2": ((n,), f8), "XI": ((n,), f8),
                                    "WROW": ((n,), f8), "PERM": ((n,), i8), "C": ((n,), f8), "GW": ((d,), f8),
                                    "GR": ((dim,), f8), "TH": ((dim,), f8), "UBUF": ((max(n, dim),), f8),
                                    "SUMS": ((nb,), f8), "TD1": ((d,), f8), "TD2": ((d,), f8),
                                    "TM1": ((dim,), f8), "TM2": ((dim,), f8), "ORD": ((dim,), i8),
                                    "OTMP": ((dim,), i8)})
        if self.layout == "thread":
            kern, launch = CW.discrete_kernel(1), grid(M)
        else:
            lanes = CW.LAYOUT_LANES[self.layout]
            kern, launch = CW.discrete_kernel(lanes), (M, lanes)
        FP, IP, KEYS, NS, ZS, ZTS, YS = stacked
        kern[launch](int(low.gradient), int(low.update), int(low.noise), FP, IP, KEYS, self.d_blocks, self.d_bsize,
                     int(P.param.code), int(P.param.depth), NS, ZS, ZTS, YS, d_job, theta, s1, s2, buf, d_paths,
                     int(step0), int(n_steps), d_active, d_limit, d_div_step, d_div_loss,
                     *(sc[k] for k in ("W", "R", "R2", "XI", "WROW", "PERM", "C", "GW", "GR", "TH", "UBUF", "SUMS",
                                       "TD1", "TD2", "TM1", "TM2", "ORD", "OTMP")))

    def _slot_names(self) -> tuple:
        return ("__s1", "__s2", "__buf")

    def _device_layout(self, state) -> dict:
        s1, s2, buf = self.host.kernel_slots(state)
        out = {k: v for k, v in state.items()}
        out.update({"__s1": s1, "__s2": s2, "__buf": buf})
        for slot in self.host.low.slots:  # a state slot and its kernel argument share one device array
            out.pop(slot.name)
        return out

    def _arrays(self, state) -> dict:
        dev = super()._arrays(state)
        names = {1: "__s1", 2: "__s2", 3: "__buf"}
        for slot in self.host.low.slots:
            dev[slot.name] = dev[names[slot.arg]]
        return dev

class CudaSDEStepper(DeviceStepper):
    """The SDE models on the GPU: the label-noise SGD SDE and gradient flow one warp (or one block) per path
    (one Brownian sub-step per step), every model one thread per path."""

    def __init__(self, host, layout: str = "auto", n_paths: int = 1024):
        from ..sde import models as SM
        model = host.model
        sub = host.brownian.substeps(host.dt)
        spread = model.drift is SM._label_noise_drift and model.diffusion is SM._jt_diffusion and sub == 1
        self.tile_paths, self.tile_doubles = TILE_PATHS, TILE_DOUBLES
        P = host.problem
        tiles = spread and P.d <= self.tile_doubles
        layout = choose_layout(layout, spread, n_paths, P.d,
                               "this SDE (only the label-noise SGD SDE and gradient flow with dt = dt_base spread "
                               "a path over threads)", tile=tiles,
                               tile_what="this SDE (the label-noise SGD SDE and gradient flow with dt = dt_base and "
                               f"a row of Z in {self.tile_doubles} doubles of shared memory)")
        super().__init__(host, layout)
        c = self.cuda
        _, _, _, _, fpar, ipar = model.args
        self.d_fpar, self.d_ipar = c.to_device(np.ascontiguousarray(fpar)), c.to_device(np.ascontiguousarray(ipar))
        self.sub = sub

    def _device_layout(self, state) -> dict:
        return {"X": np.ascontiguousarray(self.host.model.pack(state), dtype=np.float64)}

    def _theta(self, state):
        return self._arrays(state)["X"][:, :self.problem.dim]

    def _download(self, state, names=None) -> None:
        if self._key != id(state) or not self._host_stale:
            return
        X = self._dev["X"].copy_to_host()
        if names is None:
            self.host.model.unpack(X, state)
            self._host_stale = False
        else:
            part = {k: state[k].copy() for k in state}
            self.host.model.unpack(X, part)
            for k in names:
                state[k][...] = part[k]

    def advance(self, state, paths, step0, n_steps, active) -> None:
        """EM steps on the device, as ``SDEStepper.advance`` does on the CPU (a path whose drift turns
        non-finite stops; no other check)."""
        d_active = self.cuda.to_device(active)
        self._em(state, paths, step0, n_steps, active, d_active)
        active[...] = d_active.copy_to_host()

    def advance_checked(self, state, paths, step0, n_steps, active, limit, div_step, div_loss) -> None:
        """EM steps on the device, then the driver's end-of-chunk divergence check there too."""
        d_paths, d_active, d_limit, d_div_step, d_div_loss = self._bookkeeping(paths, active, limit, div_step, div_loss)
        if self._em(state, paths, step0, n_steps, active, d_active, d_paths):
            self._check_on_device(self._theta(state), int(step0) + int(n_steps), d_active, d_limit, d_div_step,
                                  d_div_loss)
        self._returned(active, div_step, div_loss, d_active, d_div_step, d_div_loss)

    def _em(self, state, paths, step0, n_steps, active, d_active, d_paths=None) -> bool:
        """Run the EM kernel; False when there was nothing to do."""
        from ..sde import models as SM
        from . import thread_kernels as CK
        host, model, P = self.host, self.host.model, self.problem
        if host.check_stability and not host._warned and self._key != id(state):
            host._check(state, active, step0)  # once, on the host's copy, before it moves to the device
        X = self._arrays(state)["X"]
        M, dim = X.shape
        if n_steps == 0 or M == 0:
            return False
        if d_paths is None:
            d_paths = self.cuda.to_device(np.ascontiguousarray(paths, dtype=np.int64))
        bp = host.brownian
        k0, k1 = bp.key
        scale = float(model.amplitude) * float(np.sqrt(bp.dt_base))
        L = int(self.sub).bit_length() - 1
        nn = model.n_noise
        n, d = P.n, P.d
        f8 = np.float64
        if self.layout == "tile":
            from . import tile_kernels as CT
            ipar = model.args[5]
            sc = self._scratch_cols(M, {"XT": X.shape[1], "WT": d, "RT": n, "XIT": n, "GZT": d})
            CT.em_label_noise_tile_kernel(self.tile_paths, self.tile_doubles)[CT.tile_grid(M, self.tile_paths)](
                X, d_paths, d_active, int(step0), int(n_steps), float(host.dt), scale, np.uint64(k0), np.uint64(k1),
                self.d_Z, self.d_y, int(ipar[SM.I_CODE]), int(ipar[SM.I_DEPTH]),
                sc["XT"], sc["WT"], sc["RT"], sc["XIT"], sc["GZT"])
        elif self.layout != "thread":
            from . import warp_kernels as CW
            sc = self._scratch_rows(M, {"W": ((d,), f8), "R": ((n,), f8), "XI": ((n,), f8), "GZ": ((d,), f8)})
            ipar = model.args[5]
            lanes = CW.LAYOUT_LANES[self.layout]
            CW.em_label_noise_kernel(lanes)[M, lanes](
                X, d_paths, d_active, int(step0), int(n_steps), float(host.dt), scale, np.uint64(k0), np.uint64(k1),
                self.d_Z, self.d_ZT, self.d_y, int(ipar[SM.I_CODE]), int(ipar[SM.I_DEPTH]),
                sc["W"], sc["R"], sc["XI"], sc["GZ"])
        else:
            sc = self._scratch_rows(M, {"B": ((dim,), f8), "BETA": ((nn,), f8), "XI": ((nn,), f8),
                                        "STACK": ((L + 1, nn), f8), "WORK": ((max(model.n_work, 1),), f8),
                                        "HEALTH": ((), f8)})
            CK.em_kernel(model.drift, model.diffusion)[grid(M)](
                X, d_paths, d_active, int(step0), int(n_steps), float(host.dt), int(self.sub), scale, np.uint64(k0),
                np.uint64(k1), self.d_Z, self.d_ZT, self.d_y, self.d_s, self.d_fpar, self.d_ipar,
                sc["B"], sc["BETA"], sc["XI"], sc["STACK"], sc["WORK"], sc["HEALTH"])
        self._host_stale = True
        return True

#: the levels (``simulate``'s ``model``) that run on the GPU
LEVELS = ("discrete", "sde")


def check_level(level: str) -> None:
    """A one-line error for a level that runs on the CPU only."""
    if level not in LEVELS:
        raise DiagsimError(f"the {level} level runs on the CPU only (device='cuda' covers the levels "
                           f"{', '.join(LEVELS)}); use device='cpu'")


def on_device(stepper, layout: str = "auto", n_paths: int = 1024):
    """The device stepper of a CPU stepper (its level's class), laid out for ``n_paths`` paths."""
    check_level(stepper.level)
    return {"discrete": CudaDiscreteStepper, "sde": CudaSDEStepper}[stepper.level](stepper, layout, n_paths)
