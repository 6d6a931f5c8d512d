"""The README and the pages under docs/ hold together: every relative link reaches a file (and a
heading, for `#anchor`), and the registry.yaml examples a newcomer copies are valid files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlflow_gitops.spec.load import load_text

ROOT = Path(__file__).parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to `-`."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """`page:line: target` for every relative link whose file or heading is missing."""
    broken = []
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        fenced = fenced != line.lstrip().startswith("```")
        for target in [] if fenced else LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{page.relative_to(root)}:{number}: {target}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_page_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_and_a_missing_heading_are_named(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The `engine: spark` part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[ok](other.md) [ok](other.md#the-engine-spark-part) [ok](#page)\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [web](https://example.com/x)\n"
        "```\n[in code](missing.md)\n```\n"
    )
    assert broken_links(page, tmp_path) == ["page.md:3: missing.md", "page.md:3: other.md#nowhere"]


def yaml_blocks(page: Path) -> list[str]:
    """The ```yaml blocks of a page that are whole registry files (they start `version: 1` or
    with the schema comment)."""
    blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    return [b for b in blocks if re.match(r"(#[^\n]*\n)*version: 1\n", b)]


@pytest.mark.parametrize(
    ("page", "count"), [("README.md", 1), ("docs/registry-yaml.md", 1)], ids=str
)
def test_the_registry_examples_are_valid_files(page: str, count: int, tmp_path: Path) -> None:
    blocks = yaml_blocks(ROOT / page)
    assert len(blocks) == count  # the examples were found
    for block in blocks:
        loaded = load_text(block, tmp_path / "registry.yaml")
        assert "nyc-taxi-regressor" in loaded.spec.models
