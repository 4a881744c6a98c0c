"""Optional dependencies, imported when first needed.

``import diagsim`` needs none of them. A function that does (a result as an xarray Dataset, a table as a
pandas DataFrame) asks for its module here; if it is missing, the error is one line that names the
optional extra that installs it.
"""
from __future__ import annotations

import importlib

from .errors import DiagsimError

#: module -> the optional extra of pyproject.toml that installs it (others are named for pip itself)
EXTRAS = {"pandas": "analysis", "xarray": "analysis", "cvxpy": "convex"}


def require(module: str, purpose: str):
    """Import ``module`` and return it.

    Parameters
    ----------
    module : str
        The module's name, a key of :data:`EXTRAS`.
    purpose : str
        What needs it, for the message (e.g. ``"Result.to_xarray"``).

    Raises
    ------
    DiagsimError
        When the module is not installed: one line naming the extra, e.g. ``Result.to_xarray needs xarray,
        which is not installed: pip install -e ".[analysis]"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module)
        how = f'pip install -e ".[{extra}]"' if extra else f"pip install {module}"
        raise DiagsimError(f"{purpose} needs {module}, which is not installed: {how}") from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported (it is imported if so)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
