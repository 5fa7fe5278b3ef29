"""Content-addressed file storage and the immutable directories built from it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.integrity import StoredCopy
from anchor_deploy.model.manifest import ManifestFile


class BlobStore(Protocol):
    # Told of every blob stored: (digest, True if it replaced a damaged copy of the same blob).
    on_stored: Callable[[str, bool], None]

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests (deduplicated, in first-seen order) that the store does not hold, or holds but knows
        to be damaged: an upload of the right bytes is what both need."""
        ...

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        """Store bytes under their sha256. Raises BlobRejected on a digest mismatch, BlobTooLarge past
        max_size; nothing is kept in either case. Returns the number of bytes stored (0 if already held and
        its bytes are right). Held bytes that are wrong are replaced, atomically, by the upload's."""
        ...

    def collect(self, keep: set[str], older_than: float) -> int:
        """Delete blobs not in ``keep`` uploaded before ``older_than`` (a time); return how many."""
        ...

    def read(self, digest: str) -> bytes:
        """The bytes of a held blob (small files: requirements, configs). BlobRejected if not held."""
        ...


@dataclass(frozen=True)
class UploadTarget:
    """Where a client sends one blob itself, bypassing the API: a ``method`` request to ``url`` with exactly
    ``headers`` (they are signed into the URL: the store refuses other bytes, and a blob it holds) and the
    blob's bytes as the body, before ``expires_at`` (a time)."""

    sha256: str
    url: str
    headers: Mapping[str, str]
    expires_at: float
    method: Literal["PUT"] = "PUT"


@runtime_checkable
class BatchPuts(Protocol):
    """Offered by a blob store that writes many small blobs faster together (a batch upload). Optional: a
    batch is otherwise stored blob by blob (``BlobStore.put``)."""

    def put_many(self, blobs: Sequence[tuple[str, bytes]], max_size: int) -> list[int]:
        """Store each (sha256, bytes), every one checked (BlobRejected, BlobTooLarge) before any is stored;
        the bytes stored per blob, 0 for one held already."""
        ...


@runtime_checkable
class DirectUploads(Protocol):
    """Offered by a blob store that clients can upload to directly (S3: presigned PUT URLs). Optional: a
    store without it is uploaded to through the API's blob route only."""

    def upload_targets(self, digests: Sequence[str]) -> list[UploadTarget]:
        """One target per digest, in the same order. Signing needs no request to the store."""
        ...


class BlobChecker(Protocol):
    """What fsck and the scrub need of the blob store: its copies, their check, the quarantine."""

    def copies(self) -> Iterator[StoredCopy]:
        """Every stored copy: blobs, their spares, their ETag sidecars."""
        ...

    def check(self, copy: StoredCopy, pace: Callable[[int], None] | None = None) -> str | None:
        """None if the copy holds what its name says, else what is wrong (the store remembers it: see
        ``corrupt``). ``pace`` is told the size of each chunk read. CopyGone if the copy is gone,
        BlobUnavailable if it cannot be read."""
        ...

    def corrupt(self) -> dict[str, str]:
        """Copies known to be damaged and still in place: name -> what is wrong."""
        ...

    def quarantine(self, copy: StoredCopy, note: str) -> str:
        """Set a copy aside, with ``note``, where nothing links to it any more; returns where it went.
        CopyGone if the copy is gone."""
        ...

    def restore(self, digest: str) -> bool:
        """Make the blob itself whole again from a good spare if it is gone; whether it is usable now."""
        ...

    def has(self, digest: str) -> bool:
        """Whether a file of the blob is stored (right or not)."""
        ...


class DeploymentFiles(Protocol):
    def materialize(
        self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None = None
    ) -> None:
        """Build the deployment's immutable directory from blobs; idempotent, atomic (all or nothing).
        With an app: the edge serves only the files under ``app.static_dir``; the app gets a private copy.
        Each blob's bytes are checked; BlobUnavailable (naming the blob and the file) if one is missing
        or damaged, and nothing is built."""
        ...

    def relink(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        digests: set[str],
        app: AppConfig | None = None,
    ) -> int:
        """In a built deployment, serve the store's current bytes for each file whose blob is in ``digests``
        (after a damaged blob was replaced), one atomic swap per file; returns how many files. 0 if the
        deployment is not built; BlobUnavailable if such a blob is not usable."""
        ...

    def app_files(self, deployment_id: str) -> str:
        """A reference to the app's own copy of the files (opaque to the services: the provider's runtime
        knows what it names; locally, the app's working directory)."""
        ...

    def exists(self, deployment_id: str) -> bool: ...

    def present(self) -> list[str]:
        """The ids of every deployment built here (the reconciler removes those the database lacks)."""
        ...

    def remove(self, deployment_id: str) -> None: ...

    def collect(self, older_than: float) -> int:
        """Remove what built deployments shared and none uses any more (locally: served file trees),
        unchanged since ``older_than``; how many were removed."""
        ...
