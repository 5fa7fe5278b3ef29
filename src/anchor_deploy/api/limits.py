"""Request bodies limited while they stream, for every route: a pure ASGI middleware.

A blob upload (``PUT /v1/blobs/{sha256}``) may be ANCHOR_MAX_BLOB_SIZE bytes, any other body
ANCHOR_MAX_JSON_BODY. A declared Content-Length over the limit is answered 413 at once, before a byte of
the body is read; a chunked body, or one longer than it said, is counted as it arrives and the app's next
read past the limit raises the 413 instead of handing the bytes over, so the app never holds more than the
limit. The 413 says ``Connection: close``: the rest of the body is never read, so the connection cannot
carry another request. (A body *shorter* than its Content-Length is the server's business: uvicorn reads
exactly Content-Length bytes and parses what follows as the next request.)
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anchor_deploy.model.errors import AnchorError, BadRequest, BlobTooLarge, BodyTooLarge
from anchor_deploy.services.uploads import MAX_BATCH_BYTES

_BLOB_PREFIX = "/v1/blobs/"
_BATCH_PATH = "/v1/blob-batches"  # a batch of small blobs (api/routes_blobs.py): MAX_BATCH_BYTES
_GIT_PREFIX = "/git/"  # a git push or fetch (api/routes_git_remote.py): ANCHOR_GIT_PUSH_MAX_BYTES
# More digits than this is more than any limit (and int() refuses over 4,300 digits).
_MAX_DIGITS = 18


class BodyLimit:
    def __init__(self, app: ASGIApp, json_limit: int, blob_limit: int, git_limit: int = 0) -> None:
        self.app = app
        self.json_limit = json_limit
        self.blob_limit = blob_limit
        self.git_limit = git_limit or json_limit

    def limit_for(self, scope: Scope) -> tuple[int, AnchorError]:
        """The route's limit and the error that refuses a body over it."""
        if scope["method"] == "PUT" and scope["path"].startswith(_BLOB_PREFIX):
            return self.blob_limit, BlobTooLarge(f"blob is larger than the {self.blob_limit}-byte limit")
        if scope["path"] == _BATCH_PATH:
            return MAX_BATCH_BYTES, BodyTooLarge(f"the batch is larger than the {MAX_BATCH_BYTES}-byte limit")
        if scope["path"].startswith(_GIT_PREFIX):
            return self.git_limit, BodyTooLarge(f"git request is larger than the {self.git_limit}-byte limit")
        return self.json_limit, BodyTooLarge(f"request body is larger than the {self.json_limit}-byte limit")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, too_large = self.limit_for(scope)
        declared = [value for name, value in scope["headers"] if name == b"content-length"]
        if declared:
            if len(set(declared)) > 1 or not declared[0].isdigit():  # bytes.isdigit: ASCII digits only
                await refuse(send, BadRequest("Content-Length must be one decimal number of bytes"))
                return
            if len(declared[0]) > _MAX_DIGITS or int(declared[0]) > limit:
                await refuse(send, too_large)
                return
        received = 0
        over = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                raise too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise too_large
            return message

        async def closing_send(message: Message) -> None:
            if over and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)


async def refuse(send: Send, error: AnchorError) -> None:
    """Answer ``error`` as the API's JSON error and close the connection (its body stays unread)."""
    body = json.dumps({"error": error.to_dict()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
