"""The services assembled from the in-memory fakes, as providers/local.py assembles them from adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from anchor_deploy.model.entities import Deployment, Project, Target, Token
from anchor_deploy.model.names import production_host
from anchor_deploy.ports.fakes import FakeBlobStore, FakeDeploymentFiles, FakeEdge, FakeStore
from anchor_deploy.services.aliases import AliasService, Faults
from anchor_deploy.services.auth import TokenService
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.projects import ProjectService
from anchor_deploy.services.reconcile import Reconciler
from tests.support import TickingClock, sha

BASE = "anchor.test"
MAX_FILE = 1 << 20
ADMIN = Token("tok_admin", "admin", None, 0.0)


@dataclass
class App:
    clock: TickingClock
    store: FakeStore
    blobs: FakeBlobStore
    files: FakeDeploymentFiles
    edge: FakeEdge
    sync: EdgeSync
    aliases: AliasService
    deployments: DeploymentService
    projects: ProjectService
    tokens: TokenService
    reconciler: Reconciler
    submitted: list[str] = field(default_factory=list)
    edge_failures: list[str] = field(default_factory=list)

    def project(self, name: str = "site") -> Project:
        return self.projects.create(name, ADMIN)

    def fresh(self, project: Project) -> Project:
        return self.projects.reload(project)

    def upload(self, data: bytes) -> str:
        self.blobs.put(sha(data), iter([data]), MAX_FILE)
        return sha(data)

    def create(
        self,
        project: Project,
        content: bytes = b"<h1>hello</h1>",
        target: Target = Target.PRODUCTION,
        token: Token = ADMIN,
    ) -> Deployment:
        files = [{"path": "index.html", "sha256": self.upload(content), "size": len(content)}]
        return self.deployments.create(project, {"files": files, "target": target.value}, token)

    def deploy(
        self, project: Project, content: bytes = b"<h1>hello</h1>", target: Target = Target.PRODUCTION
    ) -> Deployment:
        return self.deployments.build(self.create(project, content, target).id)

    def production(self, project: Project) -> str | None:
        return self.fresh(project).production_deployment_id

    def served(self, project: Project) -> str | None:
        """The deployment the edge serves at the project's production host."""
        found = self.edge.current().get(production_host(project.name, BASE))
        return None if found is None else found[1]


def make_app() -> App:
    clock = TickingClock()
    store = FakeStore(clock)
    blobs = FakeBlobStore()
    files = FakeDeploymentFiles(blobs)
    edge = FakeEdge()
    sync = EdgeSync(store, edge)
    aliases = AliasService(store, sync, BASE, Faults())
    deployments = DeploymentService(store, blobs, files, aliases, sync, BASE, MAX_FILE, clock)
    submitted: list[str] = []
    edge_failures: list[str] = []
    reconciler = Reconciler(store, files, edge, aliases, submitted.append, files.present)
    sync.on_failure = lambda: edge_failures.append("sync")
    projects = ProjectService(store, edge, files, BASE, clock, lambda: edge_failures.append("projects"))
    return App(
        clock,
        store,
        blobs,
        files,
        edge,
        sync,
        aliases,
        deployments,
        projects,
        TokenService(store, clock),
        reconciler,
        submitted,
        edge_failures,
    )


@pytest.fixture
def app() -> App:
    return make_app()
