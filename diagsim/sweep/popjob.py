"""The ``"population"`` job kind: train ONE network to a target training loss, then measure its sharpness.

A population of such jobs (one sweep: the same problem for every network, varied over the init scale,
the optimizer and its learning rate, and a network seed) is what a rank correlation between sharpness and
test loss is computed over (docs/theory.md §10.7; Figure 7 in ``paper_repro/``).

Job configuration::

    problem    make_problem arguments (n, d, k, design, teacher, parametrization, init, alpha, seed): the
               data. ``seed`` draws the data and must stay fixed across a population; ``alpha`` is the
               init scale. ``data = FILE`` is not allowed (the test loss needs the teacher w*).
    optimizer  an optimizer config (as in the "simulate" job: ``optimizer``, ``lr``, its
               hyperparameters, ``noise`` / ``label_noise``).
    train      target_loss (default 1e-5): stop at the first check at which the clean training loss
               L = (1/2n) ||Z w - y||^2 is <= target_loss; max_steps (default 10**6): the step cap;
               seed (default 0): the network seed, which draws the init direction g (u = v = alpha g on
               "uu-vv", u = 2 alpha g, v = 0 on "uv", as diagsim.Problem.theta0) and the optimizer's
               noise; check_every (default 100): steps between checks of the training loss.
    measures   names (default "all": every measure of diagsim.measures defined for the
               parametrization) and the options of diagsim.measures.evaluate (rho, rho_adaptive, lam,
               order, hessian, rtol, eta, n_random, steps, seed).

Everything is validated by ``canonicalize`` (before any job runs) with one-line errors naming the key.

A network that has not reached the target within ``max_steps``, or whose loss diverged, is *not
converged*: its measures are NaN and it must be excluded from the population and counted (``converged``,
``diverged`` below). Measures are evaluated at the stopping state, with these conventions
(docs/theory.md §10.1-10.6; defaults of diagsim.measures.evaluate unless the config sets them):

============================  =======================================================================
measures                      radius / normalization at the end point theta
============================  =======================================================================
spectral ones, renyi          the Gauss-Newton matrix G = (1/n) J^T J of the loss with the 1/(2n)
                              normalization (= H on Gamma); eigenvalues <= rtol lambda_max count as
                              zero (rtol 1e-12); renyi: order 2
average, worst,               Euclidean radius (or standard deviation) ``rho`` over all 2d
worst_quadratic               parameters (default 0.05)
average_adaptive,             relative radius ``rho_adaptive`` (default 0.1): perturbations delta with
worst_adaptive(_quadratic),   norm of delta / abs(theta) at most rho_adaptive; geodesic: the horizontal
geodesic_mix, geodesic_inv    lift of that length (docs/theory.md §10.6)
worst, worst_adaptive,        ascent from the quadratic model's maximizer (+ ``n_random`` restarts,
geodesic_inv                  default 0; ``steps`` default 100): lower bounds, exact at a global maximizer
============================  =======================================================================

Test loss: the exact 1/2 ||w - w*||^2, which for the generated isotropic designs is the expected loss on
fresh samples (diagsim.Problem.test_loss_w); no sampled test set is drawn.

Stored arrays: ``theta`` (2d,) and ``w`` (d,) at the stopping state, ``converged``, ``diverged`` (bool),
``steps`` (the stopping step, or the cap), ``train_loss``, ``test_loss``, ``elapsed_s`` and one
``measure_<name>`` per measure. Summary columns: every 0-d entry (``converged``, ``steps``, ...,
``measure_<name>``).
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np

from ..errors import DiagsimError, DivergenceError, check_choice, check_int, check_interval, check_positive
from .jobs import JobKind, check_sections, dump_arrays, load_arrays, summarize_arrays
from .simjob import canonical_optimizer, canonical_problem

SECTIONS = ("problem", "optimizer", "train", "measures")
TRAIN_DEFAULTS = {"target_loss": 1e-5, "max_steps": 1_000_000, "seed": 0, "check_every": 100}
#: validators of the measure options (the names diagsim.measures.evaluate accepts)
_OPTION_CHECKS = {
    "rho": lambda k, v: check_positive(k, v),
    "rho_adaptive": lambda k, v: check_positive(k, v),
    "lam": lambda k, v: check_interval(k, v, 0.0, 1.0),
    "order": lambda k, v: math.inf if v in ("inf", math.inf) else check_positive(k, v),
    "hessian": lambda k, v: check_choice(k, v, ("gn", "full")),
    "rtol": lambda k, v: check_positive(k, v),
    "eta": lambda k, v: check_positive(k, v, allow_zero=True),
    "n_random": lambda k, v: check_int(k, v, minimum=0),
    "steps": lambda k, v: check_int(k, v, minimum=0),
    "seed": lambda k, v: check_int(k, v, minimum=0),
}


def canonicalize(cfg: dict) -> dict:
    from ..measures import measure_options, resolve_names
    from ..networks.diagonal.parametrization import parametrization
    check_sections(cfg, SECTIONS, "population")
    problem = canonical_problem(cfg.get("problem", {}))
    if "data" in problem:
        raise DiagsimError("problem.data is not allowed in a population job (the test loss needs the teacher "
                           "w*: give make_problem arguments)")
    if problem["k"] < 1:
        raise DiagsimError(f"problem.k must be >= 1 (a non-zero teacher), got {problem['k']}")
    check_positive("problem.alpha", problem["alpha"])
    param = parametrization(problem["parametrization"])
    if param.name not in ("uu-vv", "uv"):
        raise DiagsimError(f"problem.parametrization must be 'uu-vv' or 'uv' in a population job, got "
                           f"{problem['parametrization']!r}")

    tr = dict(cfg.get("train", {}))
    unknown = sorted(set(tr) - set(TRAIN_DEFAULTS))
    if unknown:
        raise DiagsimError(f"unknown train option(s) {', '.join(unknown)}; allowed: {', '.join(TRAIN_DEFAULTS)}")
    tr = {**TRAIN_DEFAULTS, **tr}
    train = {"target_loss": check_positive("train.target_loss", tr["target_loss"]),
             "max_steps": check_int("train.max_steps", tr["max_steps"]),
             "seed": check_int("train.seed", tr["seed"], minimum=0),
             "check_every": check_int("train.check_every", tr["check_every"])}

    ms = dict(cfg.get("measures", {}))
    names = ms.pop("names", "all")
    if not (isinstance(names, str) or (isinstance(names, list) and all(isinstance(n, str) for n in names))):
        raise DiagsimError(f"measures.names must be 'all' or a list of measure names, got {names!r}")
    try:
        chosen = resolve_names(names)
    except DiagsimError as exc:
        raise DiagsimError(f"measures.names: {exc}") from None
    allowed = set().union(*measure_options(chosen).values())
    opts = {}
    for key, val in sorted(ms.items()):
        if key not in allowed:
            raise DiagsimError(f"unknown measures option {key!r} for the selected measures; allowed: "
                               f"names, {', '.join(sorted(allowed))}")
        opts[key] = _OPTION_CHECKS[key](f"measures.{key}", val)
    return {"job": "population", "problem": problem, "optimizer": canonical_optimizer(cfg.get("optimizer", {})),
            "train": train, "measures": {"names": names if isinstance(names, str) else chosen, **opts}}


class _Reached(Exception):
    """Raised by the training callback to stop the run at the first check below the target."""

    def __init__(self, step: int, theta: np.ndarray):
        super().__init__(step)
        self.step, self.theta = step, theta


def _network_problem(cfg: dict):
    """The population's problem (data from problem.seed) with the init direction drawn from train.seed."""
    from ..networks.diagonal.problem import make_problem
    problem = make_problem(**cfg["problem"])
    return problem, dataclasses.replace(problem, seed=cfg["train"]["seed"])


def train_network(cfg: dict):
    """(theta (2d,), stopping step, converged, diverged) of one canonical population job."""
    from ..engine.driver import DivergenceWarning, simulate
    from ..optimizers.specs import from_config
    problem, net = _network_problem(cfg)
    tr = cfg["train"]
    target = tr["target_loss"]

    def stop(step, state):
        theta = state["theta"][0]
        if float(problem.train_loss_w(problem.w(theta))) <= target:
            raise _Reached(step, np.array(theta, dtype=np.float64))

    theta0 = net.theta0(1)
    if float(problem.train_loss_w(problem.w(theta0[0]))) <= target:
        return theta0[0], 0, True, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            res = simulate(problem, from_config(cfg["optimizer"]), steps=tr["max_steps"], n_paths=1,
                           seed=tr["seed"], theta0=theta0, record=tr["check_every"], progress=False,
                           callback=_every(tr["check_every"], stop))
    except _Reached as hit:
        return hit.theta, hit.step, True, False
    except DivergenceError:
        return np.full(problem.dim, np.nan), tr["max_steps"], False, True
    theta = res.final["theta"][0]
    return theta, tr["max_steps"], bool(problem.train_loss_w(problem.w(theta)) <= target), False


def _every(stride: int, fn):
    """A simulate callback that calls ``fn`` at the chunk ends on the record grid (multiples of stride)."""
    def cb(step, state):
        if step % stride == 0:
            fn(step, state)
    return cb


def run(cfg: dict) -> dict:
    from ..measures import evaluate
    t0 = time.perf_counter()
    problem, _ = _network_problem(cfg)
    theta, steps, converged, diverged = train_network(cfg)
    ms = dict(cfg["measures"])
    names = ms.pop("names")
    out = {"theta": theta, "w": problem.w(theta) if not diverged else np.full(problem.d, np.nan),
           "converged": np.bool_(converged), "diverged": np.bool_(diverged), "steps": np.int64(steps)}
    out["train_loss"] = np.float64(problem.train_loss_w(out["w"]))
    out["test_loss"] = np.float64(problem.test_loss_w(out["w"]))
    from ..measures import resolve_names
    chosen = resolve_names(names, problem)
    vals = evaluate(problem, theta, chosen, **ms) if converged else {n: np.array([np.nan]) for n in chosen}
    for name in chosen:
        out[f"measure_{name}"] = np.float64(vals[name][0])
    out["elapsed_s"] = np.float64(time.perf_counter() - t0)
    return out


def measure_columns(table_or_row) -> list[str]:
    """The measure names present in a population table (its ``measure_<name>`` columns), in order."""
    cols = table_or_row.columns if hasattr(table_or_row, "columns") else list(table_or_row)
    return [c[len("measure_"):] for c in cols if c.startswith("measure_")]


POPULATION = JobKind(name="population", run=run, canonicalize=canonicalize, dump=dump_arrays, load=load_arrays,
                     summarize=summarize_arrays, suffix=".npz")
