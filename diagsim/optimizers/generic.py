"""The discrete level on any model problem (:class:`diagsim.networks.model.ModelProblem`).

``make_stepper(problem, optimizer, seed=...)`` is what ``simulate(problem, ..., model="discrete")`` runs
when ``problem`` is not the diagonal family's (whose optimizers run in the fused kernel of
:mod:`.step_loop`). One step k of the active paths (theta_k -> theta_{k+1}), all paths at once, follows the
diagonal kernel's steps (:mod:`.step_loop`) with the model's batched products in place of Z:

1. the noise of (seed, stream, path, k): the label noise xi (n,), the row weights a (n,) and the rows used
   from :func:`.step_loop.draw_noise`, the very function of the diagonal kernel (Rademacher +-delta or
   delta N(0, 1) with a_j = 1/n; a minibatch of B rows with a_j = 1/B on them; none);
2. r = f(theta_k) - y (``problem.residual``), the clean loss L_k = |r|^2 / 2n, and the noisy gradient
   g = J^T c with c = a * (r - xi) (``problem.vjp``, one batched product for the ensemble); for label noise
   this is ``gradient - vjp(xi) / n`` of the interface. SAF and MESA add 2 lam_tra (r - rhat) to r - xi,
   rhat the residual stored ``delay`` steps earlier (SAF's ring buffer, which then stores r) or that of
   the EMA copy (MESA, ``problem.residual`` of the slot "ema");
3. a path whose L_k is not finite or exceeds its limit stops at theta_k (as in the diagonal kernel);
4. the SAM family: theta + eps from g by the kernel's :func:`.step_loop.perturbation` on the flat (P,)
   vectors (every variant but m-SAM; "block" only on the diagonal family, see below), and g is replaced by
   J(theta + eps)^T (a * (r(theta + eps) - xi)), the same noise. m-SAM splits the step's rows into
   ``m_chunks`` chunks as the kernel does; chunk c has the row weights 1/|c| on its rows, its own
   normalized perturbation (the "sam" perturbation of its chunk gradient) and enters the gradient with
   weight |c| / R;
5. the optimizer's update rule of :mod:`.updates` on the flat (P,) vectors (:func:`.rows.update_rows`, the
   rules the diagonal kernel applies), with the hyperparameters lowered by :mod:`.lowering`; MESA's EMA
   copy then follows the new theta.

GD is SGD without noise. Every optimizer runs here (:data:`GENERIC_DISCRETE`). The SAM variant "block"
perturbs the diagonal network's u or v half of theta; it has no meaning for other families (their
``parameter_blocks()`` is the partition of Adam-mini, not a choice of one factor), so it is a one-line
error there. Paths are independent: path p's numbers depend only on (seed, p, step) and its own state, so
any subset replays exactly.
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError
from ..networks.model import family_of, is_diagonal
from ..registry import SpecRegistry
from . import specs as S
from .discrete import DiscreteStepper
from .entries import DISCRETE
from .lowering import (
    F_BETA_EMA,
    F_DELTA,
    F_LAM_TRA,
    GRAD_MESA,
    GRAD_PLAIN,
    GRAD_SAF,
    GRAD_SAM,
    I_BATCH,
    I_DELAY,
    I_M_CHUNKS,
    I_VARIANT,
    V_MSAM,
    V_SAM,
)
from .rows import ema_rows, noise_rows, perturb_rows, update_rows

#: the optimizers the generic discrete stepper runs: the entry is the gradient kind it forms (GRAD_* of
#: .lowering, as the diagonal kernel's entry says), followed by an update rule of .updates
GENERIC_DISCRETE: SpecRegistry = SpecRegistry("the discrete level on non-diagonal model families", "gradient")
for _cls in (S.GD, S.SGD, S.Adam, S.AdaGrad, S.Lion, S.SignSGD):  # Adam covers RMSProp, Adam-mini, Adalayer
    GENERIC_DISCRETE.register(_cls, GRAD_PLAIN)
GENERIC_DISCRETE.register(S.SAM, GRAD_SAM)
GENERIC_DISCRETE.register(S.SAF, GRAD_SAF)
GENERIC_DISCRETE.register(S.MESA, GRAD_MESA)


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
        gradient = GENERIC_DISCRETE.lookup(optimizer)
        if DISCRETE.lookup(optimizer).gradient != gradient:  # pragma: no cover - a registry inconsistency
            raise DiagsimError(f"{optimizer.name}: the generic and the diagonal steppers disagree on its gradient")
        if isinstance(optimizer, S.SAM) and optimizer.variant == "block" and not is_diagonal(problem):
            raise DiagsimError(f"SAM variant 'block' perturbs the diagonal network's u or v block and runs on the "
                               f"diagonal family only; got model family {family_of(problem)!r}")
        super().__init__(problem, optimizer, seed)

    def advance_checked(self, state, paths, step0: int, n_steps: int, active, limit, div_step, div_loss) -> None:
        """As ``advance`` (inherited); a path whose loss at step k is not finite or above ``limit[p]`` stops at theta_k
        with ``div_step[p] = k`` and ``div_loss[p]`` = that loss."""
        P, lo = self.problem, self.low
        th = state["theta"]
        s1, s2, buf = self.kernel_slots(state)
        paths = np.ascontiguousarray(paths, dtype=np.int64)
        n = P.n
        grad = lo.gradient
        two_lam = 2.0 * lo.fp[F_LAM_TRA] if grad in (GRAD_SAF, GRAD_MESA) else 0.0
        for k in range(int(step0), int(step0) + int(n_steps)):
            rows = np.flatnonzero(active).astype(np.int64)
            if rows.size == 0:
                break
            XI = np.zeros((rows.size, n))
            WROW = np.empty((rows.size, n))
            PERM = np.empty((rows.size, n), np.int64)
            n_rows = noise_rows(lo.noise, lo.keys, lo.fp[F_DELTA], lo.ip[I_BATCH], paths, rows, k, XI, WROW, PERM)
            r, L = residual_and_loss(P, th[rows])
            c = r - XI
            if two_lam != 0.0:  # SAF / MESA: the residual of the stored / EMA outputs (step_loop.coefficients)
                rhat = buf[rows, k % lo.ip[I_DELAY]] if grad == GRAD_SAF else residual_and_loss(P, s1[rows])[0]
                c = c + two_lam * (r - rhat)
            if grad == GRAD_SAF:
                buf[rows, k % lo.ip[I_DELAY]] = r
            live = np.isfinite(L) & (L <= limit[rows])
            for s in np.flatnonzero(~live):
                p = rows[s]
                active[p] = False
                div_step[p] = k
                div_loss[p] = L[s]
            if not live.all():
                rows, r, c, XI, WROW, PERM = rows[live], r[live], c[live], XI[live], WROW[live], PERM[live]
                if rows.size == 0:
                    continue
            TH = th[rows]
            if grad == GRAD_SAM and lo.ip[I_VARIANT] == V_MSAM:
                G = self._msam_gradient(TH, r, XI, PERM, n_rows, paths, rows, k)
            else:
                G = np.ascontiguousarray(P.vjp(TH, WROW * c), dtype=np.float64)
                if grad == GRAD_SAM:
                    G = self._gradient_at_perturbed(lo.ip[I_VARIANT], TH, G, XI, WROW, paths, rows, k)
            update_rows(lo.update, th, s1, s2, G, rows, lo.fp, lo.ip, lo.blocks, lo.block_size, k)
            if grad == GRAD_MESA:
                ema_rows(s1, th, rows, lo.fp[F_BETA_EMA])

    def _gradient_at_perturbed(self, variant, TH, G, XI, WROW, paths, rows, k) -> np.ndarray:
        """J^T (a * (r - xi)) at theta + eps(theta, G) (:func:`.rows.perturb_rows`), with the step's noise."""
        lo = self.low
        TE = np.empty_like(TH)
        perturb_rows(variant, lo.fp, lo.ip, lo.keys, paths, rows, k, TH, np.ascontiguousarray(G), TE)
        re = residual_and_loss(self.problem, TE)[0]
        return np.ascontiguousarray(self.problem.vjp(TE, WROW * (re - XI)), dtype=np.float64)

    def _msam_gradient(self, TH, r, XI, PERM, n_rows, paths, rows, k) -> np.ndarray:
        """m-SAM (as :func:`.step_loop.msam_gradient`): sum_c (|c| / R) grad L_c(theta + eps_c) over the chunks
        c of the rows PERM[:, :R], with weights 1/|c| on chunk c and eps_c SAM's perturbation of its gradient."""
        m = int(self.low.ip[I_M_CHUNKS])
        out = np.zeros_like(TH)
        idx = np.arange(TH.shape[0])[:, None]
        for ch in range(m):
            lo_c, hi_c = ch * n_rows // m, (ch + 1) * n_rows // m
            size = hi_c - lo_c
            A = np.zeros_like(XI)
            A[idx, PERM[:, lo_c:hi_c]] = 1.0 / size
            Gc = np.ascontiguousarray(self.problem.vjp(TH, A * (r - XI)), dtype=np.float64)
            out += (size / n_rows) * self._gradient_at_perturbed(V_SAM, TH, Gc, XI, A, paths, rows, k)
        return out

    def config(self) -> dict:
        return {**super().config(), "engine": "generic (model products)"}


def make_stepper(problem, optimizer: S.Optimizer, *, seed: int = 0, t_end: float | None = None
                 ) -> GenericDiscreteStepper:
    """The discrete stepper of ``optimizer`` on a model problem; noise keyed by ``seed``. ``t_end`` is unused
    (a step is a step); there are no model options."""
    if not isinstance(optimizer, S.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec (SGD(...), Adam(...), ...); got {optimizer!r}")
    return GenericDiscreteStepper(problem, optimizer, seed=seed)
