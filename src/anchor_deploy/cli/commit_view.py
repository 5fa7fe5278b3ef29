"""How the CLI shows a deployment's commit (the API's ``git`` object) in `anchor ls`, `inspect`, `history`.

Commit text comes from whoever pushed or deployed: control characters (a terminal escape in a commit
message) are shown as ``?``, and the text is never read as rich markup.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

SHORT_SHA = 7
MESSAGE_WIDTH = 40
DIRTY_MARK = "*"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """``text`` as one line with no control characters."""
    return _CONTROL.sub("?", text) if isinstance(text, str) else ""


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _commit(git: object) -> dict[str, Any] | None:
    return git if isinstance(git, dict) and isinstance(git.get("commitSha"), str) else None


def short_sha(git: object) -> str:
    """The first seven characters of the sha, ``*`` after them when the tree was dirty; "" for none."""
    commit = _commit(git)
    if commit is None:
        return ""
    return clean(commit["commitSha"])[:SHORT_SHA] + (DIRTY_MARK if commit.get("dirty") is True else "")


def commit_cell(git: object, with_branch: bool = True) -> Text:
    """`anchor ls`, `anchor history`: "main 1a2b3c4* Fix the header…" (``*``: uncommitted changes)."""
    commit = _commit(git)
    if commit is None:
        return Text("")
    parts = [clean(commit.get("branch"))] if with_branch else []
    parts += [short_sha(commit), short(clean(commit.get("commitMessage")), MESSAGE_WIDTH)]
    return Text(" ".join(p for p in parts if p))


def commit_rows(git: object) -> list[tuple[str, Text]]:
    """`anchor inspect`: one (label, value) row per field of the commit; none without one."""
    commit = _commit(git)
    if commit is None:
        return []
    dirty = commit.get("dirty") is True
    values = (
        ("repository", clean(commit.get("repository")) or "-"),
        ("branch", clean(commit.get("branch")) or "-"),
        ("commit", clean(commit["commitSha"])),
        ("message", clean(commit.get("commitMessage"))),
        ("author", clean(commit.get("commitAuthor")) or "-"),
        ("dirty", "yes: the tree had uncommitted changes" if dirty else "no"),
    )
    return [(label, Text(value)) for label, value in values]
