"""A token limited to one project cannot tell another project's names, deployment ids, domains or variables
from ones that do not exist: on every route that takes a project name or a deployment id, the answer for
another project's resource (status, error code, message with the asked name or id replaced, other fields) is
the one for a missing resource, and the probes change nothing. Only admin-only calls answer 403, and they do
so whatever the name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anchor_deploy.api import routes, routes_apps, routes_domains
from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project, free_port, sha, upload_and_deploy

OWN, OTHER, MISSING = "alpha-enum", "beta-enum", "gamma-enum"
OTHER_DOMAIN, MISSING_DOMAIN = "www.beta-enum.test", "www.gamma-enum.test"
OTHER_KEY = "BETA_SECRET"
PAGE = b"<h1>beta</h1>"


@pytest.fixture
def anchor(tmp_path: Path) -> Iterator[AnchorProcess]:
    """The conftest fixture's fresh platform, with its DNS polling pointed at a loopback port where nothing
    answers: the other project's custom domain is then checked without any packet leaving 127.0.0.1."""
    extra = {"ANCHOR_DNS_RESOLVERS": f"{LOOPBACK}:{free_port()}"}
    platform = AnchorProcess(tmp_path / "data", extra_env=extra).start()
    try:
        yield platform
    finally:
        platform.stop()


def _manifest() -> dict[str, Any]:
    return {"files": [{"path": "index.html", "sha256": sha(PAGE), "size": len(PAGE)}], "target": "production"}


# (method, path template, body): {project}, {deployment_id}, {name} (a domain) and {key} are filled in, and
# "{deployment_id}" inside a body too. Each route is probed with another project's value and a missing one.
PROJECT_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/projects/{project}", None),
    ("DELETE", "/v1/projects/{project}", None),
    ("POST", "/v1/projects/{project}/deployments", _manifest()),
    ("GET", "/v1/projects/{project}/deployments", None),
    ("POST", "/v1/projects/{project}/rollback", {}),
    ("POST", "/v1/projects/{project}/rollback", {"deploymentId": "{deployment_id}"}),
    ("POST", "/v1/projects/{project}/promote", {"deploymentId": "{deployment_id}"}),
    ("POST", "/v1/projects/{project}/unpin", None),
    ("GET", "/v1/projects/{project}/alias-history", None),
    ("GET", "/v1/projects/{project}/env", None),
    ("POST", "/v1/projects/{project}/env", {"key": OTHER_KEY, "value": "overwritten", "secret": False}),
    ("DELETE", "/v1/projects/{project}/env/{key}", None),
    ("POST", "/v1/projects/{project}/domains", {"name": "new.beta-enum.test"}),
    ("GET", "/v1/projects/{project}/domains", None),
    ("GET", "/v1/projects/{project}/domains/{name}", None),
    ("GET", "/v1/projects/{project}/domains/{name}?check=false", None),
    ("POST", "/v1/projects/{project}/domains/{name}/retry", None),
    ("DELETE", "/v1/projects/{project}/domains/{name}", None),
]
DEPLOYMENT_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/deployments/{deployment_id}", None),
    ("GET", "/v1/deployments/{deployment_id}/logs", None),
    ("GET", "/v1/deployments/{deployment_id}/logs?source=runtime", None),
    ("GET", "/v1/deployments/{deployment_id}/logs?follow=1", None),
    # Its own project's production moved to the asked deployment.
    ("POST", f"/v1/projects/{OWN}/promote", {"deploymentId": "{deployment_id}"}),
    ("POST", f"/v1/projects/{OWN}/rollback", {"deploymentId": "{deployment_id}"}),
]
DOMAIN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/domains/{name}", None),
    ("GET", "/v1/domains/{name}?check=false", None),
]
# Admin-only: refused with 403 before any name is looked at, so the same for every name.
ADMIN_ONLY: list[tuple[str, str, Any]] = [
    ("POST", "/v1/tokens", {"name": "probe", "project": "{project}"}),
]


def _routes_naming_a_project_or_deployment() -> set[tuple[str, str]]:
    found = set()
    for router in (routes.router, routes_apps.router, routes_domains.router, routes_domains.lookup_router):
        for route in router.routes:
            path = route.path  # type: ignore[attr-defined]
            if any(p in path for p in ("{project}", "{deployment_id}", "/v1/domains/{name}")):
                found.update((m, path) for m in route.methods if m != "HEAD")  # type: ignore[attr-defined]
    return found


def test_every_route_naming_a_project_or_deployment_is_probed() -> None:
    probed = {(m, p.split("?")[0]) for m, p, _b in PROJECT_ROUTES + DEPLOYMENT_ROUTES + DOMAIN_ROUTES}
    missing = _routes_naming_a_project_or_deployment() - probed
    assert not missing, f"routes not probed for enumeration: {sorted(missing)}"


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, actual in names.items():
            value = value.replace("{" + placeholder + "}", actual)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


def _answer(client: httpx.Client, method: str, path: str, body: Any, asked: str) -> dict[str, Any]:
    """What the caller learns, with the asked name or id replaced by a placeholder."""
    response = client.request(method, path, json=body)
    text = response.text.replace(asked, "<asked>")
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "body": text,
        "error": json.loads(text).get("error") if response.status_code >= 400 else None,
    }


def _state(admin: httpx.Client) -> dict[str, Any]:
    """Everything of the other project an admin can read, to show the probes changed nothing."""
    deployments = admin.get(f"/v1/projects/{OTHER}/deployments").json()["deployments"]
    return {
        "project": admin.get(f"/v1/projects/{OTHER}").json(),
        "deployments": deployments,
        "history": admin.get(f"/v1/projects/{OTHER}/alias-history").json(),
        "env": admin.get(f"/v1/projects/{OTHER}/env").json(),
        "domains": [d["name"] for d in admin.get(f"/v1/projects/{OTHER}/domains").json()["domains"]],
        "own": admin.get(f"/v1/projects/{OWN}").json()["productionDeploymentId"],
        "projects": sorted(p["name"] for p in admin.get("/v1/projects").json()["projects"]),
    }


def test_a_project_token_cannot_tell_another_projects_resources_from_missing_ones(
    anchor: AnchorProcess,
) -> None:
    with anchor.api() as admin:
        for name in (OWN, OTHER):
            ensure_project(admin, name)
        own = upload_and_deploy(admin, OWN, {"index.html": b"<h1>alpha</h1>"})
        theirs = [upload_and_deploy(admin, OTHER, {"index.html": PAGE + bytes([i])}) for i in range(2)]
        assert [d["status"] for d in (own, *theirs)] == ["READY"] * 3
        assert (
            admin.post(f"/v1/projects/{OTHER}/env", json={"key": OTHER_KEY, "value": "s3"}).status_code == 201
        )
        added = admin.post(f"/v1/projects/{OTHER}/domains", json={"name": OTHER_DOMAIN})
        assert added.status_code == 201, added.text
        created = admin.post("/v1/tokens", json={"name": "alpha-ci", "project": OWN})
        assert created.status_code == 201, created.text
        before = _state(admin)
    other_id = theirs[0]["id"]
    # A well-formed id no deployment has: the other's with its first character changed.
    missing_id = "dpl_" + ("a" if other_id[4] != "a" else "b") + other_id[5:]
    assert missing_id not in {d["id"] for d in before["deployments"]} | {own["id"]}

    with anchor.api(created.json()["token"]) as mine:
        # The token works: its own project and deployment answer 200.
        assert mine.get(f"/v1/projects/{OWN}").status_code == 200
        assert mine.get(f"/v1/deployments/{own['id']}").status_code == 200
        compared = 0
        cases = [
            *[(r, {"project": OTHER}, {"project": MISSING}, OTHER, MISSING) for r in PROJECT_ROUTES],
            *[
                (r, {"deployment_id": other_id}, {"deployment_id": missing_id}, other_id, missing_id)
                for r in DEPLOYMENT_ROUTES
            ],
            *[
                (r, {"name": OTHER_DOMAIN}, {"name": MISSING_DOMAIN}, OTHER_DOMAIN, MISSING_DOMAIN)
                for r in DOMAIN_ROUTES
            ],
            *[(r, {"project": OTHER}, {"project": MISSING}, OTHER, MISSING) for r in ADMIN_ONLY],
        ]
        for (method, template, body), there, nowhere, asked_there, asked_nowhere in cases:
            common = {"deployment_id": other_id, "name": OTHER_DOMAIN, "key": OTHER_KEY}
            answers = []
            for names, asked in ((there, asked_there), (nowhere, asked_nowhere)):
                filled = {**common, **names}
                answers.append(_answer(mine, method, _fill(template, filled), _fill(body, filled), asked))
            label = (method, template, body)
            assert answers[0] == answers[1], (label, answers)
            expected = 403 if (method, template, body) in ADMIN_ONLY else 404
            assert answers[0]["status"] == expected, (label, answers[0])
            error = answers[0]["error"]
            assert set(error) == {"code", "message"}, (label, error)
            if expected == 404:
                assert error["code"].endswith("not_found"), (label, error)
                assert "<asked>" in error["message"], (label, error)
            else:
                assert error["code"] == "forbidden"
            compared += 1
        assert compared == len(PROJECT_ROUTES) + len(DEPLOYMENT_ROUTES) + len(DOMAIN_ROUTES) + len(ADMIN_ONLY)
        # The shapes, spelled out for the two kinds of name.
        assert mine.get(f"/v1/projects/{OTHER}").json() == {
            "error": {"code": "project_not_found", "message": f"project {OTHER!r} not found"}
        }
        assert mine.get(f"/v1/deployments/{other_id}").json() == {
            "error": {"code": "deployment_not_found", "message": f"deployment {other_id!r} not found"}
        }

    with anchor.api() as admin:
        assert _state(admin) == before
