"""Sphinx helpers of diagsim's documentation site (loaded by docs/conf.py).

* :func:`heading_slug`: MyST heading anchors. ``theory.md`` numbers its sections (``## §8 ...``,
  ``### §8.3 ...``) and links to them as ``#s8``, ``#s8-3``; this gives those headings exactly these
  anchors, so the links resolve (and are checked) without editing the document.
* ``repro-row``: a directive that shows one figure's row of the table in ``paper_repro/README.md``
  (config, script, jobs, runtimes), so that a gallery page states the runtime without a second copy.
* :func:`escape_bars`: docstrings write mathematics in plain text for ``help()`` (``|w_i|``,
  ``||w||_1``, ``G_+``); reStructuredText would read ``|...|`` as a substitution and ``G_`` as a link.
  Outside inline literals, roles, literal blocks and doctests, each ``|`` and each ``_`` that ends a
  word is escaped so that it prints as written (in a simple table, cell by cell, keeping the columns).
* :func:`prose_fields`: many docstrings write a field as ``name : what it is`` on one line, prose where
  the NumPy layout puts a type; such prose is moved to the field's description (before napoleon reads
  the sections), so it is not printed as a type. Short type specifications (``float``, ``int or None``,
  ``{"wide", "long"}``) stay types.
* :func:`restore_prose`: napoleon reads ``"words: more words"`` at the start of an attribute's or a
  property's docstring as a type annotation; diagsim's attribute docstrings are prose, so the words are
  put back in front of the text (a type would become a cross-reference to nothing).
* :func:`resolve_short_names`: a cross-reference that names an object by its short name
  (``:func:`evaluate``` in a module of the same package, ``:class:`RunProgress``` in the package that
  holds it) resolves when exactly one documented object ends with that name, and a name that a package
  re-exports (``diagsim.simulate``, ``diagsim.predict.predict``) resolves to the module that defines
  it, where it is documented. Anything else still fails the build.
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils.parsers.rst import directives
from myst_parser.mdit_to_docutils.base import default_slugify
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
REPRO_README = ROOT / "paper_repro" / "README.md"

_SECTION = re.compile(r"§(\d+(?:\.\d+)*)")


def heading_slug(text: str) -> str:
    """``"§8.3 Adaptive flows"`` -> ``"s8-3"``; any other heading gets MyST's default anchor."""
    m = _SECTION.match(text.strip())
    return "s" + m.group(1).replace(".", "-") if m else default_slugify(text)


# --------------------------------------------------------------------------- the paper_repro table
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def repro_table(path: Path = REPRO_README) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the rows (keyed by the first cell, the figure number) of the first Markdown table
    in ``path`` whose first column is ``figure``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and _cells(line)[0] == "figure":
            header, rows = _cells(line), {}
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = _cells(row)
                rows[cells[0]] = cells
            return header, rows
    raise ValueError(f"{path}: no table whose first column is 'figure'")


class ReproRow(SphinxDirective):
    """``{repro-row} 1``: the row of figure 1 of paper_repro/README.md's table, as a two-column table
    (links to files become file names)."""

    required_arguments = 1
    option_spec = {"columns": directives.unchanged}

    def run(self):
        self.env.note_dependency(str(REPRO_README))
        header, rows = repro_table()
        key = self.arguments[0]
        if key not in rows:
            raise self.error(f"paper_repro/README.md's table has no figure {key!r} (it has {', '.join(rows)})")
        wanted = [c.strip() for c in self.options.get("columns", ",".join(header[1:])).split(",")]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise self.error(f"paper_repro/README.md's table has no column {missing[0]!r}")
        row = dict(zip(header, rows[key]))
        text = "| | |\n|---|---|\n" + "".join(
            f"| {name} | {_LINK.sub(lambda m: f'`{m.group(1)}`', row[name])} |\n" for name in wanted)
        return self.parse_text_to_nodes(text)


# --------------------------------------------------------------------------- docstrings
_SPAN = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_{0,2})")
_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


_TRAILING_UNDERSCORES = re.compile(r"(?<=[^\W_])(_+)(?=[^\w]|$)")


def _escape_text(text: str) -> str:
    parts = _SPAN.split(text)
    return "".join(p if i % 2 else _TRAILING_UNDERSCORES.sub(lambda m: "\\_" * len(m.group(1)), p.replace("|", r"\|"))
                   for i, p in enumerate(parts))


def _columns(border: str) -> list[int]:
    """Start positions of the columns of a simple table, from one of its border lines."""
    return [m.start() for m in re.finditer(r"=+", border)]


def _escape_row(line: str, starts: list[int]) -> str:
    """Escape the bars of one row of a simple table cell by cell, keeping every cell in its column
    (an escaped cell uses the blank space at its end; a cell without room is left as it is)."""
    if "|" not in line:
        return line
    cells = []
    for j, a in enumerate(starts):
        b = starts[j + 1] if j + 1 < len(starts) else len(line)
        cell = line[a:b]
        new = _escape_text(cell)
        if j + 1 < len(starts) and new != cell:
            body = new.rstrip()
            new = body.ljust(b - a) if len(body) < b - a else cell
        cells.append(new)
    return line[:starts[0]] + "".join(cells)


def escape_bars(lines: list[str]) -> None:
    """Escape ``|`` in place in docstring lines (see the module doc)."""
    literal_indent = None
    table: list[int] | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if _BORDER.match(line):
            if table is None:
                table = _columns(line)
            elif not (i + 1 < len(lines) and lines[i + 1].strip()):
                table = None              # the closing border (a blank line or the end follows)
            continue
        if table is not None:
            lines[i] = _escape_row(line, table)
            continue
        if stripped.startswith((">>>", "...")):
            continue
        lines[i] = _escape_text(line)
        if stripped.endswith("::"):
            literal_indent = indent


_FIELD_SECTIONS = ("Parameters", "Other Parameters", "Attributes", "Returns", "Yields", "Keyword Arguments")
_FIELD = re.compile(r"^(\s*)([^\s:][^:]*?) : (.+)$")


def _is_prose(spec: str) -> bool:
    """Whether the text after ``name :`` is a description rather than a type specification."""
    spec = spec.strip()
    return (spec.endswith(".") or any(c in spec for c in ";:=`") or "->" in spec or len(spec.split()) > 8)


def prose_fields(lines: list[str]) -> None:
    """Move one-line prose out of the type position of NumPy fields, in place (see the module doc)."""
    section, base = None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if i + 1 < len(lines) and stripped and set(lines[i + 1].strip()) == {"-"} \
                and len(lines[i + 1].strip()) >= 3:
            section = stripped if stripped in _FIELD_SECTIONS else None
            base = len(line) - len(line.lstrip())
            i += 2
            continue
        if section is not None and stripped:
            indent = len(line) - len(line.lstrip())
            if indent < base:
                section = None
            elif indent == base:
                m = _FIELD.match(line)
                if m and _is_prose(m.group(3)):
                    lines[i] = m.group(1) + m.group(2)
                    lines.insert(i + 1, m.group(1) + "    " + m.group(3))
                    i += 1
        i += 1


def restore_prose(what: str, lines: list[str]) -> None:
    """Undo napoleon's inline-type reading of an attribute, data or property docstring (in place)."""
    if what not in ("attribute", "data", "property") or len(lines) < 2 or not lines[-1].startswith(":type: "):
        return
    words = lines[-1][len(":type: "):]
    del lines[-2:]
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        lines.append(words)
    else:
        lines[first] = f"{words}: {lines[first].lstrip()}"


def _before_napoleon(app, what, name, obj, options, lines):
    prose_fields(lines)


def _process_docstring(app, what, name, obj, options, lines):
    restore_prose(what, lines)
    escape_bars(lines)


# --------------------------------------------------------------------------- cross-references
def home_of(target: str) -> str | None:
    """The documented name of what ``target`` names through a package's re-export: ``diagsim.simulate``
    -> ``diagsim.engine.driver.simulate``, ``diagsim.sde.SDEStepper.advance`` ->
    ``diagsim.sde.stepper.SDEStepper.advance`` (None if ``target`` does not name a diagsim object)."""
    import importlib
    parts = target.split(".")
    if parts[0] != "diagsim":
        return None
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        obj = getattr(obj, "py_func", obj)            # a Numba dispatcher: the Python function it compiles
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not module or not qualname:
            return None
        home = f"{module}.{qualname}"
        return home if home != target else None
    return None


def resolve_short_names(app, env, node, contnode):
    """``missing-reference`` handler for the Python domain (see the module doc)."""
    if node.get("refdomain") != "py" or node.get("refspecific"):
        return None
    domain = env.get_domain("py")
    target = node["reftarget"]
    home = home_of(target)
    if home is not None:
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], home, node, contnode)
    matches = domain.find_obj(env, node.get("py:module"), node.get("py:class"), target,
                              node["reftype"], searchmode=1)
    if len(matches) != 1:
        return None
    name, _ = matches[0]
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name, node, contnode)


def setup(app):
    app.add_directive("repro-row", ReproRow)
    app.connect("autodoc-process-docstring", _before_napoleon, priority=400)      # napoleon's is 500
    app.connect("autodoc-process-docstring", _process_docstring, priority=600)
    app.connect("missing-reference", resolve_short_names)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
