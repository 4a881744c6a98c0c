"""What a run records, and when: the record grid and the observables of an ensemble state.

Record grid (:func:`record_steps`), a sorted array of step indices in [0, steps]:

* ``None`` or ``"linear"``: ``n_records`` evenly spaced steps from 0 to ``steps`` (rounded, unique);
* ``"log"``: step 0 and ``n_records - 1`` log-spaced steps from 1 to ``steps`` (rounded, unique, so
  fewer when ``steps`` is small);
* an integer stride ``s``: 0, s, 2s, ... and always the last step;
* an array of steps: exactly those (sorted, unique, each in [0, steps]).

The grid is fixed before the run, and ``n_records * n_paths`` is capped at :data:`MAX_RECORD_VALUES`
per observable, so memory does not grow with the number of steps.

Observables (:func:`observe`), each of shape (n_paths,), for theta of shape (n_paths, 2d):

=======================  ===================================================================
name                     definition
=======================  ===================================================================
train_loss               L = (1/2n) ||Z w - y||^2
test_loss                ``problem.test_loss_w(w)`` (closed form 1/2 ||w - w*||^2 for generated
                         problems; see :meth:`diagsim.networks.diagonal.problem.Problem.test_loss_w`)
l1                       ||w||_1
support                  #{i : |w_i| > support_threshold} (default :data:`SUPPORT_THRESHOLD`)
trace_h                  tr H = sum of the exact diag H (residual term included)
trace_sqrt_diag_h        tr diag(H)^{1/2} = sum_i sqrt(max(H_ii, 0)) of the exact diag H (on the
                         manifold r = 0 this is 2 sum_i sqrt(s_i) (|u_i| + |v_i|) for "uu-vv")
trace_sqrt_diag_gn       the same with the Gauss-Newton diagonal (1/n) diag(J^T J) = s * (dw/du)^2,
                         s * (dw/dv)^2: Adam's measure as the slow flow sees it. Off the manifold the
                         exact diag H has a residual term (Z^T r / n)_i d2w/du2 whose square root adds a
                         floor of order lr^(1/4) at coordinates that Adam drives to zero; this one has none
precond/<stat>           the stepper's ``preconditioner_stats`` (e.g. v_mean, precond_mean)
=======================  ===================================================================

Rows whose theta is not finite give NaN. Every value of a path is computed from that path's state alone by
:func:`observe_row`, one Numba function whose sums run over the entries in index order, so it does not
depend on the other paths (a replayed path records the same bits), and the GPU computes the records with
the same function (:mod:`diagsim.cuda`).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DiagsimError, check_int
from ..lowlevel.jit import jit
from ..networks.diagonal import pathwise as K
from ..networks.diagonal.parametrization import phi1, phi_exact

#: |w_i| above this counts as in the support
SUPPORT_THRESHOLD = 1e-3
#: cap on n_records * n_paths (values per observable); 2e6 float64 = 16 MB
MAX_RECORD_VALUES = 2_000_000
#: default number of record points
N_RECORDS = 101
OBSERVABLES = ("train_loss", "test_loss", "l1", "support", "trace_h", "trace_sqrt_diag_h", "trace_sqrt_diag_gn")


def record_steps(steps: int, record=None, n_records: int = N_RECORDS, n_paths: int = 1) -> np.ndarray:
    """The record grid (int64, sorted, unique) for a run of ``steps`` steps; see the module doc."""
    steps = check_int("steps", steps, minimum=0)
    n_records = check_int("n_records", n_records, minimum=1)
    if record is None or (isinstance(record, str) and record == "linear"):
        _check_size(min(n_records, steps + 1), n_paths)
        grid = np.round(np.linspace(0, steps, max(n_records, 1))).astype(np.int64)
    elif isinstance(record, str):
        if record != "log":
            raise DiagsimError(f"record must be an integer stride, 'log', 'linear' or an array of steps; "
                               f"got {record!r}")
        grid = np.zeros(1, np.int64)
        if steps >= 1 and n_records > 1:
            grid = np.concatenate([grid, np.round(np.logspace(0.0, np.log10(steps), n_records - 1))
                                   .astype(np.int64)])
    elif isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        stride = check_int("record (stride)", record, minimum=1)
        _check_size(steps // stride + 2, n_paths)
        grid = np.append(np.arange(0, steps + 1, stride, dtype=np.int64), steps)
    else:
        try:
            arr = np.asarray(record)
        except Exception:  # noqa: BLE001
            arr = np.zeros(0)
        if arr.ndim != 1 or arr.size == 0 or not (np.issubdtype(arr.dtype, np.integer) or (
                np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))):
            raise DiagsimError("record must be an integer stride, 'log', 'linear' or a non-empty 1-D array "
                               "of integer steps")
        grid = arr.astype(np.int64)
        if grid.min() < 0 or grid.max() > steps:
            raise DiagsimError(f"record steps must lie in [0, {steps}]; got {grid.min()}..{grid.max()}")
    grid = np.unique(np.clip(grid, 0, steps))
    _check_size(grid.size, n_paths)
    return grid


def _check_size(n_points: int, n_paths: int) -> None:
    if n_points * n_paths > MAX_RECORD_VALUES:
        raise DiagsimError(f"recording {n_points} points x {n_paths} paths exceeds {MAX_RECORD_VALUES:,} values "
                           f"per observable; use record='log', a larger stride or fewer n_records")


@jit
def loss_diag_row(theta, code, depth, Z, ZT, y, s, w, r, gw, diag):
    """The training loss of one state theta (2d,) (returned) and its exact diag H into ``diag`` (2d,), with
    the per-path kernels of :mod:`diagsim.networks.diagonal.pathwise` (the calls
    :mod:`diagsim.networks.diagonal.derivatives` makes, so the same bits); scratch w (d,), r (n,), gw (d,)."""
    n = Z.shape[0]
    loss = K.forward(theta, code, depth, ZT, y, w, r)
    K.pullback(Z, r, 1.0 / n, gw)
    K.diag_hessian(theta, code, depth, s, gw, diag)
    return loss


@jit
def _loss_diag(theta, code, depth, Z, ZT, y, s, loss, diag):
    """loss[p] and diag H[p] of every row, serially (a record is small: a parallel launch costs more than
    it saves)."""
    w = np.empty(Z.shape[1])
    r = np.empty(Z.shape[0])
    gw = np.empty(Z.shape[1])
    for p in range(theta.shape[0]):
        loss[p] = loss_diag_row(theta[p], code, depth, Z, ZT, y, s, w, r, gw, diag[p])


def loss_and_diag(problem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train loss (M,), exact diag H (M, 2d)) for finite states theta (M, 2d)."""
    th = np.ascontiguousarray(theta, dtype=np.float64)
    loss = np.empty(th.shape[0])
    diag = np.empty_like(th)
    _loss_diag(th, problem.param.code, problem.param.depth, problem.Z, problem.ZT, problem.y, problem.s, loss, diag)
    return loss, diag


#: how the test loss is measured (``test_kind`` of :func:`observe_row`)
TEST_NONE, TEST_TEACHER, TEST_SET = range(3)


@jit
def observe_row(theta, code, depth, Z, ZT, y, s, rs, w_star, Zt, yt, test_kind, threshold, w, r, gw, diag, out):
    """The observables of one state theta (2d,) into ``out`` (len(OBSERVABLES),), in the order of
    ``OBSERVABLES``; ``rs`` = sqrt(s); ``test_kind``: TEST_TEACHER (1/2 ||w - w*||^2), TEST_SET
    ((1/2 n_test) ||Z_test w - y_test||^2) or TEST_NONE (NaN). A state with a non-finite entry gives NaN
    everywhere. Scratch: w (d,), r (n,), gw (d,), diag (2d,). Every sum runs over the entries in index
    order: the CPU and the GPU (which calls this function on the device) add in the same order."""
    d = ZT.shape[0]
    for i in range(2 * d):
        if not math.isfinite(theta[i]):
            for q in range(out.shape[0]):
                out[q] = np.nan
            return
    out[0] = loss_diag_row(theta, code, depth, Z, ZT, y, s, w, r, gw, diag)
    for i in range(d):  # w as NumPy rounds it (the kernels' w may fuse u*u - v*v into one rounding)
        w[i] = phi_exact(code, depth, theta[i], theta[d + i])
    trace_h = 0.0
    trace_sqrt_h = 0.0
    for i in range(2 * d):
        trace_h += diag[i]
        trace_sqrt_h += math.sqrt(max(diag[i], 0.0))
    l1 = 0.0
    support = 0.0
    gn = 0.0
    for i in range(d):
        a = abs(w[i])
        l1 += a
        if a > threshold:
            support += 1.0
        _, wu, wv = phi1(code, depth, theta[i], theta[d + i])
        gn += rs[i] * (abs(wu) + abs(wv))
    test = np.nan
    if test_kind == TEST_TEACHER:
        acc = 0.0
        for i in range(d):
            e = w[i] - w_star[i]
            acc += e * e
        test = 0.5 * acc
    elif test_kind == TEST_SET:
        acc = 0.0
        for j in range(Zt.shape[0]):
            rj = -yt[j]
            for i in range(d):
                rj += Zt[j, i] * w[i]
            acc += rj * rj
        test = 0.5 * acc / Zt.shape[0]
    out[1] = test
    out[2] = l1
    out[3] = support
    out[4] = trace_h
    out[5] = trace_sqrt_h
    out[6] = gn


@jit
def _observe_rows(theta, code, depth, Z, ZT, y, s, rs, w_star, Zt, yt, test_kind, threshold, out):
    n, d = Z.shape
    w = np.empty(d)
    r = np.empty(n)
    gw = np.empty(d)
    diag = np.empty(2 * d)
    for p in range(theta.shape[0]):
        observe_row(theta[p], code, depth, Z, ZT, y, s, rs, w_star, Zt, yt, test_kind, threshold, w, r, gw, diag,
                    out[p])


def observe_arguments(problem, support_threshold: float) -> tuple:
    """The problem-dependent arguments of :func:`observe_row` after theta:
    (code, depth, Z, ZT, y, s, rs, w_star, Z_test, y_test, test_kind, threshold)."""
    d = problem.d
    if problem.Z_test is not None:
        kind, w_star, Zt, yt = TEST_SET, np.zeros(d), problem.Z_test, problem.y_test
    elif problem.w_star is not None:
        kind, w_star, Zt, yt = TEST_TEACHER, problem.w_star, np.zeros((1, d)), np.zeros(1)
    else:
        kind, w_star, Zt, yt = TEST_NONE, np.zeros(d), np.zeros((1, d)), np.zeros(1)
    return (problem.param.code, problem.param.depth, problem.Z, problem.ZT, problem.y, problem.s,
            np.sqrt(problem.s), np.ascontiguousarray(w_star, dtype=np.float64),
            np.ascontiguousarray(Zt, dtype=np.float64), np.ascontiguousarray(yt, dtype=np.float64), kind,
            float(support_threshold))


def observables_from_rows(rows: np.ndarray, extra: dict | None = None) -> dict[str, np.ndarray]:
    """The dict of observables from the (M, len(OBSERVABLES)) rows of :func:`observe_row`; ``extra``
    (name -> (M,)) is appended as ``precond/<name>``."""
    out = {name: np.ascontiguousarray(rows[:, q]) for q, name in enumerate(OBSERVABLES)}
    for key, val in (extra or {}).items():
        out[f"precond/{key}"] = np.asarray(val, dtype=np.float64).reshape(rows.shape[0])
    return out


def observe(problem, theta: np.ndarray, *, support_threshold: float = SUPPORT_THRESHOLD,
            extra: dict | None = None) -> dict[str, np.ndarray]:
    """The observables of the module doc for states ``theta`` (n_paths, 2d); ``extra`` (name -> (n_paths,))
    is appended as ``precond/<name>``."""
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    rows = np.empty((theta.shape[0], len(OBSERVABLES)))
    _observe_rows(theta, *observe_arguments(problem, support_threshold), rows)
    return observables_from_rows(rows, extra)


class Recorder:
    """Preallocated records (n_records, n_paths) per observable, filled in grid order.

    ``records[name][i, p]`` is the observable at step ``grid[i]``; NaN where path p had diverged before
    that step.
    """

    def __init__(self, grid: np.ndarray, n_paths: int, records: dict | None = None, filled: int = 0):
        self.grid = np.asarray(grid, dtype=np.int64)
        self.n_paths = int(n_paths)
        self.records: dict[str, np.ndarray] = dict(records or {})
        self.filled = int(filled)

    def due(self, step: int) -> bool:
        return self.filled < self.grid.size and self.grid[self.filled] == step

    def next_step(self) -> int | None:
        return int(self.grid[self.filled]) if self.filled < self.grid.size else None

    def add(self, values: dict[str, np.ndarray], dead: np.ndarray) -> None:
        """Store the row for the current grid point; ``dead`` (n_paths,) bool masks paths to NaN."""
        i = self.filled
        for name, val in values.items():
            arr = self.records.get(name)
            if arr is None:
                arr = self.records[name] = np.full((self.grid.size, self.n_paths), np.nan)
            row = np.array(val, dtype=np.float64)
            row[dead] = np.nan
            arr[i] = row
        self.filled += 1
