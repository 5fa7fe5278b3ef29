"""The services assembled from the in-memory fakes, as providers/local.py assembles them from adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from anchor_deploy.adapters.delegated_issuer import DelegatedIssuer
from anchor_deploy.adapters.local.edge_plane import EdgePlane
from anchor_deploy.model.entities import Deployment, Project, Target, Token
from anchor_deploy.model.names import production_host
from anchor_deploy.ports.fakes import (
    FakeBlobStore,
    FakeDeploymentFiles,
    FakeEdge,
    FakeEnvironments,
    FakePublicSuffixes,
    FakeRuntime,
    FakeStore,
    FakeUnicodeScripts,
)
from anchor_deploy.providers.services import Adapters, DomainAdapters, Hooks, Services, assemble
from anchor_deploy.services.aliases import AliasService
from anchor_deploy.services.auth import TokenService
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.projects import ProjectService
from anchor_deploy.services.reconcile import Reconciler
from anchor_deploy.settings import Settings
from tests.support import TickingClock, sha
from tests.unit.domain_fakes import (
    FakeDnsLookup,
    FakeDomainEdge,
    FakeIssuer,
    FakeProbe,
    FakeServedCertificates,
    XorBox,
)

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
    services: Services
    runtime: FakeRuntime
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


class StaticStatus:
    """The provider's parts as the fakes have them: no edge process, user code not confined."""

    def edge_healthy(self) -> bool | None:
        return None

    def user_code(self) -> tuple[str | None, bool]:
        return None, True


def fake_adapters(clock: TickingClock) -> Adapters:
    blobs = FakeBlobStore()
    certificates = FakeServedCertificates()
    domain_edge = FakeDomainEdge()
    store = FakeStore(clock)
    box = XorBox()
    lookup = FakeDnsLookup()
    suffixes = FakePublicSuffixes()
    settings = Settings(base_domain=BASE)
    issuer = DelegatedIssuer(
        FakeIssuer(clock),
        lookup,
        settings.validation_zone_name,
        store.domain_certificate,
        suffixes.public_suffix,
    )
    plane = EdgePlane(
        store,
        box,
        certificates,
        domain_edge,
        FakeProbe(certificates, domain_edge),
        BASE,
        settings.edge_host,
        settings.edge_address_list,
    )
    return Adapters(
        store=store,
        blobs=blobs,
        files=FakeDeploymentFiles(blobs),
        edge=FakeEdge(),
        environments=FakeEnvironments(),
        runtime=FakeRuntime(),
        box=box,
        domains=DomainAdapters(
            lookup=lookup,
            issuer=issuer,
            plane=plane,
            suffixes=suffixes,
            scripts=FakeUnicodeScripts(),
        ),
        status=StaticStatus(),
    )


def make_app() -> App:
    """The services as every provider assembles them (providers/services.py), on the fakes; builds are
    recorded in ``submitted`` instead of queued, edge failures in ``edge_failures``."""
    clock = TickingClock()
    adapters = fake_adapters(clock)
    submitted: list[str] = []
    edge_failures: list[str] = []
    hooks = Hooks(submit_build=submitted.append, on_edge_failure=lambda: edge_failures.append("edge"))
    settings = Settings(base_domain=BASE, max_blob_size=MAX_FILE)
    services = assemble(settings, adapters, clock, hooks)
    assert isinstance(adapters.store, FakeStore) and isinstance(adapters.blobs, FakeBlobStore)
    assert isinstance(adapters.files, FakeDeploymentFiles) and isinstance(adapters.edge, FakeEdge)
    assert isinstance(adapters.runtime, FakeRuntime)
    return App(
        clock,
        adapters.store,
        adapters.blobs,
        adapters.files,
        adapters.edge,
        services.sync,
        services.aliases,
        services.deployments,
        services.projects,
        services.tokens,
        services.reconciler,
        services,
        adapters.runtime,
        submitted,
        edge_failures,
    )


@pytest.fixture
def app() -> App:
    return make_app()
