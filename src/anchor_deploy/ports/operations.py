"""What the operator-facing routes read of a provider: how its parts are, the root certificate users may
trust, and backups."""

from __future__ import annotations

from typing import Protocol


class ProviderStatus(Protocol):
    """The provider's own parts, for /v1/health."""

    def edge_healthy(self) -> bool | None:
        """Whether the edge process this platform runs answers; None if it runs none (or not yet)."""
        ...

    def user_code(self) -> tuple[str | None, bool]:
        """How user code (app builds and workers) is confined, in words (None: not confined), and whether
        apps can run at all."""
        ...


class RootCertificate(Protocol):
    """The root of the CA that issues the platform's own certificates (the ``internal`` issuer)."""

    def root_certificate(self) -> tuple[str, str]:
        """(where the root is kept, its PEM text)."""
        ...


class BackupStream(Protocol):
    """A backup archive being produced: its exact size and member counts known before the first byte."""

    size: int
    counts: dict[str, int]

    def __next__(self) -> bytes: ...

    def close(self) -> None:
        """Release what the stream holds (snapshots, the pause of collection); idempotent."""
        ...


class Backups(Protocol):
    def open(self) -> BackupStream:
        """Start a backup of everything the platform stores; BackupFailed if it cannot be made."""
        ...


class PublicUrls(Protocol):
    """Where a provider serves projects and deployments when that is not the platform's own host names under
    its base domain (AWS: a project's CloudFront domain, a deployment's function URL)."""

    def production_url(self, project_id: str) -> str | None:
        """The project's production URL; None when the provider has none (yet) for it."""
        ...

    def deployment_url(self, project_id: str, deployment_id: str) -> str | None:
        """The deployment's own URL; None when the provider has none (yet) for it."""
        ...
