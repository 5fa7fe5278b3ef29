"""What the AWS provider does not offer yet, said plainly instead of pretended.

- fsck and the scrub check the local disk's copies; S3 keeps and checks its own (every blob is stored with its
  SHA-256 checksum, and one stored without it is treated as missing), so there are no copies to walk here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from anchor_deploy.model.errors import CopyGone
from anchor_deploy.model.integrity import StoredCopy
from anchor_deploy.ports import BlobStore
from anchor_deploy.ports.blobs import DirectUploads, UploadTarget

_DOMAINS = "custom domains are not available on the AWS provider yet"


class UploadingStore(BlobStore, DirectUploads, Protocol):
    """A blob store clients upload to directly (S3's presigned PUTs)."""

    def held_now(self, digest: str) -> bool:
        """Asked of the store itself now, never answered from a memory of earlier answers."""
        ...


class NoBlobChecks:
    """A BlobStore with the BlobChecker side of a store whose service checks its own copies."""

    def __init__(self, blobs: UploadingStore) -> None:
        self._blobs = blobs

    @property
    def on_stored(self) -> Callable[[str, bool], None]:
        return self._blobs.on_stored

    @on_stored.setter
    def on_stored(self, callback: Callable[[str, bool], None]) -> None:
        self._blobs.on_stored = callback

    def missing(self, digests: Iterable[str]) -> list[str]:
        return self._blobs.missing(digests)

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        return self._blobs.put(digest, chunks, max_size)

    def collect(self, keep: set[str], older_than: float) -> int:
        return self._blobs.collect(keep, older_than)

    def read(self, digest: str) -> bytes:
        return self._blobs.read(digest)

    def upload_targets(self, digests: Sequence[str]) -> list[UploadTarget]:
        return self._blobs.upload_targets(digests)

    def copies(self) -> Iterator[StoredCopy]:
        return iter(())

    def check(self, copy: StoredCopy, pace: Callable[[int], None] | None = None) -> str | None:
        return None

    def corrupt(self) -> dict[str, str]:
        return {}

    def quarantine(self, copy: StoredCopy, note: str) -> str:
        """No copy is ever listed here, so any copy named is one this store does not hold."""
        raise CopyGone(f"S3 keeps no local copies to set aside ({copy.name})")

    def restore(self, digest: str) -> bool:
        return self._blobs.held_now(digest)

    def has(self, digest: str) -> bool:
        return self._blobs.held_now(digest)
