"""The documentation's sources agree with the repository: every paper figure and every committed figure is
shown in the gallery with its code, every file a page includes exists, and the README keeps the markers
the site includes its fragments by. (Building the site, with warnings as errors, is .ci/run's job; these
checks need no Sphinx and run with the default suite.)"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from diagsim.experiments.figures import list_figures

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REPRO = ROOT / "paper_repro"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

# ```{literalinclude} PATH```, ```{image} PATH```, ```{include} PATH``` and the options that follow
DIRECTIVE = re.compile(r"^```\{(literalinclude|image|include)\} (\S+)\n((?::[\w-]+:.*\n)*)", re.M)


def directives(page: Path) -> list[tuple[str, Path, dict]]:
    """``(kind, resolved path, options)`` of every file directive of a page."""
    out = []
    for kind, target, opts in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
        options = dict(re.findall(r"^:([\w-]+):\s*(.*)$", opts, re.M))
        out.append((kind, (page.parent / target).resolve(), options))
    return out


def repro_rows() -> dict[str, str]:
    """Figure name -> its number in the table of paper_repro/README.md (by the config it links)."""
    rows = {}
    for line in (REPRO / "README.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| (\d+) \|.*\[(\w+)\.toml\]", line)
        if m:
            rows[m.group(2)] = m.group(1)
    return rows


def test_pages_exist_and_have_file_directives():
    assert {p.relative_to(DOCS).as_posix() for p in PAGES} >= {
        "index.md", "about.md", "getting-started.md", "theory.md", "extending.md", "verify.md", "api/index.md",
        "guide/index.md", "gallery/index.md", "gallery/main-job.md", "gallery/three-levels.md"}
    assert sum(len(directives(p)) for p in PAGES) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_every_included_file_and_marker_exists(page):
    for kind, path, options in directives(page):
        assert path.is_file(), f"{page.name}: {kind} {path} does not exist"
        text = path.read_text(encoding="utf-8", errors="replace")
        for key in ("start-after", "end-before"):
            if key in options:
                marker = options[key].strip().strip('"')
                assert text.count(marker) == 1, f"{page.name}: {key} {marker!r} occurs {text.count(marker)} times"
        if "pyobject" in options:
            assert re.search(rf"^(def|class) {options['pyobject']}\b", text, re.M), options["pyobject"]


def test_every_paper_figure_has_a_gallery_page_with_its_code_output_and_runtime_row():
    rows = repro_rows()
    names = list_figures(REPRO)
    assert names and set(names) == set(rows)
    for name in names:
        page = DOCS / "gallery" / f"{name}.md"
        assert page.is_file(), f"no gallery page for {name}"
        shown = {path for _, path, _ in directives(page)}
        assert {REPRO / f"{name}.toml", REPRO / f"{name}.py", ROOT / "figures" / f"{name}.png",
                ROOT / "figures" / "full" / f"{name}.png"} <= shown, name
        assert re.search(rf"^```{{repro-row}} {rows[name]}$", page.read_text(), re.M), name
        assert f"diagsim figures --only {name}" in page.read_text()


def test_every_committed_figure_is_shown_somewhere():
    shown = {path for p in PAGES for kind, path, _ in directives(p) if kind == "image"}
    # images inside included fragments (the README's main job) count too
    for p in PAGES:
        for kind, path, options in directives(p):
            if kind == "include":
                text = path.read_text(encoding="utf-8")
                if "start-after" in options:
                    text = text.split(options["start-after"].strip().strip('"'), 1)[1]
                if "end-before" in options:
                    text = text.split(options["end-before"].strip().strip('"'), 1)[0]
                for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
                    shown.add((path.parent / target).resolve())
    pngs = set((ROOT / "figures").glob("*.png")) | set((ROOT / "figures" / "full").glob("*.png"))
    assert pngs and not {p.resolve() for p in pngs} - shown, sorted(str(p) for p in pngs - shown)


def test_readme_keeps_the_quick_start_that_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
    assert commands == ['python3 -m venv .venv && . .venv/bin/activate && pip install -e . && diagsim run',
                        'pip install -e ".[test]" && python -m pytest']
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] + " || exit 1" in ci and "sphinx-build -W" in ci
