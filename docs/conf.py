"""Sphinx configuration of diagsim's documentation site (why Sphinx, and how to build: about.md).

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (what .ci/run does). Nothing is
executed at build time except importing diagsim for the API reference: the gallery shows committed
figures and outputs.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import diagsim  # noqa: E402

project = "diagsim"
author = "diagsim developers"
copyright = "diagsim developers"
release = version = diagsim.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "diagsim_docs",
]

exclude_patterns = ["_build", "_templates", "_ext"]
templates_path = ["_templates"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}

# --- MyST: Markdown with $...$ and $$...$$ mathematics (theory.md), ::: fences, heading anchors
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 4
myst_heading_slug_func = "diagsim_docs.heading_slug"   # "§8.3 ..." -> #s8-3, the anchors theory.md links to

# --- API reference: one page per module, generated from the docstrings (NumPy style) at build time
autosummary_generate = True
autosummary_imported_members = False
# every object is documented once, in the module that defines it (a package's __all__ re-exports are
# not documented again on the package's page)
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = False      # parameter types are prose ("(n_paths, d) float64"), not cross-references
napoleon_use_rtype = False
napoleon_custom_sections = [("Attributes", "params_style"), ("Raises", "params_style")]

# --- every cross-reference must resolve: a broken :func:`...` fails the build (-W). Names of other
# packages are not checked (the build is offline: no intersphinx inventories).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|sympy|scipy|pathlib|pandas|xarray|matplotlib|numba|llvmlite|dask|distributed|tqdm"
               r"|typing|collections|argparse|os|io|concurrent|multiprocessing|socket|threading)(\..*)?"),
    # a dataclass field annotated with a name imported for type checking only shows as a quoted string
    (r"py:class", r"'.*"),
]
nitpick_ignore = [
    ("py:class", "diagsim.registry.E"), ("py:obj", "diagsim.registry.E"),   # the registry's TypeVar
]

# --- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"diagsim {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
html_copy_source = False
