"""The git remote's routes (api/routes_git_remote.py) on the fakes, with a recording stand-in for git
http-backend: who is let through (HTTP Basic with a token as the password, a Basic challenge otherwise, a
project token only to its own project), which paths reach the program and what it is told of a request,
and the answers where there is no git remote (AWS) or the body is over the limit."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from anchor_deploy.api.app import create_app
from anchor_deploy.model.entities import Project
from anchor_deploy.ports.git_remote import CgiRequest, CgiResponse
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.unit.conftest import App, make_app
from tests.unit.test_dns_links_api import InProcess

CHALLENGE = 'Basic realm="anchor-deploy"'
ADVERTISEMENT = [b"001e# service=git-upload-pack\n", b"0000"]


@dataclass
class Seen:
    project: str
    request: CgiRequest
    body: bytes


@dataclass
class RecordingGitHttp:
    """Answers every request with a small advertisement, remembering what it was told."""

    seen: list[Seen] = field(default_factory=list)

    async def serve(self, project: Project, request: CgiRequest) -> CgiResponse:
        body = b"".join([chunk async for chunk in request.body])
        self.seen.append(Seen(project.name, request, body))

        async def answer() -> AsyncIterator[bytes]:
            for chunk in ADVERTISEMENT:
                yield chunk

        headers = [
            ("Content-Type", "application/x-git-upload-pack-advertisement"),
            ("Cache-Control", "no-cache"),
        ]
        return CgiResponse(200, answer(), headers)

    def repository_url(self, project: Project) -> str:
        return f"/srv/git/{project.id}.git"

    def remove(self, project_id: str) -> None:
        return None


@dataclass
class Remote:
    app: App
    client: InProcess
    backend: RecordingGitHttp
    admin: str
    scoped: str  # a token limited to "site"

    def get(self, path: str, secret: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if secret is not None:
            headers["Authorization"] = basic("x", secret)
        return self.client.get(path, headers=headers, **kwargs)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def remote(backend: RecordingGitHttp | None, **settings: Any) -> Remote:
    app = make_app()
    site = app.project("site")
    app.project("other")
    _token, admin = app.tokens.create("admin")
    _token, scoped = app.tokens.create("ci pusher", site)
    app.services.adapters = dataclasses.replace(app.services.adapters, git_remote=backend)
    no_lifecycle: Any = None
    platform = Platform(
        Settings(base_domain="anchor.test", **settings), app.services, no_lifecycle, BackupService(None)
    )
    return Remote(app, InProcess(create_app(platform)), backend or RecordingGitHttp(), admin, scoped)


@pytest.fixture
def api() -> Iterator[Remote]:
    yield remote(RecordingGitHttp())


def test_a_token_as_the_basic_password_reaches_http_backend(api: Remote) -> None:
    answer = api.get("/git/site.git/info/refs?service=git-upload-pack", api.scoped)
    assert answer.status_code == 200
    assert answer.content == b"".join(ADVERTISEMENT)
    assert answer.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    assert answer.headers["cache-control"] == "no-cache"
    [seen] = api.backend.seen
    assert seen.project == "site"
    assert (seen.request.method, seen.request.path, seen.request.query) == (
        "GET",
        "/info/refs",
        "service=git-upload-pack",
    )
    assert seen.request.token == api.scoped  # for the push hook's calls to the API
    assert seen.request.remote_user == "ci-pusher"  # the token's name, as a CGI user name


@pytest.mark.parametrize(
    "authorization",
    [
        lambda secret: basic(secret, ""),  # the token as the user name, no password
        lambda secret: f"Bearer {secret}",  # git's http.extraHeader
    ],
    ids=["user-name", "bearer"],
)
def test_other_ways_to_send_the_token(api: Remote, authorization: Any) -> None:
    headers = {"Authorization": authorization(api.scoped)}
    assert api.get("/git/site.git/info/refs?service=git-upload-pack", headers=headers).status_code == 200
    assert api.backend.seen[0].request.token == api.scoped


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("x", "anc_wrong"),
        basic("x", ""),
        "Basic !!not-base64!!",
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "Digest x",
    ],
    ids=["none", "wrong", "empty", "garbled", "not-utf8", "other-scheme"],
)
def test_no_valid_token_is_a_basic_challenge(api: Remote, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = api.get("/git/site.git/info/refs?service=git-receive-pack", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert answer.json()["error"]["code"] == "unauthorized"
    assert api.backend.seen == []


def test_a_project_token_sees_other_projects_as_missing(api: Remote) -> None:
    answers = []
    for project in ("other", "missing"):
        answer = api.get(f"/git/{project}.git/info/refs?service=git-receive-pack", api.scoped)
        error = answer.json()["error"]
        answers.append((answer.status_code, error["code"], error["message"].replace(project, "P")))
    assert answers[0] == answers[1] == (404, "project_not_found", "project 'P' not found")
    assert api.get("/git/other.git/info/refs?service=git-receive-pack", api.admin).status_code == 200
    assert [s.project for s in api.backend.seen] == ["other"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/git/site.git/config"),
        ("GET", "/git/site.git/hooks/post-receive"),
        ("GET", "/git/site.git/objects/ab/not-an-object"),
        ("GET", "/git/site.git/git-receive-pack"),
        ("POST", "/git/site.git/info/refs"),
        ("POST", "/git/site.git/git-frobnicate"),
        ("GET", "/git/Site.git/info/refs"),
        ("GET", "/git/site.git.git/info/refs"),
        ("GET", "/git/-x.git/info/refs"),
    ],
)
def test_only_what_http_backend_serves_is_passed_on(api: Remote, method: str, path: str) -> None:
    answer = api.client.request(method, path, headers={"Authorization": basic("x", api.admin)})
    assert answer.status_code == 404, answer.text
    assert api.backend.seen == []


def test_the_dumb_protocols_files_pass_without_a_query(api: Remote) -> None:
    sha = "ab" * 20
    for path in (
        "HEAD",
        f"objects/{sha[:2]}/{sha[2:]}",
        f"objects/pack/pack-{sha}.idx",
        "objects/info/packs",
    ):
        assert api.get(f"/git/site/{path}?x=1", api.admin).status_code == 200  # ".git" may be left out
    assert [(s.request.path, s.request.query) for s in api.backend.seen] == [
        ("/HEAD", ""),
        (f"/objects/{sha[:2]}/{sha[2:]}", ""),
        (f"/objects/pack/pack-{sha}.idx", ""),
        ("/objects/info/packs", ""),
    ]


def test_a_push_body_and_its_headers_reach_http_backend(api: Remote) -> None:
    body = b"0094" + b"x" * 5000
    headers = {
        "Authorization": basic("x", api.scoped),
        "Content-Type": "application/x-git-receive-pack-request",
        "Content-Encoding": "gzip",
        "Git-Protocol": "version=2",
    }
    answer = api.client.post("/git/site.git/git-receive-pack", content=body, headers=headers)
    assert answer.status_code == 200
    [seen] = api.backend.seen
    assert seen.body == body
    assert (seen.request.method, seen.request.path) == ("POST", "/git-receive-pack")
    assert seen.request.content_type == "application/x-git-receive-pack-request"
    assert seen.request.content_length == len(body)
    assert (seen.request.content_encoding, seen.request.git_protocol) == ("gzip", "version=2")


def test_a_body_over_the_limit_is_413_before_git_sees_it() -> None:
    api = remote(RecordingGitHttp(), git_push_max_bytes=1000)
    headers = {
        "Authorization": basic("x", api.admin),
        "Content-Type": "application/x-git-receive-pack-request",
    }
    answer = api.client.post("/git/site.git/git-receive-pack", content=b"x" * 1001, headers=headers)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"
    assert api.backend.seen == []
    # At the limit it goes through.
    assert (
        api.client.post("/git/site.git/git-receive-pack", content=b"x" * 1000, headers=headers).status_code
        == 200
    )


def test_without_a_git_remote_the_routes_say_git_unavailable() -> None:
    api = remote(None)
    answer = api.get("/git/site.git/info/refs?service=git-upload-pack", api.admin)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "git_unavailable"
    # Still: no token, no answer but the challenge; another project's token, no such project.
    assert api.get("/git/site.git/info/refs").status_code == 401
    assert api.get("/git/other.git/info/refs", api.scoped).status_code == 404
