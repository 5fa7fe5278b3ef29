"""A streamed request body spooled to a temporary file, refused as soon as it passes a size limit.

The body stays in memory up to ``in_memory`` bytes and then goes to a file under the data folder (not /tmp,
which may itself be memory: tmpfs). The BodyLimit middleware already stops a stream past the server's
largest limit; this is the route's own, tighter one.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from fastapi import Request

from anchor_deploy.model.errors import AnchorError


@asynccontextmanager
async def spooled_body(
    request: Request, limit: int, too_large: AnchorError, folder: Path, in_memory: int
) -> AsyncIterator[IO[bytes]]:
    """The body, read from its start; ``too_large`` is raised once more than ``limit`` bytes arrive."""
    with tempfile.SpooledTemporaryFile(max_size=in_memory, dir=str(folder)) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            spool.write(chunk)
        spool.seek(0)
        yield spool
