"""One deployment's page: what it is, its build log (followed live over server-sent events), its app's
runtime log, its files and the names of the variables frozen into it (a secret's value never leaves the
server: not even its length)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from anchor_deploy.model.entities import Deployment, Token
from anchor_deploy.model.errors import AnchorError, InvalidInput, Unauthorized
from anchor_deploy.providers.platform import Platform
from anchor_deploy.web.render import page
from anchor_deploy.web.routes_live import bell, deployment_state, event_stream, fingerprint, sse_event
from anchor_deploy.web.session import COOKIE, PlatformDep, UiRoute, ViewerDep
from anchor_deploy.web.views import Pages, deployment_view, offered_move, page_number, project_view

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

FILES_PER_PAGE = 100
RUNTIME_LINES = 200
SHOWN_LOG_LINES = 5000  # the page shows the newest lines of a longer log; `anchor logs` prints them all
META_SHOWN = 300  # characters of one meta value shown
_FINAL = ("READY", "ERROR", "CANCELED")
_MAX_SEQ = 2**63 - 1

# The build log's stream: polled this often, ended after STREAM_SECONDS (the browser reconnects with the
# last line's id), so no stream outlives a revoked session by more than a poll nor holds a thread for ever.
POLL_SECONDS = 0.3
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 600.0


def _deployment_events(p: Platform, token: Token, deployment_id: str) -> str:
    """The page's status stream (web/routes_live.py), from the state this page is rendered with."""
    state = deployment_state(p, token, deployment_id)
    return f"/ui/deployments/{deployment_id}/events?since={fingerprint(state)}"


def _meta_rows(meta: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The meta besides its commit (shown on its own), each value as compact JSON."""
    rows = []
    for key, value in sorted((meta or {}).items()):
        if key == "git":
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        rows.append((key, text if len(text) <= META_SHOWN else text[:META_SHOWN] + "…"))
    return rows


def _files(p: Platform, deployment: Deployment, number: int) -> tuple[Pages, list[dict[str, Any]]]:
    manifest = sorted(p.deployments.files(deployment.id), key=lambda f: f.path)
    pages = Pages(number, len(manifest), FILES_PER_PAGE)
    shown = manifest[pages.offset : pages.offset + pages.size]
    return pages, [{"path": f.path, "size": f.size, "mode": f"{f.mode:o}", "sha256": f.sha256} for f in shown]


def _environment(p: Platform, deployment: Deployment) -> tuple[list[dict[str, Any]], str | None]:
    """The frozen variables' names (a secret's value withheld), or why they cannot be shown."""
    if deployment.app is None:
        return [], None
    try:
        found = p.deployments.frozen_env(deployment.id)
    except AnchorError as exc:
        return [], f"The frozen environment could not be opened: {exc.message}"
    return [{"key": key, "value": value, "secret": value is None} for key, value in found], None


@router.get("/deployments/{deployment_id}")
def deployment_page(request: Request, deployment_id: str, p: PlatformDep, who: ViewerDep) -> Response:
    project, deployment = p.deployments.get(deployment_id, who.token)
    view = deployment_view(p, project, deployment)
    production = p.deployments.find(project.production_deployment_id or "")
    log = p.deployments.logs(deployment.id)
    files_pages, files = _files(p, deployment, page_number(request.query_params.get("page")))
    env, env_problem = _environment(p, deployment)
    runtime = p.deployments.runtime_log(deployment.id, RUNTIME_LINES) if deployment.app else []
    return page(
        request,
        "deployment.html",
        project=project_view(p, project),
        deployment=view,
        meta=_meta_rows(view["meta"]),
        move=offered_move(view, production),
        log=log[-SHOWN_LOG_LINES:],
        log_hidden=max(0, len(log) - SHOWN_LOG_LINES),
        log_after=log[-1][0] if log else 0,
        final=view["status"] in _FINAL,
        runtime=runtime,
        rendered_at=int(time.time()),
        files=files,
        files_pages=files_pages,
        env=env,
        env_problem=env_problem,
        events=_deployment_events(p, who.token, deployment.id),
    )


def _resume_after(request: Request) -> int:
    """Where the stream starts: after the line the browser saw last (its ``Last-Event-ID`` when it
    reconnects), else ``?after=N``, else from the first line."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not raw.isdigit() or int(raw) > _MAX_SEQ:
        raise InvalidInput(f"after must be a whole number from 0, not {raw[:20]!r}")
    return int(raw)


async def _log_stream(request: Request, p: Platform, deployment_id: str, after: int) -> AsyncIterator[bytes]:
    """A ``line`` event per build log line (its id is the line's seq), then ``end`` once the deployment
    is final and every line was sent. Each poll resumes the session and checks the deployment is still
    the token's: ``signed-out`` or ``gone`` end the stream when not."""
    yield b"retry: 1000\n\n"
    cookie = request.cookies.get(COOKIE)
    started = sent = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        try:
            _session, token = await run_in_threadpool(p.sessions.resume, cookie)
            await run_in_threadpool(p.deployments.get, deployment_id, token)
            rows = await run_in_threadpool(p.deployments.logs, deployment_id, after)
            deployment = await run_in_threadpool(p.deployments.find, deployment_id)
        except Unauthorized:
            yield sse_event("signed-out")
            return
        except AnchorError as exc:
            if exc.status == 404:
                yield sse_event("gone", {"message": exc.message})
                return
            yield sse_event("busy", {"message": exc.message})
            rows, deployment = [], None
        for seq, _at, text in rows:
            after = seq
            yield sse_event("line", {"seq": seq, "text": text}, seq)
            sent = time.monotonic()
        if deployment is not None and deployment.status.value in _FINAL and not rows:
            # The status was read after the lines, and no line came since: every line was sent.
            yield sse_event("end", {"status": deployment.status.value})
            return
        if time.monotonic() - sent > KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            sent = time.monotonic()
        if await request.is_disconnected() or bell(request).closing:
            return
        if not rows:
            await bell(request).wait(POLL_SECONDS)


@router.get("/deployments/{deployment_id}/log")
def build_log_stream(request: Request, deployment_id: str, p: PlatformDep, who: ViewerDep) -> Response:
    _project, deployment = p.deployments.get(deployment_id, who.token)
    return event_stream(_log_stream(request, p, deployment.id, _resume_after(request)))
