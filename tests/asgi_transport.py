"""The API app answering in this process (no server, no socket): for a synchronous client (the CLI's) and
for single requests from a test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI


class InProcessTransport(httpx.BaseTransport):
    """``before`` runs ahead of each request (a test's queued builds, say); ``calls`` counts requests."""

    def __init__(self, app: FastAPI, before: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.before = before
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.before()

        async def send() -> httpx.Response:
            answer = await httpx.ASGITransport(app=self.app).handle_async_request(request)
            return httpx.Response(answer.status_code, headers=answer.headers, content=await answer.aread())

        return asyncio.run(send())


def asgi_request(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the app, answered as it comes (an error too)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://anchor.test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())
