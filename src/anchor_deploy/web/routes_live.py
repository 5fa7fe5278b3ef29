"""Live pages: one server-sent event stream per open page says when what it shows has changed.

The database is the truth and several processes write it (the API, the build workers, the domain loop, a
second control plane), so the stream does not wait for in-process signals: it reads a small fingerprint of
what the page shows twice a second and sends ``change`` when the fingerprint differs. The page's script
then fetches the page again and swaps the parts marked live (static/dashboard.js)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import AnchorError, Unauthorized
from anchor_deploy.providers.platform import Platform
from anchor_deploy.web.bell import ChangeBell
from anchor_deploy.web.session import COOKIE, PlatformDep, UiRoute, ViewerDep

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
# A stream ends after this long and the browser opens a new one (EventSource reconnects by itself): no
# stream outlives a session's revocation by more than a poll, nor holds a worker thread for ever.
STREAM_SECONDS = 300.0
_WATCHED_DEPLOYMENTS = 50


def project_state(p: Platform, project: Project) -> list[Any]:
    """What a project's pages show, in small: production, the newest deployments' states, the history's
    length, the branches and the domains' statuses."""
    current = p.projects.reload(project)
    newest = p.deployments.page(current, _WATCHED_DEPLOYMENTS)
    domains = [
        (
            v.domain.name,
            v.domain.certificate_status.value,
            v.domain.cdn_status.value,
            v.domain.dns_status.value,
            v.domain.status_reason,
            v.checking,
            v.removing,
        )
        for v in p.domains.list_domains(current)
    ]
    try:
        branches = [(b.branch, b.deployment_id) for b in p.git.branches(current)]
    except AnchorError:
        branches = []
    return [
        current.production_deployment_id,
        current.pinned,
        p.deployments.count(current),
        [(d.id, d.status.value, d.go_live_pending) for d in newest],
        p.aliases.count_moves(current),
        domains,
        branches,
    ]


def overview_state(p: Platform, token: Token) -> list[Any]:
    """What the projects page shows: each visible project's production, newest deployment and domains."""
    found = []
    for project in p.projects.list(token):
        newest = p.deployments.page(project, 1)
        found.append(
            [
                project.name,
                project.production_deployment_id,
                project.pinned,
                [(d.id, d.status.value) for d in newest],
                len(p.domains.list_domains(project)),
            ]
        )
    return found


def deployment_state(p: Platform, token: Token, deployment_id: str) -> list[Any]:
    project, deployment = p.deployments.get(deployment_id, token)
    return [deployment.status.value, deployment.go_live_pending, project.production_deployment_id]


def fingerprint(state: list[Any]) -> str:
    """A short digest of a page's state: the page carries it, and its stream compares against it first."""
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:32]


def bell(request: Request) -> ChangeBell:
    """The app's bell (web/bell.py), or a new one that never rings for an app without the dashboard's."""
    found = getattr(request.app.state, "bell", None)
    return found if isinstance(found, ChangeBell) else ChangeBell()


def sse_event(name: str, data: dict[str, Any] | None = None, event_id: int | None = None) -> bytes:
    """One server-sent event: its name, its id if any, its data as JSON."""
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data or {})}\n\n".encode()


def event_stream(events: AsyncIterator[bytes]) -> Response:
    """A text/event-stream answer that no cache or proxy holds back."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _stream(
    request: Request, p: Platform, read: Callable[[Token], list[Any]], token: Token
) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    cookie = request.cookies.get(COOKIE)
    # The state the page was rendered with: a change between the page and its stream is not missed.
    since = request.query_params.get("since", "")
    last: str | None = since if len(since) == 32 else None
    started = sent = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        try:
            _session, token = await run_in_threadpool(p.sessions.resume, cookie)
            now = fingerprint(await run_in_threadpool(read, token))
        except Unauthorized:
            yield sse_event("signed-out")
            return
        except AnchorError as exc:  # the project or deployment went away, or the store is busy
            yield sse_event("gone" if exc.status == 404 else "busy", {"message": exc.message})
            if exc.status == 404:
                return
            now = last or ""
        if last is not None and now != last:
            yield sse_event("change")
            sent = time.monotonic()
        last = now
        if time.monotonic() - sent > KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            sent = time.monotonic()
        if await request.is_disconnected():
            return
        await bell(request).wait(POLL_SECONDS)
        if bell(request).closing:
            return


def _streaming(request: Request, p: Platform, read: Callable[[Token], list[Any]], token: Token) -> Response:
    return event_stream(_stream(request, p, read, token))


@router.get("/events")
def overview_events(request: Request, p: PlatformDep, who: ViewerDep) -> Response:
    return _streaming(request, p, lambda token: overview_state(p, token), who.token)


@router.get("/projects/{name}/events")
def project_events(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    project = p.projects.get(name, who.token)
    return _streaming(
        request, p, lambda token: project_state(p, p.projects.get(project.name, token)), who.token
    )


@router.get("/deployments/{deployment_id}/events")
def deployment_events(request: Request, deployment_id: str, p: PlatformDep, who: ViewerDep) -> Response:
    p.deployments.get(deployment_id, who.token)
    return _streaming(request, p, lambda token: deployment_state(p, token, deployment_id), who.token)
