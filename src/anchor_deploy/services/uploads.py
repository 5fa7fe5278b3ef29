"""Blob uploads through the API: the bytes of one file, named by their sha256."""

from __future__ import annotations

from collections.abc import Iterator

from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.model.manifest import is_sha256
from anchor_deploy.ports import BlobStore


class UploadService:
    def __init__(self, blobs: BlobStore, max_size: int) -> None:
        self._blobs = blobs
        self.max_size = max_size

    def check_name(self, digest: str) -> None:
        """InvalidInput unless ``digest`` can name a blob (before any byte is read)."""
        if not is_sha256(digest):
            raise InvalidInput("the blob name must be its sha256: 64 lowercase hex characters")

    def put(self, digest: str, chunks: Iterator[bytes]) -> int:
        """Store the bytes under their sha256 (BlobRejected on a mismatch, BlobTooLarge past the limit);
        the number of bytes stored, 0 if the store held them already."""
        self.check_name(digest)
        return self._blobs.put(digest, chunks, self.max_size)
