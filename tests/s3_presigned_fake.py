"""A small stateful stand-in for S3's handling of a presigned PUT, for the rules moto does not enforce.

moto (5.2) checks If-None-Match and If-Match on PutObject, but not a request's signature, not its expiry
(X-Amz-Date + X-Amz-Expires) and not its x-amz-checksum-sha256 against the body (moto/s3/responses.py
``_get_checksum`` stores the claimed value as given). S3 does all three, in that order: the signature (over
the query and exactly the headers named in X-Amz-SignedHeaders, SigV4), the expiry, then the conditions and
the checksum. This fake does the same on a dictionary of objects, with the SigV4 rules written from the
specification (canonical request, string to sign, derived key), so a URL signed by botocore verifies here
only if the client sends the very headers it was signed with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

UNRESERVED = "-_.~"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class PresignedS3:
    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key
        self.objects: dict[str, bytes] = {}  # "/<bucket>/<key>" -> bytes

    def put(self, url: str, headers: dict[str, str], body: bytes, now: float) -> tuple[int, str]:
        """(HTTP status, S3 error code or "") for a PUT of ``body`` to ``url`` with ``headers`` at ``now``."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        sent = {name.lower(): value for name, value in headers.items()} | {"host": parts.netloc}
        if not hmac.compare_digest(
            query.get("X-Amz-Signature", ""), self._signature(parts.path, query, sent)
        ):
            return 403, "SignatureDoesNotMatch"
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if now > signed_at + int(query["X-Amz-Expires"]):
            return 403, "AccessDenied"  # "Request has expired"
        if sent.get("if-none-match") == "*" and parts.path in self.objects:
            return 412, "PreconditionFailed"
        claimed = sent.get("x-amz-checksum-sha256")
        if claimed is not None and claimed != base64.b64encode(hashlib.sha256(body).digest()).decode():
            return 400, "BadDigest"
        self.objects[parts.path] = body
        return 200, ""

    def _signature(self, path: str, query: dict[str, str], sent: dict[str, str]) -> str:
        signed = query.get("X-Amz-SignedHeaders", "")
        canonical_query = "&".join(
            f"{quote(k, safe=UNRESERVED)}={quote(v, safe=UNRESERVED)}"
            for k, v in sorted(query.items())
            if k != "X-Amz-Signature"
        )
        canonical_headers = "".join(f"{name}:{sent.get(name, '').strip()}\n" for name in signed.split(";"))
        request = "\n".join(["PUT", path, canonical_query, canonical_headers, signed, "UNSIGNED-PAYLOAD"])
        _key_id, day, region, service, terminal = query.get("X-Amz-Credential", "////").split("/")
        scope = f"{day}/{region}/{service}/{terminal}"
        to_sign = "\n".join(
            [
                query.get("X-Amz-Algorithm", ""),
                query.get("X-Amz-Date", ""),
                scope,
                hashlib.sha256(request.encode()).hexdigest(),
            ]
        )
        key = _hmac(f"AWS4{self._secret}".encode(), day)
        for part in (region, service, terminal):
            key = _hmac(key, part)
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
