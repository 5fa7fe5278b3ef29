"""Git: a project's connected repository, the commit a deployment was built from, and branch URLs.

A branch's stable preview URL is ``{project}-git-{slug}.{base}``. The slug is the branch name lowercased,
every run of characters other than a-z and 0-9 made one ``-``, trimmed of ``-`` at both ends. When the label
would pass DNS's 63 characters, the slug is cut and ends with ``-`` and six hex characters of the branch
name's SHA-256, so two long branches with one prefix still get two URLs.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from anchor_deploy.model.errors import InvalidInput

LABEL_MAX = 63
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1, or SHA-256 repositories
ZERO_SHA = "0" * 40
BRANCH_REF = "refs/heads/"
# A git deployment's meta holds, besides the commit under "git", where its build fetches it from (set by the
# platform only: a client's meta may not carry it).
GIT_SOURCE_KEY = "gitSource"
MAX_BRANCH = 255
MAX_URL = 2048
MAX_MESSAGE = 200  # the first line of a commit message, as stored
MAX_AUTHOR = 200


class Forge(enum.StrEnum):
    """Where a repository lives: what its webhooks look like and how a commit status is reported."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"  # Forgejo speaks the same API and payloads
    GENERIC = "generic"  # any git server: signed generic webhooks, no status reports


class CommitState(enum.StrEnum):
    """A deployment's state as a forge's commit status shows it."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class GitConnection:
    """A project's connected repository. Its secrets (webhook secret, fetch credentials, forge token) are
    kept sealed apart (``ports/git.py``); the connection says only whether each is set."""

    project_id: str
    repo_url: str
    production_branch: str
    forge: Forge
    created_at: float
    api_url: str = ""  # the forge's API root for status reports ("" = the forge's public default)
    has_credentials: bool = False
    has_forge_token: bool = False


@dataclass(frozen=True, slots=True)
class GitSecrets:
    """A connection's secrets, sealed by the platform's secret box; None when not set."""

    webhook_secret: bytes
    credentials: bytes | None = None
    forge_token: bytes | None = None


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """The commit a deployment was built from: recorded in the deployment's meta under ``git``."""

    repository: str
    branch: str
    sha: str
    message: str = ""
    author: str = ""
    dirty: bool = False

    def as_meta(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "branch": self.branch,
            "commitSha": self.sha,
            "commitMessage": self.message,
            "commitAuthor": self.author,
            "dirty": self.dirty,
        }


@dataclass(frozen=True, slots=True)
class BranchAlias:
    """A branch's stable preview host and the deployment it serves (None: nothing yet)."""

    project_id: str
    branch: str
    host: str
    deployment_id: str | None
    sha: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One ref a push moved: ``before`` / ``after`` are ZERO_SHA when the ref was created / deleted."""

    ref: str
    before: str
    after: str

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix(BRANCH_REF) if self.ref.startswith(BRANCH_REF) else None

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA or set(self.after) == {"0"}


def is_sha(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA.fullmatch(value))


def first_line(message: str, limit: int = MAX_MESSAGE) -> str:
    line = message.strip().split("\n", 1)[0].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def validate_branch(branch: object) -> str:
    """A branch name as git allows it (the rules of git check-ref-format that matter here)."""
    if not isinstance(branch, str) or not branch or len(branch) > MAX_BRANCH:
        raise InvalidInput(f"a branch name must be 1-{MAX_BRANCH} characters")
    bad = (
        branch.startswith(("/", "-", "."))
        or branch.endswith(("/", ".", ".lock"))
        or ".." in branch
        or "//" in branch
        or "@{" in branch
        or any(ch in branch for ch in " ~^:?*[\\\x7f")
        or any(ord(ch) < 32 for ch in branch)
    )
    if bad:
        raise InvalidInput(f"invalid branch name {branch[:80]!r}")
    return branch


def branch_slug(branch: str, room: int = LABEL_MAX) -> str:
    """The branch name as at most ``room`` characters of a DNS label (module docstring)."""
    slug = _NOT_SLUG.sub("-", branch.lower()).strip("-") or "branch"
    if len(slug) <= room:
        return slug
    digest = hashlib.sha256(branch.encode()).hexdigest()[:6]
    return slug[: room - 7].rstrip("-") + "-" + digest


def branch_host(project: str, branch: str, base_domain: str) -> str:
    prefix = f"{project}-git-"
    return f"{prefix}{branch_slug(branch, LABEL_MAX - len(prefix))}.{base_domain}"


def commit_from_meta(meta: object) -> CommitInfo | None:
    """The commit recorded in a deployment's meta, or None when there is none (or it is malformed)."""
    raw = meta.get("git") if isinstance(meta, dict) else None
    if not isinstance(raw, dict):
        return None
    sha = raw.get("commitSha")
    if not isinstance(sha, str):
        return None
    text = {k: raw.get(k) for k in ("repository", "branch", "commitMessage", "commitAuthor")}
    return CommitInfo(
        repository=text["repository"] if isinstance(text["repository"], str) else "",
        branch=text["branch"] if isinstance(text["branch"], str) else "",
        sha=sha,
        message=text["commitMessage"] if isinstance(text["commitMessage"], str) else "",
        author=text["commitAuthor"] if isinstance(text["commitAuthor"], str) else "",
        dirty=raw.get("dirty") is True,
    )


def parse_commit_meta(raw: object) -> CommitInfo:
    """``meta.git`` as a client sends it (`anchor deploy` from a working tree); InvalidInput if malformed."""
    if not isinstance(raw, dict):
        raise InvalidInput("meta.git must be an object")
    sha = raw.get("commitSha")
    if not is_sha(sha):
        raise InvalidInput("meta.git.commitSha must be a full commit sha (40 or 64 lowercase hex characters)")
    for key, limit in (("repository", MAX_URL), ("branch", MAX_BRANCH), ("commitMessage", MAX_MESSAGE * 4)):
        value = raw.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidInput(f"meta.git.{key} must be a string of at most {limit} characters")
    author = raw.get("commitAuthor", "")
    if not isinstance(author, str) or len(author) > MAX_AUTHOR:
        raise InvalidInput(f"meta.git.commitAuthor must be a string of at most {MAX_AUTHOR} characters")
    if not isinstance(raw.get("dirty", False), bool):
        raise InvalidInput("meta.git.dirty must be true or false")
    return CommitInfo(
        repository=raw.get("repository", ""),
        branch=raw.get("branch", ""),
        sha=str(sha),
        message=first_line(raw.get("commitMessage", "")),
        author=author,
        dirty=raw.get("dirty", False),
    )
