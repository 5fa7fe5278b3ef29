"""Error answers leave the connection usable, and a busy database answers 503 with Retry-After.

Raw sockets, so keep-alive is explicit: two requests on one connection, the second must be answered.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from anchor_deploy.api.errors import UnexpectedErrors, install_error_handlers
from tests.e2e.harness import LOOPBACK, AnchorProcess
from tests.ports import free_port


def _request(method: str, path: str, token: str = "", body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: api", f"Content-Length: {len(body)}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body:
        head.append("Content-Type: application/json")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a body")
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


@pytest.fixture
def buggy_api() -> Iterator[int]:
    """A real uvicorn serving an app whose one route has a bug, with the platform's error handling."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(UnexpectedErrors)

    @app.get("/bug")
    def bug() -> dict[str, str]:
        raise RuntimeError("a bug")

    @app.get("/fine")
    def fine() -> dict[str, str]:
        return {"ok": "yes"}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_after_a_500_the_same_connection_serves_the_next_request(buggy_api: int) -> None:
    with socket.create_connection((LOOPBACK, buggy_api), timeout=5) as sock:
        sock.sendall(_request("GET", "/bug"))
        status, headers, body = _read_response(sock)
        assert status == 500 and json.loads(body)["error"]["code"] == "internal"
        assert headers.get("connection", "").lower() != "close"
        sock.sendall(_request("GET", "/fine"))
        status, _headers, body = _read_response(sock)
        assert status == 200 and json.loads(body) == {"ok": "yes"}


@pytest.mark.timeout(120)
def test_a_write_locked_database_answers_503_with_retry_after_and_reads_go_on(tmp_path: Path) -> None:
    anchor = AnchorProcess(tmp_path / "data", extra_env={"ANCHOR_DB_BUSY_TIMEOUT": "1"}).start()
    try:
        locker = sqlite3.connect(anchor.data_dir / "anchor.db", isolation_level=None, timeout=5)
        locker.execute("BEGIN IMMEDIATE")  # another process holding the write lock, as a backup tool might
        try:
            with socket.create_connection((LOOPBACK, anchor.api_port), timeout=10) as sock:
                started = time.monotonic()
                sock.sendall(_request("POST", "/v1/projects", anchor.token, b'{"name": "blocked"}'))
                status, headers, body = _read_response(sock)
                took = time.monotonic() - started
                assert status == 503, body
                assert json.loads(body)["error"]["code"] == "busy"
                assert headers.get("retry-after") == "1"
                assert took < 1 + 2, f"answered after {took:.1f}s"
                # The same connection goes on: a read works while the lock is held.
                sock.sendall(_request("GET", "/v1/projects", anchor.token))
                status, _headers, body = _read_response(sock)
                assert status == 200, body
                assert [p["name"] for p in json.loads(body)["projects"]] == []
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        with anchor.api() as api:
            created = api.post("/v1/projects", json={"name": "blocked"})
            assert created.status_code == 201, created.text  # nothing half-done by the refused try
        assert "Traceback" not in anchor.log_tail()
    finally:
        anchor.stop()
