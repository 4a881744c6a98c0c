"""Which implicit bias an optimizer has (docs/theory.md §9.5): the map optimizer -> measure.

=================================  ================================  ========================================
optimizer                          measure minimized on Gamma        predicted limit
=================================  ================================  ========================================
"gd", GD, SGD without noise        (gradient flow from theta_0)      Woodworth limit (docs/theory.md §9.7)
"sgd", SGD(label noise)            tr H                              fibre-minimized tr H ("uu-vv": LP)
"adam", "rmsprop", Adam, RMSProp   tr diag(H)^{1/2} (lambda = 1/2)   weighted l_{1/2} ("uu-vv")
"adame" + lam, Adam(lam=lambda)    tr diag(H)^{1-lambda}             weighted l_{1-lambda} ("uu-vv")
"adam-mini", "adalayer", AdamMini  sum_b sqrt(|b| tr H_bb)           block regularizer, blocks {u}, {v}
AdamMini, blocks {u_i, v_i}        sum_i sqrt(2 (h_ui + h_vi))       weighted l_{1/2}, Adam's ("uu-vv" only)
=================================  ================================  ========================================

The predictions for SGD and the adaptive methods assume label noise, whose covariance is c H on Gamma
(docs/theory.md §4.1); other noise models are refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DiagsimError, check_interval
from ..optimizers import specs
from ..registry import SpecRegistry

#: the optimizer names the predictions know
NAMES = ("gd", "sgd", "adam", "rmsprop", "adame", "adam-mini", "adalayer")


@dataclass(frozen=True)
class Target:
    """``kind``: "woodworth", "separable" or "block"; ``measure``: "trace", "adam", "adame", "block" or
    "woodworth"; ``lam``: lambda of the adaptive methods (None otherwise); ``label``: the optimizer."""

    kind: str
    measure: str
    lam: float | None
    label: str
    #: the one parametrization the target is derived for (None: any the measure's regularizer handles)
    param: str | None = None
    #: a note for the prediction (how the target was reduced to ``measure``)
    note: str | None = None


def _adaptive(label: str, lam: float) -> Target:
    lam = check_interval("lam", lam, 0.0, 1.0)
    if lam == 0.5:
        return Target("separable", "adam", 0.5, label)
    return Target("separable", "adame", lam, f"{label} (lam={lam:g})")


def _check_label_noise(opt) -> None:
    if isinstance(opt.noise, specs.Minibatch):
        raise DiagsimError(f"no implicit-bias prediction for {opt.name} with minibatch noise: the "
                           "predictions "
                           "assume "
                           "label noise (noise covariance c H on the manifold of minimizers)")
    if isinstance(opt.noise, specs.NoNoise) and opt.name != "sgd":
        raise DiagsimError(f"no implicit-bias prediction for {opt.name} without label noise (the measure it "
                           "minimizes comes from the label-noise covariance)")


def _gd_target(opt) -> Target:
    return Target("woodworth", "woodworth", None, "gd")


def _sgd_target(opt) -> Target:
    _check_label_noise(opt)
    if isinstance(opt.noise, specs.NoNoise) or opt.label_noise == 0.0:
        return Target("woodworth", "woodworth", None, "sgd without noise (gradient flow)")
    return Target("separable", "trace", None, "sgd")


def _adam_target(opt) -> Target:  # Adam, RMSProp, AdamE-lambda
    _check_label_noise(opt)
    return _adaptive(opt.name, opt.lam)


def is_pair_partition(blocks) -> bool:
    """Whether ``blocks`` (2d block ids) is the per-coordinate-pair partition {u_i, v_i}, i = 1..d (any ids)."""
    if blocks is None or len(blocks) % 2:
        return False
    d = len(blocks) // 2
    return all(blocks[i] == blocks[d + i] for i in range(d)) and len(set(blocks[:d])) == d


def _block_target(opt) -> Target:  # Adam-mini, Adalayer
    _check_label_noise(opt)
    if opt.lam != 0.5:
        raise DiagsimError(f"prediction for {opt.name} is derived for lam = 1/2 only; got lam={opt.lam}")
    if is_pair_partition(opt.blocks):
        return Target("separable", "adam", 0.5, f"{opt.name} (blocks {{u_i, v_i}})", param="uu-vv",
                      note="blocks {u_i, v_i}: on 'uu-vv' the measure sum_i sqrt(2 (h_ui + h_vi)) is sqrt(2) "
                           "tr diag(H)^{1/2} at every fibre minimum (docs/theory.md §9.4), so the limit is "
                           "Adam's; the objective reported is Adam's regularizer")
    if opt.blocks is not None:
        raise DiagsimError(f"prediction for {opt.name} is derived for the blocks {{u}}, {{v}} (blocks=None) and "
                           "the pairs {u_i, v_i} only; got another partition")
    return Target("block", "block", 0.5, opt.name)


#: optimizer spec class -> ``target(opt) -> Target`` (subclasses resolve to their parent's entry)
TARGETS: SpecRegistry = SpecRegistry("the prediction level", "implicit-bias prediction",
                                     "see docs/theory.md §9.5")
TARGETS.register(specs.GD, _gd_target)
TARGETS.register(specs.SGD, _sgd_target)
TARGETS.register(specs.Adam, _adam_target)
TARGETS.register(specs.AdamMini, _block_target)


def target_for(optimizer, lam=None) -> Target:
    """Resolve an optimizer name (see :data:`NAMES`) or spec object to its :class:`Target`.

    ``lam`` applies to the names "adame" (required), "adam" and "rmsprop" (default 1/2); spec objects carry
    their own ``lam``.
    """
    if isinstance(optimizer, specs.Optimizer):
        if lam is not None:
            raise DiagsimError("lam is given by the optimizer spec (Adam(lam=...)); do not pass it "
                               "separately")
        return TARGETS.lookup(optimizer)(optimizer)
    if not isinstance(optimizer, str) or optimizer.lower() not in NAMES:
        raise DiagsimError(f"optimizer must be one of {', '.join(map(repr, NAMES))} or a spec from "
                           f"diagsim.optimizers; got {optimizer!r}")
    name = optimizer.lower()
    if name in ("gd", "sgd", "adam-mini", "adalayer") and lam is not None:
        raise DiagsimError(f"lam applies to 'adam', 'rmsprop' and 'adame' only; got lam={lam!r} for {name!r}")
    if name == "gd":
        return Target("woodworth", "woodworth", None, "gd")
    if name == "sgd":
        return Target("separable", "trace", None, "sgd")
    if name in ("adam-mini", "adalayer"):
        return Target("block", "block", 0.5, name)
    if name == "adame":
        if lam is None:
            raise DiagsimError("optimizer 'adame' needs lam (lambda in [0, 1): measure "
                               "tr diag(H)^(1-lambda))")
        return _adaptive("adame", lam)
    return _adaptive(name, 0.5 if lam is None else lam)
