"""Uploads straight to the blob store, when the API's 409 missing_files answer offers them (S3: presigned PUT
URLs), as Vercel's and Netlify's clients do: the bytes skip the API.

Each target is sent exactly as given: its method, its URL and its headers (signed into the URL: the checksum
that makes the store refuse other bytes, and If-None-Match). No API token goes with it. A target the store
refuses (412: it holds the blob, perhaps damaged; 403: the URL expired), or a store this machine cannot
reach, is left to the API's blob route, whose answer is the authority on the blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

_TIMEOUT = httpx.Timeout(300, connect=10)


@dataclass(frozen=True)
class Target:
    url: str
    method: str
    headers: Mapping[str, str]


def read_targets(answer: Any) -> dict[str, Target]:
    """The upload targets of a 409 missing_files error body, by sha256 (none if it offers none; a target
    that is not well formed is skipped: its blob goes through the API)."""
    found: dict[str, Target] = {}
    uploads = answer.get("uploads") if isinstance(answer, dict) else None
    for entry in uploads if isinstance(uploads, list) else []:
        if not isinstance(entry, dict):
            continue
        digest, url, method, headers = (entry.get(k) for k in ("sha256", "url", "method", "headers"))
        if (
            isinstance(digest, str)
            and isinstance(url, str)
            and urlsplit(url).scheme in ("http", "https")
            and method == "PUT"
            and isinstance(headers, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            found[digest] = Target(url, method, headers)
    return found


class DirectUploader:
    """Sends blobs to their targets over one connection pool (thread-safe); ``close`` when done."""

    def __init__(self, targets: dict[str, Target]) -> None:
        self.targets = targets
        self._http = httpx.Client(timeout=_TIMEOUT, follow_redirects=False)
        self.unreachable = False

    def __enter__(self) -> DirectUploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def put(self, digest: str, data: bytes) -> bool:
        """Whether the store took the blob directly; False when it offers no target for it or refuses it
        (then the API's route must take it)."""
        target = self.targets.get(digest)
        if target is None or self.unreachable:
            return False
        try:
            response = self._http.request(
                target.method, target.url, headers=dict(target.headers), content=data
            )
        except httpx.HTTPError:
            self.unreachable = True  # not from here (a proxy, a firewall): the API takes every blob
            return False
        return response.is_success
