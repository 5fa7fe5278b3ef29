"""Mounting the dashboard on the API's application: its routes, its static files, its security headers."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anchor_deploy.web import routes_auth, routes_live, routes_projects
from anchor_deploy.web.bell import ChangeBell, RingOnWrites
from anchor_deploy.web.routes_deployment import router as deployment_router
from anchor_deploy.web.routes_domains import router as domains_router
from anchor_deploy.web.routes_settings import router as settings_router
from anchor_deploy.web.session import UiRoute, error_page

# No inline script or style anywhere: everything the page runs or wears comes from /ui/static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class DashboardHeaders:
    """The dashboard's answers carry a strict Content-Security-Policy and are never framed; its pages (not
    its static files) are never stored by a cache, since they show what a token may see."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != "/" and not path.startswith("/ui"):
            await self.app(scope, receive, send)
            return
        static = path.startswith("/ui/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS
                if not static and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


@cache
def _static_files() -> dict[str, bytes]:
    folder = resources.files("anchor_deploy.web").joinpath("static")
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and f.name[0] != "."}


static_router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


@static_router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    files = _static_files()
    if name not in files:
        return error_page(request, 404, "There is no such file.")
    suffix = name[name.rfind(".") :]
    immutable = "v" in request.query_params
    cache_control = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return Response(
        files[name],
        media_type=_TYPES.get(suffix, "application/octet-stream"),
        headers={"cache-control": cache_control},
    )


fallback_router = APIRouter(route_class=UiRoute, include_in_schema=False)


@fallback_router.get("/")
def root() -> Response:
    return RedirectResponse("/ui/", status_code=303)


@fallback_router.get("/ui")
def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=303)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@fallback_router.api_route("/ui/{rest:path}", methods=list(_METHODS))
def not_found(request: Request, rest: str) -> Response:
    """Every other /ui request: a page in plain words, never the API's JSON; a page asked for with a
    method it does not take is a 405 that names the methods it does."""
    del rest
    other = [r for r in request.app.router.routes if r.matches(request.scope)[0] == Match.PARTIAL]
    allowed = [m for m in _METHODS if any(_takes(r, request, m) for r in other)]
    if allowed:
        answer = error_page(request, 405, f"This page does not take {request.method} requests.")
        answer.headers["allow"] = ", ".join(allowed)
        return answer
    return error_page(request, 404, "There is no such page in the dashboard.")


def _takes(route: BaseRoute, request: Request, method: str) -> bool:
    return route.matches({**request.scope, "method": method})[0] == Match.FULL


def close_streams(app: FastAPI) -> None:
    """The server is shutting down: the dashboard's event streams end now (see web/bell.py)."""
    found = getattr(app.state, "bell", None)
    if isinstance(found, ChangeBell):
        found.close()


def install_dashboard(app: FastAPI) -> None:
    app.state.bell = ChangeBell()
    app.add_middleware(RingOnWrites, bell=app.state.bell)
    app.add_middleware(DashboardHeaders)
    app.include_router(static_router)
    app.include_router(routes_auth.router)
    app.include_router(routes_projects.router)
    app.include_router(routes_live.router)
    app.include_router(domains_router)
    app.include_router(settings_router)
    app.include_router(deployment_router)
    # More pages are included above this line; the fallback answers every other /ui path last.
    app.include_router(fallback_router)
