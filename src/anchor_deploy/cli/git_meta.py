"""The commit `anchor deploy DIR` deploys from, when DIR is in a git working tree: sent as ``meta.git``.

Read with git itself (argument lists, a short timeout each). No git, DIR outside a working tree, a
repository with no commit yet, or git failing or hanging: no commit, and the deploy goes on without one.

- ``repository``: ``remote.origin.url`` without the user and password a URL may carry (a token is often the
  user of an https URL); "" without an origin. An scp-like ``git@host:path`` keeps its user (never a secret).
- ``branch``: the checked-out branch; "" on a detached HEAD.
- ``dirty``: ``git status`` shows a change (staged, unstaged or an untracked file not ignored) *inside DIR*:
  what is uploaded is DIR, so a change elsewhere in a monorepo does not make this deployment differ from its
  commit. When git cannot say (the status fails or times out), the tree counts as dirty: the deployment is
  then not claimed to be exactly the commit.

A meta that already has ``git`` keeps it: whoever passes one explicitly (a CI deploying an exported tree)
knows the commit better than the working tree does.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from anchor_deploy.cli.client import ClientError
from anchor_deploy.model.git import MAX_AUTHOR, MAX_BRANCH, MAX_URL, CommitInfo, first_line, is_sha

GIT_TIMEOUT = 5.0  # seconds per git call
_FIELDS = "%an%x00%ae%x00%B"  # author name, author email, the raw message


def _git(directory: Path, *args: str) -> str | None:
    """git's output (stripped of the final newline), or None when it fails, hangs or is not installed.
    ``--no-optional-locks``: reading the user's repository must not take its index lock."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(directory), *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace").removesuffix("\n")


def without_credentials(url: str) -> str:
    """``url`` with its ``user:password@`` (or ``token@``) dropped; scp-like and local paths as they are."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return ""  # not a URL we can clean: sending nothing is safer than sending a secret
    if "@" not in parts.netloc or host is None:
        return url
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def commit_info(directory: Path) -> CommitInfo | None:
    """The commit checked out in the working tree holding ``directory``; None when there is none."""
    if _git(directory, "rev-parse", "--show-toplevel") is None:
        return None
    sha = _git(directory, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if sha is None or not is_sha(sha):
        return None  # no commit yet
    author, message = _author_and_message(directory, sha)
    branch = _git(directory, "symbolic-ref", "--short", "-q", "HEAD") or ""
    repository = without_credentials(_git(directory, "config", "--get", "remote.origin.url") or "")
    status = _git(directory, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return CommitInfo(
        repository=repository if len(repository) <= MAX_URL else "",
        branch=branch if len(branch) <= MAX_BRANCH else "",
        sha=sha,
        message=first_line(message),
        author=first_line(author, MAX_AUTHOR),
        dirty=status is None or status.strip() != "",
    )


def _author_and_message(directory: Path, sha: str) -> tuple[str, str]:
    """("Name <email>", the whole message) of the commit; empty strings when git cannot say."""
    details = _git(directory, "show", "-s", "--no-show-signature", f"--format={_FIELDS}", sha) or ""
    parts = details.split("\0", 2)
    if len(parts) < 3:
        return "", ""
    name, email, message = parts
    return (f"{name} <{email}>" if name or email else ""), message


def with_commit(meta: dict[str, Any], directory: Path) -> dict[str, Any]:
    """``meta`` with ``git`` set to the working tree's commit, unless it has one already or there is none."""
    if "git" in meta:
        return meta
    commit = commit_info(directory)
    return meta if commit is None else {**meta, "git": commit.as_meta()}


def user_meta(text: str | None) -> dict[str, Any]:
    """``--meta``: a JSON object, or a ClientError saying what is wrong."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ClientError(f"--meta is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ClientError("--meta must be a JSON object")
    return value
