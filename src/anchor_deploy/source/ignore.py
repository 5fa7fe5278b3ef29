"""Which paths of a deployed folder stay on this machine: safe defaults, anchor.toml's ignore, .anchorignore.

Every rule is a gitignore line (the `pathspec` package reads them), checked in this order, the last match
winning as in git: the defaults below, then anchor.toml's ``[build] ignore``, then ``.anchorignore``. So a
user's ``!pattern`` can re-include what a default skips (``!.npmrc``), and, as in git, a path inside a
skipped folder cannot be re-included without re-including the folder. A folder holding ``pyvenv.cfg`` is a
Python virtual environment and is skipped whatever its name, unless a user's ``!`` pattern names it.

``.env.example``, ``.env.sample`` and ``.env.template`` are kept: they are the files meant to be shared, and
they document the variables a deployment needs. ``include_dotenv`` drops the ``.env`` rules (only them).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pathspec import GitIgnoreSpec

IGNORE_FILE = ".anchorignore"
VENV_MARKER = "pyvenv.cfg"


class Why(enum.StrEnum):
    """Why a path was skipped; SECRET and LOCAL_ENV are the ones a user is told about every time."""

    SECRET = "secret"  # noqa: S105 (a reason, not a password)
    LOCAL_ENV = "local environment"
    VCS = "version control"
    DEPENDENCIES = "dependencies"
    CACHE = "cache"
    PLATFORM = "platform file"
    CLUTTER = "clutter"
    IGNORED = "ignore pattern"
    NOT_REGULAR = "not a regular file"

    @property
    def notable(self) -> bool:
        return self in (Why.SECRET, Why.LOCAL_ENV)


DOTENV_RULES: tuple[str, ...] = (".env*", "!.env.example", "!.env.sample", "!.env.template")
DEFAULT_RULES: tuple[tuple[str, Why], ...] = (
    (".npmrc", Why.SECRET),
    (".pypirc", Why.SECRET),
    (".netrc", Why.SECRET),
    (".git", Why.VCS),
    (".hg", Why.VCS),
    (".svn", Why.VCS),
    ("node_modules/", Why.DEPENDENCIES),
    ("__pycache__/", Why.CACHE),
    ("*.pyc", Why.CACHE),
    (".anchor/", Why.PLATFORM),
    ("anchor.toml", Why.PLATFORM),
    (IGNORE_FILE, Why.PLATFORM),
    (".DS_Store", Why.CLUTTER),
)


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str  # relative, POSIX; a folder ends with "/"
    why: Why
    is_dotenv: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.why.value}


class IgnoreRules:
    def __init__(self, user_lines: Sequence[str] = (), include_dotenv: bool = False) -> None:
        groups: list[tuple[Sequence[str], Why, bool]] = []
        if not include_dotenv:
            groups.append((DOTENV_RULES, Why.SECRET, True))
        groups += [((line,), why, False) for line, why in DEFAULT_RULES]
        patterns = list(GitIgnoreSpec.from_lines(()).patterns)  # empty; typed as the spec wants
        self._why: list[tuple[Why, bool]] = []
        for lines, why, is_dotenv in groups:
            compiled = GitIgnoreSpec.from_lines(lines).patterns
            patterns += compiled
            self._why += [(why, is_dotenv)] * len(compiled)
        self._first_user = len(patterns)
        try:
            patterns += GitIgnoreSpec.from_lines(user_lines).patterns  # blank lines compile to nothing
        except ValueError as exc:
            raise ValueError(f"bad ignore pattern: {exc}") from exc
        self._why += [(Why.IGNORED, False)] * (len(patterns) - self._first_user)
        self._spec = GitIgnoreSpec(patterns)

    def check(self, rel: str, is_dir: bool, is_venv: bool = False) -> Skipped | None:
        """Skipped (and why) or None to keep. ``rel`` is relative to the uploaded root, without a slash at
        either end; ``is_venv``: a folder holding pyvenv.cfg."""
        shown = f"{rel}/" if is_dir else rel
        result = self._spec.check_file(shown)
        index = result.index
        if result.include is True and index is not None:
            why, is_dotenv = self._why[index]
            return Skipped(shown, why, is_dotenv)
        reincluded = result.include is False and index is not None and index >= self._first_user
        if is_venv and not reincluded:
            return Skipped(shown, Why.LOCAL_ENV)
        return None


def read_ignore_file(text: str) -> list[str]:
    """The lines of an .anchorignore (gitignore syntax: comments and blank lines are kept, they match
    nothing)."""
    return text.splitlines()


def summary_line(skipped: Iterable[Skipped], shown_names: int = 5) -> str | None:
    """One line naming what the safe defaults kept back that a user may have expected to upload: secrets
    and local environments. None when there were none."""
    notable = sorted((s for s in skipped if s.why.notable), key=lambda s: s.path)
    if not notable:
        return None
    folders = sum(1 for s in notable if s.path.endswith("/"))
    files = len(notable) - folders
    counts = " and ".join(
        f"{n} {word}{'' if n == 1 else 's'}" for n, word in ((files, "file"), (folders, "folder")) if n
    )
    names = ", ".join(s.path for s in notable[:shown_names])
    if len(notable) > shown_names:
        names += f", … ({len(notable) - shown_names} more with --verbose)"
    kinds = [
        kind
        for kind, why in (("secrets", Why.SECRET), ("local environments", Why.LOCAL_ENV))
        if any(s.why == why for s in notable)
    ]
    hint = "see .anchorignore" + (" or --include-dotenv" if any(s.is_dotenv for s in notable) else "")
    return f"skipped {counts}: {names} ({' and '.join(kinds)}; {hint})"
