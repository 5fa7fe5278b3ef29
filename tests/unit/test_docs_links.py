"""The README and docs/ point only at things inside the repository (and at web addresses)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE_PATH = re.compile(r"`(\.\./[^`]*|/(?:work|home|root|Users)/[^`]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_mention_of_anything_outside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "../shared" not in text
    assert not _CODE_PATH.findall(text), f"{doc.name} names paths outside the repository"
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        resolved = (doc.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{doc.name} links outside the repository: {target}"
        assert resolved.exists(), f"{doc.name} links to {target}, which does not exist"


def test_the_docs_are_found() -> None:
    assert REPO / "README.md" in DOCS and REPO / "docs" / "security.md" in DOCS
