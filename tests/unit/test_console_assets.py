"""The console's files, read as text: everything ships from the repo, nothing parses markup from a
value, the page forbids scripts from anywhere else, and every module it imports is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "api" / "console"
FILES = sorted(p for p in CONSOLE.rglob("*") if p.suffix in {".html", ".js", ".css"})
SCRIPTS = [p for p in FILES if p.suffix == ".js"]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


def test_the_console_is_there():
    assert (CONSOLE / "index.html").exists() and SCRIPTS


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONSOLE)))
def test_nothing_is_fetched_from_another_origin(path: Path):
    text = path.read_text().replace(SVG_NAMESPACE, "")
    assert re.findall(r"(?:https?:)?//[\w-]+(?:\.[\w-]+)+", text) == [], f"{path.name} refers elsewhere"
    assert "@import" not in text and "url(http" not in text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(CONSOLE)))
def test_no_value_is_ever_parsed_as_markup_or_code(path: Path):
    text = path.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text, f"{path.name} uses {sink}"


def test_the_page_allows_scripts_and_styles_from_itself_only():
    html = (CONSOLE / "index.html").read_text()
    [policy] = re.findall(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "<script>" not in html and " style=" not in html, "no inline script or style"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(CONSOLE)))
def test_every_imported_module_exists(path: Path):
    for target in re.findall(r'from "(\.{1,2}/[^"]+)"', path.read_text()):
        assert (path.parent / target).resolve().is_file(), f"{path.name} imports missing {target}"
