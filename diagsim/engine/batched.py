"""Many runs in one kernel launch on the GPU: :func:`simulate_many`.

A sweep or a phase diagram is many small runs (say 400 cells x 8 paths) that share the problem's
dimension and the optimizer family. Run one at a time, each is a GPU launch too small to fill the device,
plus the launch overheads. Here all of them run as one ensemble: the paths of every job are concatenated,
the problems' data (Z, Z^T, y, padded with zero rows to the largest n) and the optimizers' parameters
(learning rate, betas, noise keys, ...) are stacked on the device, and path p of the launch runs job
``job[p]`` (see :func:`diagsim.cuda.warp_kernels.discrete_kernel`). Each job keeps its own driver state
(records, divergence bookkeeping, record grid): the records and the final divergence check run per job, on
views of the shared device arrays, with the job's own (unpadded) data.

Numbers: a path's arithmetic and its noise stream (seed, path id, step) do not depend on which other paths
run with it, so every job's :class:`~diagsim.engine.result.Result` is bitwise the one ``simulate`` gives
for that job alone on the same device (docs/guide/gpu.md, "Many runs in one launch"). Jobs with different
n keep this: the kernel hands every per-sample function views of the job's own first n rows of Z, y and
of the per-sample scratch, so the mean over samples (1/n), the label noise (n draws), the minibatch
shuffle (of 0..n-1) and every sum over samples (in index order) are those of the job alone, and no
arithmetic reads the padding. No rounding bound is needed: the operations and their order are the same.

Which jobs can share a launch: the same level (discrete), the same d (n may differ), the same
parametrization, the same optimizer family (gradient, update rule and noise kind; parameter values may
differ), the same preconditioner blocks and state shapes (so SAF, whose residual buffer has one entry per
sample, shares a launch only with jobs of its own n), the same horizon and record grid. Anything else is
a one-line :class:`DiagsimError` before any step naming the first job that differs and how;
:func:`launch_groups` sorts a list of jobs into groups that can share one.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from ..errors import DiagsimError, DivergenceError
from .driver import CHUNK_SECONDS, DivergenceWarning, _start, plan_run
from .recording import N_RECORDS, SUPPORT_THRESHOLD


def simulate_many(problems, optimizers, *, steps: int | None = None, t: float | None = None,
                  tau: float | None = None, n_paths: int = 1, seed=0, record=None, n_records: int = N_RECORDS,
                  model: str = "discrete", model_options: dict | None = None, paths=None, theta0=None,
                  divergence_factor: float = 1e6, support_threshold: float = SUPPORT_THRESHOLD,
                  device: str = "cuda") -> list:
    """Run job g = (``problems[g]``, ``optimizers[g]``, seed ``seed[g]``) for every g, all in one launch per
    chunk of steps on the GPU; returns one :class:`~diagsim.engine.result.Result` per job, each bitwise
    what ``simulate(problems[g], optimizers[g], seed=seed[g], device="cuda", ...)`` returns.

    ``optimizers`` and ``seed`` are one value for every job or one per job; the other arguments are those of
    :func:`diagsim.engine.driver.simulate`, shared by every job. A job whose paths all diverge gets its
    :class:`~diagsim.errors.DivergenceError` (with ``.result``) in the list instead of a Result; a job where
    some diverge warns as ``simulate`` does.

    The problems may have different numbers of samples n (their d must agree): each job's data are padded
    to the largest n and its paths work on views of its own n rows, so its Result is still bitwise the one
    it gives alone (see the module docstring).

    Raises a one-line :class:`DiagsimError` before any step when the jobs cannot share a launch (see the
    module docstring), when ``device`` is not "cuda", or for the SDE and slow-flow levels.
    """
    problems = list(problems)
    G = len(problems)
    if G == 0:
        raise DiagsimError("simulate_many needs at least one problem")
    opts = list(optimizers) if isinstance(optimizers, (list, tuple)) else [optimizers] * G
    seeds = list(seed) if isinstance(seed, (list, tuple, np.ndarray)) else [seed] * G
    if len(opts) != G or len(seeds) != G:
        raise DiagsimError(f"simulate_many: {G} problems but {len(opts)} optimizers and {len(seeds)} seeds "
                           "(give one value, or one per problem)")
    if device != "cuda":
        raise DiagsimError(f"simulate_many runs its jobs in one launch on device='cuda', not {device!r}; "
                           "on the CPU, call simulate for each job")
    if model != "discrete":
        raise DiagsimError(f"simulate_many covers the discrete level (model='discrete'), not {model!r}; "
                           "call simulate for each job")
    plans = [plan_run(problems[g], opts[g], steps=steps, t=t, tau=tau, n_paths=n_paths, seed=seeds[g],
                      record=record, n_records=n_records, model=model, model_options=model_options, paths=paths,
                      theta0=theta0, divergence_factor=divergence_factor, support_threshold=support_threshold,
                      device=device) for g in range(G)]
    return run_plans(plans)


def run_plans(plans) -> list:
    """The runs of ``plans`` (:func:`diagsim.engine.driver.plan_run` on device "cuda", discrete level) in one
    launch per chunk of steps: what :func:`simulate_many` returns for them. Their other arguments (n_paths,
    paths, divergence_factor, ...) may differ. A one-line :class:`DiagsimError` before any step when they
    cannot share a launch."""
    from ..cuda.steppers import CudaDiscreteStepper
    for g, plan in enumerate(plans):
        if not isinstance(plan.stepper, CudaDiscreteStepper):
            raise DiagsimError(f"simulate_many: job {g} does not run the discrete level on device 'cuda' "
                               f"(model {plan.config['model']!r}, device {plan.config['device']!r})")
    check_batch(plans)
    return _execute_many([_start(plan) for plan in plans])


def launch_groups(plans) -> list[list[int]]:
    """The indices of ``plans`` sorted into groups that can share a launch (:func:`run_plans`), in order of
    first appearance; a plan that runs elsewhere than the discrete level on "cuda" is a group of its own."""
    from ..cuda.steppers import CudaDiscreteStepper
    groups: dict = {}
    for i, plan in enumerate(plans):
        if isinstance(plan.stepper, CudaDiscreteStepper):
            key = tuple(_family(plan).items())
        else:
            key = ("alone", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _family(plan) -> dict:
    """What jobs sharing a launch must have in common (name -> value, compared with ==)."""
    st = plan.stepper
    low, P = st.host.low, plan.problem
    one = st.host.kernel_slots(st.host.init_state(P.theta0(1)))
    return {
        "d": P.d,
        "parametrization": P.param.name,
        "optimizer family (gradient, update, noise)": (int(low.gradient), int(low.update), int(low.noise),
                                                        plan.optimizer.name),
        "parameter layout": (low.fp.shape, low.ip.shape, low.keys.shape, low.keys.dtype.str),
        "preconditioner blocks": (tuple(low.blocks.tolist()), tuple(low.block_size.tolist())),
        "optimizer state shapes (SAF's buffer has one entry per sample: the same n)": tuple(a.shape[1:] for a in one),
        "horizon (steps)": plan.config["steps"],
        "record grid": tuple(plan.grid.tolist()),
        "layout": st.layout,
    }


def check_batch(plans) -> None:
    """A one-line :class:`DiagsimError` naming the first job that cannot share a launch with job 0, and why."""
    ref = _family(plans[0])
    for g, plan in enumerate(plans[1:], 1):
        fam = _family(plan)
        for name, value in fam.items():
            if value != ref[name]:
                show = (lambda v: f"{len(v)} steps" if name == "record grid" else repr(v))  # noqa: E731
                raise DiagsimError(f"simulate_many: job {g} cannot share a launch with job 0: its {name} is "
                                   f"{show(value)}, not {show(ref[name])}")


def _execute_many(runs) -> list:
    """Every run of ``runs`` (driver runs at step 0 whose steppers are device steppers of one family) in
    lockstep: one launch per chunk of steps, records and the final check per run."""
    from ..cuda.steppers import stack_jobs
    cuda = runs[0].stepper.cuda
    lead = runs[0].stepper
    wall0 = time.perf_counter()
    counts = [run.paths.size for run in runs]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    layouts = [run.stepper._device_layout(run.state) for run in runs]
    combined = {k: cuda.to_device(np.ascontiguousarray(np.concatenate([lay[k] for lay in layouts])))
                for k in layouts[0]}
    for g, run in enumerate(runs):  # each job's device copy: views of the shared arrays
        st = run.stepper
        st._dev = {k: v[bounds[g]:bounds[g + 1]] for k, v in combined.items()}
        st._key = id(run.state)
        st._host_stale = False
        st._arrays(run.state)  # the state's slot names as aliases of the kernel's slot arrays
    job = np.repeat(np.arange(len(runs)), counts).astype(np.int64)
    stacked = tuple(cuda.to_device(a) for a in stack_jobs([run.stepper for run in runs]))
    d_job = cuda.to_device(job)
    d_paths = cuda.to_device(np.concatenate([run.paths for run in runs]).astype(np.int64))
    d_limit = cuda.to_device(np.concatenate([run.limit for run in runs]).astype(np.float64))
    s1, s2, buf = (combined[name] for name in lead._slot_names())
    N = runs[0].n_steps
    for run in runs:
        if run.recorder.due(run.step):
            run._record()
    step, chunk = 0, 16
    live = [run.active.any() for run in runs]
    while step < N and any(live):
        target = min(N, step + chunk)
        nxt = runs[0].recorder.next_step()  # one record grid for all
        if nxt is not None and nxt > step:
            target = min(target, nxt)
        t0 = time.perf_counter()
        # a job with no path left has stopped (as simulate stops it): its paths are inactive, it skips the launch
        active = np.concatenate([run.active for run in runs])
        div_step = np.concatenate([run.div_step for run in runs])
        div_loss = np.concatenate([run.div_loss for run in runs])
        d_active, d_div_step, d_div_loss = (cuda.to_device(a) for a in (active, div_step, div_loss))
        lead.launch(stacked, d_job, combined["theta"], s1, s2, buf, d_paths, step, target - step, d_active, d_limit,
                    d_div_step, d_div_loss)
        active, div_step, div_loss = (a.copy_to_host() for a in (d_active, d_div_step, d_div_loss))
        rate = (target - step) / max(time.perf_counter() - t0, 1e-6)
        chunk = int(max(1, min(4 * max(chunk, target - step), rate * CHUNK_SECONDS)))
        step = target
        for g, run in enumerate(runs):
            if not live[g]:
                continue
            a, b = bounds[g], bounds[g + 1]
            run.active[...] = active[a:b]
            run.div_step[...] = div_step[a:b]
            run.div_loss[...] = div_loss[a:b]
            run.stepper._host_stale = True
            run.step = step
            if run.recorder.due(run.step):
                run._record()
            live[g] = bool(run.active.any())
    out = []
    elapsed = time.perf_counter() - wall0
    for run in runs:
        run._check(run.step)
        run.elapsed = elapsed
        if not run.active.any():
            exc = DivergenceError(f"all {run.active.size} paths diverged: {run.message()}")
            exc.result = run.result()
            out.append(exc)
            continue
        if (run.div_step >= 0).any():
            warnings.warn(f"{int((run.div_step >= 0).sum())} of {run.active.size} paths diverged: {run.message()}",
                          DivergenceWarning, stacklevel=2)
        out.append(run.result())
    return out
