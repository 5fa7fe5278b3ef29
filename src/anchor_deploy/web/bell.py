"""A bell the live streams wait on: rung when this process has answered a request that may have changed
something (any method but GET, HEAD and OPTIONS, on the API or the dashboard), so an open page learns of a
rollback made from the CLI within milliseconds instead of at its next poll. Writes made elsewhere (a build
worker, the domain loop, another control plane) are still found by the streams' poll."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ChangeBell:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self.closing = False  # the server is shutting down: streams end instead of waiting again

    def close(self) -> None:
        """The server is shutting down: wake every stream, which then ends (uvicorn would otherwise wait
        its graceful timeout for them, then cancel them)."""
        self.closing = True
        self.ring()

    def ring(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Until the bell rings (True) or ``timeout`` seconds pass (False); at once once closing."""
        if self.closing:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)


class RingOnWrites:
    """Rings the bell once a request that may write has been answered (after its transaction)."""

    def __init__(self, app: ASGIApp, bell: ChangeBell) -> None:
        self.app = app
        self.bell = bell

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.bell.ring()
