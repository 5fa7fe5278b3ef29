"""The database port, split by aggregate. Every method is atomic on its own; compound moves are
compare-and-set so that two writers (threads here, Lambda instances on AWS) never lose an update."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from anchor_deploy.model.domains import Domain
from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    HostRoute,
    MoveReason,
    Project,
    Session,
    Token,
    TokenSource,
)
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.dns_zones import DnsLinkRepository
from anchor_deploy.ports.leases import LeaseRepository


class TokenRepository(Protocol):
    def add_token(self, token: Token, secret_hash: str) -> None:
        """Conflict if the secret is taken; ProjectNotFound for a project that does not exist."""
        ...

    def token_by_hash(self, secret_hash: str) -> Token | None: ...

    def token_by_id(self, token_id: str) -> Token | None: ...

    def list_tokens(self) -> list[Token]:
        """Every token, oldest first (ties by id)."""
        ...

    def has_admin_token(self) -> bool: ...

    def delete_token(self, token_id: str) -> bool:
        """Revoke: the token is gone at once (its secret no longer authenticates); False if it was not."""
        ...

    def set_token_source(self, token_id: str, source: TokenSource) -> bool: ...

    def touch_token(self, token_id: str, at: float, interval: float) -> bool:
        """Record a use at ``at`` unless one was recorded less than ``interval`` seconds before (a write at
        most once per interval, whatever the number of requests); True if it wrote."""
        ...


class SessionRepository(Protocol):
    """Dashboard sessions, looked up by the sha256 of the cookie's secret (the secret is never stored)."""

    def add_session(self, session: Session, secret_hash: str) -> None:
        """Conflict if the secret's hash (or the id) is taken; TokenNotFound if the token is gone (revoked
        while signing in). Deleting a token (or its project) deletes its sessions."""
        ...

    def session_by_hash(self, secret_hash: str) -> Session | None:
        """The session, expired or not: the caller judges expiry with its clock."""
        ...

    def delete_session(self, session_id: str) -> bool: ...

    def delete_expired_sessions(self, now: float) -> int:
        """Drop every session whose expires_at is at or before ``now``; how many went."""
        ...


class ProjectRepository(Protocol):
    def add_project(self, project: Project, hosts: Sequence[HostRoute]) -> None:
        """Insert the project and claim its hosts; NameTaken if the name or a host is held."""
        ...

    def project_by_name(self, name: str) -> Project | None: ...

    def project_by_id(self, project_id: str) -> Project | None: ...

    def project_number(self, project_id: str) -> int | None:
        """A small positive integer unique among live projects, stable for the project's life (the local
        sandbox derives a project's uid from it)."""
        ...

    def list_projects(self) -> list[Project]: ...

    def delete_project(self, project_id: str) -> list[str]:
        """Delete the project with its deployments and hosts; return the hosts released."""
        ...


class DeploymentRepository(Protocol):
    def add_deployment(
        self, deployment: Deployment, files: Sequence[ManifestFile], host: HostRoute, sealed_env: bytes = b""
    ) -> None:
        """Insert a deployment with its manifest, its frozen (sealed) environment, and claim its immutable
        host (NameTaken if held)."""
        ...

    def sealed_env(self, deployment_id: str) -> bytes: ...

    def delete_deployment(self, deployment_id: str) -> list[str]:
        """Delete one deployment with its logs and host; return the hosts released."""
        ...

    def deployment(self, deployment_id: str) -> Deployment | None: ...

    def manifest(self, deployment_id: str) -> list[ManifestFile]: ...

    def list_deployments(
        self, project_id: str, limit: int | None = None, offset: int = 0
    ) -> list[Deployment]:
        """Newest first; a page of at most ``limit`` after skipping ``offset`` (all of them by default).
        ValueError for a negative limit or offset (model/paging.py)."""
        ...

    def count_deployments(self, project_id: str) -> int: ...

    def deployments_with_status(
        self, statuses: Sequence[DeploymentStatus], limit: int | None = None
    ) -> list[Deployment]:
        """Deployments in any of ``statuses``, oldest first; only the oldest ``limit`` if given."""
        ...

    def set_status(
        self, deployment_id: str, status: DeploymentStatus, error: str | None = None
    ) -> Deployment:
        """Move a deployment along its state machine; Conflict if the transition is not allowed.
        A production deployment becoming READY is marked go_live_pending in the same write."""
        ...


class AliasRepository(Protocol):
    def move_production(
        self,
        project_id: str,
        expected_from: str | None,
        to_deployment_id: str,
        reason: MoveReason,
        token_name: str,
        pinned: bool,
    ) -> AliasMove:
        """Compare-and-set production from ``expected_from`` to ``to_deployment_id``, set ``pinned`` and
        append the history row, all at once. Conflict if production is no longer ``expected_from``."""
        ...

    def set_pinned(self, project_id: str, pinned: bool) -> None: ...

    def settle_go_live(self, deployment_id: str) -> None:
        """The go-live of a READY production deployment was decided: clear go_live_pending."""
        ...

    def alias_history(self, project_id: str) -> list[AliasMove]: ...

    def alias_history_page(self, project_id: str, limit: int, offset: int = 0) -> list[AliasMove]:
        """Newest first: at most ``limit`` moves after skipping the ``offset`` newest; the same moves as
        ``reversed(alias_history(project_id))[offset:offset + limit]``. ValueError if either is negative."""
        ...

    def count_alias_moves(self, project_id: str) -> int: ...


class BuildLogRepository(Protocol):
    def append_log(self, deployment_id: str, lines: Sequence[str]) -> None: ...

    def read_log(self, deployment_id: str, after: int = 0) -> list[tuple[int, float, str]]:
        """Lines with sequence numbers greater than ``after``: (seq, time, text)."""
        ...


class EnvRepository(Protocol):
    def set_env(self, project_id: str, key: str, sealed_value: bytes, secret: bool) -> None: ...

    def list_env(self, project_id: str) -> list[tuple[str, bytes, bool, float]]:
        """(key, sealed value, secret, updated at), sorted by key."""
        ...

    def delete_env(self, project_id: str, key: str) -> bool: ...


class HostRepository(Protocol):
    def host_target(self, host: str) -> tuple[HostRoute, str | None] | None:
        """The route for ``host`` and the deployment it should serve now (None: nothing to serve yet)."""
        ...

    def host_targets(self) -> list[tuple[HostRoute, str | None]]:
        """Every host with the deployment it should serve now."""
        ...

    def project_hosts(self, project_id: str) -> list[HostRoute]: ...


class DomainRepository(Protocol):
    def add_domain(self, domain: Domain) -> None:
        """Claim the name for the domain's project; DomainTaken if any project holds it."""
        ...

    def domain(self, name: str) -> Domain | None: ...

    def project_domains(self, project_id: str) -> list[Domain]: ...

    def all_domains(self) -> list[Domain]: ...

    def domains_due(self, now: float, limit: int = 100) -> list[Domain]:
        """Domains whose next check is due (deleting ones included), the most overdue first."""
        ...

    def next_domain_check(self) -> float | None: ...

    def save_domain(self, domain: Domain, certificate: tuple[bytes, bytes] | None = None) -> bool:
        """Update a domain's state (and, if given, its certificate chain and sealed key) unless it was
        deleted or marked for deletion meanwhile; False then."""
        ...

    def mark_domain_deleting(self, name: str) -> Domain | None: ...

    def defer_domain_removal(self, name: str, until: float, failures: int, reason: str) -> bool:
        """A removal that could not finish yet (a certificate still in use) is looked at again at
        ``until``, with its count of tries and why; only rows marked deleting. False if there is none."""
        ...

    def domain_certificate(self, name: str) -> tuple[bytes, bytes] | None:
        """(chain PEM, sealed key) of the domain's current certificate."""
        ...

    def delete_domain(self, name: str) -> bool: ...


class Store(
    TokenRepository,
    SessionRepository,
    ProjectRepository,
    DeploymentRepository,
    AliasRepository,
    HostRepository,
    BuildLogRepository,
    EnvRepository,
    DomainRepository,
    LeaseRepository,
    DnsLinkRepository,
    Protocol,
):
    """All repositories of one database."""


# What the services need, each of them: a service takes the repositories it uses, not the whole Store.
class ReleaseRepositories(ProjectRepository, DeploymentRepository, AliasRepository, Protocol):
    """Projects, their deployments and production's history: alias moves, retention."""


class BuildRepositories(ProjectRepository, DeploymentRepository, BuildLogRepository, Protocol):
    """Deployments with their projects and build logs: creating and building deployments."""


class ServingRepositories(ProjectRepository, DeploymentRepository, HostRepository, Protocol):
    """What the reconciler converges the data planes on: deployments, projects, every host's target."""


class ProjectRepositories(ProjectRepository, DeploymentRepository, Protocol):
    """Projects with their deployments: creating and deleting projects."""
