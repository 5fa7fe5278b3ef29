"""Blob batches: many small blobs in one request (one tar archive), for a first deploy of many small files.

Each archive entry is a regular file named by its sha256 (no folder, no path: nothing can name a place
outside the blob store); each is checked against its name and the blob size limit before any of the batch
is stored, so a bad entry refuses the whole batch and nothing of it is kept. Large files still go one by one
through ``PUT /v1/blobs/{sha256}`` (streamed, never held whole). A provider whose blob store takes uploads
directly (AWS: presigned S3 URLs) offers those instead; a client that meets an older server (404 here)
falls back to one request per blob.
"""

from __future__ import annotations

import tarfile
import tempfile
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from anchor_deploy.api.deps import PlatformDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas import Answer
from anchor_deploy.model.errors import BadRequest, BlobTooLarge, BodyTooLarge, InvalidInput
from anchor_deploy.model.manifest import is_sha256

router = APIRouter(prefix="/v1")
BATCH_PATH = "/v1/blob-batches"
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": "a tar archive (ustar or pax) of regular files, each named by the sha256 of its bytes",
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
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, dir=str(p.settings.data_dir)) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the batch is larger than the {limit}-byte limit")
            spool.write(chunk)
        spool.seek(0)
        blobs = await run_in_threadpool(read_batch, spool, p.uploads.max_size)
    done = await run_in_threadpool(p.uploads.put_batch, blobs)
    return {"stored": done.stored, "held": done.held, "bytes": done.bytes}


def read_batch(stream: IO[bytes], max_size: int) -> list[tuple[str, bytes]]:
    """The (sha256, bytes) entries of a tar archive, each name a digest and each size within ``max_size``
    (a repeated name is read once). BadRequest for an archive that cannot be read or ends early."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                name = member.name
                if not is_sha256(name):
                    raise InvalidInput(
                        f"batch entry {name[:80]!r} is not named by a sha256 (64 lowercase hex characters)",
                        entry=name[:80],
                    )
                if not member.isreg():
                    raise InvalidInput(f"batch entry {name} is not a regular file", digest=name)
                if member.size > max_size:
                    raise BlobTooLarge(f"blob {name} is larger than the {max_size}-byte limit", digest=name)
                reader = archive.extractfile(member)
                data = reader.read() if reader is not None else b""
                if len(data) != member.size:
                    raise BadRequest(f"the batch ends inside blob {name}", digest=name)
                found.setdefault(name, data)
    except (tarfile.TarError, EOFError) as exc:
        raise BadRequest(f"the batch is not a complete tar archive: {exc}") from exc
    if not found:
        raise InvalidInput("the batch holds no blobs")
    return list(found.items())
