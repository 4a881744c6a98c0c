"""The discrete-optimizer stepper: the :class:`~diagsim.engine.stepper.Stepper` of ``model="discrete"``.

``make_stepper(problem, optimizer, seed=0)`` lowers the spec (:mod:`.lowering`) and advances ensembles
with the one Numba kernel of :mod:`.step_loop`. State arrays (first axis = path):

==========  ====================  ========================================================
name        shape                 optimizers
==========  ====================  ========================================================
theta       (M, 2d)               all
m           (M, 2d)               Adam, RMSProp, Adam-mini, Adalayer (first moment, m_0 = 0)
v           (M, 2d) / (M, B)      Adam, RMSProp, AdaGrad (per parameter; v_0 = ``v0``);
                                  Adam-mini, Adalayer (one per block)
residuals   (M, delay, n)         SAF: ring buffer of the residuals r = Z w - y of the last ``delay``
                                  steps (slot k mod delay); initialised with r(theta_0), so the stored
                                  outputs at step k are those of step max(k - delay, 0)
ema         (M, 2d)               MESA: EMA copy of theta (ema_0 = theta_0, updated after each step
                                  with the new theta: ema <- beta_ema ema + (1 - beta_ema) theta)
==========  ====================  ========================================================

Paths run in groups of up to :data:`GROUP_MAX` per thread task (``prange`` over groups); a run that fits
in one group calls the serial group function directly (no parallel launch). Neither choice changes a
bit of the results. The kernel serves every optimizer, so it compiles once (about 20 s of CPU on the
2-core reference machine, then loaded from Numba's cache in well under a second).
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import DiagsimError
from . import specs as S
from .entries import BUF, DISCRETE, S1, S2
from .lowering import lower
from .step_loop import advance_group, advance_kernel

#: at most this many paths advance in lockstep on one thread (they share the loads of Z; 8 fill the lanes
#: of the SIMD kernel, and 16 were slower at d = 1000: a group's optimizer state then overflows the L2
#: cache, benchmarks/NOTES.md §10)
GROUP_MAX = 8


def group_size(n_paths: int) -> int:
    """Paths per thread task: as large as GROUP_MAX while every thread still gets work (results do not
    depend on it)."""
    return max(1, min(GROUP_MAX, n_paths // max(1, numba.get_num_threads())))


class DiscreteStepper:
    """Advances paths of a discrete optimizer; see :mod:`diagsim.engine.stepper` for the protocol.

    ``dt = lr`` (one step is lr of SDE time t) and tau = lr * t = lr^2 k.
    """

    level = "discrete"

    def __init__(self, problem, optimizer: S.Optimizer, seed: int = 0, group: int | None = None):
        self.problem = problem
        self.optimizer = optimizer
        self.seed = int(seed)
        self.low = lower(problem, optimizer, self.seed)
        self.lr = float(optimizer.lr)
        self.dt = self.lr
        self.group = group

    # ------------------------------------------------------------------ protocol
    def init_state(self, theta0: np.ndarray) -> dict[str, np.ndarray]:
        """theta and the optimizer's state slots (their initial values, see :mod:`.registry`)."""
        th = np.array(self.problem.check_theta(theta0), dtype=np.float64, order="C")
        st = {"theta": th}
        for slot in self.low.slots:
            st[slot.name] = slot.init(self.problem, self.optimizer, th, self.low)
        return st

    def advance(self, state, paths, step0: int, n_steps: int, active) -> None:
        """Advance; paths whose loss becomes non-finite stop and are marked inactive."""
        M = state["theta"].shape[0]
        self.advance_checked(state, paths, step0, n_steps, active, np.full(M, np.inf),
                             np.full(M, -1, np.int64), np.full(M, np.nan))

    def kernel_slots(self, state) -> tuple:
        """(s1, s2, buf): the state arrays in the kernel's argument positions (empty where unused)."""
        M = state["theta"].shape[0]
        args = {S1: np.zeros((M, 0)), S2: np.zeros((M, 0)), BUF: np.zeros((M, 0, 0))}
        for slot in self.low.slots:
            args[slot.arg] = state[slot.name]
        return args[S1], args[S2], args[BUF]

    def advance_checked(self, state, paths, step0: int, n_steps: int, active, limit, div_step,
                        div_loss) -> None:
        """As :meth:`advance`, and a path whose loss at step k is non-finite or > ``limit[p]`` stops
        at theta_k with ``div_step[p] = k``, ``div_loss[p]`` = that loss (optional protocol method)."""
        th = state["theta"]
        M = th.shape[0]
        lo = self.low
        s1, s2, buf = self.kernel_slots(state)
        group = self.group or group_size(M)
        P = self.problem
        args = (lo.gradient, lo.update, lo.noise, lo.fp, lo.ip, lo.keys, lo.blocks, lo.block_size, P.param.code,
                P.param.depth, P.Z, P.ZT, P.y, th, s1, s2, buf, np.ascontiguousarray(paths, dtype=np.int64),
                int(step0), int(n_steps), active, np.ascontiguousarray(limit, dtype=np.float64), div_step,
                div_loss)
        if M <= group:  # one group: the same code without a parallel launch (same numbers)
            advance_group(0, M, *args)
        else:
            advance_kernel(*args, int(group))

    def config(self) -> dict:
        return {"level": self.level, "optimizer": self.optimizer.config(), "seed": self.seed}

    def preconditioner_stats(self, state) -> dict[str, np.ndarray]:
        """Per path: mean/min/max of v and of the preconditioner 1/(v^lam + eps) (v without bias
        correction); empty for optimizers without one."""
        stats = DISCRETE.lookup(self.optimizer).stats
        return {} if stats is None else stats(self.optimizer, state)

    def divergence_hint(self) -> str:
        """Which hyperparameter is likely too large (optional protocol method)."""
        hint = DISCRETE.lookup(self.optimizer).hint
        return f"lr={self.optimizer.lr:g} is likely too large" + ("" if hint is None else hint(self.optimizer))


def make_stepper(problem, optimizer: S.Optimizer, *, seed: int = 0, t_end: float | None = None,
                 group: int | None = None, **model_options) -> DiscreteStepper:
    """The stepper of a discrete optimizer on ``problem``; noise keyed by ``seed``.

    ``t_end`` (the horizon, when known) is unused: a step is a step. ``group`` (paths per thread task) only
    affects speed. No other model options exist (any other keyword is a one-line error).
    """
    if model_options:
        raise DiagsimError(f"model 'discrete' takes no model options but group; got {sorted(model_options)}")
    if group is not None and (not isinstance(group, (int, np.integer)) or group < 1):
        raise DiagsimError(f"group must be a positive integer, got {group!r}")
    return DiscreteStepper(problem, optimizer, seed=seed, group=group)
