"""The dashboard in this process: the real API application (api/app.create_app) on the services assembled from
the in-memory fakes (tests/unit/conftest.make_app), and a browser-like client that signs in through the real
sign-in form, keeps its cookies, and posts forms with their CSRF field and an Origin header.

    web = make_web()   # or the ``web`` fixture:
                       # from tests.unit.web_harness import web_fixture  # noqa: F401  (the `web` fixture)
    site = web.make_project("site")
    first = web.deploy(site, {"index.html": b"one"}, meta={"git": {...}})
    browser = web.browser()                   # signed in with the admin token
    page = browser.get("/ui/projects/site")
    answer = browser.post_form("/ui/projects/site/unpin", {})
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

from anchor_deploy.api.app import create_app
from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project, Target, Token
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import InProcessTransport
from tests.unit.conftest import ADMIN, BASE, MAX_FILE, App, make_app

ORIGIN = "http://anchor.test"
_HIDDEN = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'\b(name|value)="([^"]*)"', re.IGNORECASE)


def hidden_field(page_html: str, name: str) -> str | None:
    """The value of the first <input> named ``name`` on a page (None if there is none)."""
    for tag in _HIDDEN.findall(page_html):
        attributes = {k.lower(): unescape(v) for k, v in _ATTRIBUTE.findall(tag)}
        if attributes.get("name") == name:
            return attributes.get("value", "")
    return None


def csrf(page_html: str) -> str:
    """The page's CSRF field (every signed-in page has one, in its sign-out form at least)."""
    found = hidden_field(page_html, "csrf")
    assert found, "the page has no csrf field"
    return found


def events_url(page_html: str) -> str:
    """The page's live stream (``body[data-events]``); empty on pages that are not live."""
    found = re.search(r'<body data-events="([^"]*)"', page_html)
    assert found, "the page has no body[data-events]"
    return unescape(found.group(1))


def rows(page_html: str, attribute: str = "data-deployment") -> list[str]:
    """The values of ``attribute`` on the page's table rows, in order."""
    return re.findall(rf'<tr\b[^>]*\b{attribute}="([^"]*)"', page_html)


class Browser:
    """A browser on the dashboard: keeps cookies (httpx's jar honours Path=/ui), never follows redirects by
    itself (tests look at them), and sends forms as a browser does (urlencoded, with an Origin header)."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.http = httpx.Client(base_url=ORIGIN, transport=transport, follow_redirects=False)
        self.last_csrf: str | None = None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http.get(path, **kwargs)
        found = hidden_field(answer.text, "csrf") if _is_html(answer) else None
        if found:
            self.last_csrf = found
        return answer

    def follow(self, answer: httpx.Response) -> httpx.Response:
        """GET where a redirect points (one hop)."""
        assert answer.status_code in {301, 302, 303, 307, 308}, (answer.status_code, answer.text[:300])
        return self.get(answer.headers["location"])

    def sign_in(self, token: str, next_target: str | None = None) -> httpx.Response:
        """Open the sign-in page (its nonce cookie and field), type the token, send: the form's answer."""
        query = f"?{urlencode({'next': next_target})}" if next_target is not None else ""
        form = self.get(f"/ui/sign-in{query}")
        assert form.status_code == 200, (form.status_code, form.text[:300])
        fields = {"token": token, "nonce": hidden_field(form.text, "nonce") or ""}
        shown_next = hidden_field(form.text, "next")
        if shown_next is not None:
            fields["next"] = shown_next
        return self.post("/ui/sign-in", fields)

    def post(self, path: str, fields: dict[str, str], origin: str | None = ORIGIN) -> httpx.Response:
        """A form post exactly as given (no CSRF field added)."""
        headers = {"origin": origin} if origin is not None else {}
        return self.http.post(path, data=fields, headers=headers)

    def post_form(
        self, path: str, fields: dict[str, str] | None = None, origin: str | None = ORIGIN
    ) -> httpx.Response:
        """A form post with the session's CSRF field (from the last page seen, or read from /ui/ first)
        unless ``fields`` has its own ``csrf``."""
        sent = dict(fields or {})
        if "csrf" not in sent:
            if self.last_csrf is None:
                self.get("/ui/")
            assert self.last_csrf, "no signed-in page was seen: no csrf to send"
            sent["csrf"] = self.last_csrf
        return self.post(path, sent, origin)

    def cookie(self, name: str) -> str | None:
        return self.http.cookies.get(name)

    def close(self) -> None:
        self.http.close()


def _is_html(answer: httpx.Response) -> bool:
    kind: str = answer.headers.get("content-type", "")
    return kind.startswith("text/html")


@dataclass
class Web:
    """The services on fakes (``app``), the API application on them (``asgi``) and the admin token."""

    app: App
    asgi: FastAPI
    platform: Platform
    admin_token: str
    transport: InProcessTransport
    browsers: list[Browser] = field(default_factory=list)

    def make_project(self, name: str) -> Project:
        return self.app.projects.create(name, ADMIN)

    def project(self, name: str) -> Project:
        """The project as the store has it now."""
        found = self.app.store.project_by_name(name)
        assert found is not None, name
        return found

    def make_token(self, name: str, project: Project | None = None) -> str:
        """A new token (limited to ``project`` if given): its secret."""
        return self.app.tokens.create(name, project)[1]

    def deploy(
        self,
        project: Project,
        files: dict[str, bytes] | None = None,
        meta: dict[str, Any] | None = None,
        target: Target = Target.PRODUCTION,
        token: Token = ADMIN,
    ) -> Deployment:
        """A deployment made and built through the services, as the API makes one: READY when it returns
        (a production one is production unless the project is pinned)."""
        listed = []
        for path, data in (files or {"index.html": b"<h1>hello</h1>"}).items():
            listed.append({"path": path, "sha256": self.app.upload(data), "size": len(data)})
        body: dict[str, Any] = {"files": listed, "target": target.value}
        if meta is not None:
            body["meta"] = meta
        made = self.app.deployments.create(self.project(project.name), body, token)
        built = self.app.deployments.build(made.id)
        assert built is not None and built.status == DeploymentStatus.READY, built
        return built

    def keep_deployments(self, count: int) -> None:
        """Retention prunes a project's deployments beyond its newest 20 when one becomes READY: keep
        ``count`` (a long list's pages need more)."""
        retention = self.app.services.retention
        retention.policy = dataclasses.replace(retention.policy, keep_newest=count)

    def served(self, name: str) -> str | None:
        """The deployment the edge serves at the project's production URL."""
        return self.app.served(self.project(name))

    def production(self, name: str) -> str | None:
        return self.project(name).production_deployment_id

    def browser(self, token: str | None = None) -> Browser:
        """A browser signed in with ``token`` (the admin token by default)."""
        found = self.anonymous()
        answer = found.sign_in(token or self.admin_token)
        assert answer.status_code == 303, (answer.status_code, answer.text[:300])
        return found

    def anonymous(self) -> Browser:
        """A browser that has not signed in."""
        found = Browser(self.transport)
        self.browsers.append(found)
        return found

    def events(
        self,
        browser: Browser,
        path: str,
        until: Callable[[str], bool],
        during: Callable[[], object] = lambda: None,
        timeout: float = 5.0,
    ) -> str:
        """Read an event stream as ``browser`` until ``until(body so far)`` holds or ``timeout`` seconds
        pass, then hang up; the body read. ``during`` runs once, after the stream's first bytes."""
        cookies = "; ".join(f"{c.name}={c.value}" for c in browser.http.cookies.jar)
        return asyncio.run(_read_stream(self.asgi, path, cookies, until, during, timeout))

    def close(self) -> None:
        for browser in self.browsers:
            browser.close()


async def _read_stream(
    app: FastAPI,
    path: str,
    cookies: str,
    until: Callable[[str], bool],
    during: Callable[[], object],
    timeout: float,
) -> str:
    """The ASGI conversation of one GET, read chunk by chunk (httpx's ASGI transport waits for the whole
    body, which a stream never ends)."""
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"anchor.test"),
            (b"cookie", cookies.encode()),
            (b"accept", b"text/event-stream"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("anchor.test", 80),
    }
    hung_up = asyncio.Event()
    done = asyncio.Event()
    body: list[str] = []
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        first = not body
        body.append(message.get("body", b"").decode())
        if first:
            during()
        if until("".join(body)) or not message.get("more_body", False):
            done.set()

    task = asyncio.create_task(app(scope, receive, send))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    hung_up.set()
    try:
        await asyncio.wait_for(task, 2.0)
    except TimeoutError:
        task.cancel()
    return "".join(body)


def make_web(settings: Settings | None = None) -> Web:
    app = make_app()
    _token, admin = app.tokens.create("admin")
    platform = Platform(
        settings or Settings(base_domain=BASE, max_blob_size=MAX_FILE),
        app.services,
        None,  # type: ignore[arg-type]  # no lifecycle: nothing is started
        BackupService(None),
    )
    asgi = create_app(platform)
    return Web(app, asgi, platform, admin, InProcessTransport(asgi))


@pytest.fixture(name="web")
def web_fixture() -> Iterator[Web]:
    """The ``web`` fixture: import it as ``web_fixture`` (a test's ``web`` parameter would shadow an
    imported ``web``, ruff's F811)."""
    found = make_web()
    yield found
    found.close()


web = web_fixture  # the same fixture, for modules that import it by its fixture name
