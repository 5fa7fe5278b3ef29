"""POST /rollback and /promote do their whole work in one worker-thread round trip (routes.py), with the
checks in the order every other route keeps: 401 for a bad token, then 404 for a project the token may not
see, then 422 for a bad body; nothing moves on any of them, and a good call moves production and the edge
before it answers. In process (FastAPI's app over httpx's ASGI transport) on the services over the fakes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from anchor_deploy.api.app import create_app
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import asgi_request
from tests.unit.conftest import App, make_app


@dataclass
class Moves:
    app: App
    api: Any
    admin: dict[str, str]
    other: dict[str, str]  # a token limited to the project "other"
    old: str
    new: str

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return asgi_request(
            self.api, "POST", path, json=body, headers=self.admin if headers is None else headers
        )


@pytest.fixture
def moves() -> Iterator[Moves]:
    app = make_app()
    site = app.project("site")
    other = app.project("other")
    old, new = app.deploy(site, b"old").id, app.deploy(site, b"new").id
    _token, admin = app.tokens.create("admin")
    _token, scoped = app.tokens.create("ci", other)
    platform = Platform(Settings(base_domain="anchor.test"), app.services, None, BackupService(None))  # type: ignore[arg-type]
    yield Moves(
        app,
        create_app(platform),
        {"Authorization": f"Bearer {admin}"},
        {"Authorization": f"Bearer {scoped}"},
        old,
        new,
    )


BAD_BODIES: list[Any] = [{"deploymentId": 5}, [1], "text", {"deploymentId": ["a"]}]


@pytest.mark.parametrize("route", ["rollback", "promote"])
def test_refusals_come_in_order_and_move_nothing(moves: Moves, route: str) -> None:
    site = moves.app.projects.get("site", moves.app.tokens.authenticate(moves.admin["Authorization"]))
    path = f"/v1/projects/site/{route}"
    for body in BAD_BODIES:
        for headers, status, code in (
            ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
            ({}, 401, "unauthorized"),
            (moves.other, 404, "project_not_found"),  # another project's token: as if it did not exist
        ):
            answer = moves.post(path, body, headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
        assert moves.post("/v1/projects/nowhere/" + route, body).status_code == 404
        refused = moves.post(path, body)
        assert refused.status_code == 422, refused.text
    assert moves.app.production(site) == moves.new and moves.app.served(site) == moves.new
    assert [m.reason.value for m in moves.app.aliases.history(site)] == ["deploy", "deploy"]


def test_rollback_then_promote_move_production_and_the_edge_before_answering(moves: Moves) -> None:
    site = moves.app.projects.get("site", moves.app.tokens.authenticate(moves.admin["Authorization"]))
    back = moves.post("/v1/projects/site/rollback", {"deploymentId": moves.old})
    assert back.status_code == 200, back.text
    assert back.json()["toDeploymentId"] == moves.old and back.json()["tokenName"] == "admin"
    assert moves.app.production(site) == moves.old and moves.app.served(site) == moves.old
    ahead = moves.post("/v1/projects/site/promote", {"deploymentId": moves.new})
    assert ahead.status_code == 200 and ahead.json()["promotedAt"] == ahead.json()["at"]
    assert moves.app.production(site) == moves.new and moves.app.served(site) == moves.new
    again = moves.post("/v1/projects/site/rollback", {})  # no id: the previous production
    assert again.status_code == 200 and again.json()["toDeploymentId"] == moves.old
