"""Backup archives on real files: a snapshot taken from a live SQLite store and a blob store, restored into an
empty directory, and every archive a restore must refuse (leaving nothing behind)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from anchor_deploy.adapters.fernet_box import FernetBox
from anchor_deploy.adapters.local import backup_archive as fmt
from anchor_deploy.adapters.local.backup_export import BackupExporter, BackupStream
from anchor_deploy.adapters.local.backup_restore import restore_archive, verify_archive
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore, stamp_for
from anchor_deploy.adapters.local.internal_ca import InternalCA
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.entities import Deployment, DeploymentStatus, HostKind, HostRoute, Project, Target
from anchor_deploy.model.errors import BackupInvalid
from anchor_deploy.model.manifest import ManifestFile
from tests.support import sha


@dataclass
class Pause:
    """Counts like Retention.collection_paused, so a test sees when collection may run again."""

    active: int = 0
    entered: int = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.active += 1
        self.entered += 1
        try:
            yield
        finally:
            self.active -= 1


@dataclass
class DataDir:
    root: Path
    store: SqliteStore
    blobs: FsBlobStore
    box: FernetBox
    pause: Pause = field(default_factory=Pause)

    def exporter(self) -> BackupExporter:
        return BackupExporter(self.root, self.blobs, self.pause, "9.9.9", time.time)

    def deploy(self, project: Project, number: int, *contents: bytes) -> Deployment:
        files = []
        for i, content in enumerate(contents):
            self.blobs.put(sha(content), iter([content]), 1 << 20)
            files.append(ManifestFile(f"f{i}.txt", sha(content), len(content), 0o644))
        deployment = Deployment(
            f"dpl_{project.name}{number}",
            project.id,
            DeploymentStatus.QUEUED,
            Target.PREVIEW,
            1.0,
            len(files),
            9,
        )
        host = HostRoute(f"{project.name}-{number}.test", HostKind.DEPLOYMENT, project.id, deployment.id)
        self.store.add_deployment(deployment, files, host, self.box.seal(b'{"values": {}, "secret": []}'))
        return deployment


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    root = tmp_path / "data"
    root.mkdir(mode=0o700)
    store = SqliteStore(root / "anchor.db")
    blobs = FsBlobStore(root / "blobs")
    box = FernetBox.from_key_file(root / "secrets.key")
    InternalCA(root / "ca")
    (root / "certificates").mkdir(mode=0o700)
    (root / "certificates" / "www.example.com.pem").write_bytes(b"CHAIN\nKEY\n")
    (root / "admin-token").write_text("anc_admin\n")
    os.chmod(root / "admin-token", 0o600)
    project = Project("prj_site", "site", 1.0)
    store.add_project(project, [HostRoute("site.test", HostKind.ALIAS, project.id, None)])
    store.set_env(project.id, "TOKEN", box.seal(b"s3cret"), True)
    data = DataDir(root, store, blobs, box)
    data.deploy(project, 1, b"one", b"shared")
    data.deploy(project, 2, b"two", b"shared")
    blobs.put(sha(b"unreferenced"), iter([b"unreferenced"]), 1 << 20)
    return data


def archive_of(data: DataDir) -> bytes:
    stream = data.exporter().open()
    body = b"".join(stream)
    assert len(body) == stream.size
    return body


def test_a_restore_brings_back_the_database_the_referenced_blobs_and_the_keys(
    data: DataDir, tmp_path: Path
) -> None:
    body = archive_of(data)
    target = tmp_path / "restored"
    manifest = restore_archive(io.BytesIO(body), target)
    assert manifest["counts"]["deployments"] == 2 and manifest["counts"]["blobs"] == 3
    assert manifest["anchorVersion"] == "9.9.9" and manifest["formatVersion"] == fmt.FORMAT_VERSION
    names = ["admin-token", "anchor.db", "blobs", "ca", "certificates", "secrets.key"]
    assert sorted(p.name for p in target.iterdir()) == names  # no staging folder, no -wal beside the db

    restored = SqliteStore(target / "anchor.db")
    assert [p.name for p in restored.list_projects()] == ["site"]
    assert restored.manifest("dpl_site1") == data.store.manifest("dpl_site1")
    key, sealed, secret, _at = restored.list_env("prj_site")[0]
    assert (key, secret) == ("TOKEN", True)
    assert FernetBox.from_key_file(target / "secrets.key").open(sealed) == b"s3cret"

    blobs = FsBlobStore(target / "blobs")
    for content in (b"one", b"two", b"shared"):
        path = blobs.path(sha(content))
        assert path.read_bytes() == content
        assert stat.S_IMODE(path.stat().st_mode) == 0o444 and path.stat().st_mtime == stamp_for(sha(content))
    assert not blobs.has(sha(b"unreferenced"))  # only what the snapshot's deployments use

    for private in ("secrets.key", "admin-token", "ca/root.key", "certificates/www.example.com.pem"):
        assert (target / private).read_bytes() == (data.root / private).read_bytes()
        assert stat.S_IMODE((target / private).stat().st_mode) == 0o600, private
    assert (target / "ca" / "root.pem").read_bytes() == (data.root / "ca" / "root.pem").read_bytes()
    for folder in ("", "ca", "certificates"):
        assert stat.S_IMODE((target / folder).stat().st_mode) == 0o700


def test_the_archive_is_a_plain_tar_whose_first_member_is_the_manifest(data: DataDir) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive_of(data))) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(names[0]).read())  # type: ignore[union-attr]
    assert names[0] == fmt.MANIFEST_NAME and names[1] == fmt.DATABASE
    assert names[1:] == [m["name"] for m in manifest["members"]]


def test_the_snapshot_is_taken_when_the_backup_opens_and_collection_waits_until_it_ends(
    data: DataDir, tmp_path: Path
) -> None:
    stream = data.exporter().open()
    assert data.pause.active == 1
    # After the snapshot: a new deployment is not in it; a deleted one still is, with its blobs.
    data.deploy(Project("prj_site", "site", 1.0), 3, b"three")
    data.store.delete_deployment("dpl_site1")
    body = b"".join(stream)
    assert data.pause.active == 0
    assert not list((data.root / ".backup").iterdir())  # the snapshot is gone with the stream
    restore_archive(io.BytesIO(body), tmp_path / "r")
    restored = SqliteStore(tmp_path / "r" / "anchor.db")
    assert {d.id for d in restored.list_deployments("prj_site")} == {"dpl_site1", "dpl_site2"}
    assert FsBlobStore(tmp_path / "r" / "blobs").has(sha(b"one"))


def test_a_stream_dropped_unread_or_half_read_releases_collection_and_its_snapshot(data: DataDir) -> None:
    for reads in (0, 1):
        stream: BackupStream | None = data.exporter().open()
        assert stream is not None and data.pause.active == 1
        for _ in range(reads):
            next(stream)
        del stream  # a client that went away: the response drops the stream
        assert data.pause.active == 0
        assert not list((data.root / ".backup").iterdir())
    assert data.pause.entered == 2


def test_a_damaged_blob_ends_the_stream_early_instead_of_sending_it(data: DataDir) -> None:
    path = data.blobs.path(sha(b"shared"))
    os.chmod(path, 0o644)
    path.write_bytes(b"SHARED")  # same size, other bytes
    stream = data.exporter().open()
    with pytest.raises(Exception, match="damaged"):
        b"".join(stream)
    assert data.pause.active == 0


def test_writers_are_never_refused_while_snapshots_are_taken(data: DataDir) -> None:
    """The one-step online backup holds a read transaction only: WAL writers go on meanwhile."""
    for i in range(2000):  # some pages to copy
        data.store.append_log("dpl_site2", [f"line {i} " + "x" * 200])
    stop, errors, writes = threading.Event(), [], [0]

    def write() -> None:
        while not stop.is_set():
            try:
                data.store.set_env("prj_site", f"K{writes[0] % 50}", data.box.seal(b"v"), False)
                writes[0] += 1
            except Exception as exc:
                errors.append(exc)
                return

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(5):
            b"".join(data.exporter().open())
    finally:
        stop.set()
        writer.join(10)
    assert errors == [] and writes[0] > 0


# -- what a restore refuses ----------------------------------------------------------------------------------
def refused(body: bytes, target: Path, match: str | None = None) -> None:
    with pytest.raises(BackupInvalid, match=match):
        restore_archive(io.BytesIO(body), target)
    assert not target.exists(), "a refused restore leaves nothing behind"


def test_a_non_empty_directory_is_refused_and_left_as_it_was(data: DataDir, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(BackupInvalid, match="not empty"):
        restore_archive(io.BytesIO(archive_of(data)), target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (
        target / "notes.txt"
    ).read_text() == "mine"


def test_an_existing_empty_directory_is_restored_into_and_kept_on_failure(
    data: DataDir, tmp_path: Path
) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    body = archive_of(data)
    with pytest.raises(BackupInvalid):
        restore_archive(io.BytesIO(body[: len(body) // 2]), target)
    assert target.is_dir() and not list(target.iterdir())
    restore_archive(io.BytesIO(body), target)
    assert (target / "anchor.db").is_file()


def test_what_a_killed_restore_left_is_cleared_by_the_next_one(data: DataDir, tmp_path: Path) -> None:
    target = tmp_path / "again"
    (target / ".restore-dead1234" / "blobs").mkdir(parents=True)
    (target / ".restore-dead1234" / "anchor.db").write_bytes(b"half")
    restore_archive(io.BytesIO(archive_of(data)), target)
    assert not [p for p in target.iterdir() if p.name.startswith(".restore-")]
    assert (target / "anchor.db").read_bytes()[:16] == b"SQLite format 3\0"


def test_a_flipped_byte_anywhere_is_refused(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    for at in (len(body) // 2, 700, len(body) - 2 * fmt.RECORD - 600):
        damaged = bytearray(body)
        damaged[at] ^= 0x55
        with contextlib.suppress(BackupInvalid):  # most flips; a flip in a padding byte changes nothing
            restore_archive(io.BytesIO(bytes(damaged)), tmp_path / f"flip{at}")
            assert body[at] == 0 or at > len(body) - 2 * fmt.RECORD  # restored: the flip was in padding
            continue
        assert not (tmp_path / f"flip{at}").exists()


def test_a_flip_inside_a_member_is_refused_by_its_checksum(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    at = body.index(b"shared")  # a blob's content
    damaged = body[:at] + b"Shared" + body[at + 6 :]
    refused(damaged, tmp_path / "r", "damaged")


def test_a_truncated_archive_is_refused(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    for length in (0, 100, 2000, len(body) // 2, len(body) - 2 * fmt.RECORD):
        refused(body[:length], tmp_path / f"cut{length}")


def rebuilt(body: bytes, change_manifest: object = None, extra: tuple[str, bytes] | None = None) -> bytes:
    """The archive again, its manifest changed by ``change_manifest`` and an ``extra`` member added."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(body)) as source, tarfile.open(fileobj=out, mode="w") as tar:
        for info in source.getmembers():
            content = source.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == fmt.MANIFEST_NAME and callable(change_manifest):
                manifest = json.loads(content)
                change_manifest(manifest)
                content = fmt.encode_manifest({k: v for k, v in manifest.items() if k != fmt.CHECK})
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if extra:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            tar.addfile(info, io.BytesIO(extra[1]))
    return out.getvalue()


def test_another_format_version_is_refused(data: DataDir, tmp_path: Path) -> None:
    body = rebuilt(archive_of(data), lambda m: m.update(formatVersion=2))
    refused(body, tmp_path / "r", "version 2 is not one this anchor-deploy reads")


def test_a_manifest_changed_after_it_was_written_is_refused(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    edited = body.replace(b'"projects": 1', b'"projects": 7', 1)
    assert edited != body
    refused(edited, tmp_path / "r", "manifest is damaged")


def test_an_archive_that_does_not_start_with_a_manifest_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("anchor.db")
        tar.addfile(info, io.BytesIO(b""))
    refused(out.getvalue(), tmp_path / "r", "does not start with")
    refused(b"plain text, not a tar at all" * 100, tmp_path / "r2")


def test_a_member_outside_the_layout_is_refused_and_written_nowhere(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    for name in ("../escaped.txt", "/tmp/absolute.txt", "run/anything", "ca/../../escaped.txt"):

        def list_it(manifest: dict[str, list[dict[str, object]]], name: str = name) -> None:
            manifest["members"].append({"name": name, "size": 1, "sha256": sha(b"x"), "mode": 0o600})

        refused(rebuilt(body, list_it, (name, b"x")), tmp_path / "r", "no backup holds")
        assert not (tmp_path / "escaped.txt").exists()
    refused(rebuilt(body, None, ("blobs/zz/unlisted", b"x")), tmp_path / "r", "does not list")


def test_a_member_missing_from_the_archive_is_refused(data: DataDir, tmp_path: Path) -> None:
    body = rebuilt(
        archive_of(data),
        lambda m: m["members"].append(
            {"name": "ca/extra.pem", "size": 1, "sha256": sha(b"x"), "mode": 0o644}
        ),
    )
    refused(body, tmp_path / "r", "ends before 1 of its members")


def test_a_blob_the_database_needs_but_the_archive_lacks_is_refused(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    out = io.BytesIO()
    gone = f"blobs/{sha(b'two')[:2]}/{sha(b'two')}"
    with tarfile.open(fileobj=io.BytesIO(body)) as source, tarfile.open(fileobj=out, mode="w") as tar:
        for info in source.getmembers():
            content = source.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == fmt.MANIFEST_NAME:
                manifest = json.loads(content)
                manifest["members"] = [m for m in manifest["members"] if m["name"] != gone]
                manifest.pop(fmt.CHECK)
                content = fmt.encode_manifest(manifest)
                info.size = len(content)
            if info.name != gone:
                tar.addfile(info, io.BytesIO(content))
    refused(out.getvalue(), tmp_path / "r", "1 blobs the database references are not in the archive")


def test_a_key_that_does_not_open_the_sealed_values_is_refused(data: DataDir, tmp_path: Path) -> None:
    other = FernetBox.from_key_file(tmp_path / "other.key")
    del other
    (data.root / "secrets.key").write_bytes((tmp_path / "other.key").read_bytes())
    refused(archive_of(data), tmp_path / "r", "does not open the sealed values")


def test_a_gzipped_archive_is_read_and_verify_checks_without_writing(data: DataDir, tmp_path: Path) -> None:
    body = archive_of(data)
    assert verify_archive(io.BytesIO(body))["counts"]["projects"] == 1
    with pytest.raises(BackupInvalid):
        verify_archive(io.BytesIO(body[: -3 * fmt.RECORD]))
    restore_archive(io.BytesIO(gzip.compress(body)), tmp_path / "gz")
    assert SqliteStore(tmp_path / "gz" / "anchor.db").project_by_name("site") is not None
