"""The Lambda handler of a static deployment (shipped in its zip; standard library and boto3 only).

The zip holds this module and ``anchor_manifest.json`` (the deployment id and, per served path, the file's
sha256, size and content type); the bytes stay in S3 as ``blobs/<sha256>`` in the bucket named by
``ANCHOR_BLOB_BUCKET``, so the zip is a few kilobytes and a redeploy of unchanged files uploads no bytes.

Requests arrive as Lambda function URL events (payload format 2.0) and are answered as the local edge
answers them: ``/dir/`` serves ``dir/index.html`` and ``/dir`` redirects there (308), a file asked for with
a trailing slash redirects to its name, a missing path gets the deployment's ``404.html`` (a whole 404 page,
never a 304) or a plain 404, only GET and HEAD are allowed (405 otherwise).

Caching (what keeps a rollback instant behind CloudFront): a name carrying a content hash
(``app.3f2a9c1b.js``) is ``immutable`` for a year; everything else is ``max-age=0, s-maxage=0,
must-revalidate`` with a strong ETag (the quoted sha256), so CloudFront asks on every request, gets a 304
while the content is the same and the other version's bytes as soon as the alias moves.

Lambda answers at most 6 MB (the JSON response, base64 included): a file too large for that is answered
with a 307 redirect to a presigned S3 GET that expires after a few minutes (``no-store``, so no cache keeps
the short-lived URL).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

MANIFEST_NAME = "anchor_manifest.json"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
REVALIDATE_CACHE = "public, max-age=0, s-maxage=0, must-revalidate"
NO_STORE = "no-store"
# Names that carry a content hash (app.3f2a9c1b.js, chunk-0a1b2c3d4e.css), as the local edge reads them.
HASHED_ASSET = re.compile(r"[.-][0-9a-f]{8,64}\.[A-Za-z0-9]+$")
FILE_404_BODY = "404 Not Found\n"
INDEX = "index.html"
PAGE_404 = "404.html"
RESPONSE_LIMIT = 6 * 1024 * 1024  # Lambda's synchronous response payload limit
HEADROOM = 64 * 1024  # room for the status, headers and JSON around the body
PRESIGN_SECONDS = 300
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_TEXTUAL = re.compile(r"^(text/|application/(json|javascript|xml|manifest\+json)|image/svg\+xml)")


@dataclass(frozen=True)
class Served:
    """One file of the deployment."""

    path: str
    sha256: str
    size: int
    content_type: str

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


@dataclass(frozen=True)
class Manifest:
    deployment_id: str
    files: dict[str, Served]


def load_manifest(path: Path) -> Manifest:
    raw = json.loads(path.read_text("utf-8"))
    files = {
        name: Served(name, entry["sha256"], int(entry["size"]), entry["type"])
        for name, entry in raw["files"].items()
    }
    return Manifest(os.environ.get("ANCHOR_DEPLOYMENT_ID", ""), files)


# -- finding what a path names ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    file: Served | None = None
    redirect: str | None = None  # a Location to send instead


def clean_segments(raw_path: str) -> list[str] | None:
    """The path's segments, percent-decoded, '.' and empty ones dropped and '..' applied without ever
    climbing above the root (as Go's path.Clean does for the local edge). None for a NUL byte."""
    decoded = unquote(raw_path, errors="strict") if "%" in raw_path else raw_path
    if "\x00" in decoded:
        return None
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return segments


def find(manifest: Manifest, raw_path: str, query: str = "") -> Found:
    """The file a request path names, or the redirect that makes the path canonical, or nothing."""
    try:
        segments = clean_segments(raw_path or "/")
    except UnicodeDecodeError:
        return Found()
    if segments is None:
        return Found()
    key = "/".join(segments)
    slash = raw_path.endswith("/")
    # Locations are built from the cleaned path, never echoed: '//host/' must not become a redirect away.
    canonical = "/" + quote(key, safe=_PATH_SAFE)
    suffix = f"?{query}" if query else ""
    if key in manifest.files:
        if slash:
            return Found(redirect=canonical + suffix)
        return Found(file=manifest.files[key])
    index = manifest.files.get(f"{key}/{INDEX}" if key else INDEX)
    if index is None:
        return Found()
    if slash or not key:
        return Found(file=index)
    return Found(redirect=f"{canonical}/{suffix}")


# -- answers ------------------------------------------------------------------------------------------------
def cache_control(path: str) -> str:
    return IMMUTABLE_CACHE if HASHED_ASSET.search(path) else REVALIDATE_CACHE


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x"; '*' matches any."""
    if not header:
        return False
    for candidate in header.split(","):
        value = candidate.strip()
        if value == "*" or value.removeprefix("W/") == etag:
            return True
    return False


def make_response(
    status: int, headers: dict[str, str], body: bytes = b"", content_type: str | None = None
) -> dict[str, Any]:
    answer: dict[str, Any] = {"statusCode": status, "headers": headers}
    if not body:
        answer.update(body="", isBase64Encoded=False)
        return answer
    if content_type and _TEXTUAL.match(content_type):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if len(json.dumps(text)) <= RESPONSE_LIMIT - HEADROOM:
                answer.update(body=text, isBase64Encoded=False)
                return answer
    answer.update(body=base64.b64encode(body).decode("ascii"), isBase64Encoded=True)
    return answer


def fits_inline(size: int) -> bool:
    """Whether the file, base64-encoded (the larger of the two encodings used), fits in one answer."""
    return 4 * ((size + 2) // 3) <= RESPONSE_LIMIT - HEADROOM


def plain_404() -> dict[str, Any]:
    headers = {"content-type": "text/plain; charset=utf-8", "cache-control": NO_STORE}
    return make_response(404, headers, FILE_404_BODY.encode(), headers["content-type"])


class Blobs:
    """The deployment's bytes in S3 (``blobs/<sha256>``), with a client made on first use."""

    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def read(self, sha256: str) -> bytes:
        answer = self.client.get_object(Bucket=self.bucket, Key=f"blobs/{sha256}")
        data: bytes = answer["Body"].read()
        return data

    def presigned(self, served: Served, cache: str) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": f"blobs/{served.sha256}",
            "ResponseContentType": served.content_type,
            "ResponseCacheControl": cache,
        }
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS)
        return url


def serve_file(
    served: Served, method: str, headers: dict[str, str], blobs: Blobs, status: int = 200
) -> dict[str, Any]:
    """Answer with one file: 304 for a matching If-None-Match, headers only for HEAD, else the bytes (or a
    redirect to them when they are too large for a Lambda answer). A 404 page never answers 304."""
    cache = cache_control(served.path) if status == 200 else REVALIDATE_CACHE
    out = {"content-type": served.content_type, "cache-control": cache}
    if status == 200:
        out["etag"] = served.etag
        if etag_matches(headers.get("if-none-match"), served.etag):
            return make_response(304, out)
    if method == "HEAD":
        out["content-length"] = str(served.size)
        return make_response(status, out)
    if status == 200 and not fits_inline(served.size):
        location = blobs.presigned(served, cache)
        return make_response(307, {"location": location, "cache-control": NO_STORE})
    return make_response(status, out, blobs.read(served.sha256), served.content_type)


def respond(event: dict[str, Any], manifest: Manifest, blobs: Blobs) -> dict[str, Any]:
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "GET")).upper()
    if method not in ("GET", "HEAD"):
        return make_response(405, {"allow": "GET, HEAD", "cache-control": NO_STORE})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    found = find(manifest, str(event.get("rawPath") or "/"), str(event.get("rawQueryString") or ""))
    if found.redirect is not None:
        return make_response(308, {"location": found.redirect, "cache-control": REVALIDATE_CACHE})
    if found.file is not None:
        return serve_file(found.file, method, headers, blobs)
    page = manifest.files.get(PAGE_404)
    if page is None:
        return plain_404()
    return serve_file(page, method, headers, blobs, status=404)


# -- the Lambda entry point ---------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _loaded() -> tuple[Manifest, Blobs]:
    if not _STATE:
        _STATE["manifest"] = load_manifest(Path(__file__).resolve().parent.parent / MANIFEST_NAME)
        _STATE["blobs"] = Blobs(os.environ["ANCHOR_BLOB_BUCKET"])
    return _STATE["manifest"], _STATE["blobs"]


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    manifest, blobs = _loaded()
    return respond(event, manifest, blobs)
