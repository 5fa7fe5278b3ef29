"""Every project is a git remote over smart HTTP: the platform hands each request to git's own
``git http-backend`` (a CGI program) and streams its answer back. A push's post-receive hook queues the
deployments and streams their build logs back to the pusher as ``remote:`` lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from anchor_deploy.model.entities import Project


@dataclass(frozen=True)
class CgiRequest:
    """One smart-HTTP request, as the CGI program is told of it. ``path`` is the part after the
    repository (``/info/refs``, ``/git-receive-pack``, ``/HEAD``, ``/objects/...``); ``token`` is the
    caller's token secret, which the push hook calls the API with (never logged)."""

    method: str
    path: str
    query: str
    body: AsyncIterator[bytes]
    token: str
    content_type: str = ""
    content_length: int | None = None
    content_encoding: str = ""  # gzip: http-backend inflates the body itself
    git_protocol: str = ""  # the Git-Protocol header (version=2)
    remote_user: str = "anchor"
    remote_addr: str = ""


@dataclass
class CgiResponse:
    """The CGI program's answer: its status and headers, then its body as it comes."""

    status: int
    body: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)


class GitHttpBackend(Protocol):
    async def serve(self, project: Project, request: CgiRequest) -> CgiResponse:
        """Answer one smart-HTTP request for the project's repository (made bare on first use). The
        request's body is streamed to the program, its answer streamed back; the body's own errors (too
        large) are raised before the answer starts when the program has not answered a large part yet."""
        ...

    def repository_url(self, project: Project) -> str:
        """Where the project's repository is, as a URL (a path here) a fetch reads a pushed commit from."""
        ...

    def remove(self, project_id: str) -> None:
        """Delete the project's repository (the project is gone); nothing if there is none."""
        ...
