"""The documentation's own links: every relative link names a file that exists, and every
``#anchor`` a heading in it (GitHub's heading-to-anchor rule)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL: not checked offline
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_no_page_keeps_an_unfilled_placeholder() -> None:
    """A page for users shows figures, not the names of tables still to be filled in."""
    placeholder = re.compile(r"^[A-Z]+(?:_[A-Z]+)+$", re.MULTILINE)
    found = {
        page.name: placeholder.findall(page.read_text(encoding="utf-8"))
        for page in sorted((ROOT / "docs").glob("*.md"))
    }
    assert {name: names for name, names in found.items() if names} == {}


def test_the_site_lists_every_page() -> None:
    """A page missing from mkdocs.yml's nav would be built but reachable from nowhere."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+- [^:\n]+: (\S+\.md)\s*$", config, re.M))
    assert listed == {page.name for page in (ROOT / "docs").glob("*.md")}


# Modules whose public names `zerotrust` re-exports (documented there), and the CLI's own.
_BY_THE_ROOT = {"audit", "behavior", "decision", "engine", "errors", "evaluation", "request"}
_BY_THE_ROOT |= {"obligations", "policy", "protocols"}
_COMMAND_LINE = {"cli", "demo", "demo_slow", "pytest_plugin"}  # documented as tools


def test_the_api_reference_covers_every_public_module() -> None:
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: (\S+)$", api, re.M))
    package = ROOT / "zerotrust"
    public = {
        path.stem if path.is_file() else path.name
        for path in package.iterdir()
        if not path.name.startswith("_")
        and (path.suffix == ".py" or (path / "__init__.py").exists())
    }
    undocumented = (
        public - _BY_THE_ROOT - _COMMAND_LINE - {m.split(".")[1] for m in documented if "." in m}
    )
    assert undocumented == set()
    for module in documented:  # every directive names a module that exists
        parts = module.split(".")
        assert (ROOT.joinpath(*parts).with_suffix(".py")).exists() or (
            ROOT.joinpath(*parts) / "__init__.py"
        ).exists(), module
