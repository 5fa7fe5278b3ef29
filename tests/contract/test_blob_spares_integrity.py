"""FsBlobStore's spares (inodes made past the hard-link limit) under damage: found by a check, set aside,
made again from a good copy, and never used to build a deployment while they are wrong."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.model.errors import BlobUnavailable
from anchor_deploy.model.integrity import CopyKind, StoredCopy
from anchor_deploy.model.manifest import ManifestFile
from tests.support import sha

ICON = b"\x89PNG the same icon in every folder\n"
ROTTEN = b"\x89PNG the same icon in every f0lder\n"
LIMIT = 3  # links per inode, as a filesystem's limit (ext4: 65,000)


def limited_link(source: Path, target: Path) -> None:
    if os.stat(source).st_nlink >= LIMIT:
        raise OSError(errno.EMLINK, "Too many links", str(source))
    os.link(source, target)


def icons(count: int) -> list[ManifestFile]:
    return [ManifestFile(f"f/{i:03d}.png", sha(ICON), len(ICON), 0o644) for i in range(count)]


def store(tmp_path: Path) -> tuple[FsBlobStore, FsDeploymentFiles]:
    blobs = FsBlobStore(tmp_path / "blobs", limited_link)
    blobs.put(sha(ICON), iter([ICON]), 1 << 20)
    return blobs, FsDeploymentFiles(tmp_path / "deployments", blobs)


def rot(path: Path) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(ROTTEN)
    os.chmod(path, 0o444)


def copy_named(blobs: FsBlobStore, name: str) -> StoredCopy:
    return next(c for c in blobs.copies() if c.name == name)


def served_bytes(files: FsDeploymentFiles, deployment_id: str) -> set[bytes]:
    return {p.read_bytes() for p in (files.directory(deployment_id) / "public" / "f").glob("*.png")}


def test_a_damaged_spare_is_set_aside_and_its_files_relinked_to_good_bytes(tmp_path: Path) -> None:
    blobs, files = store(tmp_path)
    digest = sha(ICON)
    files.materialize("dpl_aaaaaaaaaaaa", icons(5))  # 2 links on the blob, 2 + 1 on spare .1, ...
    spare = f"{digest[:2]}/{digest}.1"
    rot(blobs.root / spare)
    assert ROTTEN in served_bytes(files, "dpl_aaaaaaaaaaaa")
    problems = {c.name: blobs.check(c) for c in blobs.copies() if c.digest == digest}
    assert {name for name, wrong in problems.items() if wrong} == {spare}
    assert blobs.missing([digest]) == []  # the blob itself is right: no upload needed
    blobs.quarantine(copy_named(blobs, spare), "fsck --repair")
    assert blobs.restore(digest)
    assert files.relink("dpl_aaaaaaaaaaaa", icons(5), {digest}) == 5
    assert served_bytes(files, "dpl_aaaaaaaaaaaa") == {ICON}
    assert (blobs.root / spare).read_bytes() == ICON  # made again, from the blob, when a link needed it
    assert all(blobs.check(c) is None for c in blobs.copies())


def test_a_damaged_blob_is_made_whole_from_a_good_spare(tmp_path: Path) -> None:
    blobs, files = store(tmp_path)
    digest = sha(ICON)
    files.materialize("dpl_aaaaaaaaaaaa", icons(4))
    rot(blobs.path(digest))
    blob = copy_named(blobs, f"{digest[:2]}/{digest}")
    assert blob.kind is CopyKind.BLOB and blobs.check(blob) is not None
    assert blobs.missing([digest]) == [digest]
    blobs.quarantine(blob, "fsck --repair")
    assert blobs.restore(digest)
    assert blobs.path(digest).read_bytes() == ICON and blobs.missing([digest]) == []
    assert files.relink("dpl_aaaaaaaaaaaa", icons(4), {digest}) == 4
    assert served_bytes(files, "dpl_aaaaaaaaaaaa") == {ICON}


def test_a_build_that_would_link_a_damaged_spare_fails_naming_it(tmp_path: Path) -> None:
    blobs, files = store(tmp_path)
    digest = sha(ICON)
    files.materialize("dpl_aaaaaaaaaaaa", icons(3))  # the blob is full: the next link goes to spare .1
    rot(blobs.root / f"{digest[:2]}/{digest}.1")
    with pytest.raises(
        BlobUnavailable, match=rf"of f/00\d\.png is damaged on disk \({digest[:2]}/{digest}\.1\)"
    ):
        FsDeploymentFiles(files.root, FsBlobStore(blobs.root, limited_link)).materialize(
            "dpl_bbbbbbbbbbbb", icons(2)
        )
    assert not files.exists("dpl_bbbbbbbbbbbb")


def test_a_damaged_blob_at_the_link_limit_is_replaced_and_kept_as_a_copy(tmp_path: Path) -> None:
    blobs, files = store(tmp_path)
    digest = sha(ICON)
    files.materialize("dpl_aaaaaaaaaaaa", icons(2))  # the blob is at the limit: no link to keep it by
    rot(blobs.path(digest))
    assert blobs.put(digest, iter([ICON]), 1 << 20) == len(ICON)
    kept = [p for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".note")]
    assert [p.read_bytes() for p in kept] == [ROTTEN]
    assert blobs.path(digest).read_bytes() == ICON
