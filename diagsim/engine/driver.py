"""``simulate`` and ``resume``: the one driver that runs every level of dynamics.

:func:`simulate` builds the stepper of ``model`` ("discrete": :mod:`diagsim.optimizers`, "sde":
:mod:`diagsim.sde`, "slow-flow": :mod:`diagsim.slowflow`; see :mod:`diagsim.engine.stepper`), then advances the
ensemble in chunks of steps. Between chunks it records observables on the record grid
(:mod:`diagsim.engine.recording`), updates the progress bar (:mod:`diagsim.engine.progress`), handles divergence and
writes checkpoints. Chunking never changes the numbers: a stepper's result depends only on
(seed, path id, step), so a run resumed from a checkpoint ends bit for bit where an uninterrupted one
does.

Divergence: path p is stopped at the first step k whose training loss is not finite or exceeds
``limit_p = divergence_factor * (L_p(theta_0) + 1)`` (default factor 1e6, i.e. 1e6 x initial loss + 1e6).
The path keeps theta_k; its records after step k are NaN; the result lists it (path, step, loss and the
hyperparameter that is likely too large) and a :class:`DivergenceWarning` is issued. The other paths go
on. If every path diverges, :class:`~diagsim.errors.DivergenceError` is raised with that message (its
``result`` attribute holds the partial result).
Discrete steppers check every step; steppers without ``advance_checked`` are checked at the end of
each chunk (the reported step is then the chunk's end).

Checkpoints: ``checkpoint="run.ckpt.npz"`` writes the complete run state (stepper state, records,
divergence bookkeeping, the problem's data and the configuration) atomically every
``checkpoint_every`` (a float: seconds of wall time; an int: steps), on Ctrl-C (SIGINT) and on SIGTERM
(what batch schedulers send before they kill a job): the signal is deferred to the end of the current
chunk, the checkpoint written, then :class:`~diagsim.errors.RunInterrupted` (a ``KeyboardInterrupt``)
raised; a second signal stops the run at once. It is also written at the end. A killed or crashed
process keeps the last checkpoint; :func:`resume` continues from it, and so does :func:`simulate` called
again with the same arguments and checkpoint path. A checkpoint is reused only for exactly the
configuration it was made from (``RunPlan.differences``); anything else is refused with the
differences named, before any step is taken.

Everything that can be checked before the first step is: arguments, model options, that the checkpoint
path can be written, and that the ensemble fits in memory (:func:`plan_run`).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import platform
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import (
    CorruptFileError,
    DiagsimError,
    DivergenceError,
    RunInterrupted,
    StoredWorkMismatch,
    check_choice,
    check_int,
    check_memory,
    check_positive,
)
from ..networks.diagonal.problem import Problem
from ..networks.model import ModelProblem, family_of, is_diagonal
from ..storage import check_output_file, config_diff, describe_diff, read_npz, write_npz_atomic
from .model_records import model_losses, observe_model
from .progress import RunProgress
from .recording import N_RECORDS, SUPPORT_THRESHOLD, Recorder, loss_and_diag, observe, record_steps
from .result import Result
from .stepper import divergence_hint

#: model name -> module providing ``make_stepper``
MODELS = {"discrete": "diagsim.optimizers", "sde": "diagsim.sde", "slow-flow": "diagsim.slowflow"}
#: the same for problems of the other model families (the generic steppers on the model's products; the
#: slow flows take any model problem)
GENERIC_MODELS = {"discrete": "diagsim.optimizers.generic", "sde": "diagsim.sde.generic",
                  "slow-flow": "diagsim.slowflow"}
CHECKPOINT_FORMAT = "diagsim-checkpoint"
#: wall-clock seconds one chunk of steps aims at (progress / interrupt / checkpoint granularity)
CHUNK_SECONDS = 0.5


class DivergenceWarning(RuntimeWarning):
    """Some (not all) paths of a run diverged; they are listed in ``Result.diverged``."""


# --------------------------------------------------------------------------- helpers
def versions() -> dict:
    import numba
    return {"diagsim": __version__, "numpy": np.__version__, "numba": numba.__version__,
            "python": platform.python_version()}


def data_hash(problem) -> str:
    """sha256 of the problem's arrays: for the diagonal family (Z, y, w_star, Z_test, y_test), in that order;
    for another family every array of ``data_arrays()`` (name, shape and float64 bytes, by name)."""
    h = hashlib.sha256()
    if not is_diagonal(problem):
        h.update(f"family:{family_of(problem)}".encode())
        for name, a in sorted(problem.data_arrays().items()):
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(f"{name}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()
    for a in (problem.Z, problem.y, problem.w_star, problem.Z_test, problem.y_test):
        h.update(b"-" if a is None else np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


#: arguments every level's factory takes from the driver (not model options)
DRIVER_ARGUMENTS = ("seed", "t_end")


#: where a run's paths can be integrated
DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str, model: str) -> str:
    """"cpu" or "cuda" for ``device`` ("auto": a real GPU when one is present and the level runs there)."""
    from ..cuda import _lazy
    from ..cuda.steppers import LEVELS, check_level
    check_choice("device", device, DEVICES)
    if device == "cuda":
        check_level(model)  # before the level's stepper is made (a slow flow's start point takes time)
        why = _lazy.unavailable_reason()
        if why:
            raise DiagsimError(f"CUDA is not available: {why}")
    if device != "auto":
        return device
    if model not in LEVELS:
        return "cpu"
    return "cuda" if (_lazy.unavailable_reason() is None and not _lazy.simulator()) else "cpu"


def make_stepper(model: str, problem: Problem, optimizer, seed: int, model_options: dict | None = None,
                 t_end: float | None = None, device: str = "cpu", n_paths: int = 1):
    """The stepper of ``model`` (its module imported on first use) for ``problem`` and ``optimizer``:
    ``make_stepper(problem, optimizer, seed=seed, t_end=t_end, **model_options)`` of that level, with noise
    keyed by ``seed`` and ``t_end`` the horizon on the t clock when it is known (see
    :mod:`diagsim.engine.stepper`); with ``device="cuda"`` wrapped in its device stepper
    (:mod:`diagsim.cuda.steppers`), which keeps the ensemble on the GPU.
    """
    check_choice("model", model, MODELS)
    generic = not is_diagonal(problem)
    if generic and device == "cuda":
        raise DiagsimError(f"device='cuda' runs the diagonal family only; model family {family_of(problem)!r} "
                           "runs on the CPU (device='cpu')")
    mod = importlib.import_module((GENERIC_MODELS if generic else MODELS)[model])
    opts = dict(model_options or {})
    reserved = sorted(set(opts) & set(DRIVER_ARGUMENTS))
    if reserved:
        raise DiagsimError(f"pass {', '.join(reserved)} to simulate(...) itself, not in model_options")
    _check_model_options(model, mod.make_stepper, opts)
    stepper = mod.make_stepper(problem, optimizer, seed=seed, t_end=t_end, **opts)
    if device == "cuda":
        from ..cuda.steppers import on_device
        stepper = on_device(stepper, n_paths=n_paths)
    return stepper


def _check_model_options(model: str, factory, opts: dict) -> None:
    """A model option the level does not take is a one-line error listing the ones it takes. The options
    are the factory's keyword-only parameters (their one home); reading the signature here only serves
    this message."""
    params = inspect.signature(factory).parameters
    allowed = [name for name, p in params.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in DRIVER_ARGUMENTS]
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise DiagsimError(f"model {model!r} has no option {', '.join(map(repr, bad))}; "
                           f"its options: {', '.join(allowed) or 'none'}")


def horizon_steps(stepper, steps=None, t=None, tau=None) -> int:
    """Number of steps for a horizon given in steps, in t (= dt k) or in tau (= lr t): the nearest
    whole number of steps. When that changes the horizon (by more than a rounding error), a
    :class:`HorizonWarning` gives the horizon actually run."""
    given = [name for name, x in (("steps", steps), ("t", t), ("tau", tau)) if x is not None]
    if len(given) != 1:
        raise DiagsimError(f"give exactly one of steps, t, tau; got {', '.join(given) or 'none'}")
    if steps is not None:
        return check_int("steps", steps, minimum=0)
    dt, lr = float(stepper.dt), float(stepper.lr)
    if t is not None:
        name, want, per_step = "t", check_positive("t", t, allow_zero=True), dt
    else:
        name, want, per_step = "tau", check_positive("tau", tau, allow_zero=True), lr * dt
    x = want / per_step
    if x > 2 ** 62:
        raise DiagsimError(f"the horizon is {x:.3g} steps; too many")
    n = int(round(x))
    if abs(n - x) > 1e-9 * max(x, 1.0):
        warnings.warn(f"{name} = {want:g} is {x:.6g} steps of {per_step:.6g} (dt = {dt:.6g}); running {n} steps, "
                      f"to {name} = {n * per_step:.6g}. Give a step that divides the horizon, or the horizon "
                      "in steps, to run exactly what you mean", HorizonWarning, stacklevel=4)
    return n


def _checkpoint_every(value) -> tuple[int | None, float | None]:
    """(steps, seconds) from an int (steps) or a float (seconds)."""
    if value is None:
        return None, None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return check_int("checkpoint_every (steps)", value), None
    return None, check_positive("checkpoint_every (seconds)", value)


def _paths(n_paths, paths) -> np.ndarray:
    if paths is None:
        return np.arange(check_int("n_paths", n_paths), dtype=np.int64)
    arr = np.asarray(paths)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0:
        raise DiagsimError("paths must be a non-empty 1-D array of non-negative integer path ids")
    if np.unique(arr).size != arr.size:
        raise DiagsimError("paths must be distinct")
    if n_paths not in (1, arr.size):
        raise DiagsimError(f"n_paths={n_paths} conflicts with {arr.size} explicit paths")
    return arr.astype(np.int64)


class _DeferredInterrupt:
    """Turn the first SIGINT (Ctrl-C) or SIGTERM (what batch schedulers send) into a flag checked between
    chunks, so that the run writes its checkpoint before it stops; a second signal stops it at once.
    Main thread only."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = None
        self._old = {}

    @property
    def flag(self) -> bool:
        return self.signum is not None

    def _handler(self, signum, frame):
        if self.signum is not None:
            raise RunInterrupted(signum)
        self.signum = signum

    def __enter__(self):
        if self.enabled:
            for sig in self.SIGNALS:
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _losses(problem, theta: np.ndarray) -> np.ndarray:
    """Training loss per path of finite states: the compiled diagonal path, or the model's ``loss``."""
    if is_diagonal(problem):
        return loss_and_diag(problem, theta)[0]
    return model_losses(problem, theta)


def _problem_config(problem) -> dict:
    """The configuration's "problem" entry: ``describe()`` and the data hash (and the family's name for the
    families other than the diagonal one, whose entry is as it always was)."""
    if is_diagonal(problem):
        return {**problem.describe(), "data_sha256": data_hash(problem)}
    return {"family": family_of(problem), **problem.describe(), "data_sha256": data_hash(problem)}


# --------------------------------------------------------------------------- the run
class _Run:
    """Everything a run needs to continue; what a checkpoint stores."""

    def __init__(self, problem, optimizer, stepper, config, paths, state, active, div_step, div_loss, limit,
                 recorder, step=0, elapsed=0.0, resumes=0, resumed_from=None):
        self.problem = problem
        self.optimizer = optimizer
        self.stepper = stepper
        self.config = config
        self.paths = paths
        self.state = state
        self.active = active
        self.div_step = div_step
        self.div_loss = div_loss
        self.limit = limit
        self.recorder = recorder
        self.step = int(step)
        self.elapsed = float(elapsed)
        self.resumes = int(resumes)
        self.resumed_from = resumed_from  # the step this process continued from, if it resumed

    @property
    def n_steps(self) -> int:
        return int(self.config["steps"])

    # ---------------------------------------------------------------- pieces
    def _losses(self) -> np.ndarray:
        th = self.state["theta"]
        out = np.full(th.shape[0], np.nan)
        ok = np.all(np.isfinite(th), axis=1)
        if ok.any():
            out[ok] = _losses(self.problem, th[ok])
        return out

    def _check(self, k: int) -> None:
        """Driver-side divergence check of the current state at step k (active paths, and paths the
        stepper stopped without saying when). A stepper that keeps its state elsewhere (the GPU) checks it
        there (``check_divergence``)."""
        on_device = getattr(self.stepper, "check_divergence", None)
        if callable(on_device):
            on_device(self.state, k, self.active, self.limit, self.div_step, self.div_loss)
            return
        L = self._losses()
        bad = self.active & (~np.isfinite(L) | (L > self.limit))
        stopped = ~self.active & (self.div_step < 0)
        for row in np.flatnonzero(bad | stopped):
            self.active[row] = False
            self.div_step[row] = k
            self.div_loss[row] = L[row]

    def _observe(self) -> dict:
        on_device = getattr(self.stepper, "observe", None)
        if callable(on_device):  # a stepper that keeps its state on the GPU records there
            return on_device(self.state, self.config["support_threshold"])
        stats = self.stepper.preconditioner_stats(self.state) or {}
        if not is_diagonal(self.problem):
            return observe_model(self.problem, self.state["theta"], extra=stats)
        return observe(self.problem, self.state["theta"], support_threshold=self.config["support_threshold"],
                       extra=stats)

    def _sync(self) -> None:
        """Bring the host's copy of the state up to date (steppers that keep it on a device)."""
        sync = getattr(self.stepper, "sync", None)
        if callable(sync):
            sync(self.state)

    def _record(self) -> None:
        dead = (self.div_step >= 0) & (self.div_step < self.step)
        self.recorder.add(self._observe(), dead)

    def _advance(self, k0: int, nk: int) -> None:
        st = self.stepper
        if callable(getattr(st, "advance_checked", None)):
            st.advance_checked(self.state, self.paths, k0, nk, self.active, self.limit, self.div_step,
                               self.div_loss)
        else:
            st.advance(self.state, self.paths, k0, nk, self.active)
            self._check(k0 + nk)

    def message(self) -> str:
        rows = np.flatnonzero(self.div_step >= 0)
        parts = [f"path {int(self.paths[r])} at step {int(self.div_step[r])} (loss = {float(self.div_loss[r]):.6g})"
                 for r in rows[:5]]
        more = f" and {rows.size - 5} more" if rows.size > 5 else ""
        return f"{', '.join(parts)}{more}: {self.config['divergence_hint']}"

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path, checkpoint_every) -> None:
        self._sync()
        P = self.problem
        arrays = {f"state__{k}": v for k, v in self.state.items()}
        arrays.update({f"rec__{k}": v for k, v in self.recorder.records.items()})
        arrays.update(grid=self.recorder.grid, paths=self.paths, active=self.active, div_step=self.div_step,
                      div_loss=self.div_loss, limit=self.limit)
        if is_diagonal(P):
            arrays.update(problem__Z=P.Z, problem__y=P.y)
            for name in ("w_star", "Z_test", "y_test"):
                if getattr(P, name) is not None:
                    arrays[f"problem__{name}"] = getattr(P, name)
            about = {"parametrization": P.param.name, "init": P.init, "alpha": P.alpha, "seed": P.seed,
                     "meta": P.meta}
        else:
            arrays.update({f"problem__{k}": v for k, v in P.data_arrays().items()})
            about = {"family": family_of(P), "describe": P.describe()}
        meta = {"format": CHECKPOINT_FORMAT, "version": 1, "config": self.config, "step": self.step,
                "recorded": self.recorder.filled, "records": list(self.recorder.records),
                "state": list(self.state), "elapsed_s": self.elapsed, "resumes": self.resumes,
                "checkpoint_every": checkpoint_every, "complete": self.step >= self.n_steps,
                "problem": about}
        write_npz_atomic(path, arrays, meta)

    @classmethod
    def from_checkpoint(cls, path, problem=None):
        """The run stored at ``path`` (and its checkpoint period). The diagonal family's problem is rebuilt
        from the stored arrays; a run of another model family needs its ``problem`` (checked against the
        stored data hash)."""
        arrays, meta = read_npz(path, CHECKPOINT_FORMAT, "checkpoint")
        try:
            return cls._from_arrays(path, arrays, meta, problem)
        except KeyError as exc:
            raise CorruptFileError(f"checkpoint {str(path)!r} is incomplete (no {exc.args[0]!r})") from None

    @classmethod
    def _from_arrays(cls, path, arrays, meta, problem=None):
        cfg = meta["config"]
        pm = meta["problem"]
        fam = pm.get("family", "diagonal")
        if fam != "diagonal":
            if problem is None:
                raise DiagsimError(f"checkpoint {str(path)!r} holds a run of model family {fam!r}: pass its problem "
                                   "(resume(checkpoint, problem=...), or simulate(...) with the same arguments)")
            if family_of(problem) != fam or data_hash(problem) != cfg["problem"]["data_sha256"]:
                raise StoredWorkMismatch(f"checkpoint {str(path)!r} holds a run on other data (model family "
                                         f"{fam!r}) than the problem given", path=path,
                                         differences=["problem.data_sha256"])
        else:
            get = lambda k: arrays.get(f"problem__{k}")  # noqa: E731
            problem = Problem(arrays["problem__Z"], arrays["problem__y"], get("w_star"), pm["parametrization"],
                              pm["init"], pm["alpha"], pm["seed"], pm["meta"], get("Z_test"), get("y_test"))
        if data_hash(problem) != cfg["problem"]["data_sha256"]:
            raise CorruptFileError(f"checkpoint {str(path)!r} is corrupt: its data do not match the recorded hash")
        if cfg.get("versions") != versions():
            warnings.warn(f"checkpoint {str(path)!r} was written with {cfg.get('versions')}, this is {versions()}: "
                          "the continuation is bit-for-bit only with the same versions", RuntimeWarning, stacklevel=3)
        from ..optimizers.specs import from_config
        optimizer = from_config(cfg["optimizer"])
        stepper = make_stepper(cfg["model"], problem, optimizer, cfg["seed"], cfg["model_options"],
                               t_end=cfg.get("t_end"), device=cfg.get("device", "cpu"),
                               n_paths=arrays["paths"].shape[0])
        state = {k: arrays[f"state__{k}"].copy() for k in meta["state"]}
        recorder = Recorder(arrays["grid"], arrays["paths"].shape[0],
                            {k: arrays[f"rec__{k}"].copy() for k in meta["records"]}, meta["recorded"])
        run = cls(problem, optimizer, stepper, cfg, arrays["paths"], state, arrays["active"].copy(),
                  arrays["div_step"].copy(), arrays["div_loss"].copy(), arrays["limit"], recorder,
                  meta["step"], meta["elapsed_s"], meta["resumes"] + 1, resumed_from=int(meta["step"]))
        return run, meta["checkpoint_every"]

    # ---------------------------------------------------------------- main loop
    def execute(self, *, progress=None, checkpoint=None, checkpoint_every=60.0, callback=None) -> Result:
        N = self.n_steps
        ck_steps, ck_secs = _checkpoint_every(checkpoint_every if checkpoint else None)
        desc = f"{self.config['model']} {self.config['optimizer'].get('optimizer', '')}".strip()
        bar = RunProgress(N, desc=desc, enabled=progress, initial=self.step)
        wall0 = time.perf_counter()
        last_ck = wall0
        chunk = 16
        if self.recorder.due(self.step):
            self._record()
        try:
            with _DeferredInterrupt(checkpoint is not None) as intr:
                while self.step < N and self.active.any():
                    target = min(N, self.step + chunk)
                    nxt = self.recorder.next_step()
                    if nxt is not None and nxt > self.step:
                        target = min(target, nxt)
                    if ck_steps:
                        target = min(target, (self.step // ck_steps + 1) * ck_steps)
                    t0 = time.perf_counter()
                    self._advance(self.step, target - self.step)
                    wall = time.perf_counter() - t0
                    rate = (target - self.step) / max(wall, 1e-6)
                    chunk = int(max(1, min(4 * max(chunk, target - self.step), rate * CHUNK_SECONDS)))
                    self.step = target
                    if self.recorder.due(self.step):
                        self._record()
                    bar.update(self.step)
                    if callback is not None:
                        self._sync()
                        callback(self.step, self.state)
                    now = time.perf_counter()
                    if checkpoint is not None and (intr.flag or (ck_steps and self.step % ck_steps == 0)
                                                   or (ck_secs and now - last_ck >= ck_secs)):
                        self.elapsed += now - wall0
                        wall0 = now
                        self.save_checkpoint(checkpoint, checkpoint_every)
                        last_ck = time.perf_counter()
                    if intr.flag:
                        raise RunInterrupted(intr.signum, checkpoint)
        finally:
            bar.close()
        self._check(self.step)  # the final state (discrete steppers check only states they step from)
        self.elapsed += time.perf_counter() - wall0
        if checkpoint is not None:
            self.save_checkpoint(checkpoint, checkpoint_every)
        if not self.active.any():
            exc = DivergenceError(f"all {self.active.size} paths diverged: {self.message()}")
            exc.result = self.result()  # the partial result (records up to the divergence) for inspection
            raise exc
        if (self.div_step >= 0).any():
            warnings.warn(f"{int((self.div_step >= 0).sum())} of {self.active.size} paths diverged: "
                          f"{self.message()}", DivergenceWarning, stacklevel=3)
        return self.result()

    def result(self) -> Result:
        self._sync()
        final_obs = self._observe()
        dead = self.div_step >= 0
        for v in final_obs.values():
            v[dead] = np.nan
        info = {"elapsed_s": self.elapsed, "resumes": self.resumes}
        if self.resumed_from is not None:
            info["resumed_from_step"] = self.resumed_from
        return Result(steps=self.recorder.grid.copy(), records=self.recorder.records,
                      final={k: v.copy() for k, v in self.state.items()}, final_observables=final_obs,
                      paths=self.paths.copy(), div_step=self.div_step.copy(), div_loss=self.div_loss.copy(),
                      config=self.config, info=info)


# --------------------------------------------------------------------------- public API
class HorizonWarning(UserWarning):
    """A horizon given in t or tau is not a whole number of steps; the run stops at the nearest step."""


@dataclass
class RunPlan:
    """Everything :func:`simulate` decides before the first step: the stepper, the full configuration
    (what a result and a checkpoint record), the path ids, the record grid and the start states.

    ``plan.differences(config, grid, paths)`` lists how stored work (a checkpoint, a saved result) differs
    from this plan; stored work is reused only when that list is empty."""

    problem: Problem
    optimizer: object
    stepper: object
    config: dict
    paths: np.ndarray
    grid: np.ndarray
    theta0: np.ndarray | None
    divergence_factor: float

    #: configuration entries that do not identify the work: the package versions (checked separately,
    #: with a warning) and a message derived from the rest
    NOT_IDENTITY = ("versions", "divergence_hint")

    #: entries that follow from others (shown only when nothing else differs)
    DERIVED = ("t:", "tau:", "dt:", "lr:", "n_records:", "stepper.", "problem.data_sha256:")

    #: entries added to the configuration after results were first stored, with the value that stored work
    #: without them had
    LEGACY_DEFAULTS = {"t_end": None, "device": "cpu"}

    def differences(self, config: dict, grid, paths) -> list[str]:
        config = {**self.LEGACY_DEFAULTS, **config}
        diffs = config_diff(config, self.config, ignore=self.NOT_IDENTITY)
        primary = [d for d in diffs if not d.startswith(self.DERIVED)]
        diffs = primary or diffs
        if not diffs and not np.array_equal(np.asarray(grid), self.grid):
            diffs.append("record grid: other record steps")
        if not diffs and not np.array_equal(np.asarray(paths), self.paths):
            diffs.append("paths: other path ids")
        return diffs

    def start_states(self) -> np.ndarray:
        return self.problem.theta0(self.paths.size) if self.theta0 is None else self.theta0


def plan_run(problem: Problem, optimizer, *, steps: int | None = None, t: float | None = None,
             tau: float | None = None, n_paths: int = 1, seed: int = 0, record=None, n_records: int = N_RECORDS,
             model: str = "discrete", model_options: dict | None = None, paths=None, theta0=None,
             divergence_factor: float = 1e6, support_threshold: float = SUPPORT_THRESHOLD,
             device: str = "cpu") -> RunPlan:
    """Validate the arguments of :func:`simulate` and decide everything about the run without running it
    (and without allocating the ensemble): its stepper, configuration, path ids and record grid. Raises
    a one-line :class:`DiagsimError` for bad input, and when the run would not fit in memory."""
    if not is_diagonal(problem) and not isinstance(problem, ModelProblem):
        raise DiagsimError("problem must be a diagsim model problem (make_problem / load_problem, or a model "
                           f"family's maker: diagsim.networks.model.family(name).make); got {type(problem).__name__}")
    from ..optimizers.specs import Optimizer
    if not isinstance(optimizer, Optimizer):
        raise DiagsimError(f"optimizer must be a diagsim.optimizers spec (SGD(...), Adam(...), ...); got {optimizer!r}")
    seed = check_int("seed", seed, minimum=0)
    model_options = dict(model_options or {})
    try:
        json.dumps(model_options)
    except TypeError:
        raise DiagsimError("model_options must be JSON-serializable (numbers, strings, lists)") from None
    factor = check_positive("divergence_factor", divergence_factor)
    support_threshold = check_positive("support_threshold", support_threshold, allow_zero=True)
    ids = _paths(n_paths, paths)
    M = ids.size
    th0 = None
    if theta0 is not None:
        th0 = problem.check_theta(theta0, "theta0")
        if th0.shape[0] == 1 and M > 1:
            th0 = np.repeat(th0, M, axis=0)
        if th0.shape[0] != M:
            raise DiagsimError(f"theta0 must have shape ({M}, {problem.dim}) or ({problem.dim},); "
                               f"got {np.shape(theta0)}")
    t_end = None  # the horizon on the t clock, when it is not given in steps (tau = lr t)
    if t is not None:
        t_end = check_positive("t", t, allow_zero=True)
    elif tau is not None:
        t_end = check_positive("tau", tau, allow_zero=True) / optimizer.lr
    if is_diagonal(problem):
        device = resolve_device(device, model)
    else:  # the other model families run on the CPU ("auto" is the CPU for them)
        check_choice("device", device, DEVICES)
        if device == "cuda":
            raise DiagsimError(f"device='cuda' runs the diagonal family only; model family "
                               f"{family_of(problem)!r} runs on the CPU (device='cpu')")
        device = "cpu"
    stepper = make_stepper(model, problem, optimizer, seed, model_options, t_end=t_end, device=device, n_paths=M)
    N = horizon_steps(stepper, steps, t, tau)
    grid = record_steps(N, record, n_records, M)
    _check_run_memory(problem, stepper, M, grid.size, None if th0 is None else th0[:1])
    dt, lr = float(stepper.dt), float(stepper.lr)
    config = {
        "problem": _problem_config(problem),
        "optimizer": optimizer.config(),
        "model": model, "model_options": model_options, "stepper": stepper.config(),
        "seed": seed, "n_paths": M, "steps": N, "dt": dt, "lr": lr, "t": N * dt, "tau": N * dt * lr,
        "t_end": t_end, "device": device,
        "record": record if (record is None or isinstance(record, (str, int))) else "array",
        "n_records": int(grid.size), "theta0": "problem.theta0" if theta0 is None else "given",
        "divergence_factor": factor, "support_threshold": support_threshold,
        "divergence_hint": divergence_hint(stepper), "versions": versions(),
    }
    if th0 is not None:
        config["theta0_sha256"] = hashlib.sha256(np.ascontiguousarray(th0).tobytes()).hexdigest()
    return RunPlan(problem, optimizer, stepper, config, ids, grid, th0, factor)


def _check_run_memory(problem: Problem, stepper, n_paths: int, n_records: int, theta0=None) -> None:
    """Refuse, before allocating anything of the ensemble's size, a run that cannot fit in memory: its
    state (measured on one path: the first given start state, else the problem's), a copy for the result,
    the start states and the records."""
    one = stepper.init_state(problem.theta0(1) if theta0 is None else theta0)
    state = sum(np.asarray(a).nbytes for a in one.values())
    per_path = 2 * state + 8 * problem.dim + 8 * (n_records + 1) * 16
    check_memory(n_paths * per_path, f"the run ({n_paths} paths x {per_path / 2**20:.3g} MiB per path: "
                 f"state, result and records)", "use fewer paths or a smaller problem")


def _start(plan: RunPlan) -> _Run:
    """The run of ``plan`` at step 0."""
    problem, M = plan.problem, plan.paths.size
    state = plan.stepper.init_state(plan.start_states())
    L0 = _losses(problem, state["theta"])
    if not np.all(np.isfinite(L0)):
        raise DiagsimError("theta0 gives a non-finite loss")
    return _Run(problem, plan.optimizer, plan.stepper, plan.config, plan.paths, state, np.ones(M, bool),
                np.full(M, -1, np.int64), np.full(M, np.nan), plan.divergence_factor * (L0 + 1.0),
                Recorder(plan.grid, M))


def _stored_run(plan: RunPlan, checkpoint) -> _Run | None:
    """The run saved in ``checkpoint`` if the file exists and was made from ``plan``'s configuration;
    None if there is no such file; a one-line error naming the differences otherwise."""
    path = Path(checkpoint)
    if not path.exists():
        return None
    run, _ = _Run.from_checkpoint(path, None if is_diagonal(plan.problem) else plan.problem)
    diffs = plan.differences(run.config, run.recorder.grid, run.paths)
    if diffs:
        raise StoredWorkMismatch(f"checkpoint {str(path)!r} holds a run with other settings ({describe_diff(diffs)}); "
                                 "resume that run with resume() / --resume, or choose another checkpoint path",
                                 path=path, differences=diffs)
    return run


def simulate(problem: Problem, optimizer, *, steps: int | None = None, t: float | None = None,
             tau: float | None = None, n_paths: int = 1, seed: int = 0, record=None, n_records: int = N_RECORDS,
             model: str = "discrete", model_options: dict | None = None, paths=None, theta0=None,
             progress: bool | None = None, checkpoint=None, checkpoint_every: float | int = 60.0,
             divergence_factor: float = 1e6, support_threshold: float = SUPPORT_THRESHOLD,
             callback=None, device: str = "cpu") -> Result:
    """Run an ensemble of ``n_paths`` independent paths of ``optimizer`` on ``problem``.

    Parameters
    ----------
    problem : a :class:`~diagsim.networks.diagonal.problem.Problem` (``make_problem`` / ``load_problem``: the
        compiled kernels), or a problem of another model family (:class:`diagsim.networks.model.ModelProblem`,
        e.g. ``family("matrix").make(...)``), run by the generic steppers on the model's products
        (:mod:`diagsim.optimizers.generic`, :mod:`diagsim.sde.generic`, the slow flows of
        :mod:`diagsim.slowflow` with :mod:`diagsim.slowflow.generic`) and recorded by
        :mod:`diagsim.engine.model_records`; CPU only.
    optimizer : an optimizer spec (``diagsim.optimizers.SGD(lr=...)``, ``Adam(...)``, ...).
    steps, t, tau : the horizon, exactly one of: a number of steps; SDE time t = dt k; slow time
        tau = lr t (dt = lr for discrete optimizers, so tau = lr^2 k). t and tau round to the nearest step
        (a :class:`HorizonWarning` says so when that changes the horizon).
    n_paths : ensemble size (path ids 0..n_paths-1), or ``paths``: explicit path ids (replay).
    seed : the noise seed; path j's noise depends only on (seed, j, step), so any subset of paths
        replays exactly and adding paths leaves the others unchanged.
    record, n_records : the record grid (see :func:`diagsim.engine.recording.record_steps`): None/"linear"
        (``n_records`` evenly spaced points, default 101), "log", an integer stride, or an array of steps.
    model : "discrete" (default), "sde" or "slow-flow"; ``model_options`` are passed to that level's
        ``make_stepper`` (e.g. the SDE's dt).
    theta0 : initial states (n_paths, 2d) or (2d,); default ``problem.theta0(n_paths)``.
    progress : progress bar on stderr (None: only when stderr is a terminal; False: never).
    checkpoint, checkpoint_every : checkpoint file (.npz) and period: a float is seconds, an int steps
        (default 60.0 s); see the module doc and :func:`resume`. If the file exists and holds a run of
        exactly this configuration (problem data, optimizer, model, seed, paths, horizon, record grid),
        that run is continued from where it stopped; if it holds any other run, a :class:`DiagsimError`
        names the differences and nothing is run or overwritten.
    divergence_factor : a path diverges when its loss is not finite or exceeds
        ``divergence_factor * (initial loss + 1)``.
    support_threshold : |w_i| above which a coordinate counts in the recorded support size.
    callback : ``callback(step, state)`` called after every chunk of steps (state is live: do not modify;
        on the GPU the state is copied back for it at every chunk).
    device : "cpu" (default), "cuda" (the discrete and SDE levels on the GPU, :mod:`diagsim.cuda.steppers`:
        the ensemble stays on the device, records are computed there, the result is the CPU's to rounding)
        or "auto" (the GPU when one is present and the level runs there). Part of the configuration: a
        checkpoint made on one device continues on that device.

    Returns
    -------
    :class:`~diagsim.engine.result.Result`

    Raises
    ------
    DiagsimError for bad arguments (one line naming the argument), an unwritable checkpoint path, a run
    that does not fit in memory, or a checkpoint of another run; DivergenceError if every path diverges.
    """
    plan = plan_run(problem, optimizer, steps=steps, t=t, tau=tau, n_paths=n_paths, seed=seed, record=record,
                    n_records=n_records, model=model, model_options=model_options, paths=paths, theta0=theta0,
                    divergence_factor=divergence_factor, support_threshold=support_threshold, device=device)
    _checkpoint_every(checkpoint_every)
    run = None
    if checkpoint is not None:
        check_output_file(checkpoint, "checkpoint")
        run = _stored_run(plan, checkpoint)
    if run is None:
        run = _start(plan)
    return run.execute(progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                       callback=callback)


def resume(checkpoint, *, progress: bool | None = None, checkpoint_every: float | int | None = None,
           callback=None, problem=None) -> Result:
    """Continue the run saved in ``checkpoint`` to its horizon; the result equals, bit for bit, that of
    the uninterrupted run. Further checkpoints go to the same file (period as saved unless
    ``checkpoint_every`` is given). A finished run's checkpoint returns its result at once. A run of a
    non-diagonal model family needs its ``problem`` (checked against the stored data hash)."""
    check_output_file(checkpoint, "checkpoint")
    run, every = _Run.from_checkpoint(checkpoint, problem)
    return run.execute(progress=progress, checkpoint=checkpoint,
                       checkpoint_every=every if checkpoint_every is None else checkpoint_every,
                       callback=callback)
