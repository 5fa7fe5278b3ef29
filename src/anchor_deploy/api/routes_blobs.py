"""Blob batches: many small blobs in one request (one tar archive), for a first deploy of many small files.

Each archive entry is a regular file named by its sha256 (no folder, no path: nothing can name a place
outside the blob store); each is checked against its name and the blob size limit before any of the batch
is stored, so a bad entry refuses the whole batch and nothing of it is kept. Large files still go one by one
through ``PUT /v1/blobs/{sha256}`` (streamed, never held whole). A provider whose blob store takes uploads
directly (AWS: presigned S3 URLs) offers those instead; a client that meets an older server (404 here)
falls back to one request per blob.
"""

from __future__ import annotations

from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from anchor_deploy.api.deps import PlatformDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas import Answer
from anchor_deploy.api.spool import spooled_body
from anchor_deploy.model.errors import BadRequest, BlobTooLarge, BodyTooLarge, InvalidInput
from anchor_deploy.model.manifest import is_sha256

router = APIRouter(prefix="/v1")
BATCH_PATH = "/v1/blob-batches"
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_BLOCK = 512
_ZEROS = bytes(_BLOCK)
_REGULAR = (b"0", b"\0")  # tar's type flags of a regular file
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "a tar archive (ustar or GNU headers, no pax extended headers) of regular files only, each named"
            " by the sha256 of its bytes (64 lowercase hex characters, no folder)"
        ),
        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
    },
}


class BlobBatchStored(Answer):
    stored: int
    held: int
    bytes: int


@router.post(
    BATCH_PATH.removeprefix("/v1"),
    **answers(BlobBatchStored, 400, 401, 413, 422, 503, tag="deployments"),
    openapi_extra=_BATCH_BODY,
)
async def put_blob_batch(p: PlatformDep, _token: TokenDep, request: Request) -> dict[str, Any]:
    """Store every blob of the archive, or (on a bad entry, named in the error) none of them.
    ``stored``: blobs written; ``held``: blobs the platform had already; ``bytes``: bytes written."""
    limit = p.uploads.max_batch
    too_large = BodyTooLarge(f"the batch is larger than the {limit}-byte limit")
    async with spooled_body(request, limit, too_large, p.settings.data_dir, _SPOOL_IN_MEMORY) as spool:
        blobs = await run_in_threadpool(read_batch, spool, p.uploads.max_size)
    done = await run_in_threadpool(p.uploads.put_batch, blobs)
    return {"stored": done.stored, "held": done.held, "bytes": done.bytes}


def read_batch(stream: IO[bytes], max_size: int) -> list[tuple[str, bytes]]:
    """The (sha256, bytes) entries of a tar archive, each name a digest and each size within ``max_size``
    (a repeated name is read once). BadRequest for an archive that cannot be read or ends early.

    Read here rather than by ``tarfile``: only what a batch may hold (plain ustar or GNU headers of regular
    files, names of 64 characters) is accepted, at a fraction of tarfile's cost per entry."""
    found: dict[str, bytes] = {}
    while True:
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK:
            raise BadRequest("the batch is not a complete tar archive: it ends without its end blocks")
        if header == _ZEROS:
            break
        name, kind, size = _entry(header)
        if not is_sha256(name):
            raise InvalidInput(
                f"batch entry {name[:80]!r} is not named by a sha256 (64 lowercase hex characters)",
                entry=name[:80],
            )
        if kind not in _REGULAR:
            raise InvalidInput(f"batch entry {name} is not a regular file", digest=name)
        if size > max_size:
            raise BlobTooLarge(f"blob {name} is larger than the {max_size}-byte limit", digest=name)
        data = stream.read(size)
        padding = -size % _BLOCK
        if len(data) != size or len(stream.read(padding)) != padding:
            raise BadRequest(f"the batch ends inside blob {name}", digest=name)
        found.setdefault(name, data)
    if not found:
        raise InvalidInput("the batch holds no blobs")
    return list(found.items())


def _entry(header: bytes) -> tuple[str, bytes, int]:
    """(name, type flag, size) of a tar header block; BadRequest if it is not one."""
    blanked = sum(header[:148]) + sum(header[156:]) + 8 * 32  # the checksum field counts as spaces
    if _octal(header[148:156]) != blanked:
        raise BadRequest("the batch is not a tar archive: a header's checksum does not match")
    name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
    if prefix:
        name = f"{prefix.decode('utf-8', 'replace')}/{name}"
    size = _octal(header[124:136])
    if size is None:
        raise BadRequest(f"the batch is not a tar archive: entry {name[:80]!r} has no readable size")
    return name, header[156:157], size


def _octal(field: bytes) -> int | None:
    """A header's octal number (NUL or space terminated); None if it is not one."""
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits and digits.isdigit() else None
    except ValueError:  # an 8 or a 9
        return None
