"""The live streams' bell: rung after an answered write, it wakes a waiting stream at once (the poll is the
fallback for writes made by other processes)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from anchor_deploy.web import routes_live
from anchor_deploy.web.bell import ChangeBell, RingOnWrites
from tests.unit.conftest import ADMIN
from tests.unit.web_harness import (
    Web,
    events_url,
    web_fixture,  # noqa: F401
)


async def _answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _call(app: RingOnWrites, method: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    await app({"type": "http", "method": method, "path": "/v1/x"}, receive, send)


@pytest.mark.parametrize(
    ("method", "rings"), [("POST", True), ("DELETE", True), ("PUT", True), ("GET", False)]
)
def test_a_write_rings_the_bell_once_answered_and_a_read_does_not(method: str, rings: bool) -> None:
    async def scenario() -> bool:
        bell = ChangeBell()
        app = RingOnWrites(_answer, bell)
        waiting = asyncio.create_task(bell.wait(1.0))
        await asyncio.sleep(0)  # the waiter is registered
        await _call(app, method)
        return await waiting

    assert asyncio.run(scenario()) is rings


def test_the_bell_wakes_every_waiter_and_a_later_wait_waits_again() -> None:
    async def scenario() -> tuple[list[bool], bool]:
        bell = ChangeBell()
        waiters = [asyncio.create_task(bell.wait(2.0)) for _ in range(3)]
        await asyncio.sleep(0)
        bell.ring()
        woken = list(await asyncio.gather(*waiters))
        return woken, await bell.wait(0.05)

    assert asyncio.run(scenario()) == ([True, True, True], False)


def test_a_rung_bell_brings_the_change_before_the_poll(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_live, "POLL_SECONDS", 60.0)
    site = web.make_project("site")
    first = web.deploy(site, {"index.html": b"one"})
    web.deploy(site, {"index.html": b"two"})
    browser = web.browser()
    stream = events_url(browser.get("/ui/projects/site").text)

    def move_and_ring() -> None:
        loop = asyncio.get_running_loop()

        def later() -> None:
            time.sleep(0.5)  # the stream has read its first state by now, and waits on the bell
            web.app.aliases.rollback(web.project("site"), first.id, ADMIN)
            loop.call_soon_threadsafe(web.asgi.state.bell.ring)

        threading.Thread(target=later, daemon=True).start()

    # The stream waits on the bell for up to 60 s between reads: only the ring can wake it within the 3 s
    # this read allows.
    body = web.events(
        browser, stream, until=lambda text: "event: change" in text, during=move_and_ring, timeout=3
    )
    assert "event: change" in body


def test_a_closing_bell_ends_the_streams_at_once(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_live, "POLL_SECONDS", 60.0)
    web.deploy(web.make_project("site"), {"index.html": b"one"})
    browser = web.browser()
    stream = events_url(browser.get("/ui/projects/site").text)
    started = time.monotonic()
    # Nothing changes and the next poll is 60 s away: only the server's shutdown (close) ends the stream,
    # which the harness then sees end by itself instead of hanging up after 20 s.
    body = web.events(
        browser, stream, until=lambda _text: False, during=web.asgi.state.bell.close, timeout=20
    )
    assert time.monotonic() - started < 10
    assert body.startswith("retry: ") and "event:" not in body
