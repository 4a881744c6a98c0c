"""Elementwise parametrizations w_i = phi(u_i, v_i) of a diagonal linear network.

theta = [u, v] in R^{2d} (u = theta[:d], v = theta[d:]). Each parametrization lowers to an integer
``code`` and a ``depth`` that the Numba kernels consume:

=========  ====  ===================  ============================================================
name       code  w                    notes
=========  ====  ===================  ============================================================
"uu-vv"    0     u*u - v*v            the paper's; depth 2
"uv"       1     u*v                  (u+v, u-v) of "uu-vv" is the corresponding "uv" point
"depth-D"  2     u**D - v**D          D >= 2 integer ("depth-2" is "uu-vv")
=========  ====  ===================  ============================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import DiagsimError
from ...lowlevel.jit import jit, jit_exact, renamed

UUVV, UV, DEPTH = 0, 1, 2
NAMES = ("uu-vv", "uv", "depth-D")


@dataclass(frozen=True)
class Parametrization:
    """A parametrization by name; ``code``/``depth`` are what kernels see."""

    name: str
    code: int
    depth: int

    @property
    def label(self) -> str:
        return self.name


def parametrization(name: str | Parametrization) -> Parametrization:
    """Parse "uu-vv", "uv" or "depth-D" (e.g. "depth-3")."""
    if isinstance(name, Parametrization):
        return name
    if name == "uu-vv":
        return Parametrization("uu-vv", UUVV, 2)
    if name == "uv":
        return Parametrization("uv", UV, 2)
    if isinstance(name, str) and name.startswith("depth-"):
        try:
            depth = int(name[6:])
        except ValueError:
            depth = 0
        if depth < 2:
            raise DiagsimError(f"parametrization 'depth-D' needs an integer D >= 2, got {name!r}")
        return Parametrization(f"depth-{depth}", DEPTH, depth)
    raise DiagsimError(f"parametrization must be one of 'uu-vv', 'uv', 'depth-D' (D >= 2 integer); got {name!r}")


@jit
def phi(code, depth, u, v):
    """w = phi(u, v) for one coordinate."""
    if code == 0:
        return u * u - v * v
    elif code == 1:
        return u * v
    else:
        return u ** depth - v ** depth


#: phi compiled without FMA contraction: w rounded exactly as NumPy's u*u - v*v (so w_0 = 0 exactly when
#: u = v, which a fused multiply-add would turn into the rounding error of v*v); for what is recorded
phi_exact = jit_exact(renamed(phi.py_func, "_exact"))


@jit
def phi1(code, depth, u, v):
    """(w, dw/du, dw/dv) for one coordinate."""
    if code == 0:
        return u * u - v * v, 2.0 * u, -2.0 * v
    elif code == 1:
        return u * v, v, u
    else:
        ud1 = u ** (depth - 1)
        vd1 = v ** (depth - 1)
        return ud1 * u - vd1 * v, depth * ud1, -depth * vd1


@jit
def phi2(code, depth, u, v):
    """(d2w/du2, d2w/dudv, d2w/dv2) for one coordinate."""
    if code == 0:
        return 2.0, 0.0, -2.0
    elif code == 1:
        return 0.0, 1.0, 0.0
    else:
        c = float(depth * (depth - 1))
        return c * u ** (depth - 2), 0.0, -c * v ** (depth - 2)


def w_numpy(p: Parametrization, theta: np.ndarray) -> np.ndarray:
    """w(theta) for an array of shape (..., 2d), in plain NumPy."""
    d = theta.shape[-1] // 2
    u, v = theta[..., :d], theta[..., d:]
    if p.code == UUVV:
        return u * u - v * v
    if p.code == UV:
        return u * v
    return u ** p.depth - v ** p.depth


def corresponding_uv(theta_uuvv: np.ndarray) -> np.ndarray:
    """Map a "uu-vv" point (u, v) to the "uv" point (u + v, u - v) with the same w."""
    d = theta_uuvv.shape[-1] // 2
    u, v = theta_uuvv[..., :d], theta_uuvv[..., d:]
    return np.concatenate([u + v, u - v], axis=-1)


# --------------------------------------------------------------------------- blocks of parameters
def default_blocks(d: int) -> np.ndarray:
    """The {u, v} partition: block 0 = u (first d parameters), block 1 = v."""
    return np.concatenate([np.zeros(d, np.int64), np.ones(d, np.int64)])


def check_blocks(blocks, dim: int) -> np.ndarray:
    """Validate a partition given as one block id per parameter: length 2d, ids 0..B-1 all used."""
    b = np.asarray(blocks)
    if b.ndim != 1 or b.shape[0] != dim:
        raise DiagsimError(f"blocks must give one block id per parameter (length 2d = {dim}), "
                           f"got length {b.shape[0] if b.ndim == 1 else b.shape}")
    b = b.astype(np.int64)
    nb = int(b.max()) + 1
    used = np.bincount(b, minlength=nb)
    if np.any(used == 0):
        missing = int(np.flatnonzero(used == 0)[0])
        raise DiagsimError(f"blocks must use the ids 0..{nb - 1} without gaps; block {missing} is empty")
    return b
