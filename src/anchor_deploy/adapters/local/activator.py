"""Cold starts: Caddy sends a request here (over a private unix socket) when an app version has no running
worker. The activator starts it, waits until it is healthy, and proxies this first request to it; later
requests go from Caddy straight to the worker's socket."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from anchor_deploy.model.errors import AnchorError
from anchor_deploy.ports.runtime import AppRuntime, SpecLoader

log = logging.getLogger(__name__)
WORKER_HEADER = "x-anchor-worker"
_WORKER_PATH = re.compile(r"^/(dpl_[a-z0-9]{12})$")  # Caddy's {http.vars.deployment}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    WORKER_HEADER,
}
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Activator:
    def __init__(
        self,
        socket_path: Path,
        runtime: AppRuntime,
        load: SpecLoader,
        socket_of: Callable[[str], Path],
        cold_timeout: float = 30.0,
    ) -> None:
        self.socket_path = socket_path
        self._runtime = runtime
        self._load = load
        self._socket_of = socket_of
        self._timeout = cold_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        match = _WORKER_PATH.fullmatch(headers.get(WORKER_HEADER, ""))
        if match is None:
            await _text(send, 404, "404 Not Found\n")
            return
        deployment_id = match.group(1)
        try:
            spec = await asyncio.to_thread(self._load, deployment_id)
            if spec is None:
                await _text(send, 404, "404 Not Found\n")
                return
            await asyncio.to_thread(self._runtime.ensure, spec, self._timeout)
        except AnchorError as exc:
            log.warning("cold start of %s failed: %s", deployment_id, exc)
            await _text(send, 503, "503 Service Unavailable: the app did not start\n")
            return
        await self._proxy(scope, receive, send, self._socket_of(deployment_id))

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, socket: Path) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = "http://app" + path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
        # The request's header lines as they came: bytes (a non-ASCII value must not fail the request) and
        # every line (a repeated Cookie or X-Forwarded-For must not collapse into its last value).
        forward = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        transport = httpx.AsyncHTTPTransport(uds=str(socket))
        async with httpx.AsyncClient(transport=transport, timeout=60) as client:
            try:
                async with client.stream(scope["method"], url, headers=forward, content=bytes(body)) as reply:
                    # The worker's header bytes as they came (no re-encoding). aiter_raw() relays the body
                    # byte for byte, so its Content-Length (and Content-Encoding) still hold: keep them, as
                    # Caddy does for every later request.
                    out = [
                        (k, v) for k, v in reply.headers.raw if k.decode("latin-1").lower() not in _HOP_BY_HOP
                    ]
                    await send({"type": "http.response.start", "status": reply.status_code, "headers": out})
                    async for chunk in reply.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
            except httpx.HTTPError as exc:
                log.warning("proxying a cold request failed: %s", exc)
                await _text(send, 502, "502 Bad Gateway\n")

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        # The proxied answer carries the app's own Date and Server headers: do not add a second pair.
        config = uvicorn.Config(
            self,
            uds=str(self.socket_path),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="activator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)


async def _text(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})
