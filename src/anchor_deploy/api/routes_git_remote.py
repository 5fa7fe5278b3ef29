"""Every project is a git remote over smart HTTP: ``git remote add anchor http://HOST:8400/git/PROJECT.git``.

Authentication is HTTP Basic with a token as the password (any user name; a token alone as the user name
is taken too), so git asks for credentials on a 401. A token limited to another project gets the answer
of a missing project (404). The requests go to git's own ``git http-backend`` (``Platform.git_remote``);
only the paths it serves are passed on: the smart protocol's ``info/refs``, ``git-upload-pack`` and
``git-receive-pack``, and the files of the dumb protocol. These routes are git's, not the JSON API's:
they are left out of its OpenAPI document, but their errors are the API's error bodies all the same.
"""

from __future__ import annotations

import base64
import binascii
import re

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import InvalidInput, NotFound, ProjectNotFound, Unauthorized
from anchor_deploy.model.names import validate_project_name
from anchor_deploy.ports.git_remote import CgiRequest
from anchor_deploy.providers.platform import Platform

PREFIX = "/git"
CHALLENGE = 'Basic realm="anchor-deploy"'
_SMART_POST = {"git-upload-pack", "git-receive-pack"}
_HEX = r"[0-9a-f]{40}(?:[0-9a-f]{24})?"  # a SHA-1 or SHA-256 object name
_DUMB_GET = re.compile(
    r"^(?:HEAD|info/refs|objects/info/(?:alternates|http-alternates|packs)"
    rf"|objects/[0-9a-f]{{2}}/[0-9a-f]{{38}}(?:[0-9a-f]{{24}})?|objects/pack/pack-{_HEX}\.(?:pack|idx))$"
)
_MAX_USER = 64


def install_git_remote(app: FastAPI) -> None:
    app.add_api_route(
        PREFIX + "/{repository}/{rest:path}", git_request, methods=["GET", "POST"], include_in_schema=False
    )


async def git_request(repository: str, rest: str, request: Request) -> Response:
    p: Platform = request.app.state.platform
    try:
        token = await run_in_threadpool(_caller, p, request.headers.get("authorization"))
    except Unauthorized as exc:
        return JSONResponse(
            {"error": exc.to_dict()}, status_code=401, headers={"WWW-Authenticate": CHALLENGE}
        )
    project = await run_in_threadpool(_project, p, repository, token)
    backend = p.git_remote
    if not _served(request.method, rest):
        raise NotFound(f"git serves no {request.method} {rest[:100]!r}")
    answer = await backend.serve(project, _cgi_request(request, rest, token, _secret(request)))
    response = StreamingResponse(answer.body, status_code=answer.status)
    for name, value in answer.headers:
        response.headers.append(name, value)
    return response


def _caller(p: Platform, authorization: str | None) -> Token:
    secret = _basic_secret(authorization)
    return p.tokens.authenticate(f"Bearer {secret}" if secret else authorization)


def _secret(request: Request) -> str:
    authorization = request.headers.get("authorization", "")
    return _basic_secret(authorization) or authorization.partition(" ")[2].strip()


def _basic_secret(authorization: str | None) -> str | None:
    """The token in an HTTP Basic header: its password, or its user name when the password is empty;
    None when the header is not Basic."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("the Basic credentials cannot be read") from exc
    return password or user


def _project(p: Platform, repository: str, token: Token) -> Project:
    name = repository.removesuffix(".git")
    try:
        validate_project_name(name)
    except InvalidInput as exc:
        raise ProjectNotFound(f"project {name[:80]!r} not found") from exc
    return p.projects.get(name, token)


def _served(method: str, rest: str) -> bool:
    if method == "POST":
        return rest in _SMART_POST
    return bool(_DUMB_GET.fullmatch(rest))


def _cgi_request(request: Request, rest: str, token: Token, secret: str) -> CgiRequest:
    length = request.headers.get("content-length")
    return CgiRequest(
        method=request.method,
        path="/" + rest,
        query=request.url.query if rest == "info/refs" else "",
        body=request.stream(),
        token=secret,
        content_type=request.headers.get("content-type", ""),
        content_length=int(length) if length and length.isdigit() else None,
        content_encoding=request.headers.get("content-encoding", ""),
        git_protocol=request.headers.get("git-protocol", ""),
        remote_user=re.sub(r"[^A-Za-z0-9._-]", "-", token.name)[:_MAX_USER] or "anchor",
        remote_addr=request.client.host if request.client else "",
    )
