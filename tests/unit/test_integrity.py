"""Damaged deployments (the reconciler) and fsck (IntegrityService), on the in-memory fakes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from anchor_deploy.model.entities import DeploymentStatus, Project
from anchor_deploy.model.errors import FsckRunning
from anchor_deploy.model.integrity import CopyKind, ProblemKind, StoredCopy
from anchor_deploy.model.names import deployment_host, production_host
from anchor_deploy.ports.fakes import FakeBlobStore
from anchor_deploy.services.integrity import IntegrityService
from anchor_deploy.services.reconcile import Damage
from tests.support import sha
from tests.unit.conftest import BASE, App

SHOP, BLOG = b"<h1>shop</h1>", b"<h1>blog</h1>"
ROTTEN = b"<h1>sh0p</h1>"


@pytest.fixture
def stopped() -> list[str]:
    """The deployments whose app worker the service stopped."""
    return []


@pytest.fixture
def integrity(app: App, stopped: list[str]) -> IntegrityService:
    service = IntegrityService(app.store, app.blobs, app.files, app.reconciler, stopped.append)
    app.blobs.on_stored = service.blob_stored
    return service


def two_projects(app: App) -> tuple[Project, str, Project, str]:
    shop, blog = app.project("shop"), app.project("blog")
    return shop, app.deploy(shop, SHOP).id, blog, app.deploy(blog, BLOG).id


def serves(app: App, project: Project, deployment_id: str) -> bool:
    hosts = app.edge.current()
    return (
        hosts.get(production_host(project.name, BASE), (None, None))[1] == deployment_id
        and deployment_host(project.name, deployment_id, BASE) in hosts
    )


# -- the reconciler --------------------------------------------------------------------------------
def test_a_deployment_that_cannot_be_rebuilt_is_damaged_and_the_others_serve(app: App) -> None:
    shop, shop_id, blog, blog_id = two_projects(app)
    app.files.remove(shop_id)
    app.blobs.lose(sha(SHOP))
    report = app.reconciler.run_once(startup=True)  # does not raise
    reason = f"blob {sha(SHOP)} of index.html is missing"
    assert report.damaged == [shop_id] and report.rebuilt == []
    assert app.reconciler.damaged() == {shop_id: Damage(reason, sha(SHOP))}
    assert app.reconciler.damage_of(shop_id) == Damage(reason, sha(SHOP))
    assert app.reconciler.waits_for(sha(SHOP)) and not app.reconciler.waits_for(sha(BLOG))
    assert serves(app, blog, blog_id)
    hosts = app.edge.current()  # the damaged deployment's hosts serve nothing (the edge's 404)
    assert production_host("shop", BASE) not in hosts and deployment_host("shop", shop_id, BASE) not in hosts
    app.upload(SHOP)
    report = app.reconciler.run_once()
    assert report.rebuilt == [shop_id] and app.reconciler.damaged() == {}
    assert serves(app, shop, shop_id) and app.files.read(shop_id, "index.html") == SHOP


def test_a_damaged_blob_makes_a_deployment_damaged_too(app: App) -> None:
    _, shop_id, _, _ = two_projects(app)
    app.files.remove(shop_id)
    app.blobs.damage(sha(SHOP), ROTTEN)
    app.reconciler.run_once()
    damage = app.reconciler.damage_of(shop_id)
    assert damage is not None and damage.digest == sha(SHOP)
    assert damage.reason.startswith(f"blob {sha(SHOP)} of index.html is damaged on disk")
    assert app.blobs.missing([sha(SHOP)]) == [sha(SHOP)]  # so that the next deploy uploads it again


def test_an_unexpected_failure_is_damage_too_never_a_failed_pass(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, shop_id, blog, blog_id = two_projects(app)
    app.files.remove(shop_id)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise PermissionError("deployments/ is read-only")

    monkeypatch.setattr(app.files, "materialize", broken)
    app.reconciler.run_once(startup=True)
    assert app.reconciler.damaged() == {shop_id: Damage("PermissionError: deployments/ is read-only")}
    assert serves(app, blog, blog_id)


def test_a_damaged_production_build_does_not_go_live_until_whole(app: App) -> None:
    shop, shop_id, _, _ = two_projects(app)
    pending = app.create(shop, b"<h1>v2</h1>")
    app.store.set_status(pending.id, DeploymentStatus.BUILDING)
    app.store.set_status(pending.id, DeploymentStatus.READY)  # killed before its files were linked...
    app.blobs.lose(sha(b"<h1>v2</h1>"))  # ...and its blob lost since
    report = app.reconciler.run_once()
    assert report.promoted == [] and app.production(shop) == shop_id
    app.upload(b"<h1>v2</h1>")
    report = app.reconciler.run_once()
    assert report.promoted == [pending.id] and app.served(shop) == pending.id


# -- uploads ---------------------------------------------------------------------------------------
def test_an_upload_of_the_awaited_blob_asks_the_reconciler(
    app: App, integrity: IntegrityService, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, shop_id, _, _ = two_projects(app)
    asked: list[bool] = []
    monkeypatch.setattr(app.reconciler, "request", lambda: asked.append(True))
    app.files.remove(shop_id)
    app.blobs.lose(sha(SHOP))
    app.reconciler.run_once()
    app.upload(b"unrelated")
    assert asked == []
    app.upload(SHOP)
    assert asked == [True]


def test_an_upload_replacing_a_damaged_blob_relinks_the_built_deployments(
    app: App, integrity: IntegrityService
) -> None:
    shop = app.project("shop")
    first, second = app.deploy(shop, SHOP), app.deploy(shop, SHOP)
    app.blobs.damage(sha(SHOP), ROTTEN)
    app.files.relink(first.id, app.store.manifest(first.id), set())  # nothing asked: nothing changes
    assert app.upload(SHOP) == sha(SHOP)  # the fake's trees hold copies: relink re-reads the blob
    assert app.files.read(first.id, "index.html") == SHOP == app.files.read(second.id, "index.html")
    assert app.blobs.quarantined and next(iter(app.blobs.quarantined.values()))[0] == ROTTEN


# -- fsck ------------------------------------------------------------------------------------------
def test_fsck_of_a_clean_store_is_clean(app: App, integrity: IntegrityService) -> None:
    two_projects(app)
    report = integrity.fsck()
    assert report.clean and report.copies_checked == 2 and report.bytes_checked == len(SHOP) + len(BLOG)


def test_fsck_names_a_damaged_blob_and_its_deployments_and_changes_nothing(
    app: App, integrity: IntegrityService
) -> None:
    shop, shop_id, _, _ = two_projects(app)
    preview = app.deploy(shop, SHOP).id
    app.blobs.damage(sha(SHOP), ROTTEN)
    report = integrity.fsck()
    assert not report.clean and len(report.problems) == 1
    problem = report.problems[0]
    assert (problem.digest, problem.kind, problem.problem) == (sha(SHOP), CopyKind.BLOB, ProblemKind.CORRUPT)
    assert problem.detail == f"content hashes to {sha(ROTTEN)}" and problem.action == ""
    assert sorted(problem.deployments) == sorted([shop_id, preview])
    assert app.files.exists(shop_id) and app.blobs.quarantined == {}
    assert app.blobs.corrupt() == {FakeBlobStore.copy_name(sha(SHOP)): problem.detail}


def test_fsck_repair_quarantines_takes_down_and_an_upload_heals(
    app: App, integrity: IntegrityService, stopped: list[str]
) -> None:
    shop, shop_id, blog, blog_id = two_projects(app)
    app.blobs.damage(sha(SHOP), ROTTEN)
    report = integrity.fsck(repair=True)
    assert report.problems[0].action == f"quarantined to quarantine/{FakeBlobStore.copy_name(sha(SHOP))}"
    assert report.taken_down == [shop_id] and report.relinked == []
    assert report.damaged == {shop_id: f"blob {sha(SHOP)} of index.html is missing"}
    assert stopped == [shop_id]  # an app's worker would be stopped
    assert not serves(app, shop, shop_id) and serves(app, blog, blog_id)
    assert app.blobs.corrupt() == {}
    again = integrity.fsck()
    assert [(p.problem, p.deployments) for p in again.problems] == [(ProblemKind.MISSING, [shop_id])]
    app.upload(SHOP)  # the reconciler is asked; its pass builds the deployment again
    app.reconciler.run_once()
    assert serves(app, shop, shop_id) and app.reconciler.damaged() == {}
    assert integrity.fsck().clean


def test_fsck_reports_a_blob_a_deployment_needs_that_is_gone(app: App, integrity: IntegrityService) -> None:
    _, shop_id, _, _ = two_projects(app)
    app.blobs.lose(sha(SHOP))
    report = integrity.fsck(repair=True)
    assert [(p.digest, p.problem, p.deployments) for p in report.problems] == [
        (sha(SHOP), ProblemKind.MISSING, [shop_id])
    ]
    assert report.taken_down == []  # its directory still serves the bytes it links: left alone
    assert app.files.exists(shop_id)


class BlockingCopies(FakeBlobStore):
    """A store whose listing waits until released: an fsck stays under way meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.listing = threading.Event()
        self.release = threading.Event()

    def copies(self) -> Iterator[StoredCopy]:
        self.listing.set()
        self.release.wait(10)
        return super().copies()


def test_one_fsck_at_a_time(app: App) -> None:
    blobs = BlockingCopies()
    service = IntegrityService(app.store, blobs, app.files, app.reconciler, lambda _id: None)
    first = threading.Thread(target=service.fsck)
    first.start()
    assert blobs.listing.wait(10)
    with pytest.raises(FsckRunning):
        service.fsck()
    blobs.release.set()
    first.join(10)
    assert service.fsck().clean
