"""Elementwise parametrizations as SymPy expressions w = w(u, v) for one coordinate (docs/theory.md §2.2).

The symbols are module constants so that every derived expression shares them:

=======  ===========================  =================================================================
symbol   assumptions                  meaning
=======  ===========================  =================================================================
``u``    real                         first parameter of the coordinate (theta[:d])
``v``    real                         second parameter (theta[d:])
``s``    positive                     s_i = (1/n) sum_j Z_ji^2
``w``    real                         the coordinate of the end-to-end vector
``W``    positive                     |w| (used for the sign cases w = W and w = -W)
``lam``  nonnegative                  the exponent lambda of AdamE-lambda (0 <= lambda < 1)
``d``    positive integer             the size of a block {u} or {v} (Adam-mini / Adalayer)
=======  ===========================  =================================================================

A parametrization is given by name ("uu-vv", "uv", "depth-D"), by a
:class:`~diagsim.networks.diagonal.parametrization.Parametrization`, as a SymPy expression in ``u``, ``v``
(symbols named "u" and "v" with any assumptions are accepted), or as a string that SymPy parses, e.g.
``"u**3 - v**3"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from ..errors import DiagsimError
from ..networks.diagonal.parametrization import Parametrization
from ..networks.diagonal.parametrization import parametrization as _builtin

u, v = sp.symbols("u v", real=True)
s = sp.Symbol("s", positive=True)
w = sp.Symbol("w", real=True)
W = sp.Symbol("W", positive=True)
lam = sp.Symbol("lambda", nonnegative=True)
d = sp.Symbol("d", positive=True, integer=True)


@dataclass(frozen=True)
class SymbolicParametrization:
    """w = expr(u, v) for one coordinate.

    Attributes
    ----------
    name : label ("uu-vv", "uv", "depth-3", or the expression as a string).
    expr : the SymPy expression in ``u``, ``v``.
    """

    name: str
    expr: sp.Expr

    @cached_property
    def a(self) -> sp.Expr:
        """dw/du."""
        return sp.expand(sp.diff(self.expr, u))

    @cached_property
    def b(self) -> sp.Expr:
        """dw/dv."""
        return sp.expand(sp.diff(self.expr, v))

    @cached_property
    def degree(self) -> int | None:
        """D if w is a homogeneous polynomial of degree D in (u, v), else ``None``."""
        if not self.expr.is_polynomial(u, v):
            return None
        poly = sp.Poly(self.expr, u, v)
        if poly.is_zero:
            return None
        order = poly.homogeneous_order()
        return None if order is None else int(order)

    def require_homogeneous(self, what: str) -> int:
        """The degree D >= 2, or a DiagsimError saying ``what`` needs a homogeneous polynomial."""
        D = self.degree
        if D is None:
            raise DiagsimError(f"{what} needs w(u, v) to be a homogeneous polynomial in u, v (so that the "
                               f"regularizer is a power law in |w|); got w = {self.expr}")
        if D < 2:
            raise DiagsimError(f"{what} needs w(u, v) of degree >= 2 (a degree-{D} parametrization has a "
                               f"measure that does not depend on w); got w = {self.expr}")
        return D

    def __str__(self) -> str:
        return self.name


def _from_expr(expr, name: str | None = None) -> SymbolicParametrization:
    expr = sp.sympify(expr)
    other = {x for x in expr.free_symbols if x.name not in ("u", "v")}
    if other:
        raise DiagsimError(f"parametrization must be an expression in u and v only; {sp.sstr(expr)!r} also "
                           f"contains {', '.join(sorted(x.name for x in other))}")
    expr = expr.xreplace({x: (u if x.name == "u" else v) for x in expr.free_symbols})
    if not expr.free_symbols:
        raise DiagsimError(f"parametrization must depend on u or v; got w = {sp.sstr(expr)}")
    return SymbolicParametrization(name or sp.sstr(expr), sp.expand(expr))


def builtin_expr(p: Parametrization) -> sp.Expr:
    """The SymPy expression of a built-in parametrization."""
    if p.name == "uu-vv":
        return u**2 - v**2
    if p.name == "uv":
        return u * v
    return u**p.depth - v**p.depth


def symbolic_parametrization(spec) -> SymbolicParametrization:
    """Parse a parametrization: a name ("uu-vv", "uv", "depth-D"), a :class:`Parametrization`, a SymPy
    expression in u, v, or a string SymPy can parse (e.g. ``"u**3 - v**3"``)."""
    if isinstance(spec, SymbolicParametrization):
        return spec
    if isinstance(spec, Parametrization):
        return SymbolicParametrization(spec.name, builtin_expr(spec))
    if isinstance(spec, str):
        name = spec.strip()
        if name in ("uu-vv", "uv") or name.startswith("depth-"):
            p = _builtin(name)
            return SymbolicParametrization(p.name, builtin_expr(p))
        try:
            expr = sp.sympify(name, locals={"u": u, "v": v}, rational=True)
        except (sp.SympifyError, SyntaxError, TypeError, ValueError) as exc:
            raise DiagsimError(f"parametrization {spec!r} is neither 'uu-vv', 'uv', 'depth-D' nor an "
                               "expression "
                               f"in u, v that SymPy can parse ({type(exc).__name__})") from None
        return _from_expr(expr, name)
    if isinstance(spec, sp.Basic):
        return _from_expr(spec)
    raise DiagsimError(f"parametrization must be a name, a Parametrization, a SymPy expression or a string; "
                       f"got {type(spec).__name__}")
