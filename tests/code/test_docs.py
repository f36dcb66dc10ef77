"""The README is the front door and docs/ holds the rest: links resolve, every stage is in the
table, and nothing points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(REPO), f"{page.name}: {target} leaves the repository"
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_nothing_refers_outside_the_repository(page: Path) -> None:
    text = page.read_text()
    for outside in ("../shared", "seed notebook", "WORKLOAD_FACTS", "DESIGN.md"):
        assert outside not in text, f"{page.name} mentions {outside}"


def test_the_readme_is_a_front_door() -> None:
    text = (REPO / "README.md").read_text()
    # a front door, not a manual: room for the two benchmark tables users ask for first
    # (serving latency, the engines at 10x), the rest in docs/
    assert len(text.splitlines()) <= 175
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    table = re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE)
    assert table == list(stages), "the README's stage table lists dvc.yaml's stages in order"
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in text, f"the README does not link {page.name}"
