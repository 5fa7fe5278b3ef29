"""Reconciler.run_once: the data planes converge on the database, idempotently."""

from __future__ import annotations

import pytest

from anchor_deploy.model.entities import DeploymentStatus, HostKind, MoveReason, Target, Token
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.model.names import deployment_host, production_host
from anchor_deploy.ports.fakes import FakeEdge
from anchor_deploy.services.reconcile import Reconciler, ReconcileReport
from tests.support import sha
from tests.unit.conftest import ADMIN, BASE, App

ALICE = Token("tok_alice", "alice", None, 0.0)
EMPTY = ReconcileReport()


def fresh_edge(app: App) -> FakeEdge:
    """A data plane that lost everything (a wiped edge directory), wired into a new reconciler."""
    app.edge = FakeEdge()
    app.reconciler = Reconciler(
        app.store, app.files, app.edge, app.aliases, app.submitted.append, app.files.present
    )
    return app.edge


def test_points_every_host_the_edge_lacks(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    b = app.deploy(project, b"b", Target.PREVIEW)
    queued = app.create(project, b"queued")
    edge = fresh_edge(app)
    report = app.reconciler.run_once()
    expected = {
        production_host("site", BASE): (HostKind.ALIAS, a.id),
        deployment_host("site", a.id, BASE): (HostKind.DEPLOYMENT, a.id),
        deployment_host("site", b.id, BASE): (HostKind.DEPLOYMENT, b.id),
    }
    assert dict(edge.current()) == expected
    assert sorted(report.pointed) == sorted(expected)
    assert deployment_host("site", queued.id, BASE) not in edge.current()  # nothing to serve yet
    assert app.reconciler.run_once() == EMPTY


def test_repoints_a_host_that_serves_the_wrong_deployment(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    b = app.deploy(project, b"b")
    app.edge.point(production_host("site", BASE), HostKind.ALIAS, a.id)  # a lost switch
    report = app.reconciler.run_once()
    assert report.pointed == [production_host("site", BASE)]
    assert app.served(project) == b.id


def test_removes_edge_hosts_the_store_does_not_know(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    app.edge.point("stale.anchor.test", HostKind.DEPLOYMENT, "dpl_gonegonegone")
    app.edge.point("old-project.anchor.test", HostKind.ALIAS, a.id)
    report = app.reconciler.run_once()
    assert sorted(report.removed) == ["old-project.anchor.test", "stale.anchor.test"]
    assert set(app.edge.current()) == {production_host("site", BASE), deployment_host("site", a.id, BASE)}


def test_stops_serving_hosts_of_a_deleted_project(app: App) -> None:
    project = app.project()
    keep = app.project("keep")
    app.deploy(project, b"a")
    kept = app.deploy(keep, b"k")
    app.edge.failing = True
    with pytest.raises(EdgeError):  # the edge is down: the delete is committed, the reconciler finishes it
        app.projects.delete("site", ALICE)
    assert app.store.project_by_name("site") is None and app.edge_failures == ["edge"]
    app.edge.failing = False
    app.reconciler.run_once()
    assert app.files.present() == [kept.id]
    assert dict(app.edge.current()) == {
        production_host("keep", BASE): (HostKind.ALIAS, kept.id),
        deployment_host("keep", kept.id, BASE): (HostKind.DEPLOYMENT, kept.id),
    }


def test_rematerializes_ready_deployments_whose_files_are_gone(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    b = app.deploy(project, b"b")
    app.files.remove(a.id)
    app.files.remove(b.id)
    report = app.reconciler.run_once()
    assert sorted(report.rebuilt) == sorted([a.id, b.id])
    assert app.files.read(a.id, "index.html") == b"a"
    assert app.files.read(b.id, "index.html") == b"b"
    assert app.reconciler.run_once().rebuilt == []


def test_does_not_materialize_unfinished_or_failed_deployments(app: App) -> None:
    project = app.project()
    queued = app.create(project, b"q")
    failed = app.create(project, b"f")
    app.store.set_status(failed.id, DeploymentStatus.ERROR, "boom")
    report = app.reconciler.run_once()
    assert report.rebuilt == [] and not app.files.exists(queued.id) and not app.files.exists(failed.id)


def test_sweeps_directories_of_unknown_deployments(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    app.files.materialize("dpl_orphan000000", [])
    app.files.materialize("dpl_orphan111111", [])
    report = app.reconciler.run_once()
    assert sorted(report.swept) == ["dpl_orphan000000", "dpl_orphan111111"]
    assert app.files.present() == [a.id]


def test_requeues_unfinished_builds_only_at_startup(app: App) -> None:
    project = app.project()
    queued = app.create(project, b"q", Target.PREVIEW)  # previews: a newer deploy does not cancel them
    building = app.create(project, b"b", Target.PREVIEW)
    app.store.set_status(building.id, DeploymentStatus.BUILDING)
    app.deploy(project, b"ready")
    canceled = app.create(project, b"c")
    app.store.set_status(canceled.id, DeploymentStatus.CANCELED)
    app.submitted.clear()
    assert app.reconciler.run_once().requeued == []
    assert app.submitted == []
    report = app.reconciler.run_once(startup=True)
    assert report.requeued == [queued.id, building.id]
    assert app.submitted == [queued.id, building.id]


def test_production_build_ready_before_a_crash_still_goes_live(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    b = app.create(project, b"b")
    app.store.set_status(b.id, DeploymentStatus.BUILDING)
    app.files.materialize(b.id, app.store.manifest(b.id))
    app.store.set_status(b.id, DeploymentStatus.READY)  # killed before production moved
    assert app.production(project) == a.id
    report = app.reconciler.run_once()
    assert report.promoted == [b.id]
    assert app.production(project) == b.id and app.served(project) == b.id
    assert app.aliases.history(project)[-1].reason == MoveReason.DEPLOY


def test_pinned_project_is_left_alone(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    app.deploy(project, b"b")
    app.aliases.rollback(project, None, ALICE)
    c = app.deploy(project, b"c")  # READY while pinned: not production
    assert app.reconciler.run_once().promoted == []
    assert app.production(project) == a.id != c.id


def test_a_promote_is_not_undone_by_a_build_that_finished_while_pinned(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    app.deploy(project, b"b")
    app.aliases.rollback(project, None, ALICE)  # production A, pinned
    app.deploy(project, b"c")  # READY while pinned: stays off production
    app.aliases.promote(project, a.id, ALICE)  # the user's explicit choice: A, unpinned
    report = app.reconciler.run_once()
    assert report.promoted == []
    assert app.production(project) == a.id and app.served(project) == a.id


def test_unpinning_moves_nothing_even_for_the_reconciler(app: App) -> None:
    # tests/e2e/test_rollback.py states it: "unpinning moves nothing by itself"; the next deploy does.
    project = app.project()
    a = app.deploy(project, b"a")
    app.deploy(project, b"b")
    app.aliases.rollback(project, None, ALICE)  # production A, pinned
    app.deploy(project, b"c")  # READY while pinned
    app.aliases.unpin(project, ALICE)
    assert app.reconciler.run_once().promoted == []
    assert app.production(project) == a.id and app.served(project) == a.id
    d = app.deploy(project, b"d")
    assert app.production(project) == d.id


def test_a_second_pass_changes_nothing(app: App) -> None:
    project = app.project()
    app.deploy(project, b"a")
    app.deploy(project, b"b", Target.PREVIEW)
    app.create(project, b"q")
    fresh_edge(app)
    app.files.materialize("dpl_orphan000000", [])
    first = app.reconciler.run_once(startup=True)
    assert first.pointed and first.swept
    edge_before = dict(app.edge.current())
    second = app.reconciler.run_once()
    assert second == EMPTY
    assert dict(app.edge.current()) == edge_before


def test_a_go_live_decided_before_a_crash_is_not_recorded_twice(app: App) -> None:
    """Killed after the move committed but before the go-live was settled: no duplicate move."""
    project = app.project()
    app.deploy(project, b"a")
    b = app.create(project, b"b")
    app.store.set_status(b.id, DeploymentStatus.BUILDING)
    app.files.materialize(b.id, app.store.manifest(b.id))
    ready = app.store.set_status(b.id, DeploymentStatus.READY)
    current = app.store.project_by_id(project.id)
    assert current is not None
    app.store.move_production(
        project.id, current.production_deployment_id, b.id, MoveReason.DEPLOY, "ci", False
    )
    assert ready.go_live_pending
    moves = len(app.aliases.history(project))
    assert app.reconciler.run_once().promoted == []
    assert len(app.aliases.history(project)) == moves
    assert app.store.deployment(b.id).go_live_pending is False  # type: ignore[union-attr]
    assert app.served(project) == b.id


def test_an_app_deployment_is_rematerialized_with_its_app_layout(app: App) -> None:
    """Its sources go to the app's private copy only, never to the files the edge serves."""
    from anchor_deploy.model.apps import AppConfig

    project = app.project()
    live = app.deploy(project, b"live")
    files = {"app.py": b"app = 1", "requirements.txt": b"flask", "public/logo.txt": b"logo"}
    for data in files.values():
        app.blobs.put(sha(data), iter([data]), 1024)
    manifest = [{"path": p, "sha256": sha(d), "size": len(d), "mode": 0o644} for p, d in files.items()]
    # Built as the build would: materialized with its app config, then READY.
    dpl = app.deployments.create(project, {"files": manifest, "target": "preview"}, ADMIN)
    assert dpl.app == AppConfig(static_dir="public")
    app.store.set_status(dpl.id, DeploymentStatus.BUILDING)
    app.files.materialize(dpl.id, app.store.manifest(dpl.id), dpl.app)
    app.store.set_status(dpl.id, DeploymentStatus.READY)
    app.files.remove(dpl.id)
    assert dpl.id in app.reconciler.run_once().rebuilt
    assert app.files.read(dpl.id, "logo.txt") == b"logo"
    assert app.files.read(dpl.id, "app/app.py") == b"app = 1"
    for served in ("app.py", "requirements.txt", "public/logo.txt"):
        with pytest.raises(KeyError):
            app.files.read(dpl.id, served)
    assert app.served(project) == live.id
