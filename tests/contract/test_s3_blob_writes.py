"""S3BlobStore's conditional writes where S3 and moto differ, with botocore's Stubber: moto checks
If-None-Match and If-Match one request at a time, and never answers 409 ConditionalRequestConflict, which S3
sends while another conditional write to the same key is in flight. Also: a large upload spools to disk and
leaves nothing behind, on the moto server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.s3_blobs import S3BlobStore, checksum_of
from anchor_deploy.model.errors import BlobStoreUnavailable
from tests.aws_support import MotoServer
from tests.support import sha

BUCKET = "anchor-blobs"
DATA = b"hello, anchor\n"
DIGEST = sha(DATA)
KEY = f"blobs/{DIGEST}"
LIMIT = 1024


@pytest.fixture
def stubbed(aws: MotoServer, tmp_path: Path) -> Iterator[tuple[S3BlobStore, Stubber]]:
    store = S3BlobStore(AwsClients(), BUCKET, spool_dir=tmp_path)
    with Stubber(store._s3) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


def put_params(**condition: str) -> dict[str, Any]:
    return {
        "Bucket": BUCKET,
        "Key": KEY,
        "Body": ANY,
        "ContentLength": len(DATA),
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": checksum_of(DIGEST),
        **condition,
    }


def refuse_put(stubber: Stubber, status: int, code: str, **condition: str) -> None:
    stubber.add_client_error(
        "put_object", code, http_status_code=status, expected_params=put_params(**condition)
    )


def answer_head(stubber: Stubber, checksum: str | None, etag: str = '"e1"') -> None:
    params = {"Bucket": BUCKET, "Key": KEY, "ChecksumMode": "ENABLED"}
    if checksum is None:
        stubber.add_client_error("head_object", "404", http_status_code=404, expected_params=params)
        return
    stubber.add_response("head_object", {"ETag": etag, "ChecksumSHA256": checksum}, params)


def test_a_write_in_flight_elsewhere_is_waited_out(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    refuse_put(stubber, 409, "ConditionalRequestConflict", IfNoneMatch="*")
    answer_head(stubber, checksum_of(DIGEST))  # the other writer stored the blob
    told: list[tuple[str, bool]] = []
    store.on_stored = lambda d, replaced: told.append((d, replaced))
    assert store.put(DIGEST, iter([DATA]), LIMIT) == 0
    assert told == []


def test_a_conflict_before_the_object_exists_writes_again(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    refuse_put(stubber, 409, "ConditionalRequestConflict", IfNoneMatch="*")
    answer_head(stubber, None)  # the other write failed: nothing there yet
    stubber.add_response("put_object", {"ETag": '"e2"'}, put_params(IfNoneMatch="*"))
    assert store.put(DIGEST, iter([DATA]), LIMIT) == len(DATA)


def test_a_damaged_object_is_replaced_only_as_it_was_found(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    told: list[tuple[str, bool]] = []
    store.on_stored = lambda d, replaced: told.append((d, replaced))
    refuse_put(stubber, 412, "PreconditionFailed", IfNoneMatch="*")
    answer_head(stubber, checksum_of(sha(b"rot")), '"rotten"')
    refuse_put(stubber, 412, "PreconditionFailed", IfMatch='"rotten"')  # changed since the look
    answer_head(stubber, checksum_of(sha(b"rot2")), '"rotten2"')
    stubber.add_response("put_object", {"ETag": '"good"'}, put_params(IfMatch='"rotten2"'))
    assert store.put(DIGEST, iter([DATA]), LIMIT) == len(DATA)
    assert told == [(DIGEST, True)]


def test_a_key_that_keeps_changing_gives_up(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    refuse_put(stubber, 412, "PreconditionFailed", IfNoneMatch="*")
    for n in range(3):
        answer_head(stubber, checksum_of(sha(b"x%d" % n)), f'"e{n}"')
        refuse_put(stubber, 412, "PreconditionFailed", IfMatch=f'"e{n}"')
    answer_head(stubber, checksum_of(sha(b"x3")), '"e3"')
    with pytest.raises(BlobStoreUnavailable, match="kept changing"):
        store.put(DIGEST, iter([DATA]), LIMIT)


def test_throttling_left_after_retries_is_unavailable(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "head_object",
        "SlowDown",
        http_status_code=503,
        expected_params={"Bucket": BUCKET, "Key": KEY, "ChecksumMode": "ENABLED"},
    )
    with pytest.raises(BlobStoreUnavailable, match="SlowDown") as caught:
        store.missing([DIGEST])
    assert caught.value.status == 503


def test_a_large_upload_spools_to_disk_and_leaves_nothing(aws: MotoServer, tmp_path: Path) -> None:
    clients = AwsClients()
    clients.client("s3").create_bucket(Bucket=BUCKET)
    spool = tmp_path / "spool"
    spool.mkdir()
    store = S3BlobStore(clients, BUCKET, spool_dir=spool)
    data = os.urandom(3 << 20)  # past the 1 MiB kept in memory
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert store.put(sha(data), iter(chunks), 4 << 20) == len(data)
    assert store.read(sha(data)) == data and store.missing([sha(data)]) == []
    assert os.listdir(spool) == []
