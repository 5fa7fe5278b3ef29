"""Blob uploads through the API: the bytes of one file, named by their sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from anchor_deploy.model.errors import BlobRejected, BlobTooLarge, InvalidInput
from anchor_deploy.model.manifest import is_sha256
from anchor_deploy.ports import BlobStore
from anchor_deploy.ports.blobs import BatchPuts

# The most bytes one batch of blobs may carry (its archive, headers included); larger files go one by one.
MAX_BATCH_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class BatchStored:
    stored: int  # blobs written
    held: int  # blobs the store held already
    bytes: int  # bytes written


class UploadService:
    def __init__(self, blobs: BlobStore, max_size: int, max_batch: int = MAX_BATCH_BYTES) -> None:
        self._blobs = blobs
        self.max_size = max_size
        self.max_batch = max_batch

    def check_name(self, digest: str) -> None:
        """InvalidInput unless ``digest`` can name a blob (before any byte is read)."""
        if not is_sha256(digest):
            raise InvalidInput("the blob name must be its sha256: 64 lowercase hex characters")

    def put(self, digest: str, chunks: Iterator[bytes]) -> int:
        """Store the bytes under their sha256 (BlobRejected on a mismatch, BlobTooLarge past the limit);
        the number of bytes stored, 0 if the store held them already."""
        self.check_name(digest)
        return self._blobs.put(digest, chunks, self.max_size)

    def put_batch(self, blobs: Sequence[tuple[str, bytes]]) -> BatchStored:
        """Store a batch of (sha256, bytes): every name and every blob's bytes are checked first, so a bad
        one (named in the error's ``digest``) refuses the whole batch and nothing of it is stored."""
        for digest, data in blobs:
            self.check_name(digest)
            if len(data) > self.max_size:
                raise BlobTooLarge(
                    f"blob {digest} is larger than the {self.max_size}-byte limit", digest=digest
                )
            found = hashlib.sha256(data).hexdigest()
            if found != digest:
                raise BlobRejected(
                    f"blob {digest}: its content does not match its name (sha256 {found})", digest=digest
                )
        if isinstance(self._blobs, BatchPuts):
            sizes = self._blobs.put_many(blobs, self.max_size)
        else:
            sizes = [self._blobs.put(digest, iter((data,)), self.max_size) for digest, data in blobs]
        stored = sum(1 for size in sizes if size)  # 0: held already (or empty)
        return BatchStored(stored, len(sizes) - stored, sum(sizes))
