"""Taking a backup while the platform serves: a consistent snapshot, streamed as a tar (backup_archive.py).

The database is copied with SQLite's online backup API in one step: in WAL mode that is one read
transaction, which writers never wait for (a copy in several steps would start over after every write of
another connection, and under steady writes might never finish). The snapshot says which blobs to include;
blobs are immutable and content-addressed, and garbage collection is paused from before the snapshot until
the last byte is sent, so every blob it references is still there when its turn comes. Keys and
certificates are small: they are copied beside the snapshot at the same moment, so the stream never reads
a file that changes under it. Nothing is held in memory but one chunk.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.local import backup_archive as fmt
from anchor_deploy.adapters.local.blob_integrity import hash_file
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.sqlite_store import referenced_blobs
from anchor_deploy.model.errors import BackupFailed

log = logging.getLogger(__name__)

_COUNTED = ("projects", "deployments", "alias_history", "domains", "env_vars", "tokens")


class BackupExporter:
    def __init__(
        self,
        data_dir: Path,
        blobs: FsBlobStore,
        pause_collection: Callable[[], AbstractContextManager[None]],
        version: str,
        clock: Callable[[], float],
    ) -> None:
        self._data = data_dir
        self._db = data_dir / fmt.DATABASE
        self._blobs = blobs
        self._pause = pause_collection
        self._version = version
        self._clock = clock
        self.work = data_dir / ".backup"  # snapshots being sent; what a crash leaves is swept at start

    def sweep(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def open(self) -> BackupStream:
        """Pause collection, snapshot the database and copy the keys; the stream sends them. BackupFailed if
        the database cannot be copied or a blob it references is missing."""
        resources = ExitStack()
        try:
            resources.enter_context(self._pause())
            self.work.mkdir(mode=0o700, exist_ok=True)
            folder = self.work / secrets.token_hex(8)
            folder.mkdir(mode=0o700)
            resources.callback(shutil.rmtree, folder, True)
            snapshot = folder / fmt.DATABASE
            self._snapshot(snapshot)
            digests, facts = self._read_snapshot(snapshot)
            members = [(_member(fmt.DATABASE, snapshot), snapshot)]
            members += [(_member(name, copy), copy) for name, copy in self._copy_keys(folder / "files")]
            members += [self._blob_member(digest) for digest in sorted(digests)]
            created = self._clock()
            manifest = {
                "format": fmt.FORMAT,
                "formatVersion": fmt.FORMAT_VERSION,
                "anchorVersion": self._version,
                "createdAt": datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(),
                **facts,
                "members": [m.to_dict() for m, _path in members],
            }
            encoded = fmt.encode_manifest(manifest)
            return BackupStream(encoded, facts["counts"], members, int(created), resources)
        except BaseException:
            resources.close()
            raise

    def _snapshot(self, target: Path) -> None:
        try:
            with (
                contextlib.closing(sqlite3.connect(self._db, timeout=30)) as live,
                contextlib.closing(sqlite3.connect(target)) as copy,
            ):
                live.execute("PRAGMA busy_timeout=30000")
                live.backup(copy)  # pages=-1: one step, one read transaction
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                problems = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        except sqlite3.Error as exc:
            raise BackupFailed(f"the database could not be copied: {exc}") from exc
        if problems != ["ok"]:
            raise BackupFailed(f"the database fails its integrity check: {'; '.join(problems[:3])}")

    @staticmethod
    def _read_snapshot(snapshot: Path) -> tuple[set[str], dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(snapshot)) as db:
            digests = referenced_blobs(db)
            counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in _COUNTED}  # noqa: S608
            schema = db.execute("PRAGMA user_version").fetchone()[0]
        return digests, {"schemaVersion": schema, "counts": {**counts, "blobs": len(digests)}}

    def _copy_keys(self, folder: Path) -> Iterator[tuple[str, Path]]:
        """Copies of the keys, the admin token, the CA, the ACME account and the certificates."""
        for source in self._key_files():
            name = source.relative_to(self._data).as_posix()
            copy = folder / name
            copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, copy)
                os.chmod(copy, os.stat(source).st_mode & 0o777)
            except FileNotFoundError:
                continue  # a certificate removed a moment ago: the database no longer has it either
            yield name, copy

    def _key_files(self) -> Iterator[Path]:
        for name in ("secrets.key", "admin-token"):
            if (self._data / name).is_file():
                yield self._data / name
        for folder in ("ca", "acme", "certificates"):
            if not (self._data / folder).is_dir():
                continue
            for path in sorted((self._data / folder).iterdir()):
                relative = path.relative_to(self._data).as_posix()
                if path.is_file() and not path.name.endswith(".tmp") and fmt.kind_of(relative):
                    yield path

    def _blob_member(self, digest: str) -> tuple[fmt.Member, Path]:
        path = self._blobs.path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError as exc:
            raise BackupFailed(f"blob {digest}, which a deployment uses, is missing from blobs/") from exc
        return fmt.Member(f"blobs/{digest[:2]}/{digest}", size, digest, 0o444), path


def _member(name: str, path: Path) -> fmt.Member:
    return fmt.Member(name, path.stat().st_size, hash_file(path), os.stat(path).st_mode & 0o777)


class BackupStream:
    """The archive's bytes, one chunk at a time; ``size`` is known before the first. Closing it (at the
    end, on an error, or when it is dropped unread) resumes collection and removes the snapshot."""

    def __init__(
        self,
        manifest: bytes,
        counts: dict[str, int],
        members: list[tuple[fmt.Member, Path]],
        mtime: int,
        resources: ExitStack,
    ) -> None:
        self._resources = resources
        self.counts = counts
        self.size = _size(manifest, members, mtime)
        # A function of the parts, not a method: a generator holding ``self`` would be a reference cycle,
        # and a stream dropped by a client that went away would wait for the cycle collector to close.
        self._chunks = _coalesced(_generate(manifest, members, mtime))

    def __iter__(self) -> BackupStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        chunks = getattr(self, "_chunks", None)
        if chunks is not None:
            chunks.close()
        self._resources.close()  # idempotent: a second close finds nothing left to release

    def __del__(self) -> None:
        self.close()


def _size(manifest: bytes, members: list[tuple[fmt.Member, Path]], mtime: int) -> int:
    total = len(fmt.header(fmt.MANIFEST_NAME, len(manifest), 0o600, mtime))
    total += len(manifest) + len(fmt.padding(len(manifest)))
    for member, _path in members:
        total += len(fmt.header(member.name, member.size, member.mode, mtime))
        total += member.size + len(fmt.padding(member.size))
    return total + len(fmt.trailer(total))


def _generate(
    manifest: bytes, members: list[tuple[fmt.Member, Path]], mtime: int
) -> Generator[bytes, None, None]:
    size = len(manifest)
    first = fmt.header(fmt.MANIFEST_NAME, size, 0o600, mtime) + manifest + fmt.padding(size)
    yield first
    written = len(first)
    for member, path in members:
        head = fmt.header(member.name, member.size, member.mode, mtime)
        yield head
        yield from _content(member, path)
        yield fmt.padding(member.size)
        written += len(head) + member.size + len(fmt.padding(member.size))
    yield fmt.trailer(written)


def _coalesced(pieces: Generator[bytes, None, None]) -> Iterator[bytes]:
    """Headers and padding joined to the content around them: chunks of about fmt.CHUNK bytes, so a backup
    of many small blobs is not sent (and handed between threads) 512 bytes at a time."""
    buffer = bytearray()
    try:
        for piece in pieces:
            buffer += piece
            if len(buffer) >= fmt.CHUNK:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)
    finally:
        pieces.close()


def _content(member: fmt.Member, path: Path) -> Iterator[bytes]:
    """A member's bytes, checked against the manifest on the way: a file that changed or a damaged blob
    ends the stream early instead of being sent as if it were whole."""
    digest = hashlib.sha256()
    left = member.size
    try:
        with open(path, "rb") as source:
            while left:
                chunk = source.read(min(fmt.CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                digest.update(chunk)
                yield chunk
    except OSError as exc:
        raise BackupFailed(f"{member.name} could not be read: {exc.strerror or exc}") from exc
    if left or digest.hexdigest() != member.sha256:
        log.error("backup stopped: %s changed or is damaged on disk", member.name)
        raise BackupFailed(f"{member.name} changed or is damaged on disk; the backup is incomplete")
