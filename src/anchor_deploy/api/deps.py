"""Request dependencies: the platform, the caller's token, a JSON object body."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import BodyTooLarge, InvalidInput
from anchor_deploy.model.limits import check_json_shape
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.auth import require_admin


def platform(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


async def _platform_dep(request: Request) -> Platform:
    """``platform`` for Depends: async, so FastAPI does not send an attribute read to a worker thread (each
    sync dependency costs a round trip through the thread pool, two wake-ups, on every request)."""
    return platform(request)


PlatformDep = Annotated[Platform, Depends(_platform_dep)]


# For the OpenAPI document (its "Authorize" button) only: the header is checked by TokenService.authenticate.
_BEARER = HTTPBearer(auto_error=False, description="an admin token, or a token limited to one project")
BearerScheme = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


def _authenticated(p: Platform, request: Request) -> Token:
    """The caller's token, checked against the store once per request and kept on the request."""
    found: Token | None = getattr(request.state, "anchor_token", None)
    if found is None:
        found = p.tokens.authenticate(request.headers.get("authorization"))
        request.state.anchor_token = found
    return found


async def caller(p: PlatformDep, request: Request, _declared: BearerScheme) -> Token:
    """Async so that a route whose project dependency has already authenticated (in its own worker-thread
    round trip) pays no second round trip for the token."""
    found = getattr(request.state, "anchor_token", None)
    if isinstance(found, Token):
        return found
    return await run_in_threadpool(_authenticated, p, request)


TokenDep = Annotated[Token, Depends(caller)]


async def admin(token: TokenDep) -> Token:
    """The caller's token if it is unrestricted (403 first, before the body is looked at). Async: a pure
    check, no reason for a worker-thread round trip."""
    require_admin(token)
    return token


AdminDep = Annotated[Token, Depends(admin)]


def project(project: str, p: PlatformDep, request: Request, _declared: BearerScheme) -> Project:
    """Authenticates the caller (401 first) and finds the project in one worker-thread round trip."""
    return authorized_project(p, request, project)[1]


def authorized_project(p: Platform, request: Request, name: str) -> tuple[Token, Project]:
    """The caller's token and the project it names (401, then 404), for a route that does its whole work
    in one worker-thread round trip (routes.py: rollback, promote) instead of ProjectDep's and its own."""
    token = _authenticated(p, request)
    return token, p.projects.get(name, token)


ProjectDep = Annotated[Project, Depends(project)]


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: at most ANCHOR_MAX_JSON_BODY bytes (the BodyLimit middleware stops a
    longer one as it streams; this is the same check for an app without it), its shape measured before it
    is parsed (model/limits.py: depth, number of values), without NaN or Infinity, which Python's json
    reads but no JSON answer can carry."""
    return json_value(await json_bytes(request))


async def json_bytes(request: Request) -> bytes:
    """The body's bytes, at most ANCHOR_MAX_JSON_BODY of them (413 past it), not looked at yet."""
    limit = platform(request).settings.max_json_body
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLarge(f"request body is larger than the {limit}-byte limit")
    return bytes(raw)


def json_value(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, checked as json_object says (422 with the reason)."""
    if not raw.strip():
        return {}
    check_json_shape(raw)
    try:
        body = json.loads(raw, parse_constant=_not_json)
        # Lone surrogates ("\ud800") are valid JSON but can be neither stored nor sent back as UTF-8.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


BodyDep = Annotated[dict[str, Any], Depends(json_object)]
