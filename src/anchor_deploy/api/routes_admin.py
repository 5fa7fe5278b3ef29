"""Operator routes (an unrestricted token only): `GET /v1/admin/backup` streams a backup archive."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Protocol

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from anchor_deploy.api.deps import PlatformDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.services.auth import require_admin

router = APIRouter(prefix="/v1/admin")


class _Stream(Protocol):
    def __next__(self) -> bytes: ...

    def close(self) -> None: ...


_TAR = {
    "200": {
        "description": "A tar: anchor-backup.json first, then the database, blobs, keys and certificates",
        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/backup",
    **answers(None, 401, 403, 503, tag="admin"),
    response_class=StreamingResponse,
    openapi_extra={"responses": _TAR},
)
async def backup(p: PlatformDep, token: TokenDep) -> StreamingResponse:
    """A tar of the database snapshot, the blobs it references, the keys and the certificates, with its
    Content-Length; the platform keeps serving (and writing) while it streams."""
    require_admin(token)
    stream = await run_in_threadpool(p.backups.open)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Length": str(stream.size),
        "Content-Disposition": f'attachment; filename="anchor-backup-{stamp}.tar"',
        "X-Anchor-Backup-Counts": ",".join(f"{k}={v}" for k, v in sorted(stream.counts.items())),
    }
    return StreamingResponse(_chunks(stream), media_type="application/x-tar", headers=headers)


async def _chunks(stream: _Stream) -> AsyncIterator[bytes]:
    """Each chunk read on a worker thread; the stream is closed however the response ends."""
    try:
        while (chunk := await run_in_threadpool(next, stream, None)) is not None:
            if chunk:
                yield chunk
    finally:
        stream.close()
