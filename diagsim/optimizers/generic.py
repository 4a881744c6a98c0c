"""The discrete level on any model problem (:class:`diagsim.networks.model.ModelProblem`).

``make_stepper(problem, optimizer, seed=...)`` is what ``simulate(problem, ..., model="discrete")`` runs
when ``problem`` is not the diagonal family's (whose optimizers run in the fused kernel of
:mod:`.step_loop`). One step k of the active paths (theta_k -> theta_{k+1}), all paths at once:

1. the noise of (seed, stream, path, k): the label noise xi (n,) and the row weights a (n,) from
   :func:`.step_loop.draw_noise`, the very function of the diagonal kernel (Rademacher +-delta or
   delta N(0, 1) with a_j = 1/n; a minibatch of B rows with a_j = 1/B on them; none);
2. r = f(theta_k) - y (``problem.residual``), the clean loss L_k = |r|^2 / 2n, and the noisy gradient
   g = J^T (a * (r - xi)) (``problem.vjp``, one batched product for the ensemble); for label noise this
   is ``gradient - vjp(xi) / n`` of the interface;
3. a path whose L_k is not finite or exceeds its limit stops at theta_k (as in the diagonal kernel);
4. the optimizer's update rule of :mod:`.updates` on the flat (P,) vectors (:func:`.rows.update_rows`, the
   rules the diagonal kernel applies), with the hyperparameters lowered by :mod:`.lowering`.

GD is SGD without noise. The optimizers covered are those whose step is the plain noisy gradient followed
by an update rule (:data:`GENERIC_DISCRETE`); the SAM family, SAF and MESA form their gradients inside the
diagonal kernel and are a one-line error here. Paths are independent: path p's numbers depend only on
(seed, p, step) and its own state, so any subset replays exactly.
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError
from ..registry import SpecRegistry
from . import specs as S
from .discrete import DiscreteStepper
from .entries import DISCRETE
from .lowering import F_DELTA, GRAD_PLAIN, I_BATCH
from .rows import noise_rows, update_rows

#: the optimizers the generic discrete stepper runs (plain noisy gradient + an update rule of .updates)
GENERIC_DISCRETE: SpecRegistry = SpecRegistry(
    "the discrete level on non-diagonal model families", "update rule",
    "the SAM family, SAF and MESA run on the diagonal family only")
for _cls in (S.GD, S.SGD, S.Adam, S.AdaGrad, S.Lion, S.SignSGD):  # Adam covers RMSProp, Adam-mini, Adalayer
    GENERIC_DISCRETE.register(_cls, True)


def residual_and_loss(problem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r (M, n), L = |r|^2 / 2n (M,)); rows with a non-finite entry give r = NaN, L = NaN (the model's
    products are not asked about them)."""
    n = problem.n
    r = np.full((theta.shape[0], n), np.nan)
    fin = np.isfinite(theta).all(axis=1)
    if fin.all():
        r = problem.residual(theta)
    elif fin.any():
        r[fin] = problem.residual(theta[fin])
    return r, 0.5 * np.einsum("mj,mj->m", r, r) / n


class GenericDiscreteStepper(DiscreteStepper):
    """Advances paths of a discrete optimizer on a model problem (the Stepper protocol of
    :mod:`diagsim.engine.stepper`); ``dt = lr``. State, slots, statistics and hints are the diagonal
    stepper's (:class:`.discrete.DiscreteStepper`); only the step itself runs on the model's products."""

    def __init__(self, problem, optimizer: S.Optimizer, seed: int = 0):
        GENERIC_DISCRETE.lookup(optimizer)
        if DISCRETE.lookup(optimizer).gradient != GRAD_PLAIN:  # pragma: no cover - a registry inconsistency
            raise DiagsimError(f"{optimizer.name} does not use the plain noisy gradient")
        super().__init__(problem, optimizer, seed)

    def advance_checked(self, state, paths, step0: int, n_steps: int, active, limit, div_step, div_loss) -> None:
        """As :meth:`advance`; a path whose loss at step k is not finite or above ``limit[p]`` stops at theta_k
        with ``div_step[p] = k`` and ``div_loss[p]`` = that loss."""
        P, lo = self.problem, self.low
        th = state["theta"]
        s1, s2, _ = self.kernel_slots(state)
        paths = np.ascontiguousarray(paths, dtype=np.int64)
        n = P.n
        for k in range(int(step0), int(step0) + int(n_steps)):
            rows = np.flatnonzero(active).astype(np.int64)
            if rows.size == 0:
                break
            XI = np.zeros((rows.size, n))
            WROW = np.empty((rows.size, n))
            noise_rows(lo.noise, lo.keys, lo.fp[F_DELTA], lo.ip[I_BATCH], paths, rows, k, XI, WROW)
            r, L = residual_and_loss(P, th[rows])
            live = np.isfinite(L) & (L <= limit[rows])
            for s in np.flatnonzero(~live):
                p = rows[s]
                active[p] = False
                div_step[p] = k
                div_loss[p] = L[s]
            if not live.all():
                rows, r, XI, WROW = rows[live], r[live], XI[live], WROW[live]
                if rows.size == 0:
                    continue
            G = np.ascontiguousarray(P.vjp(th[rows], WROW * (r - XI)), dtype=np.float64)
            update_rows(lo.update, th, s1, s2, G, rows, lo.fp, lo.ip, lo.blocks, lo.block_size, k)

    def config(self) -> dict:
        return {**super().config(), "engine": "generic (model products)"}


def make_stepper(problem, optimizer: S.Optimizer, *, seed: int = 0, t_end: float | None = None
                 ) -> GenericDiscreteStepper:
    """The discrete stepper of ``optimizer`` on a model problem; noise keyed by ``seed``. ``t_end`` is unused
    (a step is a step); there are no model options."""
    if not isinstance(optimizer, S.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec (SGD(...), Adam(...), ...); got {optimizer!r}")
    return GenericDiscreteStepper(problem, optimizer, seed=seed)
