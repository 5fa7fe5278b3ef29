"""S3BlobStore beyond the shared BlobStore contract: direct (presigned) uploads, S3's own checksums, collect,
errors; and the CLI's upload step sending blobs to presigned targets.

Against the moto server: what moto enforces (If-None-Match and If-Match on PutObject). The rules it does not
enforce on a presigned PUT (the signature over exactly the signed headers, the expiry, the checksum against
the body) are held to tests/s3_presigned_fake.py, a stand-in that applies them as S3 does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from anchor_deploy.adapters.aws import s3_blobs
from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.s3_blobs import S3BlobStore, checksum_of
from anchor_deploy.cli.client import ApiClient
from anchor_deploy.cli.deploy import _upload_asked, upload
from anchor_deploy.cli.direct_upload import DirectUploader, read_targets
from anchor_deploy.model.errors import BlobRejected, BlobStoreUnavailable
from anchor_deploy.services.deployments import upload_json
from tests.aws_support import MotoServer
from tests.ports import LOOPBACK, free_port
from tests.s3_presigned_fake import PresignedS3
from tests.support import sha

BUCKET = "anchor-blobs"
DATA = b"hello, anchor\n"
OTHER = b"hello, ancher\n"
LIMIT = 1024


@pytest.fixture
def store(aws: MotoServer, tmp_path: Path) -> S3BlobStore:
    clients = AwsClients()
    clients.client("s3").create_bucket(Bucket=BUCKET)
    return S3BlobStore(clients, BUCKET, spool_dir=tmp_path)


def raw_s3() -> Any:
    """A client of its own: what another writer (or a look behind the store's back) does."""
    return AwsClients().client("s3")


def requests_to(store: S3BlobStore, operation: str) -> list[dict[str, Any]]:
    """Records the parameters of each ``operation`` call the store's S3 client makes from now on."""
    calls: list[dict[str, Any]] = []
    s3: Any = store._s3
    s3.meta.events.register(
        f"before-parameter-build.s3.{operation}", lambda params, **_: calls.append(params)
    )
    return calls


def send(target: Any, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = dict(target.headers) if headers is None else headers
    return httpx.put(target.url, headers=sent, content=body, timeout=30)


# -- presigned uploads on moto ------------------------------------------------------------------------
def test_a_presigned_put_of_the_right_bytes_is_stored(store: S3BlobStore) -> None:
    digest = sha(DATA)
    assert store.missing([digest]) == [digest]
    [target] = store.upload_targets([digest])
    assert (target.sha256, target.method) == (digest, "PUT")
    assert send(target, DATA).status_code == 200
    assert store.missing([digest]) == []
    assert store.read(digest) == DATA
    head = raw_s3().head_object(Bucket=BUCKET, Key=f"blobs/{digest}", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == checksum_of(digest)


def test_a_presigned_put_to_a_held_blob_is_refused_and_changes_nothing(store: S3BlobStore) -> None:
    digest = sha(DATA)
    [target] = store.upload_targets([digest])
    assert store.put(digest, iter([DATA]), LIMIT) == len(DATA)
    before = raw_s3().head_object(Bucket=BUCKET, Key=f"blobs/{digest}")
    refused = send(target, OTHER)
    assert refused.status_code == 412 and b"PreconditionFailed" in refused.content
    assert store.read(digest) == DATA
    after = raw_s3().head_object(Bucket=BUCKET, Key=f"blobs/{digest}")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])


def test_the_url_binds_the_checksum_and_the_condition_and_expires(store: S3BlobStore) -> None:
    digest = sha(DATA)
    signed_at = time.time()
    [target] = store.upload_targets([digest])
    query = {k: v[0] for k, v in parse_qs(urlsplit(target.url).query).items()}
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert set(query["X-Amz-SignedHeaders"].split(";")) == {"host"} | {h.lower() for h in target.headers}
    assert target.headers["x-amz-checksum-sha256"] == checksum_of(digest)
    assert target.headers["If-None-Match"] == "*"
    assert int(query["X-Amz-Expires"]) == s3_blobs._UPLOAD_TTL
    assert signed_at + s3_blobs._UPLOAD_TTL - 5 <= target.expires_at <= time.time() + s3_blobs._UPLOAD_TTL
    assert urlsplit(target.url).path == f"/{BUCKET}/blobs/{digest}"


def test_a_blob_held_without_its_checksum_is_asked_for_and_replaced(store: S3BlobStore) -> None:
    digest = sha(DATA)
    raw_s3().put_object(Bucket=BUCKET, Key=f"blobs/{digest}", Body=DATA)  # another tool: no checksum kept
    assert store.missing([digest]) == [digest]
    told: list[tuple[str, bool]] = []
    store.on_stored = lambda d, replaced: told.append((d, replaced))
    assert store.put(digest, iter([DATA]), LIMIT) == len(DATA)
    assert told == [(digest, True)] and store.missing([digest]) == []


def test_missing_heads_each_distinct_digest_once(aws: MotoServer, tmp_path: Path) -> None:
    clients = AwsClients()
    clients.client("s3").create_bucket(Bucket=BUCKET)
    store = S3BlobStore(clients, BUCKET, spool_dir=tmp_path, seen_for=0)  # every call asks S3
    held = [bytes([n]) * 3 for n in range(5)]
    for data in held:
        store.put(sha(data), iter([data]), LIMIT)
    heads = requests_to(store, "HeadObject")
    asked = [sha(d) for d in held] + [sha(b"new"), sha(held[0]), sha(b"new")]
    assert store.missing(asked) == [sha(b"new")]
    assert sorted(h["Key"] for h in heads) == sorted({f"blobs/{d}" for d in asked})
    assert all(h["ChecksumMode"] == "ENABLED" for h in heads)


def test_a_blob_seen_whole_is_not_asked_about_again_for_a_while(aws: MotoServer, tmp_path: Path) -> None:
    clients = AwsClients()
    clients.client("s3").create_bucket(Bucket=BUCKET)
    now = [1000.0]
    store = S3BlobStore(clients, BUCKET, spool_dir=tmp_path, seen_for=60.0, monotonic=lambda: now[0])
    mine, theirs, absent = sha(b"mine"), sha(DATA), sha(b"absent")
    store.put(mine, iter([b"mine"]), LIMIT)  # our own PUT: seen whole
    raw_s3().put_object(  # an upload straight to S3 (a presigned PUT): seen at the first HEAD
        Bucket=BUCKET,
        Key=f"blobs/{theirs}",
        Body=DATA,
        ChecksumSHA256=checksum_of(theirs),
        ChecksumAlgorithm="SHA256",
    )
    heads = requests_to(store, "HeadObject")
    assert store.missing([mine, theirs, absent]) == [absent]
    assert sorted(h["Key"] for h in heads) == sorted([f"blobs/{theirs}", f"blobs/{absent}"])
    heads.clear()
    assert store.missing([mine, theirs, absent]) == [absent]  # the next offer of the same deploy
    assert heads == [], "held ones are remembered, and so is a missing one nobody was told to upload"
    store.upload_targets([absent])  # now a client may upload it: the next offer asks again
    assert store.missing([absent]) == [absent] and [h["Key"] for h in heads] == [f"blobs/{absent}"]
    heads.clear()
    now[0] += 61  # long enough for a collection elsewhere to have deleted one: asked again
    raw_s3().delete_object(Bucket=BUCKET, Key=f"blobs/{mine}")
    assert store.missing([mine, theirs]) == [mine]
    assert len(heads) == 2
    heads.clear()
    store.collect(set(), older_than=time.time() + 10)  # what this store collects it forgets at once
    assert store.missing([theirs]) == [theirs] and len(heads) == 1


# -- collect, errors ------------------------------------------------------------------------------------
def test_collect_keeps_what_it_is_told_and_what_is_recent(
    store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_blobs, "_DELETE_BATCH", 2)
    blobs = [f"blob {n}".encode() for n in range(6)]
    for data in blobs:
        store.put(sha(data), iter([data]), LIMIT)
    raw_s3().put_object(Bucket=BUCKET, Key="blobs/not-a-digest", Body=b"x")
    deletes = requests_to(store, "DeleteObjects")
    assert store.collect({sha(blobs[0])}, older_than=time.time() - 3600) == 0  # all too recent
    assert deletes == []
    assert store.collect({sha(blobs[0])}, older_than=time.time() + 60) == 5
    assert [len(d["Delete"]["Objects"]) for d in deletes] == [2, 2, 1]
    left = raw_s3().list_objects_v2(Bucket=BUCKET, Prefix="blobs/")["Contents"]
    assert sorted(o["Key"] for o in left) == sorted([f"blobs/{sha(blobs[0])}", "blobs/not-a-digest"])


def test_reading_a_blob_not_held_is_refused(store: S3BlobStore) -> None:
    with pytest.raises(BlobRejected, match="not stored"):
        store.read(sha(b"never stored"))


def test_s3_failures_are_the_platforms_errors(aws: MotoServer, tmp_path: Path) -> None:
    store = S3BlobStore(AwsClients(), "no-such-bucket", spool_dir=tmp_path)
    digest = sha(DATA)
    for attempt in (
        lambda: store.put(digest, iter([DATA]), LIMIT),
        lambda: store.read(digest),
        lambda: store.collect(set(), time.time()),
    ):
        with pytest.raises(BlobStoreUnavailable, match="NoSuchBucket") as caught:
            attempt()
        assert caught.value.status == 503 and "s3://no-such-bucket" in caught.value.message


# -- what moto does not enforce: S3's own checks, on the stand-in --------------------------------------
@pytest.fixture
def fake_s3(aws: MotoServer) -> PresignedS3:
    return PresignedS3(aws.environ()["AWS_SECRET_ACCESS_KEY"])


def test_s3_takes_the_right_bytes_with_exactly_the_signed_headers(
    store: S3BlobStore, fake_s3: PresignedS3
) -> None:
    [target] = store.upload_targets([sha(DATA)])
    assert fake_s3.put(target.url, dict(target.headers), DATA, time.time()) == (200, "")
    assert fake_s3.objects == {f"/{BUCKET}/blobs/{sha(DATA)}": DATA}
    assert fake_s3.put(target.url, dict(target.headers), DATA, time.time()) == (412, "PreconditionFailed")


def test_s3_refuses_other_bytes_and_keeps_nothing(store: S3BlobStore, fake_s3: PresignedS3) -> None:
    [target] = store.upload_targets([sha(DATA)])
    assert fake_s3.put(target.url, dict(target.headers), OTHER, time.time()) == (400, "BadDigest")
    relabelled = {**target.headers, "x-amz-checksum-sha256": checksum_of(sha(OTHER))}
    assert fake_s3.put(target.url, relabelled, OTHER, time.time()) == (403, "SignatureDoesNotMatch")
    unchecked = {k: v for k, v in target.headers.items() if k != "x-amz-checksum-sha256"}
    assert fake_s3.put(target.url, unchecked, OTHER, time.time()) == (403, "SignatureDoesNotMatch")
    unconditional = {k: v for k, v in target.headers.items() if k != "If-None-Match"}
    assert fake_s3.put(target.url, unconditional, DATA, time.time()) == (403, "SignatureDoesNotMatch")
    assert fake_s3.objects == {}


def test_s3_refuses_an_expired_url(store: S3BlobStore, fake_s3: PresignedS3) -> None:
    [target] = store.upload_targets([sha(DATA)])
    late = target.expires_at + 2
    assert fake_s3.put(target.url, dict(target.headers), DATA, late) == (403, "AccessDenied")
    assert fake_s3.objects == {}


# -- the CLI's upload step ------------------------------------------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    """A loopback API that takes PUT /v1/blobs/<digest> and notes each one (path, headers)."""

    seen: list[tuple[str, dict[str, str]]]

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def api() -> Iterator[tuple[ApiClient, list[tuple[str, dict[str, str]]]]]:
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer((LOOPBACK, free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ApiClient(f"http://{LOOPBACK}:{server.server_address[1]}", "secret-api-token")
    try:
        yield client, seen
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_cli_uploads_to_the_offered_targets_and_falls_back_to_the_api(
    store: S3BlobStore, api: tuple[ApiClient, list[tuple[str, dict[str, str]]]], tmp_path: Path
) -> None:
    client, seen = api
    files = {"held.txt": b"already in the store", "new.txt": DATA, "other.txt": OTHER}
    by_digest = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        by_digest[sha(data)] = (tmp_path / name, len(data))
    store.put(sha(files["held.txt"]), iter([files["held.txt"]]), LIMIT)
    offered = [sha(files["held.txt"]), sha(DATA)]  # other.txt gets no target: the API takes it
    answer = {"code": "missing_files", "uploads": [upload_json(t) for t in store.upload_targets(offered)]}
    with DirectUploader(read_targets(answer)) as direct:
        sent = upload(client, list(by_digest), by_digest, None, direct)
    assert sent == sum(len(d) for d in files.values())
    assert store.missing([sha(DATA)]) == [] and store.read(sha(DATA)) == DATA
    assert store.missing([sha(OTHER)]) == [sha(OTHER)]  # not sent to the store directly
    # the held blob was refused by S3 (412) and went through the API's route, as did the untargeted one
    assert sorted(path for path, _ in seen) == sorted(
        f"/v1/blobs/{sha(d)}" for d in (files["held.txt"], OTHER)
    )
    assert all(headers["authorization"] == "Bearer secret-api-token" for _, headers in seen)


def test_direct_uploads_carry_exactly_the_signed_headers_and_no_api_token(
    api: tuple[ApiClient, list[tuple[str, dict[str, str]]]], tmp_path: Path
) -> None:
    client, seen = api
    (tmp_path / "a.txt").write_bytes(DATA)
    digest = sha(DATA)
    signed = {"x-amz-checksum-sha256": checksum_of(digest), "If-None-Match": "*"}
    # The recorder stands in for the store here: it shows what the direct PUT carried.
    target = {
        "sha256": digest,
        "method": "PUT",
        "url": f"{client.base_url}/v1/blobs/{digest}",
        "headers": signed,
    }
    with DirectUploader(read_targets({"uploads": [target]})) as direct:
        assert upload(client, [digest], {digest: (tmp_path / "a.txt", len(DATA))}, None, direct) == len(DATA)
    [(_path, headers)] = seen
    assert "authorization" not in headers
    assert headers["x-amz-checksum-sha256"] == signed["x-amz-checksum-sha256"]
    assert headers["if-none-match"] == "*"


def test_a_round_sends_only_the_offered_blobs_when_targets_are_offered(
    store: S3BlobStore, api: tuple[ApiClient, list[tuple[str, dict[str, str]]]], tmp_path: Path
) -> None:
    client, seen = api
    by_digest = {}
    for name, data in {"a": DATA, "b": OTHER}.items():
        (tmp_path / name).write_bytes(data)
        by_digest[sha(data)] = (tmp_path / name, len(data))
    capped = {
        "missing": list(by_digest),
        "uploads": [upload_json(t) for t in store.upload_targets([sha(DATA)])],
    }
    assert _upload_asked(client, capped, by_digest, None) == (1, len(DATA))
    assert store.missing(list(by_digest)) == [sha(OTHER)] and seen == []  # the rest: next round
    assert _upload_asked(client, {"missing": list(by_digest)}, by_digest, None) == (2, len(DATA) + len(OTHER))
    assert sorted(path for path, _ in seen) == sorted(f"/v1/blobs/{d}" for d in by_digest)
