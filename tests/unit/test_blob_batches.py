"""POST /v1/blob-batches: many small blobs in one tar archive, each checked against its name and the size
limit before any is stored (a bad entry refuses the whole batch, named in the error); and the CLI's upload,
which sends small blobs in batches, large ones one by one, and falls back to one request per blob on a server
without the route."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from anchor_deploy.api.app import create_app
from anchor_deploy.cli import blob_batches
from anchor_deploy.cli.blob_batches import BatchSender, archive
from anchor_deploy.cli.client import ApiClient
from anchor_deploy.cli.deploy import upload
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import InProcessTransport, asgi_request
from tests.support import sha
from tests.unit.conftest import MAX_FILE, App, make_app

BATCH = "/v1/blob-batches"


@dataclass
class Api:
    app: App
    transport: InProcessTransport
    http: httpx.Client
    client: ApiClient
    paths: list[str]  # the path of every request, in order

    def held(self, *contents: bytes) -> list[bool]:
        return [self.app.blobs.has(sha(c)) for c in contents]


@pytest.fixture
def api() -> Iterator[Api]:
    app = make_app()
    _token, admin = app.tokens.create("admin")
    platform = Platform(Settings(base_domain="anchor.test"), app.services, None, BackupService(None))  # type: ignore[arg-type]  # no lifecycle
    paths: list[str] = []
    transport = InProcessTransport(create_app(platform))
    hooks = {"request": [lambda request: paths.append(request.url.path)]}  # each request's path
    http = httpx.Client(
        base_url="http://anchor.test",
        headers={"Authorization": f"Bearer {admin}"},
        transport=transport,
        event_hooks=hooks,
    )
    client = ApiClient("http://anchor.test", admin, transport=transport)
    client._http.event_hooks = hooks  # the CLI client: its requests counted too
    yield Api(app, transport, http, client, paths)
    http.close()
    client.close()


def tar_of(
    *entries: tuple[str, bytes], member_type: bytes = tarfile.REGTYPE, tar_format: int = tarfile.USTAR_FORMAT
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as out:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.pax_headers = {"comment": "x"} if tar_format == tarfile.PAX_FORMAT else {}
            info.size = len(data) if member_type == tarfile.REGTYPE else 0
            info.type = member_type
            out.addfile(info, io.BytesIO(data) if member_type == tarfile.REGTYPE else None)
    return buffer.getvalue()


def test_a_batch_stores_every_blob_and_says_what_it_held_already(api: Api) -> None:
    api.app.upload(b"old")
    body = archive(iter([(sha(b"one"), b"one"), (sha(b"two!"), b"two!"), (sha(b"old"), b"old")]))
    answer = api.http.post(BATCH, content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": 2, "held": 1, "bytes": 7}
    assert api.held(b"one", b"two!", b"old") == [True, True, True]
    assert api.app.blobs.read(sha(b"two!")) == b"two!"


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        ((sha(b"bad"), b"not bad"), 400, "blob_rejected"),  # bytes that do not match the name
        ((sha(b"x" * (MAX_FILE + 1)), b"x" * (MAX_FILE + 1)), 413, "blob_too_large"),
        (("../../etc/passwd", b"root"), 422, "invalid_input"),  # a path, not a digest
        ((f"ab/{sha(b'nested')}", b"nested"), 422, "invalid_input"),
    ],
)
def test_a_bad_entry_refuses_the_whole_batch_and_is_named(
    api: Api, bad: tuple[str, bytes], status: int, code: str
) -> None:
    api.app.services.uploads.max_size = MAX_FILE
    answer = api.http.post(BATCH, content=tar_of((sha(b"good"), b"good"), bad))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert bad[0][:40] in error["message"]
    assert api.held(b"good") == [False]  # the good blob before it is not kept either


def test_a_link_entry_or_an_empty_batch_is_refused(api: Api) -> None:
    link = api.http.post(BATCH, content=tar_of((sha(b"l"), b""), member_type=tarfile.SYMTYPE))
    assert link.status_code == 422 and "not a regular file" in link.json()["error"]["message"]
    empty = api.http.post(BATCH, content=tar_of())
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_input"


def test_gnu_headers_are_read_and_pax_extended_headers_refused(api: Api) -> None:
    """As the route's OpenAPI description says: ustar or GNU headers of regular files, no pax headers."""
    gnu = api.http.post(BATCH, content=tar_of((sha(b"gnu"), b"gnu"), tar_format=tarfile.GNU_FORMAT))
    assert gnu.status_code == 200 and api.held(b"gnu") == [True], gnu.text
    pax = api.http.post(BATCH, content=tar_of((sha(b"pax"), b"pax"), tar_format=tarfile.PAX_FORMAT))
    assert pax.status_code == 422 and pax.json()["error"]["code"] == "invalid_input", pax.text
    assert api.held(b"pax") == [False]


def test_a_truncated_archive_is_a_400_and_stores_nothing(api: Api) -> None:
    blob = b"y" * 5000
    whole = tar_of((sha(b"first"), b"first"), (sha(blob), blob))
    answer = api.http.post(BATCH, content=whole[:2048])  # ends inside the second blob's bytes
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"
    assert api.held(b"first", blob) == [False, False]
    garbage = api.http.post(BATCH, content=b"\x01" * 1024)
    assert garbage.status_code == 400 and "tar archive" in garbage.json()["error"]["message"]
    two = tar_of((sha(b"first"), b"first"), (sha(b"second"), b"second"))
    no_end = two[: 512 * 4]  # both blobs whole (a header and a block each), then no end blocks
    assert api.http.post(BATCH, content=no_end).status_code == 400
    assert api.held(b"first", b"second") == [False, False]
    bad_size = bytearray(tar_of((sha(b"size"), b"size")))
    bad_size[124:136] = b"00000000009\0"  # not octal
    bad_size[148:156] = b"%06o\0 " % (sum(bad_size[:148]) + sum(bad_size[156:512]) + 256)
    answer = api.http.post(BATCH, content=bytes(bad_size))
    assert answer.status_code == 400 and "no readable size" in answer.json()["error"]["message"]


def test_a_batch_needs_a_token(api: Api) -> None:
    body = archive(iter([(sha(b"anon"), b"anon")]))
    with httpx.Client(base_url="http://anchor.test", transport=api.transport) as anonymous:
        answer = anonymous.post(BATCH, content=body)
    assert answer.status_code == 401
    assert api.held(b"anon") == [False]


def test_a_batch_over_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    big = b"z" * 100
    api.app.services.uploads.max_batch = 1024
    answer = api.http.post(BATCH, content=tar_of((sha(big), big), (sha(b"q"), b"q")))
    assert answer.status_code == 413, answer.text
    assert api.held(big) == [False]


def test_a_single_blob_streamed_past_the_limit_is_refused_and_not_stored(api: Api) -> None:
    """No Content-Length to refuse it early: the spooled body itself stops at the blob limit."""

    def put(content: bytes) -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:  # streamed: sent with no Content-Length
            yield content[:MAX_FILE]
            yield content[MAX_FILE:]

        auth = {"Authorization": api.http.headers["Authorization"]}
        return asgi_request(
            api.transport.app, "PUT", f"/v1/blobs/{sha(content)}", content=chunks(), headers=auth
        )

    big, small = b"y" * (MAX_FILE + 1), b"y" * MAX_FILE
    answer = put(big)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "blob_too_large", answer.text
    assert api.held(big) == [False]
    assert put(small).status_code == 201
    assert api.held(small) == [True]


class OlderServer(InProcessTransport):
    """The API as a server from before the batch route answers (404 there), or behind a proxy that takes
    smaller bodies (413)."""

    refused = 0
    status = 404

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == BATCH:
            self.refused += 1
            return httpx.Response(self.status, json={"error": {"code": "refused", "message": "refused"}})
        return super().handle_request(request)


# -- the CLI's upload ----------------------------------------------------------------------------------------
def files(tmp_path: Path, contents: list[bytes]) -> dict[str, tuple[Path, int]]:
    by_digest = {}
    for i, data in enumerate(contents):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        by_digest[sha(data)] = (path, len(data))
    return by_digest


def test_the_cli_sends_small_blobs_in_batches_and_large_ones_alone(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_batches, "BATCH_FILES", 10)
    small = [f"small {i}".encode() for i in range(25)]
    large = b"L" * (blob_batches.SMALL_BLOB + 1)
    by_digest = files(tmp_path, [*small, large])
    sender = BatchSender(api.client)
    sent = upload(api.client, list(by_digest), by_digest, None, None, sender)
    assert sent == sum(len(c) for c in [*small, large])
    assert sorted(api.paths) == sorted([BATCH] * 3 + [f"/v1/blobs/{sha(large)}"])  # 10 + 10 + 5, then 1
    assert sender.requests == 3
    assert all(api.held(*small, large))


@pytest.mark.parametrize("status", [404, 405, 413])
def test_the_cli_falls_back_to_one_request_per_blob_without_the_batch_route(
    api: Api, tmp_path: Path, status: int
) -> None:
    older = OlderServer(api.transport.app)
    older.status = status
    api.client._http._transport = older  # the same API, without the batch route
    contents = [b"a", b"b", b"c"]
    by_digest = files(tmp_path, contents)
    sender = BatchSender(api.client)
    assert upload(api.client, list(by_digest), by_digest, None, None, sender) == 3
    assert not sender.supported and sender.requests == 0
    assert older.refused == 1  # asked once, then never again
    assert sorted(p for p in api.paths if p != BATCH) == sorted(f"/v1/blobs/{sha(c)}" for c in contents)
    assert all(api.held(*contents))
