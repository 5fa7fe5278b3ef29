"""Stopping `anchor up` while dashboard pages are open: their event streams end with the server, so the
stop does not sit out uvicorn's graceful timeout and then cancel them."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import httpx

from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy


def _signed_in(anchor: AnchorProcess) -> httpx.Client:
    """An HTTP client signed in through the real form (its nonce, then the session cookie)."""
    client = httpx.Client(base_url=anchor.api_url, timeout=10)
    form = client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text[:300]
    answer = client.post(
        "/ui/sign-in",
        data={"token": anchor.token, "nonce": nonce.group(1), "next": "/ui/"},
        headers={"origin": anchor.api_url},
    )
    assert answer.status_code == 303, answer.text[:300]
    return client


def test_open_streams_end_when_the_platform_stops(tmp_path: Path) -> None:
    anchor = AnchorProcess(tmp_path / "data").start()
    ended: list[str] = []
    try:
        with anchor.api() as api:
            ensure_project(api, "site")
            upload_and_deploy(api, "site", {"index.html": b"hello"})
        client = _signed_in(anchor)
        opened = threading.Barrier(3, timeout=10)

        def follow(path: str) -> None:
            with client.stream("GET", path, timeout=httpx.Timeout(10, read=60)) as answer:
                assert answer.status_code == 200
                chunks = answer.iter_bytes()
                next(chunks)  # the stream's first bytes: it is open
                opened.wait()
                for _chunk in chunks:
                    pass
            ended.append(path)

        readers = [
            threading.Thread(target=follow, args=(path,), daemon=True)
            for path in ("/ui/events", "/ui/projects/site/events")
        ]
        for reader in readers:
            reader.start()
        opened.wait()
        anchor.signal(signal.SIGINT)
        for reader in readers:
            reader.join(timeout=10)
    finally:
        anchor.stop()
    log = anchor.log_tail()
    assert sorted(ended) == ["/ui/events", "/ui/projects/site/events"], log[-2000:]
    assert "graceful shutdown exceeded" not in log
    assert "anchor-deploy stopped" in log
