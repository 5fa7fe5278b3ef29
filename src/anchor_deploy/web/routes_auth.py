"""Signing in with a token, and out."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from anchor_deploy.model.errors import CsrfRefused, Unauthorized
from anchor_deploy.web.render import page
from anchor_deploy.web.session import (
    COOKIE,
    COOKIE_PATH,
    PlatformDep,
    PostedDep,
    SignInNeeded,
    UiRoute,
    clear_session_cookie,
    read_form,
    same_origin,
    secure_cookie,
    set_session_cookie,
    viewer,
)

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

# Before a session exists, the sign-in form is protected by a double-submit secret: a cookie and the same
# value in the form (login CSRF: another site must not sign a browser in with the attacker's token).
SIGN_IN_COOKIE = "anchor_sign_in"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this dashboard only (never another site, nor out of /ui by
    dot segments, which browsers resolve also when percent-encoded, after dropping tabs and newlines)."""
    if not target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/") or "\\" in target:
        return "/ui/"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        return "/ui/"
    segments = unquote(parts.path).split("/")
    if any(s in {".", ".."} for s in segments):
        return "/ui/"
    return target


def _sign_in_form(
    request: Request, next_target: str | None, status: int = 200, message: str | None = None
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = page(
        request,
        "sign_in.html",
        status=status,
        nonce=nonce,
        next=safe_next(next_target),
        message=message,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
    )
    return response


@router.get("/sign-in")
def sign_in_page(request: Request, p: PlatformDep) -> Response:
    try:
        viewer(request, p)
    except SignInNeeded:
        request.state.viewer = None
        return _sign_in_form(request, request.query_params.get("next"))
    return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)


@router.post("/sign-in")
async def sign_in(request: Request, p: PlatformDep) -> Response:
    same_origin(request)
    fields = await read_form(request)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    sent = fields.get("nonce", "")
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CsrfRefused("the sign-in form is out of date: reload the page and sign in again")
    try:
        _session, secret = p.sessions.sign_in(fields.get("token", ""))
    except Unauthorized:
        message = "That token was not accepted: check it and try again."
        return _sign_in_form(request, fields.get("next"), 401, message)
    response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
    set_session_cookie(request, response, secret, p.sessions.lifetime)
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, p: PlatformDep, _form: PostedDep) -> Response:
    p.sessions.sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/sign-in", status_code=303)
    clear_session_cookie(request, response)
    return response
