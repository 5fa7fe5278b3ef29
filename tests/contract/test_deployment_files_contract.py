"""The DeploymentFiles port's contract: FsDeploymentFiles on real directories and the fake pass it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import MARKER, FsDeploymentFiles
from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BlobUnavailable
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile
from anchor_deploy.ports import BlobStore, DeploymentFiles
from anchor_deploy.ports.fakes import FakeBlobStore, FakeDeploymentFiles
from tests.support import sha

INDEX, SCRIPT = b"<h1>hi</h1>\n", b"console.log(1)\n"
ROTTEN = b"console.log(2)\n"  # SCRIPT after bit rot: the same size
DPL = "dpl_aaaaaaaaaaaa"


@dataclass
class Rig:
    blobs: BlobStore
    files: DeploymentFiles
    read: Callable[[str, str], bytes]
    present: Callable[[], list[str]]
    damage: Callable[[str, bytes], None]  # rewrite a stored blob's bytes behind the store's back

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
            lambda digest, data: damage_on_disk(fs_blobs.path(digest), data),
        )
    blobs = FakeBlobStore()
    files = FakeDeploymentFiles(blobs)
    return Rig(blobs, files, files.read, files.present, blobs.damage)


def damage_on_disk(path: Path, data: bytes) -> None:
    """Bytes rewritten in place, as a stray tool would: the inode every hard link to it shares."""
    os.chmod(path, 0o644)
    path.write_bytes(data)
    os.chmod(path, 0o444)


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
    with pytest.raises(BlobUnavailable) as caught:
        rig.files.materialize(DPL, manifest)
    assert str(caught.value) == f"blob {sha(SCRIPT)} of app.js is missing"
    assert caught.value.extra["digest"] == sha(SCRIPT)
    assert not rig.files.exists(DPL)
    assert rig.present() == []
    rig.upload(SCRIPT)  # once the blob is there, the same build succeeds
    rig.files.materialize(DPL, manifest)
    assert rig.read(DPL, "app.js") == SCRIPT


def test_a_damaged_blob_fails_the_build_naming_its_file_and_is_asked_for_again(rig: Rig) -> None:
    rig.upload(INDEX, SCRIPT)
    rig.files.materialize("dpl_bbbbbbbbbbbb", [entry("js/app.js", SCRIPT)])  # checked once, then damaged
    rig.damage(sha(SCRIPT), ROTTEN)
    manifest = [entry("index.html", INDEX), entry("js/app.js", SCRIPT)]
    with pytest.raises(BlobUnavailable) as caught:
        rig.files.materialize(DPL, manifest)
    message = str(caught.value)
    assert message.startswith(f"blob {sha(SCRIPT)} of js/app.js is damaged on disk")
    assert f"hashes to {sha(ROTTEN)}" in message
    assert not rig.files.exists(DPL) and DPL not in rig.present()
    assert rig.blobs.missing([sha(INDEX), sha(SCRIPT)]) == [sha(SCRIPT)]  # the next deploy uploads it
    assert rig.blobs.put(sha(SCRIPT), iter([SCRIPT]), 1 << 20) == len(SCRIPT)  # replaced
    assert rig.blobs.missing([sha(SCRIPT)]) == []
    rig.files.materialize(DPL, manifest)
    assert rig.read(DPL, "js/app.js") == SCRIPT


def test_relink_serves_the_replaced_bytes_in_a_built_deployment(rig: Rig) -> None:
    rig.upload(INDEX, SCRIPT)
    manifest = [entry("index.html", INDEX), entry("a.js", SCRIPT), entry("b/a.js", SCRIPT)]
    rig.files.materialize(DPL, manifest)
    rig.damage(sha(SCRIPT), ROTTEN)
    rig.upload(SCRIPT)  # the right bytes again: the store replaces its damaged copy
    assert rig.files.relink(DPL, manifest, {sha(SCRIPT)}) == 2
    assert [rig.read(DPL, p) for p in ("index.html", "a.js", "b/a.js")] == [INDEX, SCRIPT, SCRIPT]
    assert rig.files.relink("dpl_neverbuiltyet", manifest, {sha(SCRIPT)}) == 0


def test_relink_of_an_app_touches_only_its_served_static_files(rig: Rig) -> None:
    rig.upload(INDEX, SCRIPT)
    app = AppConfig(entry="app:app", static_dir="public")
    manifest = [entry("app.py", SCRIPT), entry("public/x.js", SCRIPT), entry("public/index.html", INDEX)]
    rig.files.materialize(DPL, manifest, app)
    assert rig.files.relink(DPL, manifest, {sha(SCRIPT)}, app) == 1
    assert rig.read(DPL, "x.js") == SCRIPT


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
    with pytest.raises(BlobUnavailable):
        files.materialize(DPL, [entry("index.html", INDEX), entry("gone.js", b"never uploaded")])
    assert os.listdir(files.root) == []
    (files.root / ".tmp-crashed").mkdir()
    files.sweep_temporaries()
    assert os.listdir(files.root) == []


def test_fs_a_damaged_blob_is_served_until_relinked_then_right(
    fs: tuple[FsBlobStore, FsDeploymentFiles],
) -> None:
    blobs, files = fs
    files.materialize(DPL, [entry("index.html", INDEX)])
    served = files.directory(DPL) / "public" / "index.html"
    damage_on_disk(blobs.path(sha(INDEX)), b"<h1>ho</h1>\n")  # same size, same inode as the served file
    assert served.read_bytes() == b"<h1>ho</h1>\n"
    before = served.stat().st_ino
    assert blobs.put(sha(INDEX), iter([INDEX]), 1 << 20) == len(INDEX)
    assert served.read_bytes() == b"<h1>ho</h1>\n"  # still linked to the damaged inode...
    assert files.relink(DPL, [entry("index.html", INDEX)], {sha(INDEX)}) == 1
    assert served.read_bytes() == INDEX and served.stat().st_ino != before  # ...until relinked
    assert os.path.samefile(served, blobs.path(sha(INDEX)))
    sidecar = served.with_name("index.html" + ETAG_SUFFIX)
    assert sidecar.read_text() == f'"{sha(INDEX)}"'
    assert sorted(p.name for p in files.directory(DPL).iterdir() if p.name.startswith(".")) == []


def test_fs_each_inode_is_hashed_once_per_process(
    fs: tuple[FsBlobStore, FsDeploymentFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    from anchor_deploy.adapters.local import fs_blobs

    blobs, files = fs
    hashed: list[Path] = []
    real = fs_blobs.hash_file
    monkeypatch.setattr(
        fs_blobs, "hash_file", lambda path, pace=None: hashed.append(path) or real(path, pace)
    )
    manifest = [entry(f"{n}.html", INDEX) for n in range(20)]
    files.materialize(DPL, manifest)  # both blobs were written by this process: nothing to hash
    assert hashed == []
    fresh = FsBlobStore(blobs.root)  # a new process: each inode once, however many files link it
    FsDeploymentFiles(files.root, fresh).materialize("dpl_bbbbbbbbbbbb", manifest)
    assert len(hashed) == 1


def test_each_apps_files_have_a_stable_reference_of_their_own(rig: Rig) -> None:
    """The services hand the reference to the runtime as it is: one per deployment, the same every time."""
    other = "dpl_bbbbbbbbbbbb"
    mine = rig.files.app_files(DPL)
    assert isinstance(mine, str) and mine and mine == rig.files.app_files(DPL)
    assert rig.files.app_files(other) != mine


def test_fs_a_directory_another_process_made_meanwhile_is_kept_as_it_is(
    fs: tuple[FsBlobStore, FsDeploymentFiles], tmp_path: Path
) -> None:
    """Two control-plane processes materializing one deployment at once (a reconcile pass and an fsck
    repair): the one that finishes second keeps the first one's directory, never takes it away."""
    blobs, files = fs
    other = FsDeploymentFiles(tmp_path / "deployments", FsBlobStore(tmp_path / "blobs"))
    link = blobs.link
    theirs: list[int] = []

    def link_after_the_other_finished(digest: str, target: Path) -> None:
        blobs.link = link  # type: ignore[method-assign]
        other.materialize(DPL, [entry("index.html", INDEX)])
        theirs.append(other.directory(DPL).stat().st_ino)
        link(digest, target)

    blobs.link = link_after_the_other_finished  # type: ignore[method-assign]
    files.materialize(DPL, [entry("index.html", INDEX)])
    made = files.directory(DPL)
    assert theirs and made.stat().st_ino == theirs[0]  # the other process's directory, never taken away
    assert (made / "public" / "index.html").read_bytes() == INDEX
    assert os.listdir(files.root) == [DPL]  # this one's work was dropped
