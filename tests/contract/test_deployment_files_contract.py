"""The DeploymentFiles port's contract: FsDeploymentFiles on real directories and the fake pass it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from anchor_deploy.adapters.fs_blobs import MARKER, FsBlobStore, FsDeploymentFiles
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile
from anchor_deploy.ports import BlobStore, DeploymentFiles
from anchor_deploy.ports.fakes import FakeBlobStore, FakeDeploymentFiles
from tests.support import sha

INDEX, SCRIPT = b"<h1>hi</h1>\n", b"console.log(1)\n"
DPL = "dpl_aaaaaaaaaaaa"


@dataclass
class Rig:
    blobs: BlobStore
    files: DeploymentFiles
    read: Callable[[str, str], bytes]
    present: Callable[[], list[str]]

    def upload(self, *contents: bytes) -> None:
        for data in contents:
            self.blobs.put(sha(data), iter([data]), 1 << 20)


def entry(path: str, data: bytes, mode: int = 0o644) -> ManifestFile:
    return ManifestFile(path, sha(data), len(data), mode)


@pytest.fixture(params=["fs", "fake"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Rig:
    if request.param == "fs":
        fs_blobs = FsBlobStore(tmp_path / "blobs")
        fs_files = FsDeploymentFiles(tmp_path / "deployments", fs_blobs)
        root = tmp_path / "deployments"
        return Rig(
            fs_blobs,
            fs_files,
            lambda d, p: (root / d / "public" / p).read_bytes(),
            fs_files.present,
        )
    blobs = FakeBlobStore()
    files = FakeDeploymentFiles(blobs)
    return Rig(blobs, files, files.read, files.present)


def test_materialize_builds_every_file(rig: Rig) -> None:
    rig.upload(INDEX, SCRIPT)
    manifest = [entry("index.html", INDEX), entry("js/deep/app.js", SCRIPT), entry("copy.html", INDEX)]
    assert not rig.files.exists(DPL)
    rig.files.materialize(DPL, manifest)
    assert rig.files.exists(DPL)
    assert rig.read(DPL, "index.html") == INDEX
    assert rig.read(DPL, "js/deep/app.js") == SCRIPT
    assert rig.read(DPL, "copy.html") == INDEX
    assert rig.present() == [DPL]


def test_materialize_is_idempotent_and_immutable(rig: Rig) -> None:
    rig.upload(INDEX, SCRIPT)
    rig.files.materialize(DPL, [entry("index.html", INDEX)])
    rig.files.materialize(DPL, [entry("index.html", SCRIPT)])
    assert rig.read(DPL, "index.html") == INDEX


def test_empty_manifest_is_a_servable_deployment(rig: Rig) -> None:
    rig.files.materialize(DPL, [])
    assert rig.files.exists(DPL)


def test_missing_blob_fails_all_or_nothing(rig: Rig) -> None:
    rig.upload(INDEX)
    manifest = [entry("index.html", INDEX), entry("app.js", SCRIPT)]
    # The port names no error type for an absent blob; FsDeploymentFiles lets os.link's error through.
    with pytest.raises(OSError):
        rig.files.materialize(DPL, manifest)
    assert not rig.files.exists(DPL)
    assert rig.present() == []
    rig.upload(SCRIPT)  # once the blob is there, the same build succeeds
    rig.files.materialize(DPL, manifest)
    assert rig.read(DPL, "app.js") == SCRIPT


def test_remove_is_idempotent_and_allows_a_rebuild(rig: Rig) -> None:
    rig.upload(INDEX)
    other = "dpl_bbbbbbbbbbbb"
    rig.files.materialize(DPL, [entry("index.html", INDEX)])
    rig.files.materialize(other, [entry("index.html", INDEX)])
    rig.files.remove(DPL)
    rig.files.remove(DPL)
    rig.files.remove("dpl_neverexisted")
    assert not rig.files.exists(DPL)
    assert rig.files.exists(other)
    assert rig.present() == [other]
    rig.files.materialize(DPL, [entry("index.html", INDEX)])
    assert rig.read(DPL, "index.html") == INDEX


def test_deployments_are_independent(rig: Rig) -> None:
    rig.upload(INDEX, SCRIPT)
    rig.files.materialize(DPL, [entry("index.html", INDEX)])
    rig.files.materialize("dpl_bbbbbbbbbbbb", [entry("index.html", SCRIPT)])
    assert rig.read(DPL, "index.html") == INDEX
    assert rig.read("dpl_bbbbbbbbbbbb", "index.html") == SCRIPT
    assert sorted(rig.present()) == [DPL, "dpl_bbbbbbbbbbbb"]


# -- FsDeploymentFiles only ------------------------------------------------------------------------
@pytest.fixture
def fs(tmp_path: Path) -> tuple[FsBlobStore, FsDeploymentFiles]:
    blobs = FsBlobStore(tmp_path / "blobs")
    for data in (INDEX, SCRIPT):
        blobs.put(sha(data), iter([data]), 1 << 20)
    return blobs, FsDeploymentFiles(tmp_path / "deployments", blobs)


def test_fs_files_are_hard_links_with_etag_sidecars(fs: tuple[FsBlobStore, FsDeploymentFiles]) -> None:
    blobs, files = fs
    files.materialize(DPL, [entry("a/index.html", INDEX)])
    served = files.directory(DPL) / "public" / "a" / "index.html"
    assert os.path.samefile(served, blobs.path(sha(INDEX)))
    sidecar = served.with_name("index.html" + ETAG_SUFFIX)
    assert sidecar.read_text() == f'"{sha(INDEX)}"'
    assert (files.directory(DPL) / MARKER).is_file()


def test_fs_half_made_directory_is_replaced(fs: tuple[FsBlobStore, FsDeploymentFiles]) -> None:
    _, files = fs
    leftover = files.directory(DPL) / "public"
    leftover.mkdir(parents=True)
    (leftover / "stale.html").write_bytes(b"stale")
    assert not files.exists(DPL)  # no marker: not servable
    files.materialize(DPL, [entry("index.html", INDEX)])
    assert files.exists(DPL)
    assert sorted(os.listdir(files.directory(DPL) / "public")) == ["index.html", "index.html" + ETAG_SUFFIX]


def test_fs_failed_build_leaves_no_temporaries(fs: tuple[FsBlobStore, FsDeploymentFiles]) -> None:
    _, files = fs
    with pytest.raises(OSError):
        files.materialize(DPL, [entry("index.html", INDEX), entry("gone.js", b"never uploaded")])
    assert os.listdir(files.root) == []
    (files.root / ".tmp-crashed").mkdir()
    files.sweep_temporaries()
    assert os.listdir(files.root) == []
