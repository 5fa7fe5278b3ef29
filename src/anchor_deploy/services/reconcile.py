"""The reconciler: makes the data planes match the database, idempotently, on start and after failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from anchor_deploy.model.entities import Deployment, DeploymentStatus
from anchor_deploy.ports import DeploymentFiles, Edge, Store
from anchor_deploy.services.aliases import AliasService
from anchor_deploy.services.background import BackgroundLoop

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    rebuilt: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    pointed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)


class Reconciler(BackgroundLoop):
    """A full pass is O(hosts + deployments) (about 0.7 s at 10,000 projects), so it runs at start-up, when
    an apply failed (``request``), and otherwise only every ``interval`` seconds as a safety net: a pass
    shares the API's process, and a frequent one would show in rollback latencies."""

    thread_name = "reconciler"

    def __init__(
        self,
        store: Store,
        files: DeploymentFiles,
        edge: Edge,
        aliases: AliasService,
        submit_build: Callable[[str], None],
        present_deployments: Callable[[], list[str]],
        interval: float = 600.0,
    ) -> None:
        self._store = store
        self._files = files
        self._edge = edge
        self._aliases = aliases
        self._submit = submit_build
        self._present = present_deployments
        self._interval = interval
        super().__init__()
        self._lock = threading.Lock()

    def run_once(self, startup: bool = False) -> ReconcileReport:
        """One pass. At start-up, builds that a previous process left QUEUED or BUILDING are queued again."""
        with self._lock:
            report = ReconcileReport()
            ready = self._store.deployments_with_status([DeploymentStatus.READY])
            self._builds(report, ready, requeue=startup)
            self._production_after_crash(report, ready)
            self._edge_hosts(report)
            self._sweep(report)
            return report

    def _builds(self, report: ReconcileReport, ready: list[Deployment], requeue: bool) -> None:
        for deployment in ready:
            if not self._files.exists(deployment.id):
                # With its app config: an app's sources must never land in the served public/ directory.
                self._files.materialize(deployment.id, self._store.manifest(deployment.id), deployment.app)
                report.rebuilt.append(deployment.id)
        pending = [DeploymentStatus.QUEUED, DeploymentStatus.BUILDING]
        for deployment in self._store.deployments_with_status(pending) if requeue else []:
            self._submit(deployment.id)
            report.requeued.append(deployment.id)

    def _production_after_crash(self, report: ReconcileReport, ready: list[Deployment]) -> None:
        """A production build that became READY just before a crash still gets its go-live decided."""
        for deployment in ready:
            if not deployment.go_live_pending:
                continue
            project = self._store.project_by_id(deployment.project_id)
            if project is not None and self._aliases.deployed(project, deployment):
                report.promoted.append(deployment.id)

    def _edge_hosts(self, report: ReconcileReport) -> None:
        current = self._edge.current()
        wanted: set[str] = set()
        for route, deployment_id in self._store.host_targets():
            if deployment_id is None or not self._files.exists(deployment_id):
                continue
            wanted.add(route.host)
            if current.get(route.host) != (route.kind, deployment_id):
                self._edge.point(route.host, route.kind, deployment_id)
                report.pointed.append(route.host)
        for host in current.keys() - wanted:
            self._edge.remove(host)
            report.removed.append(host)

    def _sweep(self, report: ReconcileReport) -> None:
        """Directories of deployments the database no longer knows (a crash during a project delete)."""
        for deployment_id in self._present():
            if self._store.deployment(deployment_id) is None:
                self._files.remove(deployment_id)
                report.swept.append(deployment_id)

    # -- background loop ---------------------------------------------------------------------------
    def request(self) -> None:
        self.wake()

    def _loop(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                report = self.run_once()
                delay = 0.2
                if any(vars(report).values()):
                    log.info("reconciled: %s", {k: len(v) for k, v in vars(report).items() if v})
            except Exception:
                log.exception("reconcile failed; retrying in %.1fs", delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._interval)
                self._wake.set()
