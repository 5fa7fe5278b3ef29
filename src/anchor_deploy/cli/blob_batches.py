"""Sending many small blobs in few requests: one tar archive per batch (POST /v1/blob-batches, see
api/routes_blobs.py), a couple of batches at a time; large blobs stream one by one as before.

A server without the batch route (an older one answers 404 or 405), or a proxy in front of it that takes
smaller bodies (413), gets every blob through the per-blob route instead, from the first refusal on.
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from anchor_deploy.cli.client import ApiClient, ClientError

BATCH_PATH = "/v1/blob-batches"
_NO_BATCHES = (404, 405, 413)  # no such route here, or a body too large for something on the way
SMALL_BLOB = 512 * 1024  # larger files go one by one
BATCH_FILES = 1000
BATCH_BYTES = 3 * 1024 * 1024  # with tar headers and base64, within a Lambda request (6 MB)


def batches(digests: list[str], sizes: dict[str, int]) -> tuple[list[list[str]], list[str]]:
    """The small blobs grouped into batches (at most BATCH_FILES blobs and BATCH_BYTES of content each),
    and the large ones, to send one by one."""
    grouped: list[list[str]] = []
    singles: list[str] = []
    current: list[str] = []
    current_bytes = 0
    for digest in digests:
        size = sizes[digest]
        if size > SMALL_BLOB:
            singles.append(digest)
            continue
        if current and (len(current) >= BATCH_FILES or current_bytes + size > BATCH_BYTES):
            grouped.append(current)
            current, current_bytes = [], 0
        current.append(digest)
        current_bytes += size
    if current:
        grouped.append(current)
    return grouped, singles


def archive(blobs: Iterator[tuple[str, bytes]]) -> bytes:
    """A tar archive of the blobs, each entry named by its digest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for digest, data in blobs:
            info = tarfile.TarInfo(digest)
            info.size = len(data)
            info.mode = 0o644
            out.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class BatchSender:
    """Sends batches through the API (thread-safe); remembers a server that lacks the route."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.supported = True
        self.requests = 0

    def send(self, digests: list[str], read: Callable[[str], bytes]) -> bool:
        """Upload one batch; False (nothing sent) when the server has no batch route."""
        if not self.supported:
            return False
        body = archive((digest, read(digest)) for digest in digests)
        try:
            self._client.request("POST", BATCH_PATH, content=body, ok=(200, 201), timeout=300)
        except ClientError as exc:
            if exc.status not in _NO_BATCHES:
                raise
            with self._lock:
                self.supported = False
            return False
        with self._lock:
            self.requests += 1
        return True


def read_blob(paths: dict[str, tuple[Path, int]]) -> Callable[[str], bytes]:
    return lambda digest: paths[digest][0].read_bytes()
