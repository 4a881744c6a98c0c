"""Optimizer specifications: frozen, validated dataclasses (docs/theory.md §4-5).

A spec says *what* an optimizer is (hyperparameters, noise model); kernels in this package say how a
step is computed, and :mod:`diagsim.sde` / :mod:`diagsim.slowflow` derive continuous-time models from the
same spec. Every field is validated on construction with a one-line :class:`~diagsim.errors.DiagsimError`.

Noise models (the gradient each step uses, docs/theory.md §4)::

    LabelNoise(delta, dist)  g = grad L - (1/n) J^T xi, xi_j = ±delta ("rademacher", the paper's) or
                             N(0, delta^2) ("gaussian"), fresh every step; covariance (delta^2/n^2) J^T J.
    Minibatch(batch_size)    g = gradient of the loss on B rows drawn without replacement each step
                             (a *different* noise model from label noise): g = (1/B) sum_{j in batch} grad l_j.
                             The batch of (path, step) is perm[:B] of a partial Fisher-Yates shuffle of
                             0..n-1 driven by the uniforms u_0..u_{B-1} of stream "minibatch":
                             swap perm[i] and perm[i + floor(u_i (n - i))] for i < B.
    NoNoise()                full-batch gradient.

Step k of path p draws its noise from diagsim.lowlevel.rng at (seed, stream, p, k): xi_j = ±delta is bit j of the
"label_noise" stream (Rademacher), delta * normal(j) for "gaussian". The reported/recorded loss is always
the clean full-batch loss L(theta).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from ..errors import DiagsimError, check_choice, check_int, check_interval, check_positive

#: the public names (``diagsim.optimizers`` re-exports them): noise models, every optimizer spec, and the
#: helpers to define and read specs
__all__ = ["LabelNoise", "Minibatch", "NoNoise", "Optimizer", "OPTIMIZERS", "from_config", "hyper",
           "hyperparameters", "optimizer",
           "GD", "SGD", "Adam", "RMSProp", "AdamMini", "Adalayer", "AdaGrad", "Lion", "SignSGD", "SAM", "SAF",
           "MESA"]


# --------------------------------------------------------------------------- noise models
@dataclass(frozen=True)
class LabelNoise:
    delta: float = 0.5
    dist: str = "rademacher"
    kind: ClassVar[str] = "label"

    def __post_init__(self):
        object.__setattr__(self, "delta", check_positive("label_noise (delta)", self.delta, allow_zero=True))
        check_choice("label-noise distribution", self.dist, ("rademacher", "gaussian"))


@dataclass(frozen=True)
class Minibatch:
    batch_size: int = 1
    kind: ClassVar[str] = "minibatch"

    def __post_init__(self):
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size))


@dataclass(frozen=True)
class NoNoise:
    kind: ClassVar[str] = "none"


Noise = LabelNoise | Minibatch | NoNoise


def _check_noise(noise) -> None:
    if not isinstance(noise, (LabelNoise, Minibatch, NoNoise)):
        raise DiagsimError(f"noise must be LabelNoise(...), Minibatch(...) or NoNoise(); got {noise!r}")


# --------------------------------------------------------------------------- base
def hyper(default: Any, help: str, **cli):  # noqa: A002 - the argparse word
    """A hyperparameter field: its default and the one-line help that ``diagsim simulate --help`` shows
    for the flag ``--<field-name>`` (``cli`` may give ``metavar`` or ``parse``, a function
    ``parse(text, dim)`` from the flag's text and the problem's number of parameters to the value)."""
    return field(default=default, metadata={"help": help, **cli})


#: name -> spec class of every optimizer (filled by :func:`optimizer`); the CLI, sweeps and results find
#: optimizers here
OPTIMIZERS: dict[str, type] = {}


def optimizer(cls):
    """Class decorator: make a spec available by its ``name`` (``OPTIMIZERS``, ``from_config``, the CLI)."""
    if cls.name in OPTIMIZERS and OPTIMIZERS[cls.name] is not cls:
        raise ValueError(f"optimizer name {cls.name!r} is taken by {OPTIMIZERS[cls.name].__qualname__}")
    OPTIMIZERS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Optimizer:
    """Base: learning rate ``lr`` (eta) and the gradient noise model.

    Class attributes every spec sets: ``name`` (as on the command line), ``summary`` (one line for
    ``--help``) and ``default_lr`` (the learning rate the CLI uses when ``--lr`` is not given)."""

    lr: float
    noise: Noise = field(default_factory=lambda: LabelNoise())
    name: ClassVar[str] = "optimizer"
    summary: ClassVar[str] = ""
    default_lr: ClassVar[float] = 0.005

    def __post_init__(self):
        object.__setattr__(self, "lr", check_positive("lr", self.lr))
        _check_noise(self.noise)

    @property
    def label_noise(self) -> float:
        """delta (0 when the noise is not label noise)."""
        return self.noise.delta if isinstance(self.noise, LabelNoise) else 0.0

    def config(self) -> dict:
        """JSON-serializable description (``from_config`` inverts it)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "noise"}
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
        return {"optimizer": self.name, **d, "noise": {"kind": self.noise.kind, **asdict(self.noise)}}


def _beta(name, x):
    return check_interval(name, x, 0.0, 1.0)


# --------------------------------------------------------------------------- first-order
@optimizer
@dataclass(frozen=True)
class GD(Optimizer):
    """theta <- theta - lr * grad L (no noise)."""

    noise: Noise = field(default_factory=NoNoise)
    name: ClassVar[str] = "gd"
    summary: ClassVar[str] = "gradient descent on the full-batch loss"

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.noise, NoNoise):
            raise DiagsimError(f"GD uses the full-batch gradient (noise=NoNoise()); got noise={self.noise!r} "
                               "(use SGD for a noisy gradient)")


@optimizer
@dataclass(frozen=True)
class SGD(Optimizer):
    """theta <- theta - lr * g with g the noisy gradient of ``noise`` (label noise by default)."""

    name: ClassVar[str] = "sgd"
    summary: ClassVar[str] = "SGD with label noise (or minibatch noise)"


@optimizer
@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam in the paper's form, with AdamE-lambda: m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g*g;
    theta <- theta - lr * m / (v**lam + eps). lam = 1/2 is Adam. Bias correction optional (off, as in
    the paper's experiments): at step k (0-based) m and v are divided by 1 - beta**(k + 1) inside the
    update only (the stored moments are uncorrected); m_0 = 0, v_0 = ``v0`` (a scalar)."""

    beta1: float = hyper(0.9, "first-moment decay")
    beta2: float = hyper(0.95, "second-moment decay")
    eps: float = hyper(1e-6, "epsilon added to the preconditioner's denominator")
    lam: float = hyper(0.5, "AdamE-lambda: the exponent of v in the denominator (0.5 is Adam)")
    bias_correction: bool = hyper(False, "divide m and v by 1 - beta^(k+1) in the update")
    v0: float = hyper(0.0, "initial second moment")
    name: ClassVar[str] = "adam"
    summary: ClassVar[str] = "Adam, with AdamE-lambda (lam) and optional bias correction"
    default_lr: ClassVar[float] = 0.1

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "beta1", _beta("beta1", self.beta1))
        object.__setattr__(self, "beta2", _beta("beta2", self.beta2))
        object.__setattr__(self, "eps", check_positive("eps", self.eps, allow_zero=True))
        object.__setattr__(self, "lam", check_interval("lam", self.lam, 0.0, 1.0))
        object.__setattr__(self, "v0", check_positive("v0", self.v0, allow_zero=True))
        object.__setattr__(self, "bias_correction", bool(self.bias_correction))


@optimizer
@dataclass(frozen=True)
class RMSProp(Adam):
    """Adam with beta1 = 0."""

    beta1: float = hyper(0.0, "first-moment decay (0 for RMSProp)")
    name: ClassVar[str] = "rmsprop"
    summary: ClassVar[str] = "RMSProp: Adam with beta1 = 0"

    def __post_init__(self):
        super().__post_init__()
        if self.beta1 != 0.0:
            raise DiagsimError(f"RMSProp has beta1 = 0; got beta1={self.beta1} (use Adam)")


def _parse_blocks(text: str, dim: int):
    """--blocks: "uv" (the default {u, v}), "all" (one block of all ``dim`` parameters), or a file of
    ``dim`` integer block ids."""
    if text in (None, "uv"):
        return None
    if text == "all":
        return (0,) * dim
    import numpy as np
    try:
        ids = np.load(text) if str(text).endswith(".npy") else np.loadtxt(text, dtype=np.int64, ndmin=1)
    except (OSError, ValueError) as exc:
        raise DiagsimError(f"--blocks must be uv, all or a file of 2d integer block ids ({exc})") from None
    return tuple(int(x) for x in np.ravel(ids))


@optimizer
@dataclass(frozen=True)
class AdamMini(Adam):
    """One second-moment scalar per block b: v_b <- b2 v_b + (1-b2) mean_{i in b} g_i^2.

    ``blocks``: a tuple of block ids, one per parameter (length 2d, ids 0..B-1 each used; checked
    against the problem), or ``None`` for the default {u, v} partition (block 0 = u, block 1 = v).
    The block mean is the sum over the block in index order divided by |b|; m is per parameter."""

    blocks: tuple | None = hyper(None, "partition: uv (default: blocks {u}, {v}), all, or a file of 2d block ids",
                                 parse=_parse_blocks, metavar="SPEC")
    name: ClassVar[str] = "adam-mini"
    summary: ClassVar[str] = "Adam-mini: one second moment per block of parameters"

    def __post_init__(self):
        super().__post_init__()
        if self.blocks is not None:
            try:
                b = tuple(int(x) for x in self.blocks)
                if any(x != y for x, y in zip(b, self.blocks)):
                    raise ValueError
            except (TypeError, ValueError):
                raise DiagsimError("blocks must be a sequence of integer block ids, one per parameter "
                                   f"(length 2d); got {self.blocks!r}"[:200]) from None
            if not b or min(b) < 0:
                raise DiagsimError("blocks must be non-negative block ids, one per parameter")
            object.__setattr__(self, "blocks", b)


@optimizer
@dataclass(frozen=True)
class Adalayer(AdamMini):
    """Adalayer: AdamMini with one block per layer (for a diagonal net: {u, v})."""

    name: ClassVar[str] = "adalayer"
    summary: ClassVar[str] = "Adalayer: Adam-mini with one block per layer"


@optimizer
@dataclass(frozen=True)
class AdaGrad(Optimizer):
    """v <- v + g*g; theta <- theta - lr * g / (sqrt(v) + eps)."""

    eps: float = hyper(1e-10, "epsilon added to the preconditioner's denominator")
    v0: float = hyper(0.0, "initial second moment")
    name: ClassVar[str] = "adagrad"
    summary: ClassVar[str] = "AdaGrad"
    default_lr: ClassVar[float] = 0.1

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "eps", check_positive("eps", self.eps, allow_zero=True))
        object.__setattr__(self, "v0", check_positive("v0", self.v0, allow_zero=True))


@optimizer
@dataclass(frozen=True)
class Lion(Optimizer):
    """Lion (evolved sign momentum): the update is the sign of an interpolation of the momentum and the
    gradient, and the momentum is updated with a second decay:
    c = beta1 m + (1 - beta1) g; theta <- theta - lr sign(c); m <- beta2 m + (1 - beta2) g (m_0 = 0,
    sign(0) = 0; docs/theory.md §5.9)."""

    beta1: float = hyper(0.9, "first-moment decay")
    beta2: float = hyper(0.99, "decay of Lion's momentum")
    name: ClassVar[str] = "lion"
    summary: ClassVar[str] = "Lion: the sign of an interpolated momentum"
    default_lr: ClassVar[float] = 0.01

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "beta1", _beta("beta1", self.beta1))
        object.__setattr__(self, "beta2", _beta("beta2", self.beta2))


@optimizer
@dataclass(frozen=True)
class SignSGD(Optimizer):
    """signSGD: theta <- theta - lr sign(g), sign(0) = 0 (docs/theory.md §5.9)."""

    name: ClassVar[str] = "signsgd"
    summary: ClassVar[str] = "signSGD: the sign of the noisy gradient"
    default_lr: ClassVar[float] = 0.01


# --------------------------------------------------------------------------- SAM family
SAM_VARIANTS = ("sam", "usam", "msam", "asam", "fisher", "ssam-f", "ssam-d", "block", "rsam")


@optimizer
@dataclass(frozen=True)
class SAM(Optimizer):
    """Sharpness-aware minimization: eps = perturbation(g), theta <- theta - lr * grad L(theta + eps).

    variant::

        "sam"     eps = rho g / ||g||                     "usam"  eps = rho g (unnormalized)
        "msam"    per-chunk perturbations: the batch is split into ``m_chunks`` chunks, each perturbed
                  by its own normalized chunk gradient; the chunks' gradients are averaged
                  (m_chunks = n is 1-SAM)
        "asam"    eps = rho T^2 g / ||T g||, T = |theta| + asam_eta (0.01)
        "fisher"  Fisher-SAM: eps = rho F^-1 g / sqrt(g^T F^-1 g), F = diag(1 + fisher_eta g*g)
        "ssam-f"  sparse mask of the ``sparsity`` fraction of coordinates with the smallest Fisher
                  score g^2 zeroed; normalized by the full ||g||
        "ssam-d"  the mask is random (Bernoulli keep 1 - sparsity, redrawn each step)
        "block"   perturb only the block ``block`` ("u" or "v"): the diagonal-net analogue of SAM-ON
        "rsam"    Renyi-SAM: rho_eff = sign(1 - a) rho sum_j |g_j|^(2 a) / ||g||^(2 a + 2), eps = -rho_eff g,
                  with a = ``renyi_alpha``

    The base step is SGD with the spec's noise; the noisy gradient is the one perturbed, and the
    gradient at theta + eps uses the *same* noise draw (the same xi, or the same minibatch).

    Details fixed by diagsim (norms are Euclidean over all 2d parameters; a zero norm gives eps = 0)::

        "msam"    rows = 0..n-1 (label noise / none) or the minibatch in drawn order; chunk c is
                  rows[c R / m : (c+1) R / m] (integer division, R rows); its gradient is the mean over
                  the chunk; the update uses sum_c (|c| / R) grad L_c(theta + eps_c), so m_chunks = 1 is
                  SAM. Requires m_chunks <= R.
        "ssam-f"  the floor(sparsity * 2d) coordinates with the smallest g_i^2 are not perturbed (ties:
                  lower index first); the mask is recomputed every step from the current g.
        "ssam-d"  coordinate i is perturbed iff u_i >= sparsity, u_i the uniform i of stream "sam" at
                  (path, step).
        "block"   eps = rho g_b / ||g_b|| on block b (its own norm, as SAM-ON perturbs only the chosen
                  parameters), zero on the other block.
        "rsam"    as written above (note: eps scales like 1 / ||g|| under g -> c g).
    """

    rho: float = hyper(0.05, "perturbation radius")
    variant: str = hyper("sam", "sam | usam | msam | asam | fisher | ssam-f | ssam-d | block | rsam")
    m_chunks: int = hyper(1, "m-SAM: number of chunks of the batch (n is 1-SAM)")
    asam_eta: float = hyper(0.01, "ASAM: offset eta in T = |theta| + eta")
    fisher_eta: float = hyper(1.0, "Fisher-SAM: eta in F = 1 + eta g^2")
    sparsity: float = hyper(0.5, "SSAM: fraction of the coordinates not perturbed")
    block: str = hyper("u", "block-restricted SAM: the block perturbed, u or v")
    renyi_alpha: float = hyper(2.0, "Renyi-SAM: the order alpha")
    name: ClassVar[str] = "sam"
    summary: ClassVar[str] = "sharpness-aware minimization and its variants (--variant)"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "rho", check_positive("rho", self.rho, allow_zero=True))
        check_choice("variant", self.variant, SAM_VARIANTS)
        object.__setattr__(self, "m_chunks", check_int("m_chunks", self.m_chunks))
        object.__setattr__(self, "asam_eta", check_positive("asam_eta", self.asam_eta))
        object.__setattr__(self, "fisher_eta", check_positive("fisher_eta", self.fisher_eta))
        object.__setattr__(self, "sparsity", check_interval("sparsity", self.sparsity, 0.0, 1.0))
        check_choice("block", self.block, ("u", "v"))
        a = check_positive("renyi_alpha", self.renyi_alpha)
        if a == 1.0:
            raise DiagsimError("renyi_alpha = 1 is not allowed for RSAM (rho_eff has the factor sign(1 - alpha))")
        object.__setattr__(self, "renyi_alpha", a)


# --------------------------------------------------------------------------- SAF / MESA
@optimizer
@dataclass(frozen=True)
class SAF(Optimizer):
    """Sharpness-aware training for free, regression form: minimize
    L + lam_tra * (1/n) sum_j (f_j(theta) - fhat_j)^2 with fhat the outputs stored ``delay`` steps earlier.

    At step k, fhat = f(theta_{max(k - delay, 0)}) (held fixed: no gradient flows through it); the
    gradient is J^T c with c_j = a_j ((r_j - xi_j) + 2 lam_tra (f_j - fhat_j)), a_j = 1/n (1/B on the
    minibatch rows, 0 elsewhere). The stored quantity is the residual r = f - y of each step."""

    lam_tra: float = hyper(0.3, "weight of the trajectory term")
    delay: int = hyper(5, "SAF: the stored outputs are this many steps old")
    name: ClassVar[str] = "saf"
    summary: ClassVar[str] = "sharpness-aware training for free (regression form)"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "lam_tra", check_positive("lam_tra", self.lam_tra, allow_zero=True))
        object.__setattr__(self, "delay", check_int("delay", self.delay))


@optimizer
@dataclass(frozen=True)
class MESA(Optimizer):
    """MESA: as SAF but fhat = outputs of an EMA copy of theta (decay ``beta_ema``).

    ema_0 = theta_0; step k uses fhat = f(ema_k), then theta_{k+1} = theta_k - lr g and
    ema_{k+1} = beta_ema ema_k + (1 - beta_ema) theta_{k+1}."""

    lam_tra: float = hyper(0.3, "weight of the trajectory term")
    beta_ema: float = hyper(0.99, "MESA: decay of the EMA copy of theta")
    name: ClassVar[str] = "mesa"
    summary: ClassVar[str] = "MESA: SAF against an EMA copy of the model"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "lam_tra", check_positive("lam_tra", self.lam_tra, allow_zero=True))
        object.__setattr__(self, "beta_ema", _beta("beta_ema", self.beta_ema))


#: configuration keys renamed since results were first stored: (optimizer, old key) -> new key
RENAMED = {("sam", "alpha"): "renyi_alpha"}


def hyperparameters(cls) -> list:
    """The dataclass fields of a spec class that are hyperparameters (everything but lr and noise)."""
    return [f for f in fields(cls) if f.name not in ("lr", "noise")]


def from_config(cfg: dict) -> Optimizer:
    """Inverse of :meth:`Optimizer.config` (also reads configurations stored before a key was renamed)."""
    cfg = dict(cfg)
    name = cfg.pop("optimizer")
    check_choice("optimizer", name, OPTIMIZERS)
    for (opt_name, old), new in RENAMED.items():
        if name == opt_name and old in cfg and new not in cfg:
            cfg[new] = cfg.pop(old)
    noise_cfg = dict(cfg.pop("noise", {"kind": "label"}))
    kind = noise_cfg.pop("kind")
    noise = {"label": LabelNoise, "minibatch": Minibatch, "none": NoNoise}[kind](**noise_cfg)
    if cfg.get("blocks") is not None:
        cfg["blocks"] = tuple(cfg["blocks"])
    return OPTIMIZERS[name](noise=noise, **cfg)
