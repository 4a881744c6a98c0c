"""Registries: where each level (discrete kernel, SDE, slow flow, prediction, GPU kernels) records what
it does for each optimizer spec class.

Every level keeps one :class:`SpecRegistry` and finds an optimizer's entry the same way:
:meth:`SpecRegistry.lookup` walks the spec's class hierarchy (its MRO), so a user's ``class MyAdam(Adam)``
gets Adam's entry at every level until a level registers something for ``MyAdam`` itself. An optimizer a
level does not cover is a one-line :class:`~diagsim.errors.DiagsimError` that names the level and what it
supports. Adding an optimizer to a level is one ``register`` call next to that level's code
(docs/extending.md).
"""
from __future__ import annotations

from typing import Any, Generic, TypeVar

from .errors import DiagsimError

E = TypeVar("E")


class SpecRegistry(Generic[E]):
    """Entries of one level, keyed by optimizer spec class.

    Parameters
    ----------
    level : the level's name in messages ("the SDE level", "the discrete kernel", ...).
    what : what an entry is ("SDE model", "slow flow", ...), for messages.
    hint : appended to the "not supported" message (e.g. which model to use instead).
    """

    def __init__(self, level: str, what: str, hint: str = ""):
        self.level = level
        self.what = what
        self.hint = hint
        self._entries: dict[type, Any] = {}

    def register(self, spec_class: type, entry: E) -> E:
        """Record ``entry`` for ``spec_class`` (and, through :meth:`lookup`, its subclasses)."""
        if not isinstance(spec_class, type):
            raise TypeError(f"register() takes a spec class, got {spec_class!r}")
        self._entries[spec_class] = entry
        return entry

    def find(self, spec) -> E | None:
        """The entry of the nearest registered class in ``type(spec).__mro__`` (or of ``spec`` itself when it
        is a class), None when there is none."""
        cls = spec if isinstance(spec, type) else type(spec)
        for c in cls.__mro__:
            if c in self._entries:
                return self._entries[c]
        return None

    def lookup(self, spec) -> E:
        """As :meth:`find`, but an optimizer the level does not cover is a one-line error."""
        entry = self.find(spec)
        if entry is None:
            name = getattr(spec, "name", None) or getattr(spec, "__name__", type(spec).__name__)
            hint = f"; {self.hint}" if self.hint else ""
            raise DiagsimError(f"{self.level} has no {self.what} for optimizer {name!r}; it covers "
                               f"{', '.join(self.names()) or 'none'}{hint}")
        return entry

    def __contains__(self, spec) -> bool:
        return self.find(spec) is not None

    def classes(self) -> list[type]:
        return list(self._entries)

    def names(self) -> list[str]:
        """The ``name`` of every class the level covers: the registered classes and their subclasses."""
        out: list[str] = []

        def add(c):
            name = getattr(c, "name", c.__name__)
            if name not in out and self.find(c) is not None:
                out.append(name)
            for sub in c.__subclasses__():
                add(sub)

        for c in self._entries:
            add(c)
        return out
