"""The one HTTP request that sets a commit's status on each forge, built from a connection and a status.

- GitHub: ``POST {api}/repos/{owner}/{repo}/statuses/{sha}``, ``Authorization: Bearer``, a JSON body
  ``{state: pending|success|failure, target_url, description, context}``. The API root is
  ``https://api.github.com``, or ``https://{host}/api/v3`` for GitHub Enterprise Server.
- GitLab: ``POST {api}/projects/{url-encoded path}/statuses/{sha}``, ``PRIVATE-TOKEN``, a JSON body
  ``{state: pending|running|success|failed|canceled, target_url, description, name}``; the API root is
  ``{scheme}://{host}/api/v4``.
- Gitea and Forgejo: ``POST {api}/repos/{owner}/{repo}/statuses/{sha}``, ``Authorization: token``, a JSON
  body ``{state: pending|success|failure|error|warning, target_url, description, context}``; the API root
  is ``{scheme}://{host}[/{prefix}]/api/v1`` (``prefix``: where the forge is served under the host).

A connection's ``api_url`` replaces the default API root. A generic git server is told nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from anchor_deploy.model.git import CommitState, Forge, GitConnection
from anchor_deploy.ports.git import CommitStatus

MAX_DESCRIPTION = 140  # GitHub's limit, the strictest of the three
USER_AGENT = "anchor-deploy"
GITHUB_API = "https://api.github.com"
GITHUB_API_VERSION = "2022-11-28"
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")  # git@host:owner/repo.git
_GITLAB_STATES = {
    CommitState.PENDING: "pending",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
}


@dataclass(frozen=True)
class RepoLocation:
    """Where a repository lives, read from its clone URL: the scheme its web and API are served over, the
    host (with its port for http(s) URLs), and the repository's path without ``.git``."""

    scheme: str
    host: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class StatusRequest:
    """One status call. ``key`` names what a later status of the same commit replaces; ``label`` says
    which call it is in logs (never the token)."""

    url: str
    headers: dict[str, str] = field(repr=False)
    body: dict[str, Any]
    key: tuple[str, ...]
    label: str
    token: str = field(repr=False)  # to scrub from anything the forge answers before it is logged


def repo_location(repo_url: str) -> RepoLocation | None:
    """https://host/owner/repo(.git), ssh://git@host[:port]/owner/repo.git or git@host:owner/repo.git;
    None when it is none of these (a local path, a file:// URL) or names no repository."""
    url = repo_url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git", "git+ssh") or not parts.hostname:
            return None
        web = parts.scheme in ("http", "https")
        host = parts.hostname + (f":{parts.port}" if web and parts.port else "")
        scheme, raw_path = (parts.scheme if web else "https"), parts.path
    else:
        match = _SCP_LIKE.match(url)
        if match is None:
            return None
        scheme, host, raw_path = "https", match["host"], match["path"]
    path = raw_path.strip("/").removesuffix(".git").strip("/")
    segments = tuple(s for s in path.split("/") if s)
    return RepoLocation(scheme, host.lower(), segments) if len(segments) >= 2 else None


def default_api_root(forge: Forge, where: RepoLocation) -> str:
    if forge is Forge.GITHUB:
        return (
            GITHUB_API if where.host in ("github.com", "www.github.com") else f"https://{where.host}/api/v3"
        )
    if forge is Forge.GITLAB:
        return f"{where.scheme}://{where.host}/api/v4"
    prefix = "".join(f"/{s}" for s in where.path[:-2])  # Gitea served under a sub-path of the host
    return f"{where.scheme}://{where.host}{prefix}/api/v1"


def short_description(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_DESCRIPTION else line[: MAX_DESCRIPTION - 1] + "…"


def status_request(connection: GitConnection, token: str, status: CommitStatus) -> StatusRequest | None:
    """The request telling ``connection``'s forge about ``status`` (the repository is the connection's; the
    status's ``repo_url`` only stands in when that names none); None for a generic git server or when
    neither URL names a repository on a forge (see :func:`repo_location`). ValueError (which never
    repeats the token) if the token cannot go in a header."""
    if connection.forge is Forge.GENERIC:
        return None
    token = token.strip()
    if not token or any(ord(ch) < 33 or ord(ch) == 127 for ch in token):
        raise ValueError("the forge token is empty or has spaces or control characters in it")
    where = repo_location(connection.repo_url) or repo_location(status.repo_url)
    if where is None:
        return None
    root = (connection.api_url.strip() or default_api_root(connection.forge, where)).rstrip("/")
    sha = quote(status.sha, safe="")
    description = short_description(status.description)
    if connection.forge is Forge.GITLAB:
        project = quote("/".join(where.path), safe="")
        url = f"{root}/projects/{project}/statuses/{sha}"
        headers = {"PRIVATE-TOKEN": token}
        body = {
            "state": _GITLAB_STATES[status.state],
            "target_url": status.target_url,
            "description": description,
            "name": status.context,
        }
    else:
        owner, repo = (quote(s, safe="") for s in where.path[-2:])
        url = f"{root}/repos/{owner}/{repo}/statuses/{sha}"
        headers = _github_headers(token) if connection.forge is Forge.GITHUB else _gitea_headers(token)
        body = {
            "state": status.state.value,
            "target_url": status.target_url,
            "description": description,
            "context": status.context,
        }
    headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
    key = (connection.forge.value, url, status.context.lower())
    label = f"{connection.forge.value} {'/'.join(where.path)}@{status.sha[:12]} {status.state.value}"
    return StatusRequest(url=url, headers=headers, body=body, key=key, label=label, token=token)


def _github_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
    }


def _gitea_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}", "Accept": "application/json"}
