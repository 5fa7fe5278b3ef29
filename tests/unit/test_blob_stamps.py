"""Blob mtimes are content stamps (fs_blobs.stamp_for): equal for every inode of one blob, different for
different contents, and given once to the blobs an earlier version left at the epoch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from anchor_deploy.adapters.local.fs_blobs import EPOCH_MTIME, FsBlobStore, stamp_for


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(blobs: FsBlobStore, data: bytes) -> str:
    digest = _sha(data)
    blobs.put(digest, iter([data]), 1 << 20)
    return digest


def test_a_stamp_is_31_bits_of_the_digest_and_fits_every_filesystem() -> None:
    stamps = {stamp_for(_sha(str(n).encode())) for n in range(2000)}
    assert len(stamps) == 2000  # no two of these contents share a stamp
    assert all(0 <= s < 2**31 for s in stamps)
    assert stamp_for("ff" * 32) == 2**31 - 1 and stamp_for("00" * 32) == 0


def test_stored_blobs_and_their_links_carry_the_stamp(tmp_path: Path) -> None:
    blobs = FsBlobStore(tmp_path / "blobs")
    first, second = _put(blobs, b"version A"), _put(blobs, b"version B")
    linked = tmp_path / "served.html"
    blobs.link(first, linked)
    assert int(linked.stat().st_mtime) == stamp_for(first) != stamp_for(second)
    assert int(blobs.path(second).stat().st_mtime) == stamp_for(second)


def test_restamp_gives_old_blobs_their_stamp_once_and_leaves_a_written_one_alone(tmp_path: Path) -> None:
    blobs = FsBlobStore(tmp_path / "blobs")
    old, other, written = (_put(blobs, data) for data in (b"old", b"other", b"written into"))
    linked = tmp_path / "index.html"
    blobs.link(old, linked)
    for digest in (old, other):  # as an earlier version left them
        os.utime(blobs.path(digest), (EPOCH_MTIME, EPOCH_MTIME))
    os.utime(blobs.path(written), (1_700_000_000, 1_700_000_000))  # a write moved it: the scrub's to find

    assert blobs.restamp() == 2
    assert int(linked.stat().st_mtime) == stamp_for(old)  # the deployment's link is the same inode
    assert int(blobs.path(other).stat().st_mtime) == stamp_for(other)
    assert int(blobs.path(written).stat().st_mtime) == 1_700_000_000

    os.utime(blobs.path(other), (EPOCH_MTIME, EPOCH_MTIME))
    assert blobs.restamp() == 0  # once per data dir: the mark says it was done
    assert int(blobs.path(other).stat().st_mtime) == EPOCH_MTIME
