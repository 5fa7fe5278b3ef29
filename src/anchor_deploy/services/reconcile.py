"""The reconciler: makes the data planes match the database, idempotently, on start and after failures.

A READY deployment whose directory cannot be built (a blob missing or damaged) is *damaged*: it is left
out of the edge (its hosts answer the edge's 404), reported, and tried again on each pass, and at once when
the blob it waits for is uploaded. The damaged set is a fact about the data plane, not the database: it is
recomputed by every pass and lives in memory only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from anchor_deploy.model.entities import Deployment, DeploymentStatus
from anchor_deploy.model.errors import AnchorError
from anchor_deploy.ports import DeploymentFiles, Edge
from anchor_deploy.ports.store import ServingRepositories
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
    damaged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Damage:
    """Why a deployment cannot be served, and the blob it waits for (None: retried on each pass)."""

    reason: str
    digest: str | None = None


class Reconciler(BackgroundLoop):
    """A full pass is O(hosts + deployments) (about 0.7 s at 10,000 projects), so it runs at start-up, when
    an apply failed (``request``), and otherwise only every ``interval`` seconds as a safety net: a pass
    shares the API's process, and a frequent one would show in rollback latencies."""

    thread_name = "reconciler"

    def __init__(
        self,
        store: ServingRepositories,
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
        self._lock = threading.RLock()
        self._damaged: dict[str, Damage] = {}

    def run_once(self, startup: bool = False) -> ReconcileReport:
        """One pass. At start-up, builds that a previous process left QUEUED or BUILDING are queued again.
        A deployment that cannot be built is marked damaged: it never fails the pass."""
        with self._lock:
            report = ReconcileReport()
            ready = self._store.deployments_with_status([DeploymentStatus.READY])
            self._builds(report, ready, requeue=startup)
            self._production_after_crash(report, ready)
            self._edge_hosts(report)
            self._sweep(report)
            return report

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No pass runs meanwhile (fsck's repairs take a deployment's directory away or swap its files)."""
        with self._lock:
            yield

    def damaged(self) -> dict[str, Damage]:
        """The deployments the last pass could not build: id -> why."""
        return dict(self._damaged)

    def damage_of(self, deployment_id: str) -> Damage | None:
        return self._damaged.get(deployment_id)

    def waits_for(self, digest: str) -> bool:
        """Whether a damaged deployment waits for this blob (then an upload of it asks for a pass)."""
        return any(damage.digest == digest for damage in list(self._damaged.values()))

    def _builds(self, report: ReconcileReport, ready: list[Deployment], requeue: bool) -> None:
        damaged: dict[str, Damage] = {}
        for deployment in ready:
            if self._files.exists(deployment.id):
                continue
            try:
                # With its app config: an app's sources must never land in the served public/ directory.
                self._files.materialize(deployment.id, self._store.manifest(deployment.id), deployment.app)
            except Exception as exc:
                damaged[deployment.id] = self._damage(deployment.id, exc)
                report.damaged.append(deployment.id)
                continue
            report.rebuilt.append(deployment.id)
            if deployment.id in self._damaged:
                log.info("deployment %s is whole again and served", deployment.id)
        self._damaged = damaged
        pending = [DeploymentStatus.QUEUED, DeploymentStatus.BUILDING]
        for deployment in self._store.deployments_with_status(pending) if requeue else []:
            self._submit(deployment.id)
            report.requeued.append(deployment.id)

    def _damage(self, deployment_id: str, exc: Exception) -> Damage:
        if isinstance(exc, AnchorError):
            digest = exc.extra.get("digest")
            damage = Damage(exc.message, digest if isinstance(digest, str) else None)
        else:
            damage = Damage(f"{type(exc).__name__}: {exc}")
        if self._damaged.get(deployment_id) != damage:  # said once, not on every pass
            if isinstance(exc, AnchorError):
                log.warning("deployment %s is damaged and not served: %s", deployment_id, damage.reason)
            else:
                log.error("deployment %s is damaged and not served", deployment_id, exc_info=exc)
        return damage

    def _production_after_crash(self, report: ReconcileReport, ready: list[Deployment]) -> None:
        """A production build that became READY just before a crash still gets its go-live decided (once
        it can be served: a damaged one waits)."""
        for deployment in ready:
            if not deployment.go_live_pending or deployment.id in self._damaged:
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
