"""FsBlobStore/FsDeploymentFiles past the filesystem's hard-link limit: spares of a blob, not failures.

One test makes 70,000 real links on the real disk; the others inject a link that refuses past a low limit
(EMLINK, as ext4 does past 65,000) so spares, sidecars, races and collection are cheap to exercise.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.local import fs_blob_files
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore, stamp_for
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BlobRejected, BlobUnavailable, CopyGone
from anchor_deploy.model.integrity import CopyKind
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile
from anchor_deploy.services.scrub import Scrubber
from tests.support import run_concurrently, sha

ICON = b"\x89PNG the same icon in every folder\n"
OTHER = b"something else\n"
MINE, THEIRS = "dpl_aaaaaaaaaaaa", "dpl_bbbbbbbbbbbb"


class LimitedLink:
    """os.link with a per-inode link limit, like a filesystem's (ext4: 65,000)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refused = 0

    def __call__(self, source: Path, target: Path) -> None:
        if os.stat(source).st_nlink >= self.limit:
            self.refused += 1
            raise OSError(errno.EMLINK, "Too many links", str(source))
        os.link(source, target)


def same(data: bytes, count: int, folder: str = "f", mode: int = 0o644) -> list[ManifestFile]:
    return [ManifestFile(f"{folder}/{i:05d}.png", sha(data), len(data), mode) for i in range(count)]


def served(files: FsDeploymentFiles, deployment_id: str) -> Iterator[Path]:
    for folder, _dirs, names in os.walk(files.directory(deployment_id) / "public", followlinks=True):
        for name in names:
            if not name.endswith(ETAG_SUFFIX):
                yield Path(folder, name)


def rig(tmp_path: Path, limit: int | None) -> tuple[FsBlobStore, FsDeploymentFiles]:
    blobs = (
        FsBlobStore(tmp_path / "blobs")
        if limit is None
        else FsBlobStore(tmp_path / "blobs", LimitedLink(limit))
    )
    for data in (ICON, OTHER):
        blobs.put(sha(data), iter([data]), 1 << 20)
    return blobs, FsDeploymentFiles(tmp_path / "deployments", blobs)


def blob_inodes(blobs: FsBlobStore, digest: str) -> list[str]:
    return sorted(p.name for p in blobs.path(digest).parent.iterdir() if p.name.startswith(digest))


def assert_like_a_blob(path: Path, data: bytes) -> None:
    info = path.stat()
    assert path.read_bytes() == data
    assert stat.S_IMODE(info.st_mode) == 0o444
    assert info.st_mtime == stamp_for(sha(data))


def assert_served_like_a_blob(path: Path, data: bytes) -> None:
    assert_like_a_blob(path, data)
    sidecar = path.with_name(path.name + ETAG_SUFFIX)
    assert sidecar.read_text() == f'"{sha(data)}"'


# -- the real disk -----------------------------------------------------------------------------------
def test_seventy_thousand_links_of_one_blob_on_the_real_disk(tmp_path: Path) -> None:
    """Another project names a public file's digest 64,996 times; the owner's next deploy still builds."""
    blobs, files = rig(tmp_path, limit=None)
    digest = sha(ICON)
    started = time.monotonic()
    files.materialize(THEIRS, same(ICON, 64_996, "x"))
    files.materialize(MINE, [*same(ICON, 5_004, "icons"), ManifestFile("index.html", sha(OTHER), len(OTHER))])
    took = time.monotonic() - started
    assert files.exists(THEIRS) and files.exists(MINE)
    inodes: set[int] = set()
    sidecars: set[int] = set()
    count = 0
    for deployment_id in (THEIRS, MINE):
        for path in served(files, deployment_id):
            if path.name == "index.html":
                continue
            count += 1
            assert path.read_bytes() == ICON
            info = path.stat()
            assert (stat.S_IMODE(info.st_mode), info.st_mtime) == (0o444, stamp_for(digest))
            inodes.add(info.st_ino)
            sidecars.add(path.with_name(path.name + ETAG_SUFFIX).stat().st_ino)
    assert count == 70_000
    # Whatever this filesystem's limit (65,000 on ext4, none on tmpfs): a few inodes, never a copy per file.
    assert len(inodes) <= 2 and len(sidecars) <= 2
    on_disk = {os.stat(blobs.root / digest[:2] / name).st_ino for name in blob_inodes(blobs, digest)}
    assert inodes <= on_disk
    print(f"70,000 links of one blob: {took:.1f}s, {len(inodes)} blob inodes, {blob_inodes(blobs, digest)}")


# -- an injected limit ---------------------------------------------------------------------------------
def test_spares_take_the_links_past_the_limit(tmp_path: Path) -> None:
    blobs, files = rig(tmp_path, limit=4)  # the blob + 3 links, each spare the same
    digest = sha(ICON)
    files.materialize(MINE, same(ICON, 10))
    assert blob_inodes(blobs, digest) == [digest, f"{digest}.1", f"{digest}.2", f"{digest}.3"]
    for name in blob_inodes(blobs, digest):
        assert_like_a_blob(blobs.path(digest).with_name(name), ICON)
    inodes = {p.stat().st_ino for p in served(files, MINE)}
    assert len(inodes) == 4  # 3 + 3 + 3 + 1 files: later files share a spare, none is a private copy
    for path in served(files, MINE):
        assert_served_like_a_blob(path, ICON)
    etags = sorted(os.listdir(blobs.root / "etags"))
    assert etags == [digest, f"{digest}.1", f"{digest}.2", f"{digest}.3"]


def test_a_second_deployment_fills_the_spares_then_makes_more(tmp_path: Path) -> None:
    blobs, files = rig(tmp_path, limit=4)
    digest = sha(ICON)
    files.materialize(THEIRS, same(ICON, 5))  # 3 on the blob, 2 on spare .1
    files.materialize(MINE, same(ICON, 2))  # 1 more on .1, then .2
    assert blob_inodes(blobs, digest) == [digest, f"{digest}.1", f"{digest}.2"]
    assert blobs.path(digest).with_name(f"{digest}.1").stat().st_nlink == 4
    for path in [*served(files, THEIRS), *served(files, MINE)]:
        assert_served_like_a_blob(path, ICON)


def test_a_public_file_keeps_the_blob_mode_and_the_app_copy_its_own(tmp_path: Path) -> None:
    """Files sharing an inode share its mode: the served ones are all the blob's 0444, whatever the
    manifest says; the app's private copies get 0755 or 0644 from the manifest."""
    _, files = rig(tmp_path, limit=3)
    manifest = [
        *same(ICON, 4, "static", mode=0o755),
        *same(ICON, 3, "bin", mode=0o755),
        *same(ICON, 3, "src"),
    ]
    files.materialize(MINE, manifest, AppConfig(static_dir="static"))
    public = list(served(files, MINE))
    assert len(public) == 4
    for path in public:
        assert_served_like_a_blob(path, ICON)
    app = files.app_dir(MINE)
    for entry in manifest:
        copy = app / entry.path
        assert copy.read_bytes() == ICON
        assert stat.S_IMODE(copy.stat().st_mode) == (0o755 if entry.mode & 0o111 else 0o644)
        assert copy.stat().st_nlink == 1


def test_concurrent_builds_share_the_spares_they_make(tmp_path: Path) -> None:
    blobs, files = rig(tmp_path, limit=5)
    digest = sha(ICON)
    ids = [f"dpl_{i:012d}" for i in range(8)]
    errors = run_concurrently(lambda deployment_id: files.materialize(deployment_id, same(ICON, 40)), ids)
    assert errors == []
    paths = [p for i in ids for p in served(files, i)]
    assert len(paths) == 320
    for path in paths:
        assert_served_like_a_blob(path, ICON)
    names = blob_inodes(blobs, digest)
    # Spares are numbered without gaps, each a complete copy; the racy stat-then-link of LimitedLink may
    # let an inode take a link or two past 5, so allow some slack in the count (320 / 4 = 80 spares).
    assert names == sorted([digest, *(f"{digest}.{n}" for n in range(1, len(names)))])
    assert len(names) <= 81
    assert len({p.stat().st_ino for p in paths}) <= len(names)
    assert os.listdir(blobs.root / "tmp") == []


def test_a_damaged_blob_is_never_copied_into_a_spare(tmp_path: Path) -> None:
    blobs, files = rig(tmp_path, limit=3)
    digest = sha(ICON)
    path = blobs.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"bit rot")  # in place: the inode every link shares
    with pytest.raises(BlobRejected, match="damaged"):
        files.materialize(MINE, same(ICON, 3))
    assert blob_inodes(blobs, digest) == [digest]
    assert not files.exists(MINE) and files.present() == []
    assert os.listdir(blobs.root / "tmp") == []


def test_past_the_last_spare_a_file_is_a_copy_like_a_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fs_blob_files, "MAX_SPARES", 1)
    blobs, files = rig(tmp_path, limit=3)
    digest = sha(ICON)
    files.materialize(MINE, same(ICON, 7))  # 2 on the blob, 2 on .1, then 3 copies
    assert blob_inodes(blobs, digest) == [digest, f"{digest}.1"]
    paths = list(served(files, MINE))
    assert len({p.stat().st_ino for p in paths}) == 5
    for path in paths:
        assert_served_like_a_blob(path, ICON)
    assert os.listdir(blobs.root / "tmp") == []


def test_collection_removes_the_spares_of_an_unused_blob_and_keeps_a_used_ones(tmp_path: Path) -> None:
    blobs, files = rig(tmp_path, limit=3)
    icon, other = sha(ICON), sha(OTHER)
    files.materialize(MINE, [*same(ICON, 5), *same(OTHER, 5, "o")])
    assert len(blob_inodes(blobs, icon)) == 3 and len(blob_inodes(blobs, other)) == 3
    files.remove(MINE)
    assert blobs.collect({other}, older_than=time.time() + 1) == 1
    assert blob_inodes(blobs, icon) == []
    assert blob_inodes(blobs, other) == [other, f"{other}.1", f"{other}.2"]
    assert sorted(os.listdir(blobs.root / "etags")) == [other, f"{other}.1", f"{other}.2"]
    assert blobs.missing([icon, other]) == [icon]
    # Uploaded again, the blob starts over: links go to the blob first, spares are made afresh.
    blobs.put(icon, iter([ICON]), 1 << 20)
    files.materialize(THEIRS, same(ICON, 3))
    assert blob_inodes(blobs, icon) == [icon, f"{icon}.1"]
    for path in served(files, THEIRS):
        assert_served_like_a_blob(path, ICON)


def test_collection_removes_spares_left_without_their_blob(tmp_path: Path) -> None:
    blobs, files = rig(tmp_path, limit=3)
    icon = sha(ICON)
    files.materialize(MINE, same(ICON, 4))
    files.remove(MINE)
    blobs.path(icon).unlink()  # as a collection interrupted after the blob itself would leave it
    assert blobs.collect({icon, sha(OTHER)}, older_than=time.time() + 1) == 0  # still named: kept
    assert blob_inodes(blobs, icon) == [f"{icon}.1"]
    assert blobs.collect(set(), older_than=time.time() + 1) == 2  # the orphan spare and OTHER
    assert blob_inodes(blobs, icon) == []
    assert os.listdir(blobs.root / "etags") == []


def test_collection_spares_a_fresh_upload_for_its_grace_period(tmp_path: Path) -> None:
    """Blobs carry the epoch as mtime, so the grace period must look at something else."""
    blobs, _ = rig(tmp_path, limit=None)
    hour_ago = time.time() - 3600
    assert blobs.collect(set(), older_than=hour_ago) == 0
    assert blobs.missing([sha(ICON), sha(OTHER)]) == []
    assert blobs.collect(set(), older_than=time.time() + 1) == 2
    assert blobs.missing([sha(ICON)]) == [sha(ICON)]


def test_a_copy_that_cannot_be_read_is_reported_and_the_pass_goes_on(tmp_path: Path) -> None:
    """The blob store fails with the platform's errors: an unreadable copy is BlobUnavailable (not an
    OSError the scrub would have to know), reported as damage; a vanished one is CopyGone, skipped."""
    store = FsBlobStore(tmp_path / "blobs")
    unreadable, fine = b"will be a directory", b"fine"
    for data in (unreadable, fine):
        store.put(sha(data), iter([data]), 1 << 20)
    path = store.path(sha(unreadable))
    path.unlink()
    path.mkdir()  # reading it now fails with EISDIR
    copy = next(c for c in store.copies() if c.digest == sha(unreadable) and c.kind is CopyKind.BLOB)
    with pytest.raises(BlobUnavailable, match="cannot be read"):
        store.check(copy)
    status = Scrubber(store, interval=60, rate=1 << 30).run_pass()
    assert status.last_pass_corrupt == 1 and status.last_pass_copies >= 2
    path.rmdir()
    with pytest.raises(CopyGone):
        store.check(copy)
