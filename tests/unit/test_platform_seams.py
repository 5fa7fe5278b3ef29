"""The seams between the API and the services: uploads, health, the CA root and backups go through
services; the assembly connects the runtime to alias moves and project deletion; the platform starts and
stops the provider's lifecycle around the services."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_deploy.model.errors import BackupFailed, BlobTooLarge, InvalidInput, NotFound
from anchor_deploy.providers.local_parts import LocalRoot
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import AuthorityService, BackupService
from anchor_deploy.settings import Settings
from tests.support import sha
from tests.unit.conftest import ADMIN, MAX_FILE, App


def test_an_upload_is_stored_once_under_its_sha256(app: App) -> None:
    data = b"body { color: red }"
    assert app.services.uploads.put(sha(data), iter([data])) == len(data)
    assert app.services.uploads.put(sha(data), iter([data])) == 0
    assert app.blobs.missing([sha(data)]) == []


def test_an_upload_with_a_bad_name_or_too_big_is_refused_and_nothing_kept(app: App) -> None:
    with pytest.raises(InvalidInput, match="sha256"):
        app.services.uploads.put("NOT-A-DIGEST", iter([b"x"]))
    big = b"x" * (MAX_FILE + 1)
    with pytest.raises(BlobTooLarge):
        app.services.uploads.put(sha(big), iter([big]))
    assert app.blobs.missing([sha(big)]) == [sha(big)]


def test_health_reports_the_provider_parts_and_damage(app: App) -> None:
    report = app.services.health.report()
    assert (report.edge, report.user_code, report.apps_can_run) == (None, None, True)
    assert not report.degraded and report.corrupt_blobs == 0
    project = app.project()
    deployment = app.deploy(project, b"<p>one</p>")
    app.blobs.damage(sha(b"<p>one</p>"), b"rotten")
    for copy in list(app.blobs.copies()):
        app.blobs.check(copy)
    app.files.remove(deployment.id)
    app.reconciler.run_once()
    report = app.services.health.report()
    assert report.degraded and report.corrupt_blobs == 1 and report.damaged_deployments == 1
    assert "index.html" in (app.services.health.damage_of(deployment.id) or "")


def test_a_move_keeps_production_and_the_previous_one_warm(app: App) -> None:
    project = app.project()
    first = app.deploy(project, b"<p>1</p>")
    second = app.deploy(project, b"<p>2</p>")
    runtime = app.runtime
    assert runtime.warm[project.id] == {first.id, second.id}
    app.aliases.rollback(app.fresh(project), None, ADMIN)
    assert runtime.warm[project.id] == {first.id, second.id}


def test_deleting_a_project_stops_its_workers(app: App) -> None:
    project = app.project()
    deployment = app.deploy(project)
    app.runtime.running.add(deployment.id)
    app.projects.delete(project.name, ADMIN)
    assert deployment.id not in app.runtime.running and project.id not in app.runtime.warm


def test_a_provider_without_a_ca_or_backups_says_so() -> None:
    with pytest.raises(NotFound, match="no CA of its own"):
        AuthorityService(None).root_certificate()
    with pytest.raises(BackupFailed, match="no backup archives"):
        BackupService(None).open()


def test_the_local_root_is_read_or_reported_missing(tmp_path: Path) -> None:
    class _Ca:
        root_path = tmp_path / "root.pem"

    root = LocalRoot(_Ca())  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="cannot be read"):
        root.root_certificate()
    (tmp_path / "root.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert root.root_certificate() == (str(tmp_path / "root.pem"), "-----BEGIN CERTIFICATE-----\n")


class _Lifecycle:
    def __init__(self, app: App) -> None:
        self.app = app
        self.calls: list[str] = []

    def prepare(self) -> None:
        self.calls.append("prepare")

    def serve(self) -> None:
        # The first pass over the database ran before serving: the edge serves production already.
        self.calls.append(f"serve:{len(self.app.edge.current())}")

    def stop(self) -> None:
        self.calls.append("stop")

    def notes(self) -> list[str]:
        return ["a note"]


def test_the_platform_runs_the_provider_lifecycle_around_the_services(app: App) -> None:
    project = app.project()
    app.deploy(project)
    app.edge.remove(next(iter(app.edge.current())))
    lifecycle = _Lifecycle(app)
    platform = Platform(Settings(admin_token="a" * 40), app.services, lifecycle, BackupService(None))
    admin = platform.start()
    try:
        assert admin.secret is None and platform.notes() == ["a note"]
        assert lifecycle.calls[0] == "prepare" and lifecycle.calls[1] == "serve:2"
    finally:
        platform.stop()
    assert lifecycle.calls[-1] == "stop"


def test_the_platform_shows_services_not_adapters(app: App) -> None:
    public = {name for name in dir(Platform) if not name.startswith("_")}
    adapters = {
        "store",
        "blobs",
        "files",
        "edge",
        "runtime",
        "caddy",
        "sandbox",
        "internal_ca",
        "zone_server",
    }
    assert not public & adapters
    assert {"tokens", "projects", "deployments", "uploads", "health", "authority"} <= public
