"""Request dependencies: the platform, the caller's token, a JSON object body."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.wiring import Platform

MAX_JSON_BODY = 64 * 1024 * 1024


def platform(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


PlatformDep = Annotated[Platform, Depends(platform)]


def caller(p: PlatformDep, authorization: Annotated[str | None, Header()] = None) -> Token:
    return p.tokens.authenticate(authorization)


TokenDep = Annotated[Token, Depends(caller)]


def project(project: str, p: PlatformDep, token: TokenDep) -> Project:
    return p.projects.get(project, token)


ProjectDep = Annotated[Project, Depends(project)]


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise InvalidInput("request body is too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
        # Lone surrogates ("\ud800") are valid JSON but can be neither stored nor sent back as UTF-8.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput("request body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


BodyDep = Annotated[dict[str, Any], Depends(json_object)]
