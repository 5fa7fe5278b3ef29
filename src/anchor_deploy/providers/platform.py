"""The platform the API and the CLI get: the services, the settings, and start/stop. The provider's own
parts (processes, sweeps, probes) start and stop through its ``Lifecycle``."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol

from anchor_deploy.model.errors import GitUnavailable
from anchor_deploy.ports.git_remote import GitHttpBackend
from anchor_deploy.providers.services import Services
from anchor_deploy.services.aliases import AliasService
from anchor_deploy.services.apps import EnvService
from anchor_deploy.services.auth import AdminSetup, TokenService
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.dns_automation import DnsLinks
from anchor_deploy.services.domains import DomainService
from anchor_deploy.services.git_deploys import GitDeploys
from anchor_deploy.services.health import HealthService
from anchor_deploy.services.integrity import IntegrityService
from anchor_deploy.services.operator import AuthorityService, BackupService
from anchor_deploy.services.projects import ProjectService
from anchor_deploy.services.sessions import SessionService
from anchor_deploy.services.uploads import UploadService
from anchor_deploy.services.urls import UrlService
from anchor_deploy.settings import Settings

log = logging.getLogger(__name__)


class Lifecycle(Protocol):
    """What a provider starts and stops around the services."""

    def prepare(self) -> None:
        """Before the first pass over the database: sweep what a crash left, probe, start the runtime."""
        ...

    def serve(self) -> None:
        """After the first pass: start serving (the edge and what it reaches). EdgeError if it cannot."""
        ...

    def stop(self) -> None: ...

    def notes(self) -> list[str]:
        """Lines for the operator once the platform is up: where things are, what to trust, warnings."""
        ...


@dataclass
class Platform:
    settings: Settings
    services: Services
    lifecycle: Lifecycle
    backups: BackupService
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def tokens(self) -> TokenService:
        return self.services.tokens

    @property
    def sessions(self) -> SessionService:
        return self.services.sessions

    @property
    def projects(self) -> ProjectService:
        return self.services.projects

    @property
    def deployments(self) -> DeploymentService:
        return self.services.deployments

    @property
    def aliases(self) -> AliasService:
        return self.services.aliases

    @property
    def env(self) -> EnvService:
        return self.services.env

    @property
    def domains(self) -> DomainService:
        return self.services.domains

    @property
    def dns_links(self) -> DnsLinks:
        return self.services.dns_links

    @property
    def integrity(self) -> IntegrityService:
        return self.services.integrity

    @property
    def uploads(self) -> UploadService:
        return self.services.uploads

    @property
    def health(self) -> HealthService:
        return self.services.health

    @property
    def authority(self) -> AuthorityService:
        return self.services.authority

    @property
    def urls(self) -> UrlService:
        return self.services.urls

    @property
    def git(self) -> GitDeploys:
        return self.services.git

    @property
    def has_git_remote(self) -> bool:
        return self.services.adapters.git_remote is not None

    @property
    def git_remote(self) -> GitHttpBackend:
        """Each project's git remote over smart HTTP; GitUnavailable where the provider has none."""
        backend = self.services.adapters.git_remote
        if backend is None:
            raise GitUnavailable("git push deploys are not available on this provider (yet)")
        return backend

    def start(self) -> AdminSetup:
        """Converge the data planes on the database, start serving and the loops; return what became of
        the admin token (a new secret to show once, env admin tokens revoked)."""
        s = self.services
        admin = s.tokens.ensure_admin(self.settings.admin_token)
        self.lifecycle.prepare()
        s.reconciler.run_once(startup=True)
        s.git.builds.catch_up()  # branch aliases a crash left behind their branch's newest READY build
        self.lifecycle.serve()
        s.runner.start()  # the reconciler's passes, domain checks, scrub and GC, each while its lease is held
        s.builds.start()  # after the runner, whose heartbeat renews the build leases
        threading.Thread(target=self._warm_production, name="warm-up", daemon=True).start()
        return admin

    def notes(self) -> list[str]:
        return self.lifecycle.notes()

    def stop(self) -> None:
        self._stopping.set()
        s = self.services
        s.runner.stop()
        s.builds.stop()
        self.lifecycle.stop()

    def _warm_production(self) -> None:
        s = self.services
        kept = {project.id: s.aliases.warm_set(project) for project in s.projects.all()}
        for project_id, deployment_ids in kept.items():
            s.apps.keep_warm(project_id, deployment_ids)
        # Environments READY apps lack (after a restore, say) are rebuilt, production's first; collection
        # waits, as it would not see an environment that is being made as in use.
        with s.retention.collection_paused():
            restored = set(s.apps.restore_environments(first=set().union(*kept.values())))
        # Read again: a deploy or rollback during a long rebuild has moved the warm sets since.
        for project in s.projects.all() if restored else []:
            current = s.aliases.warm_set(project)
            if current & restored:
                s.apps.keep_warm(project.id, current)
