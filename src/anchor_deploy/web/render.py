"""Rendering the dashboard's pages: Jinja2 templates with autoescaping on, strict about missing names."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

STATIC_PREFIX = "/ui/static/"


def ago(timestamp: float | None, now: float | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago': how long ago, in one short phrase."""
    if timestamp is None:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


@cache
def static_version(name: str) -> str:
    """A digest of a static file's content: its URL changes when it does, so it can be cached for good."""
    data = resources.files("anchor_deploy.web").joinpath("static", name).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"{STATIC_PREFIX}{name}?v={static_version(name)}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("anchor_deploy.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, utc=utc, size=size)
    env.globals.update(static_url=static_url)
    return env


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A whole page. ``context`` is the template's; ``viewer`` (the signed-in token, if any) and the
    session's ``csrf`` come from the request's state, set by the session dependency."""
    viewer = getattr(request.state, "viewer", None)
    body = (
        environment()
        .get_template(template)
        .render(
            request_path=request.url.path,
            viewer=viewer,
            csrf=viewer.csrf if viewer else "",
            **context,
        )
    )
    return HTMLResponse(body, status_code=status)
