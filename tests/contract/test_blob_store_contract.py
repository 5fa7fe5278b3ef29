"""The BlobStore port's contract: FsBlobStore on a real directory and the in-memory fake pass it."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.fs_blobs import FsBlobStore
from anchor_deploy.model.errors import BlobRejected, BlobTooLarge
from anchor_deploy.ports import BlobStore
from anchor_deploy.ports.fakes import FakeBlobStore
from tests.support import sha

DATA = b"hello, anchor\n"
LIMIT = 1024


@pytest.fixture(params=["fs", "fake"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "fs":
        return FsBlobStore(tmp_path / "blobs")
    return FakeBlobStore()


def test_put_stores_and_missing_forgets(blobs: BlobStore) -> None:
    digest = sha(DATA)
    assert blobs.missing([digest]) == [digest]
    assert blobs.put(digest, iter([DATA]), LIMIT) == len(DATA)
    assert blobs.missing([digest]) == []


def test_put_of_a_held_blob_returns_zero(blobs: BlobStore) -> None:
    digest = sha(DATA)
    blobs.put(digest, iter([DATA]), LIMIT)
    assert blobs.put(digest, iter([DATA[:3], DATA[3:]]), LIMIT) == 0
    assert blobs.missing([digest]) == []


def test_missing_is_deduplicated_in_first_seen_order(blobs: BlobStore) -> None:
    held, b, c = sha(b"held"), sha(b"b"), sha(b"c")
    blobs.put(held, iter([b"held"]), LIMIT)
    assert blobs.missing([b, held, c, b, held, c]) == [b, c]
    assert blobs.missing(iter([c, b])) == [c, b]
    assert blobs.missing([]) == []


def test_chunks_are_joined_in_order(blobs: BlobStore) -> None:
    chunks = [DATA[i : i + 3] for i in range(0, len(DATA), 3)]
    assert blobs.put(sha(DATA), iter(chunks), LIMIT) == len(DATA)
    with pytest.raises(BlobRejected):  # the same chunks in another order are other bytes
        blobs.put(sha(b"".join(reversed(chunks))), iter(chunks), LIMIT)


def test_empty_blob(blobs: BlobStore) -> None:
    assert blobs.put(sha(b""), iter([]), LIMIT) == 0
    assert blobs.missing([sha(b"")]) == []


def test_digest_mismatch_is_rejected_and_keeps_nothing(blobs: BlobStore) -> None:
    claimed = sha(b"something else")
    with pytest.raises(BlobRejected) as caught:
        blobs.put(claimed, iter([DATA]), LIMIT)
    assert not isinstance(caught.value, BlobTooLarge)
    assert blobs.missing([claimed, sha(DATA)]) == [claimed, sha(DATA)]


def test_held_digest_still_checks_content(blobs: BlobStore) -> None:
    digest = sha(DATA)
    blobs.put(digest, iter([DATA]), LIMIT)
    with pytest.raises(BlobRejected):
        blobs.put(digest, iter([b"tampered"]), LIMIT)
    assert blobs.missing([digest]) == []


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, sha(DATA).upper(), "../" + "a" * 61, "g" * 64])
def test_malformed_digest_is_rejected(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(BlobRejected):
        blobs.put(bad, iter([DATA]), LIMIT)
    with pytest.raises(BlobRejected):
        blobs.missing([bad])


def test_size_limit_is_inclusive(blobs: BlobStore) -> None:
    exact = b"x" * LIMIT
    assert blobs.put(sha(exact), iter([exact]), LIMIT) == LIMIT
    over = exact + b"y"
    with pytest.raises(BlobTooLarge):
        blobs.put(sha(over), iter([exact, b"y"]), LIMIT)
    assert blobs.missing([sha(over)]) == [sha(over)]


def test_too_large_stops_reading_an_endless_stream(blobs: BlobStore) -> None:
    pulled = itertools.count()

    def endless() -> Iterator[bytes]:
        while True:
            next(pulled)
            yield b"z" * 100

    with pytest.raises(BlobTooLarge):
        blobs.put(sha(b"whatever"), endless(), LIMIT)
    assert next(pulled) <= LIMIT // 100 + 2


def test_concurrent_puts_of_one_blob_all_succeed(blobs: BlobStore) -> None:
    digest = sha(DATA * 50)
    results: list[int] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(blobs.put(digest, iter([DATA] * 50), 10 * LIMIT))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(results) == 8
    assert set(results) <= {0, len(DATA) * 50} and len(DATA) * 50 in results
    assert blobs.missing([digest]) == []


# -- FsBlobStore only ------------------------------------------------------------------------------
def test_fs_blob_is_read_only_and_content_addressed(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    digest = sha(DATA)
    store.put(digest, iter([DATA]), LIMIT)
    path = store.path(digest)
    assert path == tmp_path / "blobs" / digest[:2] / digest
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.etag_path(digest).read_text() == f'"{digest}"'


def test_fs_rejections_leave_no_temporary_files(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    with pytest.raises(BlobRejected):
        store.put(sha(b"other"), iter([DATA]), LIMIT)
    with pytest.raises(BlobTooLarge):
        store.put(sha(b"x"), iter([b"x" * (LIMIT + 1)]), LIMIT)
    assert os.listdir(tmp_path / "blobs" / "tmp") == []
    assert sorted(os.listdir(tmp_path / "blobs")) == ["etags", "tmp"]
