"""The dns-links routes in process (FastAPI's test client) on the services assembled from the fakes: bodies
refused with a readable 4xx and nothing stored, secrets never shown, who may link what."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from anchor_deploy.api import schemas_areas
from anchor_deploy.api.app import create_app
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import asgi_request
from tests.unit.conftest import App, make_app

SECRET = base64.b64encode(bytes(range(32))).decode()
RFC2136 = {"server": "192.0.2.53", "keyName": "anchor-update", "keySecret": SECRET}


class InProcess:
    """Requests to the app in this process (httpx's ASGI transport; no server, no socket)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return asgi_request(self.app, method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


@dataclass
class Api:
    app: App
    client: InProcess
    admin: dict[str, str]
    project: dict[str, str]  # a token limited to the project "site"

    def post(self, body: Any, headers: dict[str, str] | None = None, project: str = "site") -> Any:
        return self.client.post(
            f"/v1/projects/{project}/dns-links", json=body, headers=headers or self.project
        )


@pytest.fixture
def api() -> Iterator[Api]:
    app = make_app()
    site = app.project("site")
    app.project("other")
    _token, admin = app.tokens.create("admin")
    _token, scoped = app.tokens.create("ci", site)
    settings = Settings(base_domain="anchor.test")
    platform = Platform(settings, app.services, None, BackupService(None))  # type: ignore[arg-type]  # no lifecycle
    client = InProcess(create_app(platform))
    yield Api(app, client, {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {scoped}"})


def test_link_list_and_unlink_never_show_the_secret(api: Api) -> None:
    made = api.post({"zone": "Example.com", "rfc2136": RFC2136})
    assert made.status_code == 201, made.text
    link = made.json()
    assert schemas_areas.DnsLinkInfo.model_validate(link)
    assert {k: link[k] for k in ("zone", "kind", "target", "keyName", "keyAlgorithm")} == {
        "zone": "example.com",
        "kind": "rfc2136",
        "target": "192.0.2.53:53",
        "keyName": "anchor-update",
        "keyAlgorithm": "hmac-sha256",
    }
    listed = api.client.get("/v1/projects/site/dns-links", headers=api.project)
    assert listed.status_code == 200 and listed.json() == {"links": [link]}
    assert SECRET not in made.text + listed.text
    assert api.client.get("/v1/projects/other/dns-links", headers=api.admin).json() == {"links": []}
    gone = api.client.delete("/v1/projects/site/dns-links/example.com", headers=api.project)
    assert gone.status_code == 200 and gone.json()["unlinked"] == "example.com"
    again = api.client.delete("/v1/projects/site/dns-links/example.com", headers=api.project)
    assert again.status_code == 404 and again.json()["error"]["code"] == "dns_link_not_found"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"zone": "example.com"}, 422, "one of route53"),
        ({"zone": "example.com", "route53": {"zoneId": "Z1"}, "rfc2136": RFC2136}, 422, "one of route53"),
        ({"rfc2136": RFC2136}, 422, "zone"),
        ({"zone": 5, "rfc2136": RFC2136}, 422, "zone"),
        ({"zone": "example.com", "rfc2136": "server"}, 422, "rfc2136 must be an object"),
        ({"zone": "example.com", "rfc2136": {**RFC2136, "keySecret": None}}, 422, "keySecret"),
        ({"zone": "example.com", "rfc2136": {**RFC2136, "keyAlgorithm": "hmac-md5"}}, 422, "not supported"),
        ({"zone": "co.uk", "rfc2136": RFC2136}, 422, "public suffix"),
        ({"zone": "example.com", "route53": {"zoneId": "Z0123"}}, 403, "admin token"),
    ],
)
def test_a_bad_link_is_a_readable_4xx_and_stores_nothing(
    api: Api, body: Any, status: int, words: str
) -> None:
    answer = api.post(body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]
    assert api.client.get("/v1/projects/site/dns-links", headers=api.admin).json() == {"links": []}


def test_route53_with_an_admin_token_and_a_zone_taken_is_409(api: Api) -> None:
    made = api.post({"zone": "example.com", "route53": {"zoneId": "/hostedzone/Z0123"}}, api.admin)
    assert made.status_code == 201 and made.json()["target"] == "Z0123" and "keyName" not in made.json()
    taken = api.post({"zone": "example.com", "rfc2136": RFC2136}, api.admin, project="other")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "zone_linked"


def test_a_project_token_sees_no_other_projects_links(api: Api) -> None:
    answer = api.client.get("/v1/projects/other/dns-links", headers=api.project)
    assert answer.status_code == 404
    assert api.post({"zone": "example.com", "rfc2136": RFC2136}, project="other").status_code == 404
