"""The slow-flow level of the Stepper protocol: an optimizer spec -> its flow on Gamma (time tau).

``make_stepper(problem, optimizer, **options)`` is what ``simulate(..., model="slow-flow")`` calls:

==========================================  ==========================================================
optimizer (label noise delta > 0)           flow (:mod:`diagsim.slowflow.flows`), c = delta^2 / n
==========================================  ==========================================================
SGD                                         -(c/4) P grad tr H
Adam / RMSProp (lam = 1/2), AdamE-lam       adaptive semi-gradient flow, S = 1/(v^lam + eps)
AdamMini / Adalayer                         the same with one v per block (default blocks {u, v})
==========================================  ==========================================================

GD (no noise) does not move on Gamma at this time scale and has no slow flow; AdaGrad, the SAM family,
SAF, MESA and minibatch noise have none here either (DiagsimError).

One step advances tau by ``dtau`` (so ``stepper.dt = dtau / lr`` on the t clock, tau = lr t): a Heun (or
explicit Euler) step in tau with every stage retracted onto Gamma by Newton's method, subdivided so that no
coordinate moves by more than ``kappa`` of its size per substep (the adaptive flows are singular where a
coordinate reaches 0 in finite time: such coordinates are set to 0 once below ``zero_tol``).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from ..errors import DiagsimError, check_choice, check_int, check_positive
from ..networks.diagonal.parametrization import check_blocks
from ..networks.diagonal.problem import Problem
from ..networks.model import parameter_blocks
from ..optimizers import specs as O
from ..registry import SpecRegistry
from .flows import SlowFlow
from .generic import manifold_of

#: a substep whose stage cannot be retracted is retried with half its size, at most this many times
MAX_HALVINGS = 30

STARTS = ("auto", "given", "gradient-flow")
METHODS = ("heun", "euler")


def _sgd_flow(problem, opt, c, v, eps):
    return SlowFlow(problem, c, name="sgd-slow-flow")


def _adaptive_flow(problem, opt, c, v, eps):
    check_choice("v", v, ("quasi-static", "ode"))
    if v == "ode" and opt.bias_correction:
        raise DiagsimError("no slow flow with v='ode' for bias_correction=True; use v='quasi-static' or "
                           "bias_correction=False")
    blocks = None
    if isinstance(opt, O.AdamMini):
        blocks = parameter_blocks(problem) if opt.blocks is None else check_blocks(opt.blocks, problem.dim)
    label = opt.name if opt.lam == 0.5 else f"{opt.name}-e{opt.lam:g}"
    return SlowFlow(problem, c, lam=opt.lam, eps=opt.eps if eps is None else eps, blocks=blocks, v_mode=v,
                    C=(1.0 - opt.beta2) / opt.lr ** 2, name=f"{label}-slow-flow")


def _no_flow(problem, opt, c, v, eps):
    raise DiagsimError(f"{opt.name} without label noise has no slow flow: with c = delta^2/n = 0 it does "
                       "not move on the manifold of minimizers at the slow time scale (use model='sde' "
                       "for its gradient flow)")


#: optimizer spec class -> ``builder(problem, opt, c, v, eps) -> SlowFlow`` (subclasses resolve to their
#: parent's entry)
SLOW_FLOWS: SpecRegistry = SpecRegistry("the slow-flow level", "continuous model (slow flow)",
                                         "use model='discrete'")
SLOW_FLOWS.register(O.GD, _no_flow)
SLOW_FLOWS.register(O.SGD, _sgd_flow)
SLOW_FLOWS.register(O.Adam, _adaptive_flow)  # Adam, RMSProp, AdamE-lambda, Adam-mini, Adalayer


def flow_for(problem: Problem, optimizer, *, v: str = "quasi-static", eps=None) -> SlowFlow:
    """The slow flow of an optimizer spec (see the module table and :data:`SLOW_FLOWS`)."""
    if not isinstance(optimizer, O.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec; got {optimizer!r}")
    build = SLOW_FLOWS.lookup(optimizer)
    if isinstance(optimizer.noise, O.Minibatch):
        raise DiagsimError(f"no slow flow for minibatch noise ({optimizer.name}): the slow flows model label "
                           "noise")
    delta = optimizer.label_noise
    if delta == 0.0:
        return _no_flow(problem, optimizer, 0.0, v, eps)
    return build(problem, optimizer, delta ** 2 / problem.n, v, eps)


def gradient_flow_limit(problem: Problem, theta0: np.ndarray, *, tol: float = 1e-12, t_max: float = 1e7
                        ) -> np.ndarray:
    """Phi(theta0): the limit of gradient flow from each row of theta0 (M, 2d), on Gamma.

    Integrated with DOP853 (rtol 1e-10) until max|Z w - y| <= 1e-6 (1 + max|y|), then retracted (Newton)
    to ``tol``. For the Adam family with a scalar v0 the fast phase is the same flow up to a constant time
    change (S(v0) is a multiple of the identity), so this is the start of their slow flows too.
    """
    th = problem.check_theta(theta0).copy()
    out = np.empty_like(th)
    scale = 1.0 + np.abs(problem.y).max()
    gamma = manifold_of(problem)
    for p in range(th.shape[0]):
        y = th[p]
        t, span = 0.0, 10.0
        while gamma.residual_norm(y[None])[0] > 1e-6 * scale:
            if t > t_max:
                raise DiagsimError(f"gradient flow from path {p} did not reach the manifold by t = {t_max:g}")
            sol = solve_ivp(lambda _t, z: -problem.gradient(z[None])[0], (t, t + span), y, method="DOP853",
                            rtol=1e-10, atol=1e-13)
            if not sol.success:
                raise DiagsimError(f"gradient flow from path {p} failed: {sol.message}")
            y = sol.y[:, -1]
            t += span
            span *= 2.0
        out[p] = y
    return gamma.retract(out, tol=tol)


class SlowFlowStepper:
    """Heun (or explicit Euler) in tau + Newton retraction for a :class:`SlowFlow` (the Stepper protocol).

    Parameters
    ----------
    flow : the flow.
    lr : the optimizer's learning rate (t = tau / lr; ``dt = dtau / lr``).
    dtau : slow-time step.
    start : "auto" (default: "given" when every row of theta0 lies within ``max_start_residual`` of Gamma,
        else "gradient-flow" for all rows; the choice is recorded as ``start_used`` in ``config()``),
        "given" (theta0 must be within ``max_start_residual`` of Gamma, else a DiagsimError; it is then
        retracted) or "gradient-flow" (start at the gradient-flow limit Phi(theta0)).
    v0 : v_mode="ode": initial v, None for the quasi-static value c diag H at the start, or a number.
    kappa : at most this relative change of any coordinate per substep.
    zero_tol : adaptive flows: coordinates with |theta_i| < zero_tol are set to 0 (they reach 0 in
        finite time; the flow is singular there).
    max_substeps : per step, else a DiagsimError.
    method : "heun" (second order, default) or "euler"; every stage is retracted onto Gamma.
    """

    level = "slow-flow"

    def __init__(self, flow: SlowFlow, *, lr: float, dtau: float, start: str = "auto",
                 max_start_residual: float = 1e-3, v0=None, kappa: float = 0.1, zero_tol: float = 1e-9,
                 max_substeps: int = 100000, optimizer=None, retract_tol: float = 1e-12,
                 method: str = "heun", dtau_rule: str = "given"):
        self.flow = flow
        self.problem = flow.problem
        self.lr = check_positive("lr", lr)
        self.dtau = check_positive("dtau", dtau)
        self.dt = self.dtau / self.lr
        self.start = check_choice("start", start, STARTS)
        self.start_used = None if start == "auto" else start  # resolved by start_point for "auto"
        self.max_start_residual = check_positive("max_start_residual", max_start_residual)
        self.v0 = None if v0 is None else check_positive("v0", v0, allow_zero=True)
        self.kappa = check_positive("kappa", kappa)
        self.zero_tol = check_positive("zero_tol", zero_tol, allow_zero=True)
        self.max_substeps = check_int("max_substeps", max_substeps)
        self.optimizer = optimizer
        self.retract_tol = retract_tol
        self.method = check_choice("method", method, METHODS)
        self.substeps_taken = 0
        self.rejected_substeps = 0
        self.dtau_rule = dtau_rule  # how dtau was chosen (recorded in the config)

    @property
    def has_v(self) -> bool:
        return self.flow.adaptive and self.flow.v_mode == "ode"

    # ------------------------------------------------------------------ protocol
    def resolve_start(self, theta0: np.ndarray) -> str:
        """The start rule used for ``theta0``: ``start`` itself, or for "auto" "given" when every row is
        within ``max_start_residual`` of Gamma (max|Z w - y|), else "gradient-flow"."""
        if self.start != "auto":
            return self.start
        th = self.problem.check_theta(theta0, "theta0")
        r0 = self.flow.manifold.residual_norm(th)
        return "given" if np.all(r0 <= self.max_start_residual) else "gradient-flow"

    def start_point(self, theta0: np.ndarray) -> np.ndarray:
        """The point of Gamma the flow starts from (see ``start``), (M, 2d); sets ``start_used``."""
        th = self.problem.check_theta(theta0, "theta0")
        used = self.resolve_start(th)
        self.start_used = used
        if used == "gradient-flow":
            return gradient_flow_limit(self.problem, th, tol=self.retract_tol)
        r0 = self.flow.manifold.residual_norm(th)
        if np.any(r0 > self.max_start_residual):
            p = int(np.argmax(r0))
            raise DiagsimError(f"start point of path {p} is not near the manifold of minimizers "
                               f"(max|Zw - y| = {r0[p]:.3g} > max_start_residual = "
                               f"{self.max_start_residual:g}); start the slow flow with "
                               "start='auto' or 'gradient-flow' (model_options), from a trained state, or "
                               "raise max_start_residual")
        return self.flow.manifold.retract(th, tol=self.retract_tol)

    def init_state(self, theta0: np.ndarray) -> dict[str, np.ndarray]:
        th = np.ascontiguousarray(self.start_point(theta0))
        state = {"theta": th}
        if self.has_v:
            if self.v0 is None:
                state["v"] = self.flow.v_quasi_static(th)
            else:
                state["v"] = np.full((th.shape[0], self.flow.n_v), self.v0)
        return state

    def advance(self, state, paths, step0, n_steps, active) -> None:
        n_steps = check_int("n_steps", n_steps, minimum=0)
        idx = np.flatnonzero(active)
        if n_steps == 0 or idx.size == 0:
            return
        th = state["theta"][idx].copy()
        v = state["v"][idx].copy() if self.has_v else None
        alive = np.ones(idx.size, bool)
        for _ in range(n_steps):
            th, v, ok = self._step(th, v, alive)
            alive &= ok
            if not alive.any():
                break
        state["theta"][idx[alive]] = th[alive]
        if v is not None:
            state["v"][idx[alive]] = v[alive]
        bad = idx[~alive]
        if bad.size:
            state["theta"][bad] = np.nan
            active[bad] = False

    def _move(self, t, v, vel, dv, h):
        """Rows t + h vel (killed coordinates zeroed, then retracted) and v + h dv; (theta, v, finite)."""
        with np.errstate(all="ignore"):
            new = t + h[:, None] * vel
            nv = None if v is None else v + h[:, None] * dv
        if self.flow.adaptive and self.zero_tol > 0:
            new[np.abs(new) < self.zero_tol] = 0.0
        fin = np.isfinite(new).all(axis=1)
        if nv is not None:
            fin &= np.isfinite(nv).all(axis=1)
        out = np.full_like(new, np.nan)
        if fin.any():
            try:
                out[fin] = self.flow.manifold.retract(new[fin], tol=self.retract_tol)
            except DiagsimError as exc:
                raise DiagsimError(f"slow flow left the manifold ({exc}); use a smaller dtau or kappa"
                                   ) from None
        return out, nv, fin

    def _stage(self, t_r, v_r, vel, dv, h):
        """One substep of size h (rows): Euler, or Heun's predictor-corrector; (theta, v, finite)."""
        new, nv, fin = self._move(t_r, v_r, vel, dv, h)
        if self.method == "heun" and fin.any():
            f = np.flatnonzero(fin)
            vel2, dv2 = self.flow.velocity(new[f], None if nv is None else nv[f])
            avg = 0.5 * (vel[f] + vel2)
            avg_dv = None if dv is None else 0.5 * (dv[f] + dv2)
            new2, nv2, fin2 = self._move(t_r[f], None if v_r is None else v_r[f], avg, avg_dv, h[f])
            new[f] = new2
            if nv is not None:
                nv[f] = nv2
            fin[f] = fin2
        return new, nv, fin

    def _step(self, th, v, alive):
        """One step of dtau for the rows with ``alive``; returns (theta, v, still finite).

        Substeps h <= kappa / (the flow's relative speed: max_i |vel_i / theta_i| on the diagonal family, whose
        coordinates move multiplicatively; max_i |vel_i| / max_i |theta_i| on the others) (and h <= 0.5 / C
        for v following its ODE); each substep
        is explicit Euler ("euler") or Heun's predictor-corrector ("heun"), every stage retracted onto Gamma
        (a projection method keeps the order of the underlying scheme: 1 for Euler, 2 for Heun).
        """
        rem = np.where(alive, self.dtau, 0.0)
        ok = alive.copy()
        floor = max(self.zero_tol, 1e-300)
        for _ in range(self.max_substeps):
            rows = np.flatnonzero(rem > 0)
            if rows.size == 0:
                return th, v, ok
            t_r = th[rows]
            v_r = None if v is None else v[rows]
            vel, dv = self.flow.velocity(t_r, v_r)
            rate = self.flow.manifold.relative_speed(t_r, vel, floor)
            with np.errstate(divide="ignore"):
                h = np.minimum(rem[rows], np.where(rate > 0, self.kappa / rate, np.inf))
            if dv is not None:  # explicit steps of dv/dtau = -C v + ...: stable for C h < 2
                h = np.minimum(h, 0.5 / self.flow.C)
            for _halving in range(MAX_HALVINGS + 1):
                try:
                    new, nv, fin = self._stage(t_r, v_r, vel, dv, h)
                    break
                except DiagsimError:
                    # a stage that Newton cannot bring back onto Gamma (a coordinate collapsing faster than
                    # the rate bound saw): reject the substep and retry with half of it
                    if _halving == MAX_HALVINGS:
                        raise
                    h = 0.5 * h
                    self.rejected_substeps += 1
            bad = rows[~fin]
            ok[bad] = False
            rem[bad] = 0.0
            good, hg = rows[fin], h[fin]
            th[good] = new[fin]
            if v is not None:
                v[good] = nv[fin]
            rem[good] = np.where(hg >= rem[good], 0.0, rem[good] - hg)
            self.substeps_taken += 1
        raise DiagsimError(f"slow flow needed more than {self.max_substeps} substeps for one step of dtau "
                           f"= {self.dtau:g} (a coordinate is collapsing); use a smaller dtau or a larger "
                           "zero_tol")

    def config(self) -> dict:
        cfg = {"level": "slow-flow", "model": self.flow.name, "equation": self.flow.equation(),
               "dtau": self.dtau, "dtau_rule": self.dtau_rule, "dt": self.dt, "lr": self.lr, "start": self.start,
               "start_used": self.start_used, "max_start_residual": self.max_start_residual,
               "kappa": self.kappa,
               "zero_tol": self.zero_tol, "integrator": f"{self.method} in tau + Newton retraction",
               "method": self.method,
               "params": self.flow.describe()}
        if self.has_v:
            cfg["v0"] = "quasi-static" if self.v0 is None else self.v0
        if self.optimizer is not None:
            cfg["optimizer"] = self.optimizer.config()
        return cfg

    def preconditioner_stats(self, state) -> dict[str, np.ndarray]:
        if not self.flow.adaptive:
            return {}
        S = self.flow.preconditioner(state["theta"], state.get("v"))
        out = {"precond_mean": S.mean(axis=1), "precond_min": S.min(axis=1), "precond_max": S.max(axis=1)}
        if "v" in state:
            out["v_mean"] = state["v"].mean(axis=1)
        return out

    # ------------------------------------------------------------------ observables
    def measure(self, state) -> np.ndarray:
        """The flow's sharpness measure per path (tr H, tr diag(H)^(1/2), ...)."""
        return self.flow.measure(state["theta"])


def auto_dtau(flow: SlowFlow, theta: np.ndarray, rel_change: float = 0.01) -> float:
    """dtau such that the flow's measure changes by about ``rel_change`` per step at theta (one significant
    digit, rounded down). Fast coordinates are resolved by the substeps, not by dtau."""
    v = flow.v_quasi_static(theta) if (flow.adaptive and flow.v_mode == "ode") else None
    vel, _ = flow.velocity(theta, v)
    S = flow.preconditioner(theta, v)
    speed = np.abs((flow.semi_gradient(theta, S) * vel).sum(axis=1))
    level = np.abs(flow.potential(theta)) if flow.potential(theta) is not None else flow.measure(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = float(np.nanmin(rel_change * level / speed))
    if flow.adaptive and flow.v_mode == "ode":
        x = min(x, 0.1 / flow.C)
    if not np.isfinite(x) or x <= 0:
        return 1e-3
    e = np.floor(np.log10(x))
    return float(np.floor(x / 10 ** e) * 10 ** e)


def make_stepper(problem: Problem, optimizer, *, seed: int = 0, t_end: float | None = None, dtau="auto",
                 v: str = "quasi-static", v0=None, start: str = "auto", max_start_residual: float = 1e-3, eps=None,
                 kappa: float = 0.1, zero_tol: float = 1e-9, max_substeps: int = 100000,
                 method: str = "heun") -> SlowFlowStepper:
    """The slow-flow stepper of ``optimizer`` (what ``simulate(model="slow-flow")`` runs).

    Parameters
    ----------
    seed : unused (a slow flow has no noise); part of every level's factory.
    t_end : the run's horizon on the t clock when it was given in t or tau (``simulate`` passes it): an
        automatic dtau is shrunk, never grown, to divide it, so that the run ends at the horizon asked for.
    dtau : slow-time step, or "auto": the flow's measure changes by about 1% per step at the start point
        of ``problem.theta0`` (one significant digit; v="ode": also dtau <= 0.1 / C).
        ``stepper.dt = dtau / lr``.
    v : "quasi-static" (v = c diag H) or "ode" (dv/dtau = C (c diag H - v)); adaptive flows.
    v0 : initial v for v="ode" (None: quasi-static value).
    start : "auto" (default: "given" when theta0 lies within ``max_start_residual`` of Gamma, else
        "gradient-flow"; recorded as ``start_used`` in the config), "given" (theta0 must lie within
        ``max_start_residual`` of Gamma, else a DiagsimError) or "gradient-flow" (Phi(theta0)).
    eps : override the optimizer's eps in S = 1/(v^lam + eps) (e.g. 0 for the exact eps -> 0 flow).
    kappa, zero_tol, max_substeps : substep control (see :class:`SlowFlowStepper`).
    method : "heun" (default) or "euler".
    """
    flow = flow_for(problem, optimizer, v=v, eps=eps)
    kw = dict(lr=optimizer.lr, start=start, max_start_residual=max_start_residual, v0=v0, kappa=kappa,
              zero_tol=zero_tol, max_substeps=max_substeps, optimizer=optimizer, method=method)
    rule = "given"
    if isinstance(dtau, str):
        check_choice("dtau", dtau, ("auto",))
        probe = SlowFlowStepper(flow, dtau=1.0, **kw)
        th0 = problem.theta0(1)
        if probe.resolve_start(th0) == "gradient-flow" or flow.manifold.residual_norm(th0)[0] <= max_start_residual:
            ref = probe.start_point(th0)
        else:
            from ..sde.stability import teacher_point
            tp = teacher_point(problem)
            if tp is None:
                raise DiagsimError("dtau='auto' needs a start point near the manifold; give dtau explicitly")
            ref = tp[None]
        dtau, rule = auto_dtau(flow, ref), "auto"
        if t_end is not None and t_end > 0:
            tau_end = float(t_end) * optimizer.lr
            dtau, rule = tau_end / max(1, math.ceil(tau_end / dtau - 1e-9)), "auto, fitted to the horizon"
    return SlowFlowStepper(flow, dtau=check_positive("dtau", dtau), dtau_rule=rule, **kw)
