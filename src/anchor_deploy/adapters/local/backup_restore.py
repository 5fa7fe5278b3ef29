"""Reading a backup archive (backup_archive.py): verifying it, and restoring it into an empty data dir.

Nothing final is written before the whole archive is checked: members go to a staging folder inside the
target as they stream (each against the manifest's size and sha256, in a layout that allows no other
path), then the database must pass ``PRAGMA integrity_check``, hold no deployment whose blob is missing,
and open its sealed values with the archive's key. Only then do the files move into place. On any failure
what was written is removed, and a target the restore created is removed with it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from anchor_deploy.adapters.fernet_box import FernetBox
from anchor_deploy.adapters.local import backup_archive as fmt
from anchor_deploy.adapters.local.fs_blobs import BLOB_MODE, stamp_for
from anchor_deploy.adapters.local.sqlite_store import referenced_blobs
from anchor_deploy.model.errors import BackupInvalid, InvalidInput

Sink = Callable[[str, fmt.Kind, Iterator[bytes]], None]
_STAGING = ".restore-"


def verify_archive(archive: IO[bytes]) -> dict[str, Any]:
    """Check every member against the manifest without writing anything; return the manifest."""

    def drain(_name: str, _kind: fmt.Kind, chunks: Iterator[bytes]) -> None:
        for _chunk in chunks:
            pass

    return _read(archive, drain)


def restore_archive(archive: IO[bytes], target: Path) -> dict[str, Any]:
    """Restore into ``target``, which must be empty or not exist yet; return the manifest."""
    created = _claim(target)
    stage = target / f"{_STAGING}{secrets.token_hex(4)}"
    placed: list[Path] = []
    try:
        stage.mkdir(mode=0o700)
        manifest = _read(archive, lambda name, kind, chunks: _write(stage, name, kind, chunks))
        _check_database(stage)
        for entry in sorted(stage.iterdir()):
            os.rename(entry, target / entry.name)
            placed.append(target / entry.name)
        stage.rmdir()
        return manifest
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for path in placed:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _claim(target: Path) -> bool:
    """Refuse a target with anything in it; create a missing one (0700). True if it was created."""
    if target.exists() and not target.is_dir():
        raise BackupInvalid(f"{target} is not a directory; nothing was changed")
    if target.is_dir():
        entries = list(target.iterdir())
        if any(not (e.name.startswith(_STAGING) and e.is_dir()) for e in entries):
            raise BackupInvalid(
                f"{target} is not empty: restore into a new or empty directory; nothing was changed"
            )
        for leftover in entries:  # the staging folder of a restore that was killed: nothing was placed
            shutil.rmtree(leftover)
        os.chmod(target, 0o700)
        return False
    target.mkdir(mode=0o700, parents=True)
    return True


def _read(archive: IO[bytes], sink: Sink) -> dict[str, Any]:
    try:
        with tarfile.open(fileobj=archive, mode="r|*") as tar:
            return _members(tar, sink)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupInvalid(f"not a complete backup archive: {exc}") from exc


def _members(tar: tarfile.TarFile, sink: Sink) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != fmt.MANIFEST_NAME or not first.isfile():
        raise BackupInvalid(f"not an anchor-deploy backup: it does not start with {fmt.MANIFEST_NAME}")
    if first.size > fmt.MANIFEST_LIMIT:
        raise BackupInvalid("the backup's manifest is larger than any backup's")
    manifest = _manifest(_file(tar, first).read())
    expected = {m["name"]: m for m in manifest["members"]}
    while (info := tar.next()) is not None:  # not ``for info in tar``: that starts over at the manifest
        member = expected.pop(info.name, None)
        kind = fmt.kind_of(info.name)
        if member is None or kind is None or not info.isfile():
            raise BackupInvalid(f"the archive holds {info.name[:200]!r}, which its manifest does not list")
        if info.size != member["size"]:
            raise BackupInvalid(f"{info.name} has {info.size} bytes; the manifest says {member['size']}")
        sink(info.name, kind, _checked(_file(tar, info), info.name, member["sha256"]))
    if expected:
        missing = ", ".join(sorted(expected)[:3])
        raise BackupInvalid(f"the archive ends before {len(expected)} of its members ({missing}...)")
    return manifest


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
        members = manifest["members"]
        version = manifest["formatVersion"]
        names = [m["name"] for m in members]
        sound = all(isinstance(m["size"], int) and isinstance(m["sha256"], str) for m in members)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupInvalid(f"the backup's manifest is unreadable: {exc}") from exc
    if manifest.get("format") != fmt.FORMAT or version != fmt.FORMAT_VERSION:
        raise BackupInvalid(
            f"backup format {manifest.get('format')!r} version {version!r} is not one this anchor-deploy "
            f"reads ({fmt.FORMAT} version {fmt.FORMAT_VERSION})"
        )
    if not fmt.manifest_intact(manifest):
        raise BackupInvalid("the backup's manifest is damaged: it does not match its own sha256")
    if not sound or len(set(names)) != len(names) or fmt.DATABASE not in names:
        raise BackupInvalid("the backup's manifest lists its members wrongly (or no database)")
    for member in members:
        name = member["name"]
        kind = fmt.kind_of(name)
        if kind is None or (kind is fmt.Kind.BLOB and not name.endswith("/" + member["sha256"])):
            raise BackupInvalid(f"the backup's manifest lists {name[:200]!r}, which no backup holds")
    return dict(manifest)


def _file(tar: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    handle = tar.extractfile(info)
    if handle is None:
        raise BackupInvalid(f"{info.name} is not a regular file")
    return handle


def _checked(source: IO[bytes], name: str, sha256: str) -> Iterator[bytes]:
    digest = hashlib.sha256()
    while chunk := source.read(fmt.CHUNK):
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != sha256:
        raise BackupInvalid(f"{name} is damaged: its content does not match the manifest's sha256")


def _write(stage: Path, name: str, kind: fmt.Kind, chunks: Iterator[bytes]) -> None:
    path = stage.joinpath(*name.split("/"))
    path.parent.mkdir(mode=0o777 if kind is fmt.Kind.BLOB else 0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    if kind is fmt.Kind.BLOB:  # as the blob store leaves every inode of a blob
        os.chmod(path, BLOB_MODE)
        stamp = stamp_for(path.name.partition(".")[0])
        os.utime(path, (stamp, stamp))
    elif kind is fmt.Kind.PUBLIC:
        os.chmod(path, 0o644)


def _check_database(stage: Path) -> None:
    """The database is whole, every blob it references came along, and the key opens what it sealed."""
    try:
        with contextlib.closing(sqlite3.connect(stage / fmt.DATABASE)) as db:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupInvalid(f"the database fails its integrity check: {'; '.join(problems[:3])}")
            missing = [d for d in referenced_blobs(db) if not (stage / "blobs" / d[:2] / d).is_file()]
            sealed = db.execute("SELECT sealed_value FROM env_vars LIMIT 1").fetchone()
    except sqlite3.Error as exc:
        raise BackupInvalid(f"the database cannot be read: {exc}") from exc
    if missing:
        raise BackupInvalid(f"{len(missing)} blobs the database references are not in the archive")
    if sealed is not None:
        key = stage / "secrets.key"
        try:
            FernetBox(key.read_bytes().strip()).open(sealed[0])
        except (OSError, ValueError, InvalidInput) as exc:
            raise BackupInvalid("the archive's secrets.key does not open the sealed values") from exc
