"""Projects: create, look up (with authorization), delete (and stop serving their hosts)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from anchor_deploy.model.entities import HostKind, HostRoute, Project, Token
from anchor_deploy.model.errors import ProjectNotFound
from anchor_deploy.model.names import production_host, validate_project_name
from anchor_deploy.ports import DeploymentFiles, Edge
from anchor_deploy.ports.store import ProjectRepositories
from anchor_deploy.services.auth import can_access, require_admin


class ProjectService:
    def __init__(
        self,
        store: ProjectRepositories,
        edge: Edge,
        files: DeploymentFiles,
        base_domain: str,
        clock: Callable[[], float],
        on_edge_failure: Callable[[], None],
        before_delete: Callable[[Project], None] = lambda project: None,
        after_delete: Callable[[Project, list[str]], None] = lambda project, deployments: None,
    ) -> None:
        self._store = store
        self._edge = edge
        self._files = files
        self._base = base_domain
        self._clock = clock
        self._on_edge_failure = on_edge_failure
        # Runs once the delete is authorized, before the rows go: custom domains are unserved and revoked.
        self.before_delete = before_delete
        # Runs once the rows are gone, with the project's deployment ids: its app workers are stopped.
        self.after_delete = after_delete

    def create(self, name: object, token: Token) -> Project:
        require_admin(token)
        name = validate_project_name(name)
        project = Project(id="prj_" + secrets.token_hex(8), name=name, created_at=self._clock())
        alias = HostRoute(production_host(name, self._base), HostKind.ALIAS, project.id, None)
        self._store.add_project(project, [alias])
        return project

    def get(self, name: str, token: Token) -> Project:
        """The project; ProjectNotFound if it is missing or the token is limited to another project (the
        same answer, so a project token cannot tell other projects' names from unused ones)."""
        project = self._store.project_by_name(name)
        if project is None or not can_access(token, project):
            raise ProjectNotFound(f"project {name[:80]!r} not found")
        return project

    def reload(self, project: Project) -> Project:
        fresh = self._store.project_by_id(project.id)
        if fresh is None:
            raise ProjectNotFound(f"project {project.name!r} not found")
        return fresh

    def all(self) -> list[Project]:
        """Every project (the platform's own start-up work, not a caller's view)."""
        return self._store.list_projects()

    def list(self, token: Token) -> list[Project]:
        return [p for p in self._store.list_projects() if token.project_id in (None, p.id)]

    def delete(self, name: str, token: Token) -> Project:
        project = self.get(name, token)
        require_admin(token)
        self.before_delete(project)
        deployments = [d.id for d in self._store.list_deployments(project.id)]
        hosts = self._store.delete_project(project.id)
        self.after_delete(project, deployments)
        try:
            for host in hosts:
                self._edge.remove(host)
            for deployment_id in deployments:
                self._files.remove(deployment_id)
        except Exception:
            self._on_edge_failure()
            raise
        return project
