"""The SDE level on any model problem (:class:`diagsim.networks.model.ModelProblem`), by Euler–Maruyama in
NumPy with the model's batched products.

The models are those of :mod:`diagsim.sde.models` (its docstring has the equations), written with the
interface's products: -grad L = J^T (-r/n), the noise (delta/n) J^T dB is ``vjp(theta, dB)`` scaled, and
diag Sigma = (delta^2/n) ``gn_diag(theta)``:

* ``"gradient-flow"``    theta <- theta + J^T (-(r/n) dt);
* ``"sgd-label-noise"``  theta <- theta + J^T (-(r/n) dt + a dB),   a = sqrt(lr) delta / n;
* ``"adam-sde"``         theta <- theta - S g dt + S J^T (a dB),    S = 1/(v^lam + eps), g = grad L;
                         v <- v + C lr (diag Sigma + g^2 - v) dt   (per parameter, or the block mean for
                         Adam-mini / Adalayer with the problem's ``parameter_blocks``).

The step has the same structure as the diagonal integrator (:mod:`diagsim.sde.integrator`: the drift of the
label-noise models is applied through J^T together with the noise) and the Brownian increments are the
same numbers (:func:`diagsim.sde.brownian.increments`: stream "brownian", (seed, path, step), dyadic
refinement of ``dt_base``), so on the diagonal family it follows the same path up to rounding. The
(theta, m, v) momentum model is not available here. A path whose loss becomes non-finite stops at the
state where it was computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DiagsimError, check_choice, check_int, check_positive
from ..networks.model import parameter_blocks
from ..optimizers import specs as O
from ..optimizers.generic import residual_and_loss
from ..registry import SpecRegistry
from . import stability
from .brownian import BrownianPath, increments
from .stepper import SDEStepper, _label_noise_delta, _one_variant

#: steps of Brownian increments drawn at once (memory: paths x this x n floats)
STEP_BLOCK = 256


@dataclass(frozen=True, eq=False)
class ModelSDE:
    """An SDE of :mod:`diagsim.sde.models` on a model problem: its name, equation, noise amplitude a and, for
    the Adam SDE, the preconditioner's data (``adaptive``: lam, eps, the rate C lr of v, delta^2/n, blocks)."""

    name: str
    equation: str
    amplitude: float
    params: dict = field(default_factory=dict)
    adaptive: bool = False
    lam: float = 0.5
    eps: float = 0.0
    rate_v: float = 0.0
    noise_var: float = 0.0
    blocks: np.ndarray | None = None

    @property
    def relaxation(self) -> float:
        return self.rate_v

    def n_v(self, dim: int) -> int:
        return dim if self.blocks is None else int(self.blocks.max()) + 1

    def preconditioner(self, v: np.ndarray) -> np.ndarray:
        """S = 1/(v^lam + eps) per parameter, (M, P)."""
        if self.blocks is not None:
            v = v[:, self.blocks]
        return 1.0 / ((np.sqrt(v) if self.lam == 0.5 else v ** self.lam) + self.eps)

    def v_target(self, problem, theta: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """diag Sigma + grad L^2 (per parameter or the block mean), the drift target of v; ``g`` = grad L at
        theta when the caller has it."""
        if g is None:
            g = problem.gradient(theta)
        tgt = self.noise_var * problem.gn_diag(theta) + g * g
        if self.blocks is None:
            return tgt
        cnt = np.bincount(self.blocks)
        out = np.zeros((tgt.shape[0], cnt.size))
        for q in range(cnt.size):
            out[:, q] = tgt[:, self.blocks == q].mean(axis=1)
        return out


def _gradient_flow(problem, opt, variant) -> ModelSDE:
    _one_variant(opt, variant)
    return ModelSDE("gradient-flow", "d theta = -grad L dt", 0.0)


def _sgd(problem, opt, variant) -> ModelSDE:
    delta = _label_noise_delta(opt)
    _one_variant(opt, variant)
    if delta == 0.0:
        return _gradient_flow(problem, opt, variant)
    return ModelSDE("sgd-label-noise", "d theta = -grad L dt + sqrt(lr) (delta/n) J^T dB",
                    math.sqrt(opt.lr) * delta / problem.n, {"lr": opt.lr, "label_noise": delta})


def _adam(problem, opt, variant) -> ModelSDE:
    delta = _label_noise_delta(opt)
    if variant != "paper":
        raise DiagsimError(f"variant={variant!r}: the (theta, m, v) momentum SDE runs on the diagonal family "
                           "only; use variant='paper' on this model family")
    if opt.bias_correction:
        raise DiagsimError("no SDE model for Adam with bias_correction=True (the SDEs model the paper's "
                           "uncorrected Adam); use bias_correction=False or model='discrete'")
    blocks = None
    if isinstance(opt, O.AdamMini):
        from ..networks.diagonal.parametrization import check_blocks
        blocks = parameter_blocks(problem) if opt.blocks is None else check_blocks(opt.blocks, problem.dim)
    C = (1.0 - opt.beta2) / opt.lr ** 2
    eq = ("d theta = -S(v) (grad L dt + sqrt(lr) (delta/n) J^T dB); "
          "dv = C lr (diag Sigma + grad L^2 - v) dt; S = 1/(v^lam + eps), C = (1-beta2)/lr^2")
    if blocks is not None:
        eq += "; v per block (mean over the block)"
    params = {"lr": opt.lr, "label_noise": delta, "beta2": opt.beta2, "C": C, "eps": opt.eps, "lam": opt.lam,
              "blocks": None if blocks is None else blocks.tolist()}
    return ModelSDE("adam-sde", eq, math.sqrt(opt.lr) * delta / problem.n, params, adaptive=True, lam=opt.lam,
                    eps=opt.eps, rate_v=C * opt.lr, noise_var=delta ** 2 / problem.n, blocks=blocks)


#: optimizer spec class -> ``builder(problem, opt, variant) -> ModelSDE``
GENERIC_SDE: SpecRegistry = SpecRegistry("the SDE level on non-diagonal model families", "continuous model (SDE)",
                                         "use model='discrete'")
GENERIC_SDE.register(O.GD, _gradient_flow)
GENERIC_SDE.register(O.SGD, _sgd)
GENERIC_SDE.register(O.Adam, _adam)  # Adam, RMSProp, AdamE-lambda, Adam-mini, Adalayer


class ModelSDEStepper(SDEStepper):
    """Euler–Maruyama for a :class:`ModelSDE` on a model problem (the Stepper protocol). Construction, options
    and the stiffness rate are the diagonal stepper's (:class:`.stepper.SDEStepper`); the state and the step
    use the model's products."""

    def init_state(self, theta0: np.ndarray) -> dict[str, np.ndarray]:
        th = np.array(self.problem.check_theta(theta0, "theta0"), dtype=np.float64, order="C")
        state = {"theta": th}
        if self.model.adaptive:
            if self.v0 == "target":
                state["v"] = np.ascontiguousarray(self.model.v_target(self.problem, th))
            else:
                state["v"] = np.full((th.shape[0], self.model.n_v(self.problem.dim)), float(self.v0))
        return state

    def advance(self, state, paths, step0, n_steps, active) -> None:
        n_steps = check_int("n_steps", n_steps, minimum=0)
        if n_steps == 0:
            return
        P, mdl, dt = self.problem, self.model, self.dt
        th = state["theta"]
        v = state.get("v")
        paths = np.ascontiguousarray(paths, dtype=np.int64)
        if self.check_stability and not self._warned and active.any():
            p = int(np.flatnonzero(active)[0])
            S = None if v is None else mdl.preconditioner(v[p:p + 1])[0]
            stability.warn_if_unstable(dt, self.rate(th[p], S), f"step {step0} (path {p})")
            self._warned = True  # checked once, at the first step
        inv_n = 1.0 / P.n
        k, end = int(step0), int(step0) + n_steps
        while k < end:
            nk = min(STEP_BLOCK, end - k)
            rows = np.flatnonzero(active)
            if rows.size == 0:
                return
            dB = None
            if mdl.amplitude != 0.0:
                dB = increments(self.brownian.seed, paths[rows], range(k, k + nk), P.n, dt, self.brownian.dt_base,
                                mdl.amplitude)
            for j in range(nk):
                x = th[rows]
                r, L = residual_and_loss(P, x)
                ok = np.isfinite(L)
                if not ok.all():
                    active[rows[~ok]] = False
                    rows, x, r = rows[ok], x[ok], r[ok]
                    if dB is not None:
                        dB = dB[ok]
                    if rows.size == 0:
                        return
                noise = None if dB is None else dB[:, j]
                if mdl.adaptive:
                    vr = v[rows]
                    S = mdl.preconditioner(vr)
                    g = P.vjp(x, r * inv_n)
                    tgt = mdl.v_target(P, x, g)
                    step = (-S * g) * dt
                    if noise is not None:
                        step = step + S * P.vjp(x, noise)
                    th[rows] = x + step
                    v[rows] = vr + (mdl.rate_v * (tgt - vr)) * dt
                else:
                    xi = (-r * inv_n) * dt
                    if noise is not None:
                        xi = xi + noise
                    th[rows] = x + P.vjp(x, xi)
            k += nk

    def config(self) -> dict:
        cfg = {"level": "sde", "model": self.model.name, "equation": self.model.equation, "dt": self.dt,
               "dt_base": self.brownian.dt_base, "lr": self.lr, "seed": self.brownian.seed,
               "noise_stream": "brownian", "params": dict(self.model.params), "integrator": "euler-maruyama",
               "engine": "generic (model products)"}
        if self.model.adaptive:
            cfg["v0"] = self.v0
        if self.optimizer is not None:
            cfg["optimizer"] = self.optimizer.config()
        return cfg

    def preconditioner_stats(self, state) -> dict[str, np.ndarray]:
        if not self.model.adaptive:
            return {}
        S = self.model.preconditioner(state["v"])
        return {"precond_mean": S.mean(axis=1), "precond_min": S.min(axis=1), "precond_max": S.max(axis=1),
                "v_mean": state["v"].mean(axis=1)}


def make_stepper(problem, optimizer, *, seed: int = 0, t_end: float | None = None, dt="auto", dt_base=None,
                 variant: str = "paper", v0=None, check_stability: bool = True) -> ModelSDEStepper:
    """The SDE stepper of ``optimizer`` on a model problem (options as :func:`diagsim.sde.stepper.make_stepper`;
    dt="auto": lr / 2**j with dt * lambda_max(S^{1/2} H S^{1/2}) <= 1/4 at theta0, H by ``problem.hvp``)."""
    from .stepper import VARIANTS
    check_choice("variant", variant, VARIANTS)
    if not isinstance(optimizer, O.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec; got {optimizer!r}")
    model = GENERIC_SDE.lookup(optimizer)(problem, optimizer, variant)
    lr = optimizer.lr
    if v0 is None:
        v0 = getattr(optimizer, "v0", 0.0)
    if isinstance(dt, str):
        check_choice("dt", dt, ("auto",))
        probe = ModelSDEStepper(problem, model, lr=lr, dt=lr, brownian=BrownianPath(seed, lr), optimizer=optimizer,
                                v0=v0, check_stability=False)
        st = probe.init_state(problem.theta0(1))
        S = model.preconditioner(st["v"])[0] if model.adaptive else None
        dt = stability.auto_dt(lr, probe.rate(st["theta"][0], S))
    dt = check_positive("dt", dt)
    brownian = BrownianPath(seed, dt if dt_base is None else dt_base)
    return ModelSDEStepper(problem, model, lr=lr, dt=dt, brownian=brownian, optimizer=optimizer, v0=v0,
                           check_stability=check_stability)
