"""FsBlobStore.put_many, the batch route's write: every blob checked before any is stored; each stored as
``put`` stores it (mode 0444, the content stamp as mtime, its ETag sidecar made with it); one held already is
left alone; a held one found damaged is replaced and reported as ``put`` reports it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.fs_blobs import BLOB_MODE, FsBlobStore, stamp_for
from anchor_deploy.model.errors import BlobRejected, BlobTooLarge
from tests.support import sha

A, B, C = b"alpha", b"bravo!", b"charlie"


def test_put_many_stores_each_blob_with_its_sidecar(tmp_path: Path) -> None:
    blobs = FsBlobStore(tmp_path / "blobs")
    blobs.put(sha(C), iter([C]), 1 << 20)
    stored: list[tuple[str, bool]] = []
    blobs.on_stored = lambda digest, replaced: stored.append((digest, replaced))
    assert blobs.put_many([(sha(A), A), (sha(B), B), (sha(C), C)], 1 << 20) == [len(A), len(B), 0]
    assert stored == [(sha(A), False), (sha(B), False)]
    for data in (A, B):
        info = blobs.path(sha(data)).stat()
        assert blobs.read(sha(data)) == data
        assert (stat.S_IMODE(info.st_mode), int(info.st_mtime)) == (BLOB_MODE, stamp_for(sha(data)))
        assert (blobs.root / "etags" / sha(data)).read_bytes() == f'"{sha(data)}"'.encode()
    assert blobs.missing([sha(A), sha(B), sha(C)]) == []
    assert os.listdir(blobs.root / "tmp") == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [((sha(b"other"), b"not other"), BlobRejected), ((sha(b"x" * 11), b"x" * 11), BlobTooLarge)],
)
def test_a_bad_blob_stores_none_of_the_batch(tmp_path: Path, bad: tuple[str, bytes], error: type) -> None:
    blobs = FsBlobStore(tmp_path / "blobs")
    with pytest.raises(error, match=bad[0]):
        blobs.put_many([(sha(A), A), bad], 10)
    assert blobs.missing([sha(A), bad[0]]) == [sha(A), bad[0]]


def test_a_damaged_held_blob_is_replaced(tmp_path: Path) -> None:
    blobs = FsBlobStore(tmp_path / "blobs")
    blobs.put(sha(A), iter([A]), 1 << 20)
    path = blobs.path(sha(A))
    os.chmod(path, 0o644)
    path.write_bytes(b"alphz")  # damaged in place, same size
    stored: list[tuple[str, bool]] = []
    blobs.on_stored = lambda digest, replaced: stored.append((digest, replaced))
    assert blobs.put_many([(sha(A), A)], 1 << 20) == [len(A)]
    assert stored == [(sha(A), True)] and blobs.read(sha(A)) == A
    assert len(list((tmp_path / "quarantine").iterdir())) == 2  # the damaged copy and its note
