"""The SDE level of the Stepper protocol (:mod:`diagsim.engine.stepper`): an optimizer spec -> its SDE model.

``make_stepper(problem, optimizer, **options)`` is what ``simulate(..., model="sde")`` calls:

==========================================  ==========================================================
optimizer                                   SDE model (:mod:`diagsim.sde.models`)
==========================================  ==========================================================
GD, or SGD with NoNoise()                   gradient flow
SGD with LabelNoise(delta)                  SGD label-noise SDE
Adam / RMSProp / AdamE-lam (lam)            Adam SDE (paper's regime), v per parameter
AdamMini / Adalayer                         Adam SDE with one v per block
(any Adam-family, variant="momentum")       the coupled (theta, m, v) SDE
==========================================  ==========================================================

Anything else (AdaGrad, the SAM family, SAF, MESA, minibatch noise, bias correction) has no continuous
model here and raises a one-line DiagsimError. Which spec class gets which model is the registry
:data:`SDE_MODELS`; a subclass of a spec gets its parent's model. One SDE step advances the t clock by
``dt``; ``lr`` sets tau = lr t.
"""
from __future__ import annotations

import numpy as np

from ..errors import DiagsimError, check_choice, check_int, check_positive
from ..networks.diagonal.parametrization import default_blocks
from ..networks.diagonal.problem import Problem
from ..optimizers import specs as O
from ..registry import SpecRegistry
from . import models as Mdl
from . import stability
from .brownian import BrownianPath
from .integrator import integrate

VARIANTS = ("paper", "momentum")


def _label_noise_delta(opt) -> float:
    """delta of the spec's label noise; minibatch noise has no SDE here."""
    if isinstance(opt.noise, O.Minibatch):
        raise DiagsimError(f"no SDE model for minibatch noise ({opt.name}): the SDEs model label noise; use "
                           "LabelNoise(delta) or model='discrete'")
    return opt.label_noise


def _one_variant(opt, variant: str) -> None:
    if variant != "paper":
        raise DiagsimError(f"variant={variant!r} applies to the Adam family only; {opt.name} has one SDE")


def _gd_model(problem, opt, variant):
    _one_variant(opt, variant)
    return Mdl.gradient_flow(problem)


def _sgd_model(problem, opt, variant):
    delta = _label_noise_delta(opt)
    _one_variant(opt, variant)
    if delta == 0.0:
        return Mdl.gradient_flow(problem)
    return Mdl.sgd_label_noise(problem, opt.lr, delta)


def _adam_model(problem, opt, variant):
    delta = _label_noise_delta(opt)
    if opt.bias_correction:
        raise DiagsimError("no SDE model for Adam with bias_correction=True (the SDEs model the paper's "
                           "uncorrected Adam); use bias_correction=False or model='discrete'")
    blocks = None
    if isinstance(opt, O.AdamMini):
        blocks = default_blocks(problem.d) if opt.blocks is None else np.asarray(opt.blocks)
    return Mdl.adam_sde(problem, opt.lr, delta, beta2=opt.beta2, eps=opt.eps, lam=opt.lam, blocks=blocks,
                        beta1=opt.beta1, momentum=(variant == "momentum"))


#: optimizer spec class -> ``builder(problem, opt, variant) -> SDEModel`` (subclasses resolve to their
#: parent's entry)
SDE_MODELS: SpecRegistry = SpecRegistry("the SDE level", "continuous model (SDE)", "use model='discrete'")
SDE_MODELS.register(O.GD, _gd_model)
SDE_MODELS.register(O.SGD, _sgd_model)
SDE_MODELS.register(O.Adam, _adam_model)  # Adam, RMSProp, AdamE-lambda, Adam-mini, Adalayer


def model_for(problem: Problem, optimizer, variant: str = "paper") -> Mdl.SDEModel:
    """The SDE model of an optimizer spec (see the module table and :data:`SDE_MODELS`)."""
    check_choice("variant", variant, VARIANTS)
    if not isinstance(optimizer, O.Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec; got {optimizer!r}")
    return SDE_MODELS.lookup(optimizer)(problem, optimizer, variant)


class SDEStepper:
    """Euler–Maruyama on an :class:`~diagsim.sde.models.SDEModel` (implements the Stepper protocol).

    Parameters
    ----------
    problem, model : the problem and the lowered SDE.
    lr : the optimizer's learning rate (tau = lr t).
    dt : the step on the t clock.
    brownian : the Brownian path family (seed and base grid; dt must be dt_base * 2**j).
    optimizer : the spec (recorded in ``config``).
    v0 : initial second moment (adaptive models): a number or "target" (its drift target at theta0).
    check_stability : warn when dt * lambda_max(S H) (or dt * a relaxation rate) approaches 2 (checked on
        the path with the largest |theta| at steps 0, 1000, 2000, 4000, ...; one warning per stepper).
    """

    level = "sde"

    def __init__(self, problem: Problem, model: Mdl.SDEModel, *, lr: float, dt: float, brownian: BrownianPath,
                 optimizer=None, v0=0.0, check_stability: bool = True):
        self.problem = problem
        self.model = model
        self.lr = check_positive("lr", lr)
        self.dt = check_positive("dt", dt)
        self.brownian = brownian
        self.sub = brownian.substeps(self.dt)
        self.optimizer = optimizer
        if not (isinstance(v0, str) and v0 == "target"):
            v0 = check_positive("v0", v0, allow_zero=True)
        self.v0 = v0
        self.check_stability = bool(check_stability)
        self._warned = False
        self._next_check = 0

    # ------------------------------------------------------------------ protocol
    def init_state(self, theta0: np.ndarray) -> dict[str, np.ndarray]:
        th = np.array(self.problem.check_theta(theta0, "theta0"), dtype=np.float64, order="C")
        state = {"theta": th}
        sizes = dict(self.model.layout)
        if "m" in sizes:
            state["m"] = np.zeros((th.shape[0], sizes["m"]))
        if "v" in sizes:
            if self.v0 == "target":
                blocks = self.model.params.get("blocks")
                tgt = Mdl.v_target(self.problem, th, self.model.params["label_noise"],
                                   None if blocks is None else np.asarray(blocks))
                state["v"] = np.ascontiguousarray(tgt)
            else:
                state["v"] = np.full((th.shape[0], sizes["v"]), float(self.v0))
        return state

    def advance(self, state, paths, step0, n_steps, active) -> None:
        n_steps = check_int("n_steps", n_steps, minimum=0)
        if n_steps == 0:
            return
        if self.check_stability and not self._warned and step0 >= self._next_check:
            self._check(state, active, step0)
            # geometric spacing: lambda_max moves most while the paths approach Gamma
            self._next_check = max(step0 + n_steps, 2 * step0, 1000)
        X = self.model.pack(state)
        if X.shape[1] != self.model.dim:
            raise DiagsimError(f"state has {X.shape[1]} columns, the {self.model.name} model needs "
                               f"{self.model.dim}")
        paths = np.ascontiguousarray(paths, dtype=np.int64)
        if active.dtype != np.bool_ or not active.flags.c_contiguous:
            raise DiagsimError("active must be a C-contiguous bool array")
        integrate(self.model.drift, self.model.diffusion, self.model.args, X, paths=paths, active=active,
                  step0=int(step0), n_steps=n_steps, dt=self.dt, n_noise=self.model.n_noise,
                  n_work=self.model.n_work, amplitude=self.model.amplitude, brownian=self.brownian)
        self.model.unpack(X, state)

    def config(self) -> dict:
        cfg = {"level": "sde", "model": self.model.name, "equation": self.model.equation, "dt": self.dt,
               "dt_base": self.brownian.dt_base, "lr": self.lr, "seed": self.brownian.seed,
               "noise_stream": "brownian", "params": dict(self.model.params), "integrator": "euler-maruyama"}
        if "v" in dict(self.model.layout):
            cfg["v0"] = self.v0
        if self.optimizer is not None:
            cfg["optimizer"] = self.optimizer.config()
        return cfg

    def preconditioner_stats(self, state) -> dict[str, np.ndarray]:
        S = self.model.preconditioner(state)
        if S is None:
            return {}
        return {"precond_mean": S.mean(axis=1), "precond_min": S.min(axis=1), "precond_max": S.max(axis=1),
                "v_mean": state["v"].mean(axis=1)}

    # ------------------------------------------------------------------ step-size safety
    def rate(self, theta: np.ndarray, S: np.ndarray | None = None) -> float:
        """The stiffest rate at theta (2d,): max(lambda_max(S^{1/2} H S^{1/2}), relaxation rates)."""
        return max(stability.lambda_max(self.problem, theta, S), self.model.relaxation)

    def _check(self, state, active, step0) -> None:
        idx = np.flatnonzero(active)
        if idx.size == 0:
            return
        th = state["theta"][idx]
        p = idx[int(np.argmax(np.abs(th).max(axis=1)))]
        S = self.model.preconditioner({k: state[k][p:p + 1] for k in state})
        rate = self.rate(state["theta"][p], None if S is None else S[0])
        hint = ""
        eps = self.model.params.get("eps", 0.0)
        if S is not None and eps > 0 and float(S.max()) >= 0.5 / eps:
            hint = "; v is ~0 so S = 1/eps: start with v0='target' or a positive Adam(v0=...)"
        self._warned = stability.warn_if_unstable(self.dt, rate, f"step {step0} (path {int(p)})", hint)


def make_stepper(problem: Problem, optimizer, *, seed: int = 0, t_end: float | None = None, dt="auto",
                 dt_base=None, variant: str = "paper", v0=None, check_stability: bool = True) -> SDEStepper:
    """The SDE stepper of ``optimizer`` on ``problem`` (what ``simulate(model="sde")`` runs).

    Parameters
    ----------
    dt : float or "auto". "auto" = lr / 2**j, the largest such step with dt * rate <= 1/4 at theta0 and at
        the teacher's point of Gamma (rate = lambda_max(S^{1/2} H S^{1/2}) and the relaxation rates).
    dt_base : base grid of the Brownian path (default dt); dt must be dt_base * 2**j. Runs that share
        ``seed`` and ``dt_base`` see the same Brownian path at every dt.
    seed : seed of the "brownian" stream.
    t_end : the run's horizon on the t clock when known; unused (dt="auto" stays dyadic: lr / 2**j).
    variant : "paper" (the Adam SDE of the paper's regime) or "momentum" (the (theta, m, v) model).
    v0 : initial v of adaptive models: None (the optimizer's v0), a number, or "target".
    check_stability : warn when dt * lambda_max approaches the stability limit 2.
    """
    model = model_for(problem, optimizer, variant)
    lr = optimizer.lr
    if v0 is None:
        v0 = getattr(optimizer, "v0", 0.0)
    if isinstance(dt, str):
        check_choice("dt", dt, ("auto",))
        probe = SDEStepper(problem, model, lr=lr, dt=lr, brownian=BrownianPath(seed, lr), optimizer=optimizer,
                           v0=v0, check_stability=False)
        st = probe.init_state(problem.theta0(1))
        S = model.preconditioner(st)
        rate = probe.rate(st["theta"][0], None if S is None else S[0])
        tp = stability.teacher_point(problem)
        if tp is not None:
            rate = max(rate, probe.rate(tp, None if S is None else S[0]))
        dt = stability.auto_dt(lr, rate)
    dt = check_positive("dt", dt)
    brownian = BrownianPath(seed, dt if dt_base is None else dt_base)
    return SDEStepper(problem, model, lr=lr, dt=dt, brownian=brownian, optimizer=optimizer, v0=v0,
                      check_stability=check_stability)
