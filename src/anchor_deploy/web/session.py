"""Who is looking: the session cookie, the signed-in token, CSRF-checked form posts, and the error pages.

Every page needs a session; a GET without one is sent to the sign-in page, anything else is refused. Every
POST must carry the session's CSRF secret in its ``csrf`` field and, when the browser says where it comes
from (``Origin``), come from this very origin. The cookie is HttpOnly and SameSite=Strict, and Secure when
the dashboard is reached over HTTPS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from anchor_deploy.model.entities import Session, Token
from anchor_deploy.model.errors import AnchorError, BodyTooLarge, CsrfRefused, InvalidInput, Unauthorized
from anchor_deploy.providers.platform import Platform
from anchor_deploy.web.render import page

log = logging.getLogger(__name__)

COOKIE = "anchor_session"
COOKIE_PATH = "/ui"
FORM_LIMIT = 64 * 1024  # a dashboard form is a few fields: anything larger is refused


@dataclass(frozen=True)
class Viewer:
    """The signed-in token and its session."""

    token: Token
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def name(self) -> str:
        return self.token.name

    @property
    def is_admin(self) -> bool:
        return self.token.is_admin


class SignInNeeded(Exception):
    """A page was asked for without a usable session."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def platform(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


PlatformDep = Annotated[Platform, Depends(platform)]


def viewer(request: Request, p: PlatformDep) -> Viewer:
    try:
        session, token = p.sessions.resume(request.cookies.get(COOKIE))
    except Unauthorized as exc:
        raise SignInNeeded(exc.message) from exc
    found = Viewer(token, session)
    request.state.viewer = found
    return found


ViewerDep = Annotated[Viewer, Depends(viewer)]


def secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, secret: str, lifetime: float) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(lifetime),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure_cookie(request)
    )


def same_origin(request: Request) -> None:
    """A browser names the page a POST comes from; it must be this dashboard (CSRF, on top of the token)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    if parts.netloc.lower() != host.lower() or parts.scheme != request.url.scheme:
        raise CsrfRefused("this form was sent from another site; it was refused")


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (application/x-www-form-urlencoded, at most FORM_LIMIT bytes); the first value of
    a repeated field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput("the dashboard's forms are sent as application/x-www-form-urlencoded")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > FORM_LIMIT:
            raise BodyTooLarge(f"the form is larger than {FORM_LIMIT} bytes")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the form could not be read: {exc}") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


@dataclass(frozen=True)
class Posted:
    """A form post from a signed-in browser, its origin and CSRF secret checked."""

    viewer: Viewer
    fields: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


async def posted(request: Request, who: ViewerDep, p: PlatformDep) -> Posted:
    same_origin(request)
    fields = await read_form(request)
    p.sessions.check_csrf(who.session, fields.get("csrf"))
    return Posted(who, fields)


PostedDep = Annotated[Posted, Depends(posted)]


class UiRoute(APIRoute):
    """A dashboard route: its errors are pages in plain words with the error's own 4xx status (never a JSON
    body, never a traceback), and a page asked for without a session sends the browser to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded as exc:
                return signed_out(request, exc.why, stream=self.path.endswith("/events"))
            except AnchorError as exc:
                return error_page(request, exc.status, exc.message)
            except RequestValidationError as exc:
                return error_page(request, 422, _validation_message(exc))

        return handle


def signed_out(request: Request, why: str, stream: bool = False) -> Response:
    """A page sends the browser to sign in; a form post and an event stream (any route ending in /events,
    not only /ui/events: a redirect to an HTML page would only break the EventSource) get a 401."""
    if request.method in {"GET", "HEAD"} and not stream:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/sign-in?next={quote(target, safe='')}", status_code=303)
    response = error_page(request, 401, f"{why}. Sign in again to continue.")
    clear_session_cookie(request, response)
    return response


def error_page(request: Request, status: int, message: str, **context: Any) -> Response:
    back = request.headers.get("referer")
    if back and urlsplit(back).netloc != request.headers.get("host", ""):
        back = None
    return page(
        request, "error.html", status=status, status_code=status, message=message, back=back, **context
    )


def _validation_message(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in {"body", "query", "path"})
    return (
        f"{where}: {first.get('msg', 'invalid input')}" if where else str(first.get("msg", "invalid input"))
    )
