"""Retention: old deployments are pruned by a policy, then what no kept deployment shares is collected."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from anchor_deploy.model.entities import DeploymentStatus, Project, last_switch
from anchor_deploy.ports import BlobStore, DeploymentFiles, Edge
from anchor_deploy.ports.runtime import EnvironmentBuilder
from anchor_deploy.ports.store import ReleaseRepositories

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_newest: int = 20  # per project
    keep_production: int = 10  # the last production deployments (by alias history)
    blob_grace_seconds: float = 3600.0  # an upload may wait this long for its manifest


class Retention:
    def __init__(
        self,
        store: ReleaseRepositories,
        files: DeploymentFiles,
        edge: Edge,
        blobs: BlobStore,
        envs: EnvironmentBuilder,
        stop_worker: Callable[[str], None],
        requirements_of: Callable[[str], tuple[bytes, str | None] | None],
        policy: RetentionPolicy = RetentionPolicy(),
    ) -> None:
        self._store = store
        self._files = files
        self._edge = edge
        self._blobs = blobs
        self._envs = envs
        self._stop_worker = stop_worker
        self._requirements_of = requirements_of
        self.policy = policy
        # Deployments a project's other aliases serve (its branches' previews): kept (set by the assembly)
        self.also_serving: Callable[[Project], set[str]] = lambda _project: set()
        # Reentrant: a backup stream dropped without being closed releases its pause from a finalizer,
        # which may run in any thread, even one inside collect().
        self._lock = threading.RLock()
        self._pauses = 0  # backups (and environment rebuilds) running: collection waits for them

    def plan(self, project: Project) -> list[str]:
        """Deployment ids the policy would delete (never one that serves, is building, or is kept)."""
        deployments = self._store.list_deployments(project.id)  # newest first
        keep = {d.id for d in deployments[: self.policy.keep_newest]}
        keep |= {d.id for d in deployments if not d.status.is_final}
        history = self._store.alias_history(project.id)
        recent_production: list[str] = []
        for move in reversed(history):
            if move.to_deployment_id not in recent_production:
                recent_production.append(move.to_deployment_id)
        keep |= set(recent_production[: self.policy.keep_production])
        switch = last_switch(history)
        if switch:  # production and the previous production (kept warm for rollbacks)
            keep |= {switch.to_deployment_id, switch.from_deployment_id or ""}
        current = self._store.project_by_id(project.id)
        if current and current.production_deployment_id:
            keep.add(current.production_deployment_id)
        keep |= self.also_serving(project)
        return [d.id for d in deployments if d.id not in keep]

    def prune(self, project: Project) -> list[str]:
        with self._lock:
            pruned = self.plan(project)
            for deployment_id in pruned:
                self._stop_worker(deployment_id)
                for host in self._store.delete_deployment(deployment_id):
                    self._edge.remove(host)
                self._files.remove(deployment_id)
            if pruned:
                log.info("pruned %d deployments of %s", len(pruned), project.name)
            return pruned

    @contextmanager
    def collection_paused(self) -> Iterator[None]:
        """No blob or environment is collected until the block ends. Entering waits for a collection that
        runs to finish, so a backup's snapshot taken inside the block keeps every blob it references."""
        with self._lock:
            self._pauses += 1
        try:
            yield
        finally:
            with self._lock:
                self._pauses -= 1

    def collect(self, now: float) -> tuple[int, int]:
        """Remove blobs and environments that no remaining deployment uses. Returns (blobs, envs); nothing
        while collection is paused (the next run collects it)."""
        with self._lock:
            if self._pauses:
                log.info("garbage collection skipped: a backup or an environment rebuild is running")
                return 0, 0
            busy = self._store.deployments_with_status([DeploymentStatus.QUEUED, DeploymentStatus.BUILDING])
            used_blobs: set[str] = set()
            used_envs: set[str] = set()
            for project in self._store.list_projects():
                for deployment in self._store.list_deployments(project.id):
                    used_blobs.update(f.sha256 for f in self._store.manifest(deployment.id))
                    if deployment.app is not None and deployment.status == DeploymentStatus.READY:
                        found = self._requirements_of(deployment.id)
                        env = self._envs.locate(*found) if found else None
                        if env is not None:
                            used_envs.add(env)
            trees = self._files.collect(now - self.policy.blob_grace_seconds)  # before their blobs go
            if trees:
                log.info("collected %d file trees no deployment serves", trees)
            blobs = self._blobs.collect(used_blobs, now - self.policy.blob_grace_seconds)
            envs = 0 if busy else self._envs.collect(used_envs)  # a build may be making one right now
            return blobs, envs
