"""The API server's HTTP/1.1 protocol: uvicorn's httptools protocol with read timeouts and a header cap.

uvicorn has a keep-alive timeout (between requests) but none for reading a request: a client that sends its
headers one byte a second, or half a body and then nothing, holds its connection (and the request's task)
forever. This subclass arms one timer per connection:

- headers: from the connection's first moment (or a keep-alive request's first byte) until the headers are
  complete, ``read_timeout`` seconds in all, however the bytes trickle in;
- body: ``read_timeout`` seconds between two arrivals of body bytes, counted only while the server wants
  them (not while uvicorn has paused reading because the app has not consumed what came, nor while a
  client that sent ``Expect: 100-continue`` waits for the app's first read). A slow but moving upload goes
  on; a stalled one is dropped.

On expiry the connection is closed; an app waiting for the body gets ``http.disconnect``. Headers are
also capped at ``max_header_bytes`` (httptools itself has no limit; h11 has
``h11_max_incomplete_event_size``): past it the answer is 431 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Literal

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024

Phase = Literal["idle", "headers", "body"]


class _WatchedFlow(FlowControl):
    """uvicorn's flow control, telling the protocol when reading pauses and when the app asks for more."""

    def __init__(self, transport: asyncio.Transport, protocol: TimedHttpProtocol) -> None:
        super().__init__(transport)
        self._protocol = protocol

    def pause_reading(self) -> None:
        super().pause_reading()
        self._protocol.reading_paused()

    def resume_reading(self) -> None:
        # Called on each of the app's reads (receive()) and after each response, paused or not.
        super().resume_reading()
        self._protocol.reading_wanted()


class TimedHttpProtocol(HttpToolsProtocol):
    read_timeout: ClassVar[float] = 60.0
    max_header_bytes: ClassVar[int] = MAX_HEADER_BYTES

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: Phase = "idle"
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    # -- the timer ------------------------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.read_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport is not None and not self.transport.is_closing():
            late = "headers not complete" if self._phase == "headers" else "no body bytes"
            log.info("dropping the connection from %s: %s in %ss", self.client, late, self.read_timeout)
            self.transport.close()

    def reading_paused(self) -> None:
        self._disarm()  # the server is not reading: the client cannot be late

    def reading_wanted(self) -> None:
        """The app reads (or has answered): a body is late from now on; a header deadline stays as it is."""
        if self._phase == "body" or (self._phase == "headers" and self._timer is None):
            self._arm()

    # -- the protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _WatchedFlow(transport, self)
        self._phase = "headers"
        self._header_bytes = 0
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._phase = "idle"
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self._phase != "body"
        if counted:
            self._header_bytes += len(data)
        super().data_received(data)
        if counted and self._phase == "headers" and self._header_bytes > self.max_header_bytes:
            self._refuse_headers()

    def _refuse_headers(self) -> None:
        self._disarm()
        self._phase = "idle"
        if self.transport.is_closing():
            return
        message = b"Request header fields too large"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._phase = "idle"
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        if self._phase == "idle":  # a later request on a kept-alive connection: its own header deadline
            self._phase = "headers"
            self._header_bytes = 0
            self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        # Before super(): it may pause reading (a pipelined request), which disarms again.
        self._phase = "body"
        self._header_bytes = 0
        if self.expect_100_continue:
            self._disarm()  # the client waits for "100 Continue", sent on the app's first read
        else:
            self._arm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = "idle"
        super().on_message_complete()
        answered = self.cycle is not None and self.cycle.response_complete
        if answered and self.timeout_keep_alive_task is None and not self.transport.is_closing():
            # Answered before the body had all come: uvicorn armed its keep-alive timer at the answer, and
            # the body's later bytes cancelled it. Without it again the idle connection would stay forever.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )


def timed_protocol(read_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type[TimedHttpProtocol]:
    """A TimedHttpProtocol class with these limits, for ``uvicorn.Config(http=...)``."""

    class Configured(TimedHttpProtocol):
        pass

    Configured.read_timeout = read_timeout
    Configured.max_header_bytes = max_header_bytes
    return Configured
