"""What backup and restore need from the services: collection paused while a backup streams, and the app
environments a restored data dir lacks rebuilt at start."""

from __future__ import annotations

from anchor_deploy.model.entities import DeploymentStatus
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.services.apps import AppBuilds, BuildSettings, EnvService
from anchor_deploy.services.retention import Retention, RetentionPolicy
from tests.support import sha
from tests.unit.conftest import ADMIN, App


class _Envs:
    """Environments by requirements text; ``ensure`` installs only what is not there yet."""

    def __init__(self, present: set[bytes] | None = None, broken: bytes = b"") -> None:
        self.present = set(present or ())
        self.installed: list[bytes] = []
        self.broken = broken

    def ensure(self, requirements: bytes, python: str | None, limits: object, log: object) -> str:
        if requirements not in self.present:
            if requirements == self.broken:
                raise BuildFailed("pip install failed: no matching distribution")
            self.installed.append(requirements)
            self.present.add(requirements)
        return "/envs/" + sha(requirements)[:8]

    def locate(self, requirements: bytes, python: str | None) -> str | None:
        return "/envs/" + sha(requirements)[:8] if requirements in self.present else None

    def collect(self, keep: set[str]) -> int:
        return 0


class _Runtime:
    def ensure(self, spec: object, timeout: float) -> None: ...


class _Box:
    def seal(self, plaintext: bytes) -> bytes:
        return plaintext

    def open(self, sealed: bytes) -> bytes:
        return sealed


def _ready_app(app: App, name: str, requirements: bytes) -> str:
    project = app.project(name)
    files = {"app.py": f"app = {name!r}".encode(), "requirements.txt": requirements}
    manifest = [{"path": p, "sha256": app.upload(b), "size": len(b)} for p, b in files.items()]
    deployment = app.deployments.create(project, {"files": manifest, "target": "preview"}, ADMIN)
    assert deployment.app is not None
    app.store.set_status(deployment.id, DeploymentStatus.BUILDING)
    app.store.set_status(deployment.id, DeploymentStatus.READY)
    return deployment.id


def _builds(app: App, envs: _Envs) -> AppBuilds:
    return AppBuilds(
        app.store,
        app.blobs,
        app.files,
        envs,
        _Runtime(),  # type: ignore[arg-type]
        EnvService(app.store, _Box()),
        BuildSettings(),
    )


def test_missing_environments_are_rebuilt_once_per_dependency_set_production_first(app: App) -> None:
    a1 = _ready_app(app, "one", b"flask\n")
    a2 = _ready_app(app, "two", b"flask\n")
    b = _ready_app(app, "three", b"fastapi\n")
    present = _ready_app(app, "four", b"starlette\n")
    envs = _Envs(present={b"starlette\n"})
    restored = _builds(app, envs).restore_environments(first={b})
    assert envs.installed == [b"fastapi\n", b"flask\n"]  # the one asked for first; flask once for two apps
    assert restored[0] == b and set(restored) == {a1, a2, b} and present not in restored
    log = [line for _seq, _at, line in app.store.read_log(a1)]
    assert "the app's environment is missing (as after a restore): rebuilding it" in log
    assert app.store.read_log(present) == []


def test_an_environment_that_cannot_be_rebuilt_is_reported_and_the_others_go_on(app: App) -> None:
    broken = _ready_app(app, "broken", b"nosuchpkg\n")
    refused = _ready_app(app, "refused", b"x#/../../srv/x.whl\n")
    fine = _ready_app(app, "fine", b"flask\n")
    envs = _Envs(broken=b"nosuchpkg\n")
    assert _builds(app, envs).restore_environments() == [fine]
    for deployment_id, cause in ((broken, "no matching distribution"), (refused, "requirements line 1")):
        lines = [line for _seq, _at, line in app.store.read_log(deployment_id)]
        assert any(
            line.startswith("the environment could not be rebuilt: ") and cause in line for line in lines
        )
        deployment = app.store.deployment(deployment_id)
        assert deployment is not None and deployment.status == DeploymentStatus.READY


def test_nothing_is_collected_while_collection_is_paused(app: App) -> None:
    digest = app.upload(b"no deployment uses me")
    retention = Retention(
        app.store,
        app.files,
        app.edge,
        app.blobs,
        _Envs(),
        lambda _id: None,
        lambda _id: None,
        RetentionPolicy(),
    )
    later = app.clock() + 10 * RetentionPolicy().blob_grace_seconds
    with retention.collection_paused(), retention.collection_paused():
        assert retention.collect(later) == (0, 0)
    assert app.blobs.has(digest)
    assert retention.collect(later) == (1, 0)
    assert not app.blobs.has(digest)
