"""fsck: every stored copy checked, the deployments that use a bad one named, and (with repair) damaged
copies quarantined, deployments rebuilt from good copies where there are some and taken down otherwise.
Also what follows an upload that replaced a damaged blob or brought back a missing one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from anchor_deploy.model.entities import Deployment, DeploymentStatus
from anchor_deploy.model.errors import BlobUnavailable, CopyGone, FsckRunning
from anchor_deploy.model.integrity import (
    BlobProblem,
    CopyKind,
    FsckReport,
    ProblemKind,
    StoredCopy,
)
from anchor_deploy.ports import BlobChecker, DeploymentFiles
from anchor_deploy.ports.store import DeploymentRepository
from anchor_deploy.services.reconcile import Reconciler

log = logging.getLogger(__name__)
# The deployments whose blobs must be in the store: what is served, and what is about to be built.
_NEEDING_BLOBS = [DeploymentStatus.READY, DeploymentStatus.QUEUED, DeploymentStatus.BUILDING]


class IntegrityService:
    def __init__(
        self,
        store: DeploymentRepository,
        blobs: BlobChecker,
        files: DeploymentFiles,
        reconciler: Reconciler,
        stop_worker: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._files = files
        self._reconciler = reconciler
        self._stop_worker = stop_worker
        self._clock = clock
        self._running = threading.Lock()

    # -- fsck --------------------------------------------------------------------------------------
    def fsck(self, repair: bool = False) -> FsckReport:
        """Check every copy at full speed (the edge keeps serving: it never waits on this process). One
        run at a time: FsckRunning if one is under way."""
        if not self._running.acquire(blocking=False):
            raise FsckRunning("an fsck is already running; wait for it to finish")
        try:
            started = self._clock()
            report = FsckReport(repair=repair)
            corrupt = self._check_copies(report)
            missing = self._missing_and_users(report, corrupt)
            if repair:
                self._repair(report, corrupt)
                self._reconciler.run_once()
            report.damaged = {d: damage.reason for d, damage in self._reconciler.damaged().items()}
            report.seconds = self._clock() - started
            if report.problems:
                log.warning(
                    "fsck%s: %d problem(s) in %d copies: %d damaged, %d missing blob(s)",
                    " --repair" if repair else "",
                    len(report.problems),
                    report.copies_checked,
                    len(report.problems) - len(missing),
                    len(missing),
                )
            return report
        finally:
            self._running.release()

    def _check_copies(self, report: FsckReport) -> dict[str, list[StoredCopy]]:
        corrupt: dict[str, list[StoredCopy]] = {}
        for copy in self._blobs.copies():
            try:
                wrong = self._blobs.check(copy)
            except CopyGone:
                continue  # collected (or replaced) since it was listed
            report.copies_checked += 1
            report.bytes_checked += copy.size
            if wrong is not None:
                corrupt.setdefault(copy.digest, []).append(copy)
                report.problems.append(
                    BlobProblem(copy.digest, copy.kind, ProblemKind.CORRUPT, wrong, copy.name)
                )
        return corrupt

    def _missing_and_users(self, report: FsckReport, corrupt: dict[str, list[StoredCopy]]) -> set[str]:
        """Adds a problem for each blob a deployment needs that is not stored; names each problem's users."""
        held: dict[str, bool] = {}
        users: dict[str, list[str]] = {}
        for deployment in self._store.deployments_with_status(_NEEDING_BLOBS):
            for entry in self._store.manifest(deployment.id):
                digest = entry.sha256
                if digest not in held:
                    held[digest] = self._blobs.has(digest)
                if not held[digest] or digest in corrupt:
                    found = users.setdefault(digest, [])
                    if not found or found[-1] != deployment.id:
                        found.append(deployment.id)
        missing = {digest for digest, present in held.items() if not present}
        for digest in sorted(missing):
            detail = "not in the store (a deployment needs it)"
            report.problems.append(BlobProblem(digest, CopyKind.BLOB, ProblemKind.MISSING, detail))
        for problem in report.problems:
            problem.deployments = users.get(problem.digest, [])
            if problem.problem is ProblemKind.MISSING:
                problem.action = "none: upload the blob again (a deploy that needs it uploads it)"
        return missing

    def _repair(self, report: FsckReport, corrupt: dict[str, list[StoredCopy]]) -> None:
        by_copy = {p.name: p for p in report.problems if p.name is not None}
        with self._reconciler.exclusive():
            for digest, copies in corrupt.items():
                for copy in copies:
                    note = f"fsck --repair: {by_copy[copy.name].detail}"
                    try:
                        by_copy[copy.name].action = f"quarantined to {self._blobs.quarantine(copy, note)}"
                    except CopyGone:
                        by_copy[copy.name].action = "gone before it could be quarantined"
                usable = self._blobs.restore(digest)
                users = next(iter(by_copy[c.name].deployments for c in copies), [])
                self._rebuild(report, digest, users, usable)

    def _rebuild(self, report: FsckReport, digest: str, users: list[str], usable: bool) -> None:
        """Each built deployment that used the damaged blob: its files swapped for good copies, or, with no
        good copy left, its directory taken away (it is then damaged until the blob is uploaded again)."""
        for deployment_id in users:
            deployment = self._store.deployment(deployment_id)
            if deployment is None or not self._files.exists(deployment_id):
                continue
            if usable and self._relinked(deployment, {digest}):
                if deployment_id not in report.relinked:
                    report.relinked.append(deployment_id)
                continue
            self._stop_worker(deployment_id)
            self._files.remove(deployment_id)
            if deployment_id not in report.taken_down:
                report.taken_down.append(deployment_id)
            log.warning("fsck --repair: %s is not served until blob %s is uploaded", deployment_id, digest)

    def _relinked(self, deployment: Deployment, digests: set[str]) -> bool:
        try:
            self._files.relink(deployment.id, self._store.manifest(deployment.id), digests, deployment.app)
            return True
        except BlobUnavailable as exc:
            log.warning("could not rebuild %s from good copies: %s", deployment.id, exc)
            return False

    # -- uploads -----------------------------------------------------------------------------------
    def blob_stored(self, digest: str, replaced: bool) -> None:
        """After an upload: a damaged blob it replaced is swapped out of every deployment that links it;
        a deployment waiting for the blob is built again (by the reconciler, right away). Never raises:
        the upload itself succeeded."""
        try:
            if replaced:
                self._relink_users(digest)
            if self._reconciler.waits_for(digest):
                self._reconciler.request()
        except Exception:
            log.exception("after the upload of blob %s", digest)

    def _relink_users(self, digest: str) -> None:
        count = 0
        for deployment in self._store.deployments_with_status([DeploymentStatus.READY]):
            if any(entry.sha256 == digest for entry in self._store.manifest(deployment.id)):
                count += self._relinked(deployment, {digest})
        log.info("blob %s was damaged and is replaced by an upload; %d deployment(s) relinked", digest, count)
