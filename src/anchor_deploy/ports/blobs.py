"""Content-addressed file storage and the immutable directories built from it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from anchor_deploy.model.manifest import ManifestFile


class BlobStore(Protocol):
    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests (deduplicated, in first-seen order) that the store does not hold."""
        ...

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        """Store bytes under their sha256. Raises BlobRejected on a digest mismatch, BlobTooLarge past
        max_size; nothing is kept in either case. Returns the number of bytes stored (0 if already held)."""
        ...


class DeploymentFiles(Protocol):
    def materialize(self, deployment_id: str, files: Sequence[ManifestFile]) -> None:
        """Build the deployment's immutable directory from blobs; idempotent, atomic (all or nothing)."""
        ...

    def exists(self, deployment_id: str) -> bool: ...

    def remove(self, deployment_id: str) -> None: ...
