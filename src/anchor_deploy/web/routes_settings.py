"""A project's environment variables and the platform's tokens.

A secret variable's value is write-only: no page ever shows it, nor echoes it back when the form is
refused. A new token's secret is shown once, on the page that answers its creation (never stored, never in
a URL); creating tokens and choosing their project follow the API exactly (an unrestricted token only).
Revoking is asked for on a confirmation page naming the token; revoking the token this browser signed in
with ends the session at once, so the browser is sent to sign in."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from anchor_deploy.api.schemas_requests import TOKEN_NAME_MAX
from anchor_deploy.api.serialize import env_json, token_json
from anchor_deploy.model.apps import MAX_ENV_VALUE
from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import AnchorError, TokenNotFound
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.auth import require_admin
from anchor_deploy.web.render import page
from anchor_deploy.web.session import (
    PlatformDep,
    PostedDep,
    UiRoute,
    Viewer,
    ViewerDep,
    clear_session_cookie,
)
from anchor_deploy.web.views import project_view

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

NOTICES = {
    "env-set": "The variable was saved. It takes effect in the next deployment.",
    "env-deleted": "The variable was deleted. The next deployment starts without it.",
    "token-revoked": "The token was revoked: it is refused from now on.",
}


# -- environment variables -----------------------------------------------------------------------------------
def _env_page(
    request: Request,
    p: Platform,
    project: Project,
    status: int = 200,
    error: str | None = None,
    typed: dict[str, Any] | None = None,
) -> Response:
    variables = [{**env_json(v), "updatedTs": v.updated_at} for v in p.env.list(project)]
    return page(
        request,
        "env.html",
        status=status,
        project=project_view(p, project),
        variables=variables,
        notice=NOTICES.get(request.query_params.get("notice", "")),
        error=error,
        typed=typed or {"key": "", "value": "", "secret": False},
        max_value=MAX_ENV_VALUE,
    )


def _to_env(project: Project, notice: str) -> Response:
    return RedirectResponse(f"/ui/projects/{quote(project.name)}/env?notice={notice}", status_code=303)


@router.get("/projects/{name}/env")
def env_page(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    return _env_page(request, p, p.projects.get(name, who.token))


@router.post("/projects/{name}/env")
def set_env(request: Request, name: str, p: PlatformDep, form: PostedDep) -> Response:
    project = p.projects.get(name, form.viewer.token)
    key, secret = form.get("key").strip(), form.get("secret") == "on"
    value = form.get("value").replace("\r\n", "\n")  # a browser sends a textarea's line ends as CRLF
    try:
        p.env.set(project, key, value, secret)
    except AnchorError as exc:
        # The form comes back with what was typed, except a secret's value: it is never sent back.
        typed = {"key": key, "value": "" if secret else value, "secret": secret}
        return _env_page(request, p, project, exc.status, exc.message, typed)
    return _to_env(project, "env-set")


@router.post("/projects/{name}/env/{key}/delete")
def delete_env(name: str, key: str, p: PlatformDep, form: PostedDep) -> Response:
    project = p.projects.get(name, form.viewer.token)
    p.env.delete(project, key)
    return _to_env(project, "env-deleted")


# -- tokens ------------------------------------------------------------------------------------------------
def _token_view(token: Token, projects: dict[str, Project], who: Viewer) -> dict[str, Any]:
    return {
        **token_json(token, projects.get(token.project_id or "")),
        "createdTs": token.created_at,
        "lastUsedTs": token.last_used_at,
        "isYours": token.id == who.token.id,
    }


def _tokens_page(
    request: Request,
    p: Platform,
    who: Viewer,
    status: int = 200,
    error: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    projects = {x.id: x for x in p.projects.list(who.token)}
    tokens = [_token_view(t, projects, who) for t in p.tokens.list(who.token)]
    return page(
        request,
        "tokens.html",
        status=status,
        tokens=tokens,
        projects=sorted(x.name for x in projects.values()),
        notice=NOTICES.get(request.query_params.get("notice", "")),
        error=error,
        typed=typed or {"name": "", "project": ""},
        name_max=TOKEN_NAME_MAX,
    )


def _visible_token(p: Platform, who: Viewer, token_id: str) -> Token:
    """A token the signed-in token may see (TokenNotFound otherwise, as for an unknown id)."""
    found = next((t for t in p.tokens.list(who.token) if t.id == token_id), None)
    if found is None:
        raise TokenNotFound(f"token {token_id[:40]!r} not found")
    return found


@router.get("/tokens")
def tokens_page(request: Request, p: PlatformDep, who: ViewerDep) -> Response:
    return _tokens_page(request, p, who)


@router.post("/tokens")
def create_token(request: Request, p: PlatformDep, form: PostedDep) -> Response:
    who = form.viewer
    require_admin(who.token)  # as POST /v1/tokens: an unrestricted token only (403 before anything else)
    name, project_name = form.get("name").strip(), form.get("project").strip()
    try:
        project = p.projects.get(project_name, who.token) if project_name else None
        created, secret = p.tokens.create(name, project)
    except AnchorError as exc:
        typed = {"name": name, "project": project_name}
        return _tokens_page(request, p, who, exc.status, exc.message, typed)
    view = _token_view(created, {project.id: project} if project else {}, who)
    return page(request, "token_created.html", status=201, token=view, secret=secret)


@router.get("/tokens/{token_id}/revoke")
def confirm_revoke(request: Request, token_id: str, p: PlatformDep, who: ViewerDep) -> Response:
    target = _visible_token(p, who, token_id)
    projects = {x.id: x for x in p.projects.list(who.token)}
    return page(request, "confirm_revoke.html", token=_token_view(target, projects, who))


@router.post("/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, p: PlatformDep, form: PostedDep) -> Response:
    revoked = p.tokens.revoke(form.viewer.token, token_id)
    if revoked.id == form.viewer.token.id:
        # This browser's session died with its token: say so by sending it to sign in.
        response = RedirectResponse("/ui/sign-in", status_code=303)
        clear_session_cookie(request, response)
        return response
    return RedirectResponse("/ui/tokens?notice=token-revoked", status_code=303)
