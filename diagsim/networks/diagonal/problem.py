"""Sparse-regression problems for diagonal linear networks (docs/theory.md §2).

A :class:`Problem` holds the data (design ``Z`` of shape (n, d), labels ``y`` of shape (n,), optionally
the teacher ``w_star``), the parametrization w(theta) and the initialization theta_0. Generated problems
are a pure function of their arguments and ``seed`` (through ``numpy.random.SeedSequence``); user data is
loaded from an ``.npz`` file with arrays ``Z``, ``y`` and optionally ``w_star``, ``Z_test``, ``y_test``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...errors import DiagsimError, as_float_array, check_choice, check_int, check_memory, check_positive
from ...storage import load_npz, write_npz_atomic
from ..model import register_family
from . import parametrization as _parametrization_module
from .parametrization import Parametrization, parametrization, w_numpy

DESIGNS = ("gaussian", "rademacher")
TEACHERS = ("pm1", "uniform", "halfnormal", "ones")
INITS = ("constant", "gaussian")


@dataclass(frozen=True, eq=False)
class Problem:
    """Data + network + initialization; the diagonal family of the model interface
    (:class:`diagsim.networks.model.ModelProblem`: its members below delegate to
    :mod:`diagsim.networks.diagonal.derivatives`, f(theta) = Z w(theta)).

    Attributes
    ----------
    Z : (n, d) float64, C-contiguous design; ``ZT`` is its contiguous transpose (d, n).
    y : (n,) clean labels (``Z @ w_star`` for generated problems).
    w_star : (d,) teacher or ``None``.
    param : the parametrization (``param.code``/``param.depth`` go to kernels).
    init, alpha : theta_0 = "constant": u = v = alpha; "gaussian": u = v = alpha * g, g ~ N(0, I_d) fixed by
        ``seed`` ("uv": the corresponding point (u + v, u - v) = (2 alpha g, 0), so w_0 = 0 in all cases).
    s : (d,) s_i = (1/n) sum_j Z_ji^2.
    meta : how the problem was made (generator arguments or the source file).
    """

    Z: np.ndarray
    y: np.ndarray
    w_star: np.ndarray | None
    param: Parametrization
    init: str = "gaussian"
    alpha: float = 0.1
    seed: int = 0
    meta: dict = field(default_factory=dict)
    Z_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    family: ClassVar[str] = "diagonal"

    def __post_init__(self):
        Z = as_float_array("Z", self.Z, (None, None))
        n, d = Z.shape
        if n <= 0 or d <= 0:
            raise DiagsimError(f"Z must have n >= 1 rows and d >= 1 columns, got shape {Z.shape}")
        object.__setattr__(self, "Z", Z)
        object.__setattr__(self, "ZT", np.ascontiguousarray(Z.T))
        object.__setattr__(self, "y", as_float_array("y", self.y, (n,)))
        if self.w_star is not None:
            object.__setattr__(self, "w_star", as_float_array("w_star", self.w_star, (d,)))
        if self.Z_test is not None:
            Zt = as_float_array("Z_test", self.Z_test, (None, d))
            object.__setattr__(self, "Z_test", Zt)
            if self.y_test is None:
                raise DiagsimError("Z_test given without y_test")
            object.__setattr__(self, "y_test", as_float_array("y_test", self.y_test, (Zt.shape[0],)))
        object.__setattr__(self, "param", parametrization(self.param))
        check_choice("init", self.init, INITS)
        object.__setattr__(self, "alpha", check_positive("alpha", self.alpha))
        object.__setattr__(self, "s", (Z * Z).mean(axis=0))

    # ---------------------------------------------------------------- sizes
    @property
    def n(self) -> int:
        return self.Z.shape[0]

    @property
    def d(self) -> int:
        return self.Z.shape[1]

    @property
    def dim(self) -> int:
        """Number of parameters, 2d."""
        return 2 * self.Z.shape[1]

    # ---------------------------------------------------------------- states
    def init_direction(self) -> np.ndarray:
        """The (d,) vector g of the initialization (ones for "constant")."""
        if self.init == "constant":
            return np.ones(self.d)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(4,)))
        return rng.standard_normal(self.d)

    def theta0(self, n_paths: int = 1) -> np.ndarray:
        """Initial states, shape (n_paths, 2d), identical for every path."""
        n_paths = check_int("n_paths", n_paths)
        g = self.alpha * self.init_direction()
        if self.param.name == "uv":
            th = np.concatenate([2.0 * g, np.zeros(self.d)])
        else:
            th = np.concatenate([g, g])
        return np.tile(th, (n_paths, 1))

    def w(self, theta: np.ndarray) -> np.ndarray:
        """w(theta) for states of shape (..., 2d)."""
        return w_numpy(self.param, np.asarray(theta, dtype=np.float64))

    def check_theta(self, theta, name: str = "theta") -> np.ndarray:
        """Validate a state array: shape (n_paths, 2d) (or (2d,), promoted), finite, float64."""
        a = np.asarray(theta, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        return as_float_array(name, a, (None, self.dim))

    # ---------------------------------------------------------------- losses
    def train_loss_w(self, w: np.ndarray) -> np.ndarray:
        """L = (1/2n) ||Z w - y||^2 for w of shape (..., d)."""
        r = np.asarray(w) @ self.Z.T - self.y
        return 0.5 * np.mean(r * r, axis=-1)

    def test_loss_w(self, w: np.ndarray) -> np.ndarray:
        """Test loss for w of shape (..., d).

        Generated (isotropic) designs: exactly 1/2 ||w - w*||^2 (the expectation over fresh samples).
        User data: (1/2 n_test) ||Z_test w - y_test||^2 when a test set was given, else
        1/2 ||w - w*||^2 when ``w_star`` was given (assumes an isotropic design), else NaN.
        """
        w = np.asarray(w, dtype=np.float64)
        if self.Z_test is not None:
            r = w @ self.Z_test.T - self.y_test
            return 0.5 * np.mean(r * r, axis=-1)
        if self.w_star is None:
            return np.full(w.shape[:-1], np.nan)
        e = w - self.w_star
        return 0.5 * np.sum(e * e, axis=-1)

    # ---------------------------------------------------------------- the model interface
    # (diagsim.networks.model: shapes (M, .), a (P,) state promoted to (1, P); P = 2d)
    @staticmethod
    def _rows(a) -> np.ndarray:
        """float64 (M, k) view of a batch (a (k,) vector promoted), unchecked (the products' inputs)."""
        a = np.asarray(a, dtype=np.float64)
        return a[None, :] if a.ndim == 1 else a

    def predict(self, theta) -> np.ndarray:
        """f(theta) = Z w(theta), (M, n)."""
        return self.w(self._rows(theta)) @ self.ZT

    def residual(self, theta) -> np.ndarray:
        return _derivatives.residual(self, theta)

    def loss(self, theta) -> np.ndarray:
        return _derivatives.loss(self, theta)

    def gradient(self, theta) -> np.ndarray:
        return _derivatives.gradient(self, theta)

    def jvp(self, theta, v) -> np.ndarray:
        """J v = Z (wu * v_u + wv * v_v), (M, n)."""
        from .manifold import jvp
        th = self._rows(theta)
        wu, wv, *_ = _derivatives.phi_derivatives(self, th)
        return jvp(self, wu, wv, self._rows(v))

    def vjp(self, theta, x) -> np.ndarray:
        """J^T x = [wu * Z^T x, wv * Z^T x], (M, 2d)."""
        from .manifold import jt
        th = self._rows(theta)
        wu, wv, *_ = _derivatives.phi_derivatives(self, th)
        return jt(self, wu, wv, self._rows(x))

    def gn_diag(self, theta) -> np.ndarray:
        """(1/n) diag(J^T J) = [s wu^2, s wv^2], (M, 2d) (diag H on the manifold r = 0)."""
        wu, wv, *_ = _derivatives.phi_derivatives(self, self._rows(theta))
        return np.concatenate([self.s * wu * wu, self.s * wv * wv], axis=1)

    def gn_diag_vjp(self, theta, c) -> np.ndarray:
        """grad_theta sum_i c_i gn_diag_i (c fixed): [2 s (c_u wu w_uu + c_v wv w_uv),
        2 s (c_u wu w_uv + c_v wv w_vv)], (M, 2d) (the slow flows' semi-gradient)."""
        th = self._rows(theta)
        c = np.asarray(c, dtype=np.float64)
        d = self.d
        wu, wv, huu, huv, hvv = _derivatives.phi_derivatives(self, th)
        s2 = 2.0 * self.s
        cu, cv = c[:, :d], c[:, d:]
        gu = s2 * (cu * wu * huu + cv * wv * huv)
        gv = s2 * (cu * wu * huv + cv * wv * hvv)
        return np.concatenate([gu, gv], axis=1)

    def hvp(self, theta, v) -> np.ndarray:
        return _derivatives.hvp(self, theta, v)

    def hessian_diag(self, theta) -> np.ndarray:
        return _derivatives.hessian_diag(self, theta)

    def hessian(self, theta) -> np.ndarray:
        return _derivatives.hessian(self, theta)

    def test_loss(self, theta) -> np.ndarray:
        """:meth:`test_loss_w` of w(theta), (M,)."""
        return self.test_loss_w(self.w(self._rows(theta)))

    def observables(self, theta, support_threshold: float = 1e-3) -> dict[str, np.ndarray]:
        """l1 = ||w||_1 and support = #{i : |w_i| > support_threshold}, each (M,)."""
        a = np.abs(self.w(self._rows(theta)))
        return {"l1": a.sum(axis=1), "support": (a > support_threshold).sum(axis=1).astype(np.float64)}

    def parameter_blocks(self) -> np.ndarray:
        """The default block partition of Adam-mini / Adalayer: {u} (block 0) and {v} (block 1)."""
        from .parametrization import default_blocks
        return default_blocks(self.d)

    def data_arrays(self) -> dict[str, np.ndarray]:
        """Z, y and those of w_star, Z_test, y_test that are set."""
        out = {"Z": self.Z, "y": self.y}
        for key in ("w_star", "Z_test", "y_test"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    # ---------------------------------------------------------------- i/o
    def describe(self) -> dict:
        return {"n": self.n, "d": self.d, "parametrization": self.param.name, "init": self.init,
                "alpha": self.alpha, "seed": self.seed, **self.meta}

    def save(self, path) -> Path:
        """Write an ``.npz`` that :func:`load_problem` reads back exactly."""
        path = Path(path)
        arrays = {"Z": self.Z, "y": self.y}
        if self.w_star is not None:
            arrays["w_star"] = self.w_star
        if self.Z_test is not None:
            arrays["Z_test"], arrays["y_test"] = self.Z_test, self.y_test
        meta = {"parametrization": self.param.name, "init": self.init, "alpha": self.alpha,
                "seed": self.seed, "meta": self.meta}
        return write_npz_atomic(path, {**arrays, "diagsim_problem": np.array(json.dumps(meta))})

    def with_param(self, name) -> "Problem":
        """The same data with another parametrization."""
        return Problem(self.Z, self.y, self.w_star, parametrization(name), self.init, self.alpha, self.seed,
                       dict(self.meta), self.Z_test, self.y_test)


def make_teacher(d: int, k: int, teacher: str, rng: np.random.Generator, support=None) -> np.ndarray:
    """k-sparse w* with support uniform at random (or ``support``) and values by ``teacher``:
    "pm1" (±1), "uniform" (U(-1, 1) with |w*_i| >= 0.01), "halfnormal" (|N(0, 1)|), "ones" (all +1)."""
    check_choice("teacher", teacher, TEACHERS)
    if support is None:
        support = rng.choice(d, size=k, replace=False)
    support = np.sort(np.asarray(support, dtype=np.int64))
    if support.shape != (k,) or len(np.unique(support)) != k or support.min() < 0 or support.max() >= d:
        raise DiagsimError(f"support must be {k} distinct indices in [0, {d}), got {support.tolist()}")
    w = np.zeros(d)
    if teacher == "pm1":
        w[support] = rng.choice([-1.0, 1.0], size=k)
    elif teacher == "uniform":
        vals = rng.uniform(-1.0, 1.0, size=k)
        while np.any(np.abs(vals) < 0.01):
            small = np.abs(vals) < 0.01
            vals[small] = rng.uniform(-1.0, 1.0, size=int(small.sum()))
        w[support] = vals
    elif teacher == "halfnormal":
        w[support] = np.abs(rng.standard_normal(k))
    else:
        w[support] = 1.0
    return w


def make_problem(n: int = 50, d: int = 1000, k: int = 3, *, design: str = "gaussian", teacher: str = "pm1",
                 parametrization: str = "uu-vv", init: str = "gaussian", alpha: float = 0.1, seed: int = 0,
                 support=None) -> Problem:
    """Generate a sparse-regression problem (docs/theory.md §2.1).

    Z has i.i.d. N(0, 1) ("gaussian") or ±1 ("rademacher") entries; w* is k-sparse (see
    :func:`make_teacher`; ``support`` fixes its support, e.g. ``range(k)``); y = Z w*. Everything is drawn
    from ``numpy.random.SeedSequence(seed)``.
    """
    n = check_int("n", n)
    d = check_int("d", d)
    k = check_int("k", k, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    if k > d:
        raise DiagsimError(f"k must be <= d (a k-sparse teacher in R^d); got k={k}, d={d}")
    check_choice("design", design, DESIGNS)
    check_choice("teacher", teacher, TEACHERS)
    check_choice("init", init, INITS)
    parametrization_ = _parametrization_module.parametrization(parametrization)
    check_memory(3 * 8 * n * d, f"the problem (n = {n}, d = {d}: the design and its transpose)",
                 "use a smaller n or d")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if design == "gaussian":
        Z = rng.standard_normal((n, d))
    else:
        Z = rng.choice([-1.0, 1.0], size=(n, d))
    w_star = make_teacher(d, k, teacher, rng, support) if k > 0 else np.zeros(d)
    y = Z @ w_star
    meta = {"design": design, "teacher": teacher, "k": k, "source": "generated"}
    return Problem(Z, y, w_star, parametrization_, init, alpha, seed, meta)


def load_problem(path, *, parametrization: str | None = None, init: str | None = None,
                 alpha: float | None = None, seed: int | None = None) -> Problem:
    """Load a problem from an ``.npz`` with ``Z`` (n, d), ``y`` (n,) and optional ``w_star`` (d,),
    ``Z_test``, ``y_test``. Keyword arguments override what the file records."""
    path = Path(path)
    f = load_npz(path, "data file")
    if "Z" not in f or "y" not in f:
        raise DiagsimError(f"data file {str(path)!r} must contain arrays 'Z' (n x d) and 'y' (n); "
                           f"found {sorted(f)}")
    for key in ("Z", "y", "w_star", "Z_test", "y_test"):
        if key in f and f[key].dtype.kind not in "fiub":
            raise DiagsimError(f"data file {str(path)!r}: array {key!r} must hold numbers, got dtype {f[key].dtype}")
    try:
        saved = json.loads(str(f["diagsim_problem"])) if "diagsim_problem" in f else {}
    except json.JSONDecodeError:
        raise DiagsimError(f"data file {str(path)!r}: its 'diagsim_problem' entry is not valid JSON") from None
    get = f.get
    Z, y, w_star, Zt, yt = get("Z"), get("y"), get("w_star"), get("Z_test"), get("y_test")
    Z = as_float_array("Z", Z, (None, None))
    if y is not None and np.ndim(y) != 1:
        raise DiagsimError(f"y must be a vector of n = {Z.shape[0]} labels, got shape {np.shape(y)}")
    meta = dict(saved.get("meta", {}))
    meta.update({"source": str(path)})
    return Problem(Z, y, w_star,
                   parametrization or saved.get("parametrization", "uu-vv"),
                   init or saved.get("init", "gaussian"),
                   alpha if alpha is not None else saved.get("alpha", 0.1),
                   check_int("seed", seed if seed is not None else saved.get("seed", 0), minimum=0),
                   meta, Zt, yt)


# the members above call the batched derivatives; imported last because that module imports Problem
from . import derivatives as _derivatives  # noqa: E402

register_family("diagonal", make_problem, load_problem,
                "diagonal linear networks w = phi(u, v) on sparse regression (make_problem / load_problem)")
