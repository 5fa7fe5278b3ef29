"""Content-addressed file storage and the immutable directories built from it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.manifest import ManifestFile


class BlobStore(Protocol):
    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests (deduplicated, in first-seen order) that the store does not hold."""
        ...

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        """Store bytes under their sha256. Raises BlobRejected on a digest mismatch, BlobTooLarge past
        max_size; nothing is kept in either case. Returns the number of bytes stored (0 if already held)."""
        ...

    def collect(self, keep: set[str], older_than: float) -> int:
        """Delete blobs not in ``keep`` uploaded before ``older_than`` (a time); return how many."""
        ...

    def read(self, digest: str) -> bytes:
        """The bytes of a held blob (small files: requirements, configs). BlobRejected if not held."""
        ...


class DeploymentFiles(Protocol):
    def materialize(
        self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None = None
    ) -> None:
        """Build the deployment's immutable directory from blobs; idempotent, atomic (all or nothing).
        With an app: the edge serves only the files under ``app.static_dir``; the app gets a private copy."""
        ...

    def app_dir(self, deployment_id: str) -> Path:
        """Where the app's own copy of the files lives (its working directory)."""
        ...

    def exists(self, deployment_id: str) -> bool: ...

    def remove(self, deployment_id: str) -> None: ...
