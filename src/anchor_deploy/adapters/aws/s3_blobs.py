"""Blobs in an S3 bucket, addressed by sha256: the object ``<prefix><sha256 hex>`` holds the bytes.

Every object is written with ``ChecksumSHA256`` (base64 of the digest's bytes), so S3 itself refuses bytes
that are not the blob's and keeps the checksum beside the object: a held blob is one whose stored checksum
is its name. An object under a blob's key without that checksum (written behind the platform's back) is
treated as damaged: ``missing`` asks for it again and ``put`` replaces it, conditionally on its ETag.

Writes are conditional: ``If-None-Match: *`` (a held blob is never rewritten: S3 answers 412), and a damaged
one is replaced with ``If-Match: <its ETag>`` (a concurrent writer wins, never two half-states). Clients may
also upload directly with presigned PUT URLs (``upload_targets``): the checksum and If-None-Match are signed
into the URL, so S3 enforces both on requests the platform never sees.

Request cost: ``missing`` makes one HeadObject per distinct digest not seen whole in the last minute (a
GET-class request), ``_HEAD_WORKERS`` at a time; a listing cannot answer it (ListObjectsV2 returns no
checksum values, and one page of 1,000 keys covers a single digest of a deploy once the bucket is large).
``put`` makes one PutObject, plus a HeadObject and a second PutObject only when the key is taken.
``collect`` lists 1,000 keys per request and deletes up to 1,000 per DeleteObjects request.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.model.errors import BlobRejected, BlobStoreUnavailable, BlobTooLarge
from anchor_deploy.model.manifest import is_sha256
from anchor_deploy.ports.blobs import UploadTarget

# botocore keeps 10 connections per client: stay under it, so no thread waits for or discards one.
_HEAD_WORKERS = 32  # AwsClients keeps as many connections per client
# A blob seen whole (HEAD with its checksum, or our own PUT) is not asked about again for this long: the
# offers of one deploy (1,000 upload targets each) and its build follow each other within seconds. Kept
# well below the collection's period, since a collection in another process may delete a blob that no
# deployment holds.
_SEEN_FOR = 60.0
_SEEN_MAX = 500_000  # entries remembered at most (about 60 MB at worst); the oldest go first
_SPOOL_IN_MEMORY = 1 << 20  # bytes of an upload kept in memory before the spool moves to a file
_DELETE_BATCH = 1000  # DeleteObjects' limit
_UPLOAD_TTL = 3600  # seconds a presigned upload URL stays valid
_PUT_ATTEMPTS = 4  # a key another writer keeps changing under us: give up after this many rounds


def checksum_of(digest: str) -> str:
    """The ``ChecksumSHA256`` S3 expects for a blob: base64 of the 32 digest bytes (not of the hex)."""
    return base64.b64encode(bytes.fromhex(digest)).decode("ascii")


def _error_code(exc: ClientError) -> tuple[int, str]:
    response: dict[str, Any] = exc.response
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status, str(response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    def __init__(
        self,
        clients: AwsClients,
        bucket: str,
        prefix: str = "blobs/",
        spool_dir: Path | None = None,
        upload_ttl: int = _UPLOAD_TTL,
        seen_for: float = _SEEN_FOR,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``spool_dir``: where an upload larger than 1 MiB is spooled to be hashed before it is sent (the
        system's temporary folder by default). ``seen_for``: how long a blob seen whole is taken as held
        without asking S3 again (0: always ask)."""
        self._s3 = clients.client("s3")
        self._presigner = clients.presigner("s3")
        self.bucket = bucket
        self.prefix = prefix
        self._spool_dir = str(spool_dir) if spool_dir is not None else None
        self._upload_ttl = upload_ttl
        self.on_stored: Callable[[str, bool], None] = lambda _digest, _replaced: None
        self._seen_for = seen_for
        self._monotonic = monotonic
        self._seen: dict[str, float] = {}  # digest -> when it was last seen whole (insertion-ordered)
        self._absent: dict[str, float] = {}  # digest -> when it was found missing (no upload target since)
        self._seen_lock = threading.Lock()

    def key(self, digest: str) -> str:
        if not is_sha256(digest):
            raise BlobRejected(f"{digest[:80]!r} is not a sha256 digest")
        return f"{self.prefix}{digest}"

    # -- BlobStore ---------------------------------------------------------------------------------
    def missing(self, digests: Iterable[str]) -> list[str]:
        """Blobs not held, and blobs held without their checksum (damaged): one HeadObject per digest not
        seen whole in the last ``_SEEN_FOR`` seconds."""
        unique = list(dict.fromkeys(digests))
        for digest in unique:
            self.key(digest)  # every digest is checked before any request
        fresh = [d for d in unique if not self._seen_lately(d)]
        asked = [d for d in fresh if not self._absent_lately(d)]
        if len(asked) <= 1:
            good = {d: self._holds_good(d) for d in asked}
        else:
            with ThreadPoolExecutor(max_workers=min(_HEAD_WORKERS, len(asked))) as pool:
                good = dict(zip(asked, pool.map(self._holds_good, asked), strict=True))
        return [digest for digest in unique if not good.get(digest, digest not in fresh)]

    def _absent_lately(self, digest: str) -> bool:
        """Found missing within ``seen_for`` and given no upload target since: still missing, since only an
        upload through a target or through ``put`` could have brought it (saying missing wrongly costs an
        upload that S3 refuses as held, never a lost blob)."""
        with self._seen_lock:
            absent = self._absent.get(digest)
        return absent is not None and self._monotonic() - absent < self._seen_for

    def _seen_lately(self, digest: str) -> bool:
        with self._seen_lock:
            seen = self._seen.get(digest)
        return seen is not None and self._monotonic() - seen < self._seen_for

    def _saw(self, digest: str) -> None:
        self._remember(digest, held=True)

    def _remember(self, digest: str, held: bool) -> None:
        if self._seen_for <= 0:
            return
        kept, other = (self._seen, self._absent) if held else (self._absent, self._seen)
        with self._seen_lock:
            other.pop(digest, None)
            kept.pop(digest, None)
            kept[digest] = self._monotonic()
            while len(kept) > _SEEN_MAX:
                del kept[next(iter(kept))]

    def _forget(self, digests: Iterable[str]) -> None:
        with self._seen_lock:
            for digest in digests:
                self._seen.pop(digest, None)
                self._absent.pop(digest, None)

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        key = self.key(digest)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, dir=self._spool_dir) as spool:
            size = _spool_checked(digest, chunks, spool, max_size)
            replaced = self._write(digest, key, spool, size)
        self._saw(digest)
        if replaced is None:
            return 0
        self.on_stored(digest, replaced)
        return size

    def collect(self, keep: set[str], older_than: float) -> int:
        """Delete each blob not in ``keep`` last written before ``older_than``; keys under the prefix that
        are not blob names are left alone."""
        doomed: list[str] = []
        deleted = 0
        for listed in self._listing():
            digest = listed["Key"][len(self.prefix) :]
            if is_sha256(digest) and digest not in keep and listed["LastModified"].timestamp() < older_than:
                doomed.append(listed["Key"])
                if len(doomed) == _DELETE_BATCH:
                    deleted += self._delete(doomed)
                    doomed = []
        if doomed:
            deleted += self._delete(doomed)
        return deleted

    def read(self, digest: str) -> bytes:
        key = self.key(digest)
        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=key)
            return bytes(answer["Body"].read())
        except ClientError as exc:
            if _error_code(exc)[1] in ("NoSuchKey", "404"):
                raise BlobRejected(f"blob {digest} is not stored") from exc
            raise self._unavailable("GetObject", key, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("GetObject", key, exc) from exc

    # -- DirectUploads -----------------------------------------------------------------------------
    def upload_targets(self, digests: Sequence[str]) -> list[UploadTarget]:
        """A presigned PUT per digest. The client must send exactly ``headers``: S3 checks the signature over
        them, then refuses a body whose SHA-256 is not the checksum (400 BadDigest) and a key it holds (412).
        A damaged held blob therefore needs the API's upload route, which replaces it."""
        expires_at = time.time() + self._upload_ttl
        self._forget(digests)  # about to be uploaded: the next offer asks S3 about each again
        targets = []
        for digest in digests:
            headers = {
                "x-amz-checksum-sha256": checksum_of(digest),
                "x-amz-sdk-checksum-algorithm": "SHA256",
                "If-None-Match": "*",
            }
            params = {
                "Bucket": self.bucket,
                "Key": self.key(digest),
                "ChecksumSHA256": headers["x-amz-checksum-sha256"],
                "ChecksumAlgorithm": "SHA256",
                "IfNoneMatch": "*",
            }
            try:
                url = self._presigner.generate_presigned_url(
                    "put_object", Params=params, ExpiresIn=self._upload_ttl
                )
            except (BotoCoreError, ClientError) as exc:
                raise self._unavailable("presign PutObject", params["Key"], exc) from exc
            targets.append(UploadTarget(digest, str(url), headers, expires_at))
        return targets

    # -- S3 requests -------------------------------------------------------------------------------
    def held_now(self, digest: str) -> bool:
        """Whether S3 holds the blob whole right now: always asked (fsck), never from memory."""
        self.key(digest)
        return self._holds_good(digest)

    def _holds_good(self, digest: str) -> bool:
        head = self._head(digest)
        good = head is not None and head.get("ChecksumSHA256") == checksum_of(digest)
        self._remember(digest, held=good)
        return good

    def _head(self, digest: str) -> dict[str, Any] | None:
        """The object's HeadObject answer with its checksum, or None if there is none."""
        key = self.key(digest)
        try:
            answer: dict[str, Any] = self._s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            return answer
        except ClientError as exc:
            if _error_code(exc)[0] == 404:
                return None
            raise self._unavailable("HeadObject", key, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("HeadObject", key, exc) from exc

    def _write(self, digest: str, key: str, spool: IO[bytes], size: int) -> bool | None:
        """Store the checked bytes under ``key``. None if a good blob is already there; False if none was;
        True if a damaged one was (replaced only if it is still the object we found)."""
        condition: dict[str, str] = {"IfNoneMatch": "*"}
        for _attempt in range(_PUT_ATTEMPTS):
            spool.seek(0)
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=spool,
                    ContentLength=size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum_of(digest),
                    **condition,
                )
                return "IfMatch" in condition
            except ClientError as exc:
                status, code = _error_code(exc)
                # 412: the condition failed (held, or changed since the HeadObject); 409: another
                # conditional write to the key is in flight; NoSuchKey on If-Match: deleted meanwhile.
                gone = code == "NoSuchKey" and "IfMatch" in condition
                if status not in (409, 412) and not gone:
                    raise self._unavailable("PutObject", key, exc) from exc
            except BotoCoreError as exc:
                raise self._unavailable("PutObject", key, exc) from exc
            head = self._head(digest)
            if head is None:
                condition = {"IfNoneMatch": "*"}
            elif head.get("ChecksumSHA256") == checksum_of(digest):
                return None
            else:
                condition = {"IfMatch": str(head["ETag"])}
        raise BlobStoreUnavailable(f"s3://{self.bucket}/{key} kept changing during the upload; try again")

    def _listing(self) -> Iterator[dict[str, Any]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                yield from page.get("Contents", [])
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("ListObjectsV2", self.prefix, exc) from exc

    def _delete(self, keys: list[str]) -> int:
        """Delete up to 1,000 keys in one request; how many went (a key already gone counts as deleted)."""
        self._forget(k[len(self.prefix) :] for k in keys)
        try:
            answer = self._s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("DeleteObjects", f"{len(keys)} keys", exc) from exc
        errors = answer.get("Errors", [])
        if errors and len(errors) == len(keys):
            first = errors[0]
            raise BlobStoreUnavailable(
                f"S3 DeleteObjects on s3://{self.bucket} failed: {first.get('Code')}: {first.get('Message')}"
            )
        return len(keys) - len(errors)

    def _unavailable(self, operation: str, key: str, exc: Exception) -> BlobStoreUnavailable:
        if isinstance(exc, ClientError):
            error: dict[str, Any] = exc.response.get("Error", {})
            why = f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
        else:
            why = str(exc)
        return BlobStoreUnavailable(f"S3 {operation} on s3://{self.bucket}/{key} failed: {why}")


def _spool_checked(digest: str, chunks: Iterator[bytes], spool: IO[bytes], max_size: int) -> int:
    """Write ``chunks`` to ``spool``, hashing them; the size. BlobTooLarge as soon as they pass
    ``max_size`` (the rest is never read), BlobRejected if they are not the blob ``digest`` names."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_size:
            raise BlobTooLarge(f"blob is larger than the {max_size}-byte limit")
        hasher.update(chunk)
        spool.write(chunk)
    if hasher.hexdigest() != digest:
        raise BlobRejected(f"content does not match its digest: got sha256 {hasher.hexdigest()}")
    return size
