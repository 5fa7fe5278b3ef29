"""EdgeSync across control-plane processes: two EdgeSync objects (two processes, each with its own locks) on
one store and one edge (the local provider's processes share the data dir's links). A stale write must never
be the last one."""

from __future__ import annotations

from collections.abc import Callable

from anchor_deploy.model.entities import (
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    MoveReason,
    Project,
    Target,
)
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.fakes import FakeEdge, FakeStore
from anchor_deploy.services.edge_sync import EdgeSync
from tests.support import sha

HOST = "site.test"


class InterleavedEdge(FakeEdge):
    """Runs ``before_write`` (once) just before the next write lands: another process acting meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.before_write: Callable[[], None] | None = None
        self.writes: list[str] = []

    def point(self, host: str, kind: HostKind, deployment_id: str) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()
        self.writes.append(deployment_id)
        super().point(host, kind, deployment_id)


def site(store: FakeStore, count: int) -> tuple[Project, list[str]]:
    project = Project("prj_site", "site", 1.0)
    store.add_project(project, [HostRoute(HOST, HostKind.ALIAS, project.id, None)])
    ids = []
    for n in range(count):
        deployment = Deployment(
            f"dpl_{n:012d}", project.id, DeploymentStatus.QUEUED, Target.PRODUCTION, 10.0 + n, 1, 1
        )
        files = [ManifestFile("index.html", sha(b"x"), 1, 0o644)]
        store.add_deployment(
            deployment, files, HostRoute(f"d{n}.test", HostKind.DEPLOYMENT, project.id, deployment.id)
        )
        store.set_status(deployment.id, DeploymentStatus.BUILDING)
        store.set_status(deployment.id, DeploymentStatus.READY)
        ids.append(deployment.id)
    return project, ids


def test_a_write_that_read_the_database_before_another_process_moved_it_is_written_again() -> None:
    store, edge = FakeStore(), InterleavedEdge()
    project, (first, second) = site(store, 2)
    store.move_production(project.id, None, first, MoveReason.DEPLOY, "ci", False)
    mine, theirs = EdgeSync(store, edge), EdgeSync(store, edge)

    def other_process_moves_and_applies() -> None:
        store.move_production(project.id, first, second, MoveReason.ROLLBACK, "ops", True)
        assert theirs.apply(HOST)

    # This process read `first`; before its write lands, the other one commits `second` and applies it.
    edge.before_write = other_process_moves_and_applies
    assert mine.apply(HOST)
    assert edge.writes == [second, first, second]  # theirs, my stale one, mine again after the re-read
    assert edge.current()[HOST] == (HostKind.ALIAS, second)


def test_an_apply_of_a_host_that_keeps_moving_gives_up_and_asks_the_reconciler() -> None:
    store, edge = FakeStore(), InterleavedEdge()
    project, ids = site(store, 8)
    store.move_production(project.id, None, ids[0], MoveReason.DEPLOY, "ci", False)
    asked: list[str] = []
    sync = EdgeSync(store, edge)
    sync.on_failure = lambda: asked.append("reconcile")
    serving = iter(ids[1:])
    current = [ids[0]]

    def move_again() -> None:
        target = next(serving)
        store.move_production(project.id, current[0], target, MoveReason.PROMOTE, "ops", False)
        current[0] = target
        edge.before_write = move_again

    edge.before_write = move_again
    assert not sync.apply(HOST)
    assert asked == ["reconcile"] and len(edge.writes) == 5
