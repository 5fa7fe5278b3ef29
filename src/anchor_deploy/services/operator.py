"""Operator downloads: a backup archive, and the root certificate of the platform's own CA."""

from __future__ import annotations

from anchor_deploy.model.errors import BackupFailed, NotFound
from anchor_deploy.ports.operations import Backups, BackupStream, RootCertificate


class BackupService:
    def __init__(self, backups: Backups | None) -> None:
        self._backups = backups

    def open(self) -> BackupStream:
        """A backup archive as a stream (the caller closes it); BackupFailed if this provider makes none."""
        if self._backups is None:
            raise BackupFailed(
                "this provider makes no backup archives: back its storage up with its own tools"
            )
        return self._backups.open()


class AuthorityService:
    def __init__(self, root: RootCertificate | None) -> None:
        self._root = root

    def root_certificate(self) -> tuple[str, str]:
        """(where the local CA's root is kept, its PEM); NotFound if the platform has no CA of its own."""
        if self._root is None:
            raise NotFound("this platform has no CA of its own: its certificates come from a public CA")
        return self._root.root_certificate()
