"""The BlobStore port's contract: FsBlobStore on a real directory, S3BlobStore on the moto server and the
in-memory fake pass it. The integrity half (the BlobChecker port: fsck, the scrub) is the local stores' only:
S3 keeps and checks its own checksums."""

from __future__ import annotations

import itertools
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.s3_blobs import S3BlobStore
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.model.errors import BlobRejected, BlobTooLarge, CopyGone
from anchor_deploy.model.integrity import CopyKind
from anchor_deploy.ports import BlobStore
from anchor_deploy.ports.fakes import FakeBlobStore
from tests.support import sha

DATA = b"hello, anchor\n"
ROTTEN = b"hello, ancher\n"  # DATA after bit rot: the same size
LIMIT = 1024


AnyStore = FsBlobStore | FakeBlobStore | S3BlobStore


@pytest.fixture(params=["fs", "fake", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AnyStore:
    if request.param == "s3":
        request.getfixturevalue("aws")  # an empty moto S3, reached through the standard AWS variables
        clients = AwsClients()
        clients.client("s3").create_bucket(Bucket="anchor-blobs")
        return S3BlobStore(clients, "anchor-blobs", spool_dir=tmp_path)
    return checked_store(request.param, tmp_path)


@pytest.fixture(params=["fs", "fake"])
def checked(request: pytest.FixtureRequest, tmp_path: Path) -> FsBlobStore | FakeBlobStore:
    """The stores that are also BlobCheckers (fsck and the scrub check them)."""
    return checked_store(request.param, tmp_path)


def checked_store(kind: str, tmp_path: Path) -> FsBlobStore | FakeBlobStore:
    return FsBlobStore(tmp_path / "blobs") if kind == "fs" else FakeBlobStore()


def damage(blobs: AnyStore, digest: str, data: bytes) -> None:
    """Rewrite a held blob's bytes behind the store's back (in place on disk: the inode links share; in
    S3, another writer's PutObject over the key, with the checksum of what it wrote)."""
    if isinstance(blobs, FakeBlobStore):
        blobs.damage(digest, data)
        return
    if isinstance(blobs, S3BlobStore):
        s3 = AwsClients().client("s3")
        s3.put_object(Bucket=blobs.bucket, Key=blobs.key(digest), Body=data, ChecksumAlgorithm="SHA256")
        return
    path = blobs.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(data)
    os.chmod(path, 0o444)


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


# -- integrity: both stores -------------------------------------------------------------------------
def test_every_store_is_told_of_what_it_stored(blobs: AnyStore) -> None:
    told: list[tuple[str, bool]] = []
    blobs.on_stored = lambda digest, replaced: told.append((digest, replaced))
    blobs.put(sha(DATA), iter([DATA]), LIMIT)
    blobs.put(sha(DATA), iter([DATA]), LIMIT)  # already held and right: nothing stored, nothing told
    assert told == [(sha(DATA), False)]


def test_an_upload_replaces_a_damaged_blob(blobs: AnyStore) -> None:
    digest = sha(DATA)
    told: list[tuple[str, bool]] = []
    blobs.put(digest, iter([DATA]), LIMIT)
    blobs.on_stored = lambda d, replaced: told.append((d, replaced))
    damage(blobs, digest, ROTTEN)
    assert blobs.put(digest, iter([DATA]), LIMIT) == len(DATA)  # checked, found wrong, replaced
    assert blobs.read(digest) == DATA
    assert told == [(digest, True)]
    assert isinstance(blobs, S3BlobStore) or blobs.corrupt() == {}
    assert blobs.missing([digest]) == []
    assert blobs.put(digest, iter([DATA]), LIMIT) == 0


def test_a_wrong_upload_never_replaces_a_damaged_blob(blobs: AnyStore) -> None:
    digest = sha(DATA)
    blobs.put(digest, iter([DATA]), LIMIT)
    damage(blobs, digest, ROTTEN)
    with pytest.raises(BlobRejected):
        blobs.put(digest, iter([ROTTEN]), LIMIT)
    assert blobs.read(digest) == ROTTEN  # left for the right bytes (or fsck --repair)


def test_check_finds_damage_and_the_blob_is_then_asked_for(checked: FsBlobStore | FakeBlobStore) -> None:
    good, bad = sha(b"good"), sha(DATA)
    for data in (b"good", DATA):
        checked.put(sha(data), iter([data]), LIMIT)
    copies = {c.digest: c for c in checked.copies() if c.kind is CopyKind.BLOB}
    assert set(copies) == {good, bad} and copies[bad].size == len(DATA)
    assert copies[bad].name == f"{bad[:2]}/{bad}"
    damage(checked, bad, ROTTEN)
    paced: list[int] = []
    assert checked.check(copies[good], paced.append) is None
    assert checked.missing([good, bad]) == []  # not known to be damaged yet
    assert checked.check(copies[bad], paced.append) == f"content hashes to {sha(ROTTEN)}"
    assert sum(paced) == len(b"good") + len(DATA)
    assert checked.corrupt() == {copies[bad].name: f"content hashes to {sha(ROTTEN)}"}
    assert checked.missing([good, bad]) == [bad]
    assert checked.has(bad)  # still there: only fsck --repair or an upload moves it


def test_quarantine_keeps_the_bytes_aside_and_the_blob_is_missing(
    checked: FsBlobStore | FakeBlobStore,
) -> None:
    digest = sha(DATA)
    checked.put(digest, iter([DATA]), LIMIT)
    damage(checked, digest, ROTTEN)
    copy = next(c for c in checked.copies() if c.digest == digest and c.kind is CopyKind.BLOB)
    assert checked.check(copy) is not None
    where = checked.quarantine(copy, "fsck --repair: content hashes to something else")
    assert "quarantine" in where
    assert not checked.has(digest) and checked.missing([digest]) == [digest]
    assert checked.corrupt() == {}
    assert not checked.restore(digest)  # no good copy left
    with pytest.raises(CopyGone):
        checked.check(copy)
    with pytest.raises(CopyGone):
        checked.quarantine(copy, "twice")
    assert checked.put(digest, iter([DATA]), LIMIT) == len(DATA)
    assert checked.restore(digest) and checked.read(digest) == DATA


def test_a_collected_blob_is_no_longer_reported_damaged(checked: FsBlobStore | FakeBlobStore) -> None:
    digest = sha(DATA)
    checked.put(digest, iter([DATA]), LIMIT)
    damage(checked, digest, ROTTEN)
    assert checked.check(next(c for c in checked.copies() if c.kind is CopyKind.BLOB)) is not None
    assert checked.collect(set(), older_than=time.time() + 60) == 1
    assert checked.corrupt() == {}


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


def test_fs_quarantine_is_a_folder_of_kept_files_with_notes(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    digest = sha(DATA)
    store.put(digest, iter([DATA]), LIMIT)
    damage(store, digest, ROTTEN)
    store.put(digest, iter([DATA]), LIMIT)  # the damaged file is kept aside, not deleted
    store.etag_path(digest)  # the sidecar, made on first use
    copy = next(c for c in store.copies() if c.kind is CopyKind.ETAG)
    assert copy.name == f"etags/{digest}"
    (store.root / copy.name).chmod(0o644)
    (store.root / copy.name).write_text('"not the digest"')
    assert store.check(copy) == "holds b'\"not the digest\"', not the quoted digest"
    store.quarantine(copy, "fsck --repair: a wrong ETag sidecar")
    kept = sorted(p.name for p in (tmp_path / "quarantine").iterdir())
    assert len(kept) == 4 and sum(name.endswith(".note") for name in kept) == 2
    by_content = {p.read_bytes() for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".note")}
    assert by_content == {ROTTEN, b'"not the digest"'}
    notes = " ".join(p.read_text() for p in (tmp_path / "quarantine").glob("*.note"))
    assert "replaced by an upload" in notes and f"was: etags/{digest}" in notes
    assert store.etag_path(digest).read_text() == f'"{digest}"'  # made again on next use
