"""DeploymentService: the manifest protocol (create) and the build that makes a deployment servable."""

from __future__ import annotations

from typing import Any

import pytest

from anchor_deploy.model.entities import DeploymentStatus, HostKind, MoveReason, Target, Token
from anchor_deploy.model.errors import (
    AnchorError,
    DeploymentNotFound,
    InvalidInput,
    InvalidManifest,
    MissingFiles,
)
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.model.names import deployment_host, is_deployment_id, production_host
from anchor_deploy.services.deployments import DeploymentService
from tests.support import sha
from tests.unit.conftest import ADMIN, BASE, MAX_FILE, App

PAGE, STYLE = b"<h1>hi</h1>", b"body{}"


def entry(path: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"path": path, "sha256": sha(data), "size": len(data), **extra}


# -- create ----------------------------------------------------------------------------------------
def test_create_records_a_queued_deployment_and_claims_its_host(app: App) -> None:
    project = app.project()
    app.upload(PAGE)
    app.upload(STYLE)
    created: list[str] = []
    app.deployments.on_created = created.append
    token = Token("tok_ci", "ci", project.id, 0.0)
    body = {
        "files": [entry("index.html", PAGE), entry("css/a.css", STYLE, mode=0o600)],
        "target": "production",
        "meta": {"branch": "main"},
    }
    dpl = app.deployments.create(project, body, token)
    assert is_deployment_id(dpl.id) and created == [dpl.id]
    assert (dpl.status, dpl.target, dpl.created_by) == (DeploymentStatus.QUEUED, Target.PRODUCTION, "ci")
    assert (dpl.file_count, dpl.total_size, dpl.meta) == (2, len(PAGE) + len(STYLE), {"branch": "main"})
    assert app.store.deployment(dpl.id) == dpl
    assert app.store.manifest(dpl.id) == [
        ManifestFile("index.html", sha(PAGE), len(PAGE), 0o644),
        ManifestFile("css/a.css", sha(STYLE), len(STYLE), 0o600),
    ]
    host = deployment_host("site", dpl.id, BASE)
    assert app.deployments.host(project, dpl) == host
    found = app.store.host_target(host)
    assert found is not None and found[0].kind == HostKind.DEPLOYMENT and found[1] == dpl.id
    assert host not in app.edge.current()  # nothing is served before the build


def test_target_defaults_to_preview(app: App) -> None:
    project = app.project()
    app.upload(PAGE)
    dpl = app.deployments.create(project, {"files": [entry("index.html", PAGE)]}, ADMIN)
    assert dpl.target == Target.PREVIEW


def test_missing_files_lists_each_missing_digest_once(app: App) -> None:
    project = app.project()
    app.upload(PAGE)
    one, two = b"one", b"two"
    files = [
        entry("a.txt", two),
        entry("index.html", PAGE),
        entry("b.txt", one),
        entry("copy-of-a.txt", two),
        entry("c/b.txt", one),
    ]
    with pytest.raises(MissingFiles) as caught:
        app.deployments.create(project, {"files": files}, ADMIN)
    assert caught.value.status == 409 and caught.value.code == "missing_files"
    assert caught.value.extra["missing"] == [sha(two), sha(one)]
    assert caught.value.to_dict()["missing"] == [sha(two), sha(one)]
    assert app.store.list_deployments(project.id) == []
    app.upload(one)
    app.upload(two)
    assert app.deployments.create(project, {"files": files}, ADMIN).file_count == 5


BAD_BODIES: list[tuple[dict[str, Any], type[AnchorError]]] = [
    ({}, InvalidManifest),
    ({"files": "index.html"}, InvalidManifest),
    ({"files": [entry("../index.html", PAGE)]}, InvalidManifest),
    ({"files": [entry("/index.html", PAGE)]}, InvalidManifest),
    ({"files": [entry("index.html", PAGE), entry("index.html", PAGE)]}, InvalidManifest),
    ({"files": [entry("a", PAGE), entry("a/b", PAGE)]}, InvalidManifest),
    ({"files": [entry("a", PAGE, mode=0o120777)]}, InvalidManifest),
    ({"files": [{"path": "a", "sha256": "0" * 63, "size": 1}]}, InvalidManifest),
    ({"files": [{"path": "a", "sha256": sha(PAGE), "size": MAX_FILE + 1}]}, InvalidManifest),
    ({"files": [entry("index.html", PAGE)], "target": "staging"}, InvalidInput),
    ({"files": [entry("index.html", PAGE)], "target": "PRODUCTION"}, InvalidInput),
    ({"files": [entry("index.html", PAGE)], "target": None}, InvalidInput),
    ({"files": [entry("index.html", PAGE)], "meta": "main"}, InvalidInput),
    ({"files": [entry("index.html", PAGE)], "meta": [1]}, InvalidInput),
    ({"files": [entry("index.html", PAGE)], "meta": {"x": "y" * 20_000}}, InvalidInput),
    ({"files": [entry("index.html", PAGE), entry("new.js", b"never uploaded")]}, MissingFiles),
]


@pytest.mark.parametrize(("body", "error"), BAD_BODIES)
def test_invalid_input_stores_nothing(app: App, body: dict[str, Any], error: type[AnchorError]) -> None:
    project = app.project()
    app.upload(PAGE)
    created: list[str] = []
    app.deployments.on_created = created.append
    with pytest.raises(error):
        app.deployments.create(project, body, ADMIN)
    assert app.store.list_deployments(project.id) == []
    assert app.store.deployments_with_status(list(DeploymentStatus)) == []
    assert [h.host for h in app.store.project_hosts(project.id)] == [production_host("site", BASE)]
    assert created == []


# -- get / list ------------------------------------------------------------------------------------
def test_get_checks_the_id_and_the_token(app: App) -> None:
    site = app.project()
    dpl = app.create(site)
    assert app.deployments.get(dpl.id, ADMIN) == (site, dpl)
    assert app.deployments.get(dpl.id, Token("t", "site-ci", site.id, 0.0))[1] == dpl
    for bad in ("dpl_doesnotexist", "nope", "dpl_" + "a" * 100):
        with pytest.raises(DeploymentNotFound):
            app.deployments.get(bad, ADMIN)


def test_another_projects_deployment_is_not_found_for_a_project_token(app: App) -> None:
    """Not Forbidden: the same DeploymentNotFound as for an id nobody has, so ids cannot be probed."""
    site, other = app.project(), app.project("other")
    dpl = app.create(site)
    limited = Token("t", "other-ci", other.id, 0.0)
    missing = "dpl_" + ("a" if dpl.id[4] != "a" else "b") + dpl.id[5:]
    assert is_deployment_id(missing) and app.store.deployment(missing) is None
    answers = {}
    for asked in (dpl.id, missing):
        with pytest.raises(DeploymentNotFound) as caught:
            app.deployments.get(asked, limited)
        answers[asked] = (caught.value.status, caught.value.to_dict())
    assert answers[dpl.id][0] == answers[missing][0] == 404
    assert answers[dpl.id][1] == {
        "code": "deployment_not_found",
        "message": f"deployment {dpl.id!r} not found",
    }
    assert answers[missing][1]["message"].replace(missing, dpl.id) == answers[dpl.id][1]["message"]


def test_list_is_newest_first(app: App) -> None:
    project = app.project()
    ids = [app.create(project, f"v{i}".encode()).id for i in range(3)]
    assert [d.id for d in app.deployments.list(project)] == ids[::-1]


# -- build -----------------------------------------------------------------------------------------
FINAL = [DeploymentStatus.READY, DeploymentStatus.ERROR, DeploymentStatus.CANCELED]


class StatusSpy:
    """DeploymentFiles that records the deployment's status at the moment it is materialized."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.seen: list[DeploymentStatus] = []

    def materialize(self, deployment_id: str, files: Any, app: Any = None) -> None:
        found = self.app.store.deployment(deployment_id)
        assert found is not None
        self.seen.append(found.status)
        self.app.files.materialize(deployment_id, files, app)

    def app_files(self, deployment_id: str) -> str:
        return self.app.files.app_files(deployment_id)

    def exists(self, deployment_id: str) -> bool:
        return self.app.files.exists(deployment_id)

    def remove(self, deployment_id: str) -> None:
        self.app.files.remove(deployment_id)


def test_build_goes_queued_building_ready_and_serves_the_immutable_host(app: App) -> None:
    spy = StatusSpy(app)
    service = DeploymentService(app.store, app.blobs, spy, app.aliases, app.sync, BASE, MAX_FILE, app.clock)
    project = app.project()
    dpl = app.create(project, PAGE, Target.PREVIEW)
    built = service.build(dpl.id)
    assert spy.seen == [DeploymentStatus.BUILDING]
    assert built.status == DeploymentStatus.READY and built.ready_at is not None
    assert app.store.deployment(dpl.id) == built
    assert app.files.read(dpl.id, "index.html") == PAGE
    assert dict(app.edge.current()) == {deployment_host("site", dpl.id, BASE): (HostKind.DEPLOYMENT, dpl.id)}
    assert app.production(project) is None  # a preview never moves production


def test_production_build_moves_production_and_points_the_alias(app: App) -> None:
    project = app.project()
    dpl = app.create(project, PAGE, Target.PRODUCTION)
    app.deployments.build(dpl.id)
    assert app.production(project) == dpl.id
    assert dict(app.edge.current()) == {
        deployment_host("site", dpl.id, BASE): (HostKind.DEPLOYMENT, dpl.id),
        production_host("site", BASE): (HostKind.ALIAS, dpl.id),
    }
    [move] = app.aliases.history(project)
    assert (move.from_deployment_id, move.to_deployment_id, move.reason) == (None, dpl.id, MoveReason.DEPLOY)


def test_build_resumes_a_deployment_left_building(app: App) -> None:
    project = app.project()
    dpl = app.create(project, PAGE)
    app.store.set_status(dpl.id, DeploymentStatus.BUILDING)  # a crash mid-build
    assert app.deployments.build(dpl.id).status == DeploymentStatus.READY
    assert app.production(project) == dpl.id


def test_failed_build_is_error_and_moves_nothing(app: App) -> None:
    project = app.project()
    live = app.deploy(project, b"live")
    dpl = app.create(project, PAGE)
    app.blobs.lose(sha(PAGE))
    failed = app.deployments.build(dpl.id)
    assert failed.status == DeploymentStatus.ERROR
    assert failed.error is not None and sha(PAGE) in failed.error
    assert any(line.startswith("build failed:") for _seq, _at, line in app.store.read_log(dpl.id))
    assert not app.files.exists(dpl.id)
    assert app.production(project) == live.id and app.served(project) == live.id
    assert deployment_host("site", dpl.id, BASE) not in app.edge.current()


@pytest.mark.parametrize("status", FINAL)
def test_final_deployments_are_not_built_again(app: App, status: DeploymentStatus) -> None:
    project = app.project()
    dpl = app.create(project, PAGE)
    if status == DeploymentStatus.READY:
        app.store.set_status(dpl.id, DeploymentStatus.BUILDING)
    app.store.set_status(dpl.id, status)
    assert app.deployments.build(dpl.id) is None
    assert app.deployments.build("dpl_doesnotexist") is None
    assert not app.files.exists(dpl.id)


def test_edge_failure_does_not_fail_the_build_and_wakes_the_reconciler(app: App) -> None:
    project = app.project()
    dpl = app.create(project, PAGE)
    app.edge.failing = True
    assert app.deployments.build(dpl.id).status == DeploymentStatus.READY
    assert app.production(project) == dpl.id  # committed: the reconciler converges the edge
    assert app.edge_failures and set(app.edge_failures) == {"edge"}
    app.edge.failing = False
    app.reconciler.run_once()
    assert app.served(project) == dpl.id
