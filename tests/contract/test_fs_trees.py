"""Served file trees shared between deployments (adapters/local/fs_trees.py) on real directories: a deployment
of the same files is one symlink to the same tree; a changed file makes new trees only along its path; an
older deployment still serves its bytes; collection keeps shared trees and drops unreferenced ones; a file
damaged in a reused tree is swapped for a good link; a deployment from before trees still works."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import MARKER, FsDeploymentFiles
from anchor_deploy.model.errors import BlobUnavailable
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile
from tests.support import sha

FIRST, SECOND, THIRD = "dpl_aaaaaaaaaaaa", "dpl_bbbbbbbbbbbb", "dpl_cccccccccccc"
SITE = {
    "index.html": b"<h1>home</h1>",
    "docs/guide/intro.html": b"<p>intro</p>",
    "docs/faq.html": b"<p>faq</p>",
    "assets/site.css": b"body{}",
    "assets/img/logo.svg": b"<svg/>",
}


@pytest.fixture
def fs(tmp_path: Path) -> tuple[FsBlobStore, FsDeploymentFiles]:
    blobs = FsBlobStore(tmp_path / "blobs")
    return blobs, FsDeploymentFiles(tmp_path / "deployments", blobs)


def manifest(blobs: FsBlobStore, files: dict[str, bytes]) -> list[ManifestFile]:
    for data in files.values():
        blobs.put(sha(data), iter([data]), 1 << 20)
    return [ManifestFile(path, sha(data), len(data), 0o644) for path, data in files.items()]


def trees(files: FsDeploymentFiles) -> set[str]:
    return {p.name for p in (files.root.parent / "trees").iterdir() if not p.name.startswith(".")}


def tree_of(files: FsDeploymentFiles, deployment_id: str, folder: str = "") -> str:
    return (files.directory(deployment_id) / "public" / folder).resolve().name


def read(files: FsDeploymentFiles, deployment_id: str, path: str) -> bytes:
    return (files.directory(deployment_id) / "public" / path).read_bytes()


def test_a_deployment_of_the_same_files_is_one_symlink_to_the_same_tree(
    fs: tuple[FsBlobStore, FsDeploymentFiles],
) -> None:
    blobs, files = fs
    files.materialize(FIRST, manifest(blobs, SITE))
    made = trees(files)
    assert len(made) == 5  # root, docs, docs/guide, assets, assets/img
    files.materialize(SECOND, manifest(blobs, SITE))
    assert trees(files) == made
    public = files.directory(SECOND) / "public"
    assert public.is_symlink() and not os.path.isabs(os.readlink(public))  # the data dir can move
    assert tree_of(files, FIRST) == tree_of(files, SECOND)
    for path, data in SITE.items():
        assert read(files, SECOND, path) == data
        served = files.directory(SECOND) / "public" / path
        assert served.stat().st_ino == blobs.path(sha(data)).stat().st_ino  # a link to the blob
        sidecar = served.with_name(served.name + ETAG_SUFFIX)
        assert sidecar.read_bytes() == f'"{sha(data)}"'.encode()
    assert (files.directory(SECOND) / MARKER).is_file() and (files.directory(SECOND) / SECOND).exists()


def test_a_changed_file_makes_new_trees_only_along_its_path(
    fs: tuple[FsBlobStore, FsDeploymentFiles],
) -> None:
    blobs, files = fs
    files.materialize(FIRST, manifest(blobs, SITE))
    before = trees(files)
    changed = {**SITE, "docs/guide/intro.html": b"<p>intro, again</p>"}
    files.materialize(SECOND, manifest(blobs, changed))
    assert len(trees(files) - before) == 3  # root, docs, docs/guide; assets and assets/img are reused
    for folder in ("assets", "assets/img"):
        assert tree_of(files, SECOND, folder) == tree_of(files, FIRST, folder)
    for folder in ("", "docs", "docs/guide"):
        assert tree_of(files, SECOND, folder) != tree_of(files, FIRST, folder)
    assert read(files, FIRST, "docs/guide/intro.html") == b"<p>intro</p>"  # the old one is immutable
    assert read(files, SECOND, "docs/guide/intro.html") == b"<p>intro, again</p>"
    assert read(files, SECOND, "docs/faq.html") == b"<p>faq</p>"


def test_collection_keeps_shared_trees_and_drops_unreferenced_ones(
    fs: tuple[FsBlobStore, FsDeploymentFiles],
) -> None:
    blobs, files = fs
    files.materialize(FIRST, manifest(blobs, SITE))
    files.materialize(SECOND, manifest(blobs, {**SITE, "index.html": b"<h1>new home</h1>"}))
    assert len(trees(files)) == 6
    recently = time.time() - 3600
    assert files.collect(recently) == 0  # every tree is served
    files.remove(FIRST)
    assert files.collect(recently) == 0  # within the grace period: a build may be about to reuse it
    assert files.collect(time.time() + 1) == 1  # only FIRST's root tree: the rest is SECOND's too
    assert len(trees(files)) == 5
    for path in SITE:
        if path != "index.html":
            assert read(files, SECOND, path) == SITE[path]
    assert read(files, SECOND, "index.html") == b"<h1>new home</h1>"
    files.remove(SECOND)
    assert files.collect(time.time() + 1) == 5 and trees(files) == set()


def test_a_tree_reused_by_a_build_survives_a_collection(fs: tuple[FsBlobStore, FsDeploymentFiles]) -> None:
    blobs, files = fs
    files.materialize(FIRST, manifest(blobs, SITE))
    files.remove(FIRST)
    old = time.time() - 7200
    for name in trees(files):
        os.utime(files.root.parent / "trees" / name, (old, old))
    files.materialize(SECOND, manifest(blobs, SITE))  # reuses (and touches) the root tree
    assert files.collect(time.time() - 3600) == 0  # reachable from SECOND
    assert read(files, SECOND, "docs/guide/intro.html") == b"<p>intro</p>"


def test_a_collection_waits_for_the_builds_in_progress(fs: tuple[FsBlobStore, FsDeploymentFiles]) -> None:
    """A build holds the trees it made or reused (not yet reachable from its folder) until it is in place;
    a collection waits for it, in another process too (flock)."""
    blobs, files = fs
    entries = manifest(blobs, SITE)
    release = threading.Event()
    link = blobs.link

    def slow_link(digest: str, target: Path) -> None:
        link(digest, target)
        release.wait(5)

    blobs.link = slow_link  # type: ignore[method-assign]
    with ThreadPoolExecutor(2) as pool:
        building = pool.submit(files.materialize, FIRST, entries)
        time.sleep(0.1)  # the build holds its first trees
        collecting = pool.submit(files.collect, time.time() + 1)  # no grace: only the lock keeps them
        time.sleep(0.2)
        assert not collecting.done()
        release.set()
        building.result(5)
        assert collecting.result(5) == 0
    assert all(read(files, FIRST, path) == data for path, data in SITE.items())


def test_a_file_damaged_in_a_reused_tree_is_swapped_for_a_good_link(
    fs: tuple[FsBlobStore, FsDeploymentFiles],
) -> None:
    blobs, files = fs
    files.materialize(FIRST, manifest(blobs, SITE))
    served = files.directory(FIRST) / "public" / "assets" / "site.css"
    served.unlink()  # the tree's link replaced by a same-sized file with other bytes
    served.write_bytes(b"body[]")
    files.materialize(SECOND, manifest(blobs, SITE))
    assert read(files, SECOND, "assets/site.css") == b"body{}"
    assert served.stat().st_ino == blobs.path(sha(b"body{}")).stat().st_ino


def test_a_tree_is_not_reused_for_a_blob_the_store_lost(fs: tuple[FsBlobStore, FsDeploymentFiles]) -> None:
    """The tree's link still has the bytes, but the store does not: the build fails as it did before trees
    (backups and fsck read the store), and succeeds once the blob is uploaded again."""
    blobs, files = fs
    entries = manifest(blobs, SITE)
    files.materialize(FIRST, entries)
    files.remove(FIRST)
    blobs.path(sha(b"<p>faq</p>")).unlink()
    with pytest.raises(BlobUnavailable, match=f"blob {sha(b'<p>faq</p>')} of docs/faq.html is missing"):
        files.materialize(SECOND, entries)
    assert not files.exists(SECOND)
    manifest(blobs, {"docs/faq.html": b"<p>faq</p>"})
    files.materialize(SECOND, entries)
    assert read(files, SECOND, "docs/faq.html") == b"<p>faq</p>"


def test_a_deployment_with_a_real_public_folder_still_relinks_and_goes(
    fs: tuple[FsBlobStore, FsDeploymentFiles],
) -> None:
    """The layout before trees: deployments/<id>/public/... links of its own."""
    blobs, files = fs
    entries = manifest(blobs, {"index.html": b"<h1>old layout</h1>"})
    folder = files.directory(FIRST)
    (folder / "public").mkdir(parents=True)
    blobs.link(entries[0].sha256, folder / "public" / "index.html")
    (folder / MARKER).write_text("{}")
    assert files.exists(FIRST)
    assert files.relink(FIRST, entries, {entries[0].sha256}) == 1
    assert read(files, FIRST, "index.html") == b"<h1>old layout</h1>"
    assert files.collect(time.time() + 1) == 0
    files.remove(FIRST)
    assert not folder.exists() and blobs.has(entries[0].sha256)
