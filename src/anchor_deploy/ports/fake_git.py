"""The GitRepository port in memory: a part of FakeStore (ports/fakes.py), on its lock and dictionaries.

A branch host is kept in the store's hosts as a movable alias (kind ALIAS) that carries its own deployment
id, as SqliteStore serves its 'branch' rows."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.entities import Deployment, DeploymentStatus, HostKind, HostRoute
from anchor_deploy.model.errors import Conflict, DeploymentNotFound, NameTaken, ProjectNotFound
from anchor_deploy.model.git import BranchAlias, GitConnection, GitSecrets
from anchor_deploy.model.manifest import ManifestFile


class FakeGit:
    """Mixed into FakeStore, which provides ``_lock``, ``_projects``, ``_hosts`` and ``_deployments``."""

    _lock: threading.RLock
    _projects: dict[str, Any]
    _hosts: dict[str, HostRoute]
    _deployments: dict[str, Any]

    def _git_state(self) -> dict[str, Any]:
        state: dict[str, Any] | None = getattr(self, "_git", None)
        if state is None:
            state = {"connections": {}, "deliveries": {}, "branches": {}}
            self._git = state
        return state

    def forget_git(self, project_id: str) -> None:
        """The project's git rows go with it (called by delete_project)."""
        state = self._git_state()
        state["connections"].pop(project_id, None)
        state["deliveries"] = {k: v for k, v in state["deliveries"].items() if k[0] != project_id}
        state["branches"] = {k: v for k, v in state["branches"].items() if k[0] != project_id}

    def is_branch_host(self, host: str) -> bool:
        return any(b.host == host for b in self._git_state()["branches"].values())

    def connect_git(self, connection: GitConnection, secrets: GitSecrets) -> None:
        with self._lock:
            if connection.project_id not in self._projects:
                raise ProjectNotFound(f"project {connection.project_id} not found")
            state = self._git_state()
            state["connections"][connection.project_id] = (connection, secrets)

    def git_connection(self, project_id: str) -> GitConnection | None:
        with self._lock:
            found = self._git_state()["connections"].get(project_id)
            if found is None:
                return None
            connection: GitConnection = found[0]
            secrets: GitSecrets = found[1]
            return dataclasses.replace(
                connection,
                has_credentials=secrets.credentials is not None,
                has_forge_token=secrets.forge_token is not None,
            )

    def git_secrets(self, project_id: str) -> GitSecrets | None:
        with self._lock:
            found = self._git_state()["connections"].get(project_id)
            return None if found is None else found[1]

    def disconnect_git(self, project_id: str) -> bool:
        with self._lock:
            # Delivery ids stay (they expire by age): a replay after a reconnect is not built again.
            return self._git_state()["connections"].pop(project_id, None) is not None

    def record_delivery(self, project_id: str, delivery_id: str, at: float) -> bool:
        with self._lock:
            deliveries = self._git_state()["deliveries"]
            if (project_id, delivery_id) in deliveries:
                return False
            deliveries[(project_id, delivery_id)] = at
            return True

    def forget_deliveries(self, before: float) -> int:
        with self._lock:
            state = self._git_state()
            kept = {k: v for k, v in state["deliveries"].items() if v >= before}
            gone = len(state["deliveries"]) - len(kept)
            state["deliveries"] = kept
            return gone

    def _with_target(self, alias: BranchAlias) -> BranchAlias:
        route = self._hosts.get(alias.host)
        return dataclasses.replace(alias, deployment_id=None if route is None else route.deployment_id)

    def branch_aliases(self, project_id: str) -> list[BranchAlias]:
        with self._lock:
            branches = self._git_state()["branches"]
            return [self._with_target(b) for k, b in sorted(branches.items()) if k[0] == project_id]

    def branch_alias(self, project_id: str, branch: str) -> BranchAlias | None:
        with self._lock:
            found = self._git_state()["branches"].get((project_id, branch))
            return None if found is None else self._with_target(found)

    def move_branch(self, alias: BranchAlias, expected_from: str | None) -> None:
        with self._lock:
            if alias.project_id not in self._projects:
                raise ProjectNotFound(f"project {alias.project_id} not found")
            branches = self._git_state()["branches"]
            key = (alias.project_id, alias.branch)
            current = branches.get(key)
            if current is None:
                if expected_from is not None:
                    raise Conflict(f"branch {alias.branch!r} has no alias any more")
                if alias.host in self._hosts:
                    raise NameTaken(f"hostname {alias.host} is already in use")
            elif self._with_target(current).deployment_id != expected_from:
                raise Conflict(f"branch {alias.branch!r} moved meanwhile")
            host = alias.host if current is None else current.host
            self._hosts[host] = HostRoute(host, HostKind.ALIAS, alias.project_id, alias.deployment_id)
            branches[key] = dataclasses.replace(alias, host=host)

    def remove_branch(self, project_id: str, branch: str) -> str | None:
        with self._lock:
            found = self._git_state()["branches"].pop((project_id, branch), None)
            if found is None:
                return None
            self._hosts.pop(found.host, None)
            return str(found.host)

    def set_source_files(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        app: AppConfig | None,
        sealed_env: bytes,
        meta: dict[str, Any],
    ) -> Deployment:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            if stored is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            current: Deployment = stored.deployment
            if current.status != DeploymentStatus.BUILDING or current.file_count != 0:
                raise Conflict(f"deployment {deployment_id} is {current.status} and cannot take new files")
            stored.files = tuple(files)
            stored.sealed_env = sealed_env
            stored.deployment = dataclasses.replace(
                current,
                file_count=len(files),
                total_size=sum(f.size for f in files),
                app=app,
                meta=dict(meta),
            )
            updated: Deployment = stored.deployment
            return dataclasses.replace(updated)
