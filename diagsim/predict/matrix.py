"""Predicted limits on the matrix family (deep matrix factorization, docs/theory.md §13.4).

SGD with label noise: on the manifold {A(W_L ... W_1) = y} its slow flow decreases tr H (= tr GN there).
At depth 2, minimizing tr GN = tr(W_1 M_1 W_1^T) + tr(W_2^T M_2 W_2) over the factorizations of a fixed W
gives 2 ||M_2^{1/2} W M_1^{1/2}||_* (width >= rank, M_1 = (1/n) sum A_j^T A_j and M_2 = (1/n) sum A_j A_j^T
positive definite), so the predicted end-to-end limit is

    argmin ||M_2^{1/2} W M_1^{1/2}||_*   s.t.  <A_j, W> = y_j,

a weighted nuclear-norm problem, solved here with cvxpy (Clarabel, an interior-point SDP solver that
ships with cvxpy) in the variable X = M_2^{1/2} W M_1^{1/2}. The balanced factors W_2 = M_2^{-1/2} U S^{1/2},
W_1 = S^{1/2} V^T M_1^{-1/2} (X = U S V^T) attain the minimum of tr GN on the fibre; the equality duals
give an optimality certificate (||sum_j nu_j B_j||_2 = 1 on the solution's singular vectors).

Depth >= 3: the fibre-minimized tr H is a non-convex spectral penalty (docs/theory.md §13.4); no solver
is provided. Adam and the other adaptive methods: tr diag(H)^{1/2} depends on the basis of every layer,
there is no closed form; their limit comes from the slow flow. Gradient flow (gd): no closed form either.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DiagsimError
from ..optional import require
from .linear import reduce_system
from .targets import Target

#: Clarabel's tolerances (absolute and relative gap, feasibility)
CLARABEL_OPTIONS = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "tol_ktratio": 1e-6,
                    "max_iter": 500}
#: singular values <= RANK_RTOL * (largest) count as zero in ``rank`` and in the balanced factors
RANK_RTOL = 1e-6
#: M_1, M_2 count as singular when lambda_min <= MOMENT_RTOL * lambda_max
MOMENT_RTOL = 1e-10


@dataclass
class MatrixPrediction:
    """The predicted limit of an optimizer on a matrix problem.

    Attributes
    ----------
    W : (m1, m2) the predicted end-to-end matrix (<A_j, W> = y_j).
    objective : ||M_2^{1/2} W M_1^{1/2}||_* (the weighted nuclear norm minimized).
    trace_gn : tr GN at the balanced factors below, = 2 objective up to the truncated singular values (the
        minimum of tr H on the fibre of W).
    nuclear_norm, rank, singular_values : of W (rank: singular values > RANK_RTOL * the largest).
    factors : [W_1 (width x m2), W_2 (m1 x width)] balanced factors attaining trace_gn, built from the
        ``rank`` singular values above RANK_RTOL of M_2^{1/2} W M_1^{1/2} (so W_2 W_1 = W up to the solver's
        noise below that threshold); theta their flattening in the problem's layout.
    residual : max_j |<A_j, W> - y_j|.
    status : the solver's status ("optimal" when solved to the tolerances).
    dual : (m1, m2) the dual certificate G = sum_j nu_j B_j in the variable X = M_2^{1/2} W M_1^{1/2}
        (B_j = M_2^{-1/2} A_j M_1^{-1/2}): X is optimal when ||G||_2 <= 1 and <G, X> = ||X||_*.
    details : solver, duality certificate (spectral norm of the dual matrix, gap), sizes.
    """

    W: np.ndarray
    optimizer: str
    measure: str
    regularizer: str
    objective: float
    trace_gn: float
    nuclear_norm: float
    rank: int
    singular_values: np.ndarray
    factors: list
    theta: np.ndarray
    residual: float
    status: str
    method: str
    dual: np.ndarray
    notes: list = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"family": "matrix", "optimizer": self.optimizer, "measure": self.measure,
                "regularizer": self.regularizer, "method": self.method, "status": self.status,
                "objective": self.objective, "trace_gn": self.trace_gn, "nuclear_norm": self.nuclear_norm,
                "rank": self.rank, "singular_values": [float(s) for s in self.singular_values],
                "residual": self.residual, "W": self.W.tolist(), "W_1": self.factors[0].tolist(),
                "W_2": self.factors[1].tolist(), "notes": list(self.notes), "details": self.details}


def _sqrt_pd(M: np.ndarray, name: str, what: str):
    """(M^{1/2}, M^{-1/2}) of a symmetric positive definite M; a one-line error when it is singular."""
    lam, Q = np.linalg.eigh(0.5 * (M + M.T))
    if lam[0] <= MOMENT_RTOL * max(lam[-1], 0.0) or lam[-1] <= 0.0:
        raise DiagsimError(f"{name} = {what} is singular (smallest eigenvalue {lam[0]:.3g}, largest "
                           f"{lam[-1]:.3g}): the depth-2 prediction needs it positive definite (for completion: "
                           "every row and column observed)")
    r = np.sqrt(lam)
    return (Q * r) @ Q.T, (Q / r) @ Q.T


def weighted_nuclear_norm(problem, W) -> float:
    """||M_2^{1/2} W M_1^{1/2}||_* for the problem's moments (the depth-2 SGD objective)."""
    M1, M2 = problem.op.moments()
    R1, _ = _sqrt_pd(M1, "M_1", "(1/n) sum A_j^T A_j")
    R2, _ = _sqrt_pd(M2, "M_2", "(1/n) sum A_j A_j^T")
    return float(np.linalg.svd(R2 @ np.asarray(W, dtype=np.float64) @ R1, compute_uv=False).sum())


def predict_matrix(problem, target: Target) -> MatrixPrediction:
    """The predicted limit of ``target`` (from :func:`diagsim.predict.target_for`) on a matrix problem."""
    if target.measure != "trace":
        what = {"adam": "Adam / RMSProp (tr diag(H)^{1/2})", "adame": "AdamE-lambda (tr diag(H)^{1-lambda})",
                "block": "Adam-mini / Adalayer (block measure)",
                "woodworth": "gradient flow (gd)"}.get(target.measure, target.label)
        raise DiagsimError(f"no closed-form limit for {what} on the matrix family: integrate its slow flow "
                           "(simulate(problem, optimizer, model='slow-flow')) instead")
    if problem.depth != 2:
        raise DiagsimError(f"the SGD prediction on the matrix family is convex only at depth 2 (a weighted "
                           f"nuclear norm); at depth {problem.depth} the fibre-minimized tr H is a non-convex "
                           "spectral penalty and no solver is provided: use the slow flow")
    cp = require("cvxpy", "the matrix-family SGD prediction (a nuclear-norm program)")
    op, m1, m2, n = problem.op, problem.m1, problem.m2, problem.n
    M1, M2 = op.moments()
    R1, R1i = _sqrt_pd(M1, "M_1", "(1/n) sum A_j^T A_j")
    R2, R2i = _sqrt_pd(M2, "M_2", "(1/n) sum A_j A_j^T")
    # <A_j, W> = <R2^{-1} A_j R1^{-1}, X> with X = R2 W R1 (R's symmetric)
    B = np.einsum("ac,jcd,db->jab", R2i, op.dense(), R1i, optimize=True).reshape(n, m1 * m2)
    system = reduce_system(B, problem.y)
    scale = max(float(np.abs(system.y).max(initial=0.0)), 1e-300)
    X = cp.Variable((m1, m2))
    cons = [system.Z @ cp.vec(X, order="C") == system.y / scale]
    prob = cp.Problem(cp.Minimize(cp.normNuc(X)), cons)
    try:
        with warnings.catch_warnings():  # "optimal_inaccurate" is reported in notes with the duality gap
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=cp.CLARABEL, **CLARABEL_OPTIONS)
    except cp.error.SolverError as exc:
        raise DiagsimError(f"the nuclear-norm program failed in Clarabel ({exc})") from None
    if X.value is None or prob.status not in ("optimal", "optimal_inaccurate"):
        raise DiagsimError(f"the nuclear-norm program was not solved (Clarabel status {prob.status!r})")
    Xv = np.asarray(X.value, dtype=np.float64) * scale
    W = R2i @ Xv @ R1i
    U, S, Vt = np.linalg.svd(Xv)
    k = int(np.sum(S > RANK_RTOL * S[0])) if S[0] > 0 else 0
    width = problem.width
    notes = []
    if k > width:
        raise DiagsimError(f"the predicted W has weighted rank {k} > width = {width}: no depth-2 factorization of "
                           "that width reaches it (the prediction assumes width >= its rank)")
    # the k singular values above RANK_RTOL (the rest is the solver's noise, ~ its tolerance): W_2 W_1
    # equals W up to that truncation
    W2 = np.zeros((m1, width))
    W1 = np.zeros((width, m2))
    W2[:, :k] = R2i @ U[:, :k] * np.sqrt(S[:k])
    W1[:k] = (np.sqrt(S[:k])[:, None] * Vt[:k]) @ R1i
    # certificate: nu (duals of the reduced equalities) -> G = sum nu_i Z_i (as an m1 x m2 matrix)
    nu = np.asarray(cons[0].dual_value, dtype=np.float64).reshape(-1)
    G = (system.Z.T @ nu).reshape(m1, m2)
    if np.sum(U[:, :k] * (G @ Vt[:k].T)) < 0:
        G = -G
    objective = float(S.sum())
    dual_obj = abs(float(nu @ system.y))  # the scaled program's dual value times scale
    sv_W = np.linalg.svd(W, compute_uv=False)
    rank_W = int(np.sum(sv_W > RANK_RTOL * sv_W[0])) if sv_W[0] > 0 else 0
    residual = float(np.max(np.abs(op.apply(W[None])[0] - problem.y), initial=0.0))
    if not np.allclose(M1, M1[0, 0] * np.eye(m2), rtol=0, atol=1e-12 * abs(M1[0, 0])) or \
            not np.allclose(M2, M2[0, 0] * np.eye(m1), rtol=0, atol=1e-12 * abs(M2[0, 0])):
        notes.append("the moments M_1, M_2 are not multiples of the identity: the objective is a weighted "
                     "nuclear norm (for isotropic Gaussian sensing, approximately a multiple of ||W||_*)")
    if prob.status != "optimal":
        notes.append(f"Clarabel stopped at {prob.status!r} (common when the solution is exactly determined and "
                     f"low-rank); its accuracy: duality gap {abs(objective - dual_obj):.2g}, max residual "
                     f"{residual:.2g}")
    details = {"solver": "cvxpy + Clarabel", "cvxpy": cp.__version__, "n": n, "m1": m1, "m2": m2,
               "constraint_rank": system.rank, "weighted_rank": k,
               "dual_spectral_norm": float(np.linalg.norm(G, 2)), "dual_objective": dual_obj,
               "duality_gap": abs(objective - dual_obj), "solver_iterations": prob.solver_stats.num_iters}
    theta = problem.flatten([W1, W2])[0]
    return MatrixPrediction(W, target.label, "tr H", "2 ||M_2^{1/2} W M_1^{1/2}||_* (fibre-minimized tr H)",
                            objective, 2.0 * float(S[:k].sum()), float(sv_W.sum()), rank_W, sv_W, [W1, W2], theta,
                            residual, str(prob.status), "convex (cvxpy + Clarabel: weighted nuclear norm, SDP)",
                            G, notes, details)
