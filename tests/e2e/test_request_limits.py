"""Request limits against a real `anchor up`, over raw sockets to the API on 127.0.0.1.

Bodies are limited while they stream (a declared Content-Length over the limit is refused before a byte of
the body is read; a chunked or lying body is cut off at the limit), JSON is limited in depth and a
deployment's meta in depth and size, and a client that sends its headers or its body too slowly is dropped
after ANCHOR_API_READ_TIMEOUT (2 s here). The platform's memory is watched from /proc/<pid>/status.

One platform for the module; the tests run in file order and the last one checks that it still serves.
"""

from __future__ import annotations

import json
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project, sha, upload_and_deploy, wait_final

READ_TIMEOUT = 2.0
MiB = 1024 * 1024
HUGE = 400 * MiB
RSS_GROWTH_LIMIT = 50 * MiB
JSON_LIMIT = 32 * MiB  # the default ANCHOR_MAX_JSON_BODY
BLOB_LIMIT = 100 * MiB  # the default ANCHOR_MAX_BLOB_SIZE
INDEX = b"<h1>limits</h1>"
DEPLOYMENTS = "/v1/projects/site/deployments"


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    platform = AnchorProcess(
        tmp_path_factory.mktemp("limits") / "data", extra_env={"ANCHOR_API_READ_TIMEOUT": str(READ_TIMEOUT)}
    ).start()
    try:
        with platform.api() as api:
            ensure_project(api, "site")
            upload_and_deploy(api, "site", {"index.html": INDEX})
        yield platform
    finally:
        platform.stop()


# -- helpers ----------------------------------------------------------------------------------------------
def rss(pid: int) -> int:
    """The process's resident memory in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssWatch:
    """Samples a process's RSS every 10 ms in a thread; ``growth`` is the peak over the first sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.1)  # the platform may still be releasing what it read
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def connect(anchor: AnchorProcess, timeout: float = 10) -> socket.socket:
    return socket.create_connection((LOOPBACK, anchor.api_port), timeout=timeout)


def head(anchor: AnchorProcess, method: str, path: str, *headers: str, auth: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{anchor.api_port}"]
    if auth:
        lines.append(f"Authorization: Bearer {anchor.token}")
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_responses(data: bytes) -> list[Response]:
    """Every complete response with a Content-Length in ``data``, in order."""
    found: list[Response] = []
    while b"\r\n\r\n" in data:
        top, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        found.append(Response(int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return found


@dataclass
class Reader:
    """Reads a socket in a thread until EOF or an error, keeping everything and when the end came."""

    sock: socket.socket
    data: bytes = b""
    ended_at: float | None = None
    error: OSError | None = None
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except OSError as exc:
            self.error = exc
        self.ended_at = time.monotonic()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def responses(self) -> list[Response]:
        return parse_responses(self.data)


def pump(sock: socket.socket, chunks: Iterator[bytes], reader: Reader, deadline: float) -> int:
    """Send chunks until the server closes (a send fails or the reader sees the end) or the deadline;
    the number of bytes sent."""
    sent = 0
    for chunk in chunks:
        if reader.ended_at is not None or time.monotonic() > deadline:
            break
        try:
            sock.sendall(chunk)
        except OSError:  # EPIPE / ECONNRESET: the server closed the connection
            break
        sent += len(chunk)
    return sent


def mebibytes(total: int, framed: bool) -> Iterator[bytes]:
    block = b"x" * MiB
    for _ in range(total // MiB):
        yield b"100000\r\n" + block + b"\r\n" if framed else block


def assert_closed_quickly(reader: Reader, timeout: float = 10) -> None:
    assert reader.wait(timeout), "the server kept the connection open"


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, response
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


def nested(depth: int, leaf: Any = 1, kind: type = dict) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value} if kind is dict else [value]
    return value


def deployment_body(meta: Any) -> dict[str, Any]:
    return {"files": [{"path": "index.html", "sha256": sha(INDEX), "size": len(INDEX)}], "meta": meta}


# -- bodies limited while they stream ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "code", "limit"),
    [
        ("POST", DEPLOYMENTS, "body_too_large", JSON_LIMIT),
        ("POST", "/v1/projects", "body_too_large", JSON_LIMIT),
        ("PUT", f"/v1/blobs/{sha(b'huge')}", "blob_too_large", BLOB_LIMIT),
    ],
    ids=["deployments", "projects", "blob"],
)
def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    anchor: AnchorProcess, method: str, path: str, code: str, limit: int
) -> None:
    assert anchor.proc is not None
    with RssWatch(anchor.proc.pid) as watch, connect(anchor) as sock:
        started = time.monotonic()
        sock.sendall(head(anchor, method, path, f"Content-Length: {HUGE}", "Content-Type: application/json"))
        reader = Reader(sock)  # not one byte of the body is sent
        assert_closed_quickly(reader, timeout=5)
    assert reader.ended_at is not None and reader.ended_at - started < 2
    [response] = reader.responses
    error = assert_error(response, 413, code)
    assert str(limit) in error["message"]
    assert response.headers["connection"] == "close"
    assert watch.growth < RSS_GROWTH_LIMIT, watch.growth
    print(f"declared {HUGE} bytes to {path}: RSS growth {watch.growth / MiB:.1f} MiB")


@pytest.mark.parametrize(
    ("method", "path", "code", "limit"),
    [
        ("POST", DEPLOYMENTS, "body_too_large", JSON_LIMIT),
        ("PUT", f"/v1/blobs/{sha(b'endless')}", "blob_too_large", BLOB_LIMIT),
    ],
    ids=["deployments", "blob"],
)
def test_a_chunked_body_is_cut_off_at_the_limit(
    anchor: AnchorProcess, method: str, path: str, code: str, limit: int
) -> None:
    assert anchor.proc is not None
    with RssWatch(anchor.proc.pid) as watch, connect(anchor) as sock:
        sock.sendall(
            head(anchor, method, path, "Transfer-Encoding: chunked", "Content-Type: application/json")
        )
        reader = Reader(sock)
        sent = pump(sock, mebibytes(HUGE, framed=True), reader, deadline=time.monotonic() + 60)
        assert_closed_quickly(reader)
    # The server read up to its limit, answered, and stopped reading: far less than the 400 MiB on offer.
    assert limit <= sent < limit + 64 * MiB, sent
    responses = reader.responses
    if responses:  # a client still sending may see the reset of the close before the answer; not here
        [response] = responses
        assert_error(response, 413, code)
        assert response.headers["connection"] == "close"
    assert watch.growth < RSS_GROWTH_LIMIT, watch.growth
    print(f"chunked to {path}: sent {sent / MiB:.0f} MiB, RSS growth {watch.growth / MiB:.1f} MiB")


@pytest.mark.parametrize("wait_for_answer", [True, False], ids=["answer-first", "all-at-once"])
def test_a_body_longer_than_its_content_length(anchor: AnchorProcess, wait_for_answer: bool) -> None:
    """Content-Length: 100, then 400 MiB: the first 100 bytes are the request, the rest is no request.

    uvicorn parses what follows the 100 bytes as the next request, answers it 400 and closes. Sent all at
    once, that 400 may even come first: the parser fails while the app still handles the first request,
    whose answer is then lost with the connection. Either way nothing is buffered and nothing breaks."""
    assert anchor.proc is not None
    name = f"lying-{str(wait_for_answer).lower()}"
    body = json.dumps({"name": name}).encode().ljust(100)  # JSON may end in spaces
    with RssWatch(anchor.proc.pid) as watch, connect(anchor) as sock:
        sock.sendall(head(anchor, "POST", "/v1/projects", "Content-Length: 100") + body)
        reader = Reader(sock)
        if wait_for_answer:
            deadline = time.monotonic() + 5
            while not reader.responses and time.monotonic() < deadline:
                time.sleep(0.01)
            [created] = reader.responses
            assert created.status == 201 and created.json()["name"] == name, created
        sent = pump(sock, mebibytes(HUGE, framed=False), reader, deadline=time.monotonic() + 60)
        assert_closed_quickly(reader)
    assert sent < 64 * MiB, sent
    responses = reader.responses
    assert responses and all(r.status in (201, 400) for r in responses), responses
    refused = responses[-1]
    assert (refused.status, refused.headers["connection"]) == (400, "close"), refused
    if wait_for_answer:
        assert [r.status for r in responses] == [201, 400]
    assert watch.growth < RSS_GROWTH_LIMIT, watch.growth
    print(f"lying length ({name}): sent {sent / MiB:.0f} MiB, RSS growth {watch.growth / MiB:.1f} MiB")


@pytest.mark.parametrize(
    "lengths",
    [["abc"], ["12abc"], ["-1"], ["5", "6"], ["99999999999999999999999999999999"]],
    ids=["letters", "trailing-letters", "negative", "two-values", "more-digits-than-any-limit"],
)
def test_a_content_length_that_is_no_number(anchor: AnchorProcess, lengths: list[str]) -> None:
    with connect(anchor) as sock:
        sock.sendall(head(anchor, "POST", "/v1/projects", *(f"Content-Length: {n}" for n in lengths)))
        reader = Reader(sock)
        assert_closed_quickly(reader, timeout=5)
    [response] = reader.responses
    # The HTTP parser refuses most before the app sees them (400), the app refuses a number over the limit.
    assert response.status in (400, 413), response
    assert response.headers["connection"] == "close"


def test_headers_over_the_cap_are_refused(anchor: AnchorProcess) -> None:
    with connect(anchor) as sock:
        sock.sendall(head(anchor, "GET", "/v1/health", "X-Filler: " + "f" * 200_000))
        reader = Reader(sock)
        assert_closed_quickly(reader, timeout=5)
    assert reader.data.startswith(b"HTTP/1.1 431 "), reader.data[:100]


# -- JSON depth and meta ----------------------------------------------------------------------------------
def test_meta_nested_300_deep_is_refused_and_listings_still_answer(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        before = api.get(DEPLOYMENTS)
        assert before.status_code == 200
        for meta, expected in [
            (nested(300), "nested deeper than 32 levels"),
            (nested(9), "meta must be nested at most 8 levels deep"),
            ({"k": "v" * (16 * 1024)}, "meta must be at most 16384 bytes as JSON"),
            ({"k" * 257: 1}, "meta keys must be strings of at most 256 characters"),
        ]:
            # json.dumps is recursive; 300 levels are within Python's recursion limit.
            response = api.post(DEPLOYMENTS, content=json.dumps(deployment_body(meta)).encode())
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_input" and expected in error["message"], error
        after = api.get(DEPLOYMENTS)
        assert after.status_code == 200 and after.json() == before.json()
        # The limits themselves pass.
        response = api.post(DEPLOYMENTS, json=deployment_body(nested(8, "x" * 100)))
        assert response.status_code == 201, response.text
        assert api.get(f"/v1/deployments/{response.json()['id']}").json()["meta"] == nested(8, "x" * 100)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/projects", {"name": nested(100)}),
        ("/v1/tokens", {"name": "t", "extra": nested(32, kind=list)}),  # 33 levels with the body
        ("/v1/projects/site/rollback", {"deploymentId": nested(100)}),
    ],
    ids=["projects", "tokens-33-levels", "rollback"],
)
def test_a_json_body_nested_too_deep_is_refused(anchor: AnchorProcess, path: str, body: Any) -> None:
    with anchor.api() as api:
        response = api.post(path, content=json.dumps(body).encode())
        assert response.status_code == 422, response.text
        assert response.json()["error"] == {
            "code": "invalid_input",
            "message": "request body is nested deeper than 32 levels",
        }


def test_nan_in_a_body_is_refused(anchor: AnchorProcess) -> None:
    """Python's json reads NaN; stored in a meta, no JSON answer could carry it back."""
    with anchor.api() as api:
        response = api.post(DEPLOYMENTS, content=b'{"files": [], "meta": {"x": NaN}}')
        assert response.status_code == 422, response.text
        assert "NaN is not a JSON value" in response.json()["error"]["message"]


def test_a_stored_meta_from_an_older_version_cannot_break_listings(anchor: AnchorProcess) -> None:
    """Metas an older version accepted (deep, NaN) are written into the database directly."""
    with anchor.api() as api:
        ids = [api.post(DEPLOYMENTS, json=deployment_body({"n": n})).json()["id"] for n in range(3)]
        for deployment_id in ids:  # built and done with: nothing writes the rows any more
            assert wait_final(api, deployment_id)["status"] == "READY"
        stored = {
            ids[0]: json.dumps(nested(300)),
            ids[1]: '{"x": NaN}',
            ids[2]: json.dumps(nested(12)),  # deeper than new metas may be, shown as it is
        }
        with sqlite3.connect(anchor.data_dir / "anchor.db", timeout=10) as db:
            for deployment_id, meta in stored.items():
                db.execute("UPDATE deployments SET meta = ? WHERE id = ?", (meta, deployment_id))
        db.close()
        for deployment_id in ids[:2]:
            shown = api.get(f"/v1/deployments/{deployment_id}")
            assert shown.status_code == 200, shown.text
            assert shown.json()["meta"] is None and shown.json()["metaOmitted"] is True
        shown = api.get(f"/v1/deployments/{ids[2]}")
        assert shown.status_code == 200 and shown.json()["meta"] == nested(12), shown.text
        listing = api.get(DEPLOYMENTS)
        assert listing.status_code == 200, listing.text
        by_id = {d["id"]: d for d in listing.json()["deployments"]}
        assert by_id[ids[0]]["metaOmitted"] and by_id[ids[1]]["metaOmitted"]
        assert "metaOmitted" not in by_id[ids[2]]


# -- read timeouts ----------------------------------------------------------------------------------------
def test_a_slow_header_client_is_dropped_while_others_are_served(anchor: AnchorProcess) -> None:
    request = head(anchor, "GET", "/v1/health", "X-Slow: " + "s" * 100)
    outcome: dict[str, float] = {}

    def slow_client() -> None:
        with connect(anchor) as sock:
            started = time.monotonic()
            for byte in request:  # one byte every 0.5 s: 70 s for the whole request
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                readable, _, _ = select.select([sock], [], [], 0.5)
                if readable:
                    try:
                        if sock.recv(1024) == b"":
                            break
                    except OSError:
                        break
                if time.monotonic() - started > 4 * READ_TIMEOUT:
                    return
            outcome["dropped_after"] = time.monotonic() - started

    slow = threading.Thread(target=slow_client)
    slow.start()
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=anchor.api_url, timeout=5) as client:
            for _ in range(3):  # a normal request meanwhile is answered at once
                started = time.monotonic()
                assert client.get("/v1/health").status_code == 200
                assert time.monotonic() - started < 1
                time.sleep(0.3)
    finally:
        slow.join(timeout=6 * READ_TIMEOUT)
    assert "dropped_after" in outcome, "the slow client was not dropped"
    assert READ_TIMEOUT - 0.1 <= outcome["dropped_after"] < READ_TIMEOUT + 1.5, outcome


def test_a_silent_connection_is_dropped(anchor: AnchorProcess) -> None:
    with connect(anchor) as sock:
        started = time.monotonic()
        reader = Reader(sock)
        assert_closed_quickly(reader, timeout=3 * READ_TIMEOUT)
    assert reader.ended_at is not None
    assert READ_TIMEOUT - 0.1 <= reader.ended_at - started < READ_TIMEOUT + 1.5


@pytest.mark.parametrize("path", [DEPLOYMENTS, f"/v1/blobs/{sha(b'stalled')}"], ids=["json", "blob"])
def test_a_body_that_stalls_halfway_is_dropped(anchor: AnchorProcess, path: str) -> None:
    method = "PUT" if "blobs" in path else "POST"
    with connect(anchor) as sock:
        sock.sendall(head(anchor, method, path, "Content-Length: 1000") + b"{" + b" " * 499)
        started = time.monotonic()
        reader = Reader(sock)
        assert_closed_quickly(reader, timeout=3 * READ_TIMEOUT)
    assert reader.ended_at is not None
    assert READ_TIMEOUT - 0.1 <= reader.ended_at - started < READ_TIMEOUT + 1.5
    assert reader.data == b""  # nobody answered a request that never came whole


def test_a_slow_but_moving_body_is_not_dropped(anchor: AnchorProcess) -> None:
    """The body's timeout is between two arrivals: 5 pieces 1 s apart take longer than it, and pass."""
    body = json.dumps({"name": "slow-body"}).encode()
    pieces = [body[i : i + 4] for i in range(0, len(body), 4)][:5]
    pieces[-1] += body[sum(len(p) for p in pieces) :]
    with connect(anchor) as sock:
        sock.sendall(head(anchor, "POST", "/v1/projects", f"Content-Length: {len(body)}"))
        reader = Reader(sock)
        started = time.monotonic()
        for piece in pieces:
            time.sleep(READ_TIMEOUT / 2)
            sock.sendall(piece)
        deadline = time.monotonic() + 5
        while not reader.responses and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.monotonic() - started > READ_TIMEOUT
    [response] = reader.responses
    assert response.status == 201, response


def test_a_connection_answered_before_its_body_came_does_not_stay_open(anchor: AnchorProcess) -> None:
    """401 before the body is read; the body's bytes then cancel uvicorn's keep-alive timer, which the
    protocol arms again once the body is complete: the idle connection closes after 5 s, not never."""
    with connect(anchor) as sock:
        sock.sendall(head(anchor, "POST", "/v1/projects", "Content-Length: 1000", auth=False))
        reader = Reader(sock)
        deadline = time.monotonic() + 5
        while not reader.responses and time.monotonic() < deadline:
            time.sleep(0.01)
        sock.sendall(b" " * 1000)
        started = time.monotonic()
        assert_closed_quickly(reader, timeout=10)
    assert reader.ended_at is not None and reader.ended_at - started < 5 + 1.5
    [response] = reader.responses
    assert_error(response, 401, "unauthorized")


def test_the_platform_still_serves(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        deployment = upload_and_deploy(api, "site", {"index.html": b"<h1>still here</h1>"})
        assert deployment["status"] == "READY"
        assert api.get(DEPLOYMENTS).status_code == 200
        assert api.get("/v1/health").json()["ok"] is True
    assert anchor.edge("site.localhost").text == "<h1>still here</h1>"
    assert anchor.proc is not None and anchor.proc.poll() is None
    assert "Traceback" not in anchor.log_tail(), anchor.log_tail()
