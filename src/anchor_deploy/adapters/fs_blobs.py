"""Blobs on local disk, addressed by sha256, and deployments materialized from them as hard links.

Layout under the data dir:
  blobs/ab/<sha256>            the bytes, read-only
  blobs/ab/<sha256>.1, .2 ...  spares: more inodes with the same bytes, made when the filesystem's
                               hard-link limit (65,000 on ext4) is reached; collected with their blob
  blobs/etags/<sha256>         a tiny file holding '"<sha256>"', the content-based ETag sidecar
  blobs/etags/<sha256>.1 ...   its spares, for the same reason
  deployments/<id>/public/...  hard links to blobs (regular files only), each with its .anchor-etag
  deployments/<id>/deployment.json   written last: the edge serves a deployment only once it exists

Every inode of a blob (the blob, its spares, and the plain copy that is the last resort) is mode 0444 with
the epoch as mtime: a served file looks the same whichever of them it is linked to.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BlobRejected, BlobTooLarge
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile, is_sha256

MARKER = "deployment.json"
# Every blob's mtime is the Unix epoch. Hard links share it across deployments, so it says nothing about
# content; at the epoch Go's file server sends no Last-Modified and ignores If-Modified-Since, leaving the
# content-hash ETag as the only validator (and saving the edge a header rewrite per request).
EPOCH_MTIME = 0
BLOB_MODE = 0o444
# How many spares one blob (or sidecar) may get before each further file becomes a plain copy: with ext4's
# 65,000 links per inode that is some 66 million files of one content.
MAX_SPARES = 1024
_COPY_CHUNK = 1 << 20

Link = Callable[[Path, Path], None]


def _hard_link(source: Path, target: Path) -> None:
    os.link(source, target)


class FsBlobStore:
    def __init__(self, root: Path, link: Link = _hard_link) -> None:
        """``link`` makes one hard link (``os.link``); a test may pass one that hits a lower link limit."""
        self.root = root
        self._tmp = root / "tmp"
        self._etags = root / "etags"
        self._link = link
        # The spare that last took a link, per blob or sidecar path: later links start there instead of
        # failing once on every full inode before it. Only a hint; a stale one is noticed and dropped.
        self._spare_hint: dict[Path, int] = {}
        for folder in (root, self._tmp, self._etags):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not is_sha256(digest):
            raise BlobRejected(f"{digest[:80]!r} is not a sha256 digest")
        return self.root / digest[:2] / digest

    def etag_path(self, digest: str) -> Path:
        """The sidecar for ``digest``, created on first use (content: the quoted digest)."""
        path = self._etags / digest
        if not path.exists():
            self._write_atomic(path, f'"{digest}"'.encode())
        return path

    def link(self, digest: str, target: Path) -> None:
        """Hard-link ``target`` to the blob, or to a spare of it once the blob has as many links as the
        filesystem allows. FileNotFoundError (an OSError) if the blob is not stored."""
        self._link_shared(self.path(digest), target, lambda spare: self._copy_blob(digest, spare))

    def link_etag(self, digest: str, target: Path) -> None:
        """Hard-link ``target`` to the blob's ETag sidecar (or a spare of it), as ``link`` does."""
        content = f'"{digest}"'.encode()
        self._link_shared(self.etag_path(digest), target, lambda spare: self._write_new(spare, content))

    def collect(self, keep: set[str], older_than: float) -> int:
        """Remove each blob not in ``keep`` and unchanged since ``older_than``, with its spares and sidecars.

        "Changed" is the inode's ctime, which an upload sets and each new or removed link moves: the mtime
        is always the epoch (EPOCH_MTIME), so it cannot tell a fresh upload from an old one."""
        doomed: set[str] = set()
        for shard in self.root.iterdir():
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            inodes: dict[str, list[Path]] = {}
            for blob in shard.iterdir():
                inodes.setdefault(blob.name.partition(".")[0], []).append(blob)
            for digest, paths in inodes.items():
                if digest in keep or self._changed_since(paths, older_than):
                    continue
                # Spares first: a blob still listed as held (``has``) keeps every inode it links to.
                for path in sorted(paths, key=lambda p: p.name == digest):
                    path.unlink(missing_ok=True)
                doomed.add(digest)
        if doomed:
            for sidecar in self._etags.iterdir():
                if sidecar.name.partition(".")[0] in doomed:
                    sidecar.unlink(missing_ok=True)
            for digest in doomed:
                self._spare_hint.pop(self.root / digest[:2] / digest, None)
                self._spare_hint.pop(self._etags / digest, None)
        return len(doomed)

    @staticmethod
    def _changed_since(paths: list[Path], since: float) -> bool:
        for path in paths:
            try:
                if path.stat().st_ctime >= since:
                    return True
            except FileNotFoundError:
                continue
        return False

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise BlobRejected(f"blob {digest} is not stored") from exc

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def missing(self, digests: Iterable[str]) -> list[str]:
        seen: dict[str, None] = {}
        for digest in digests:
            if digest not in seen and not self.has(digest):
                seen[digest] = None
        return list(seen)

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        final = self.path(digest)
        tmp = self._tmp / f"{digest}.{secrets.token_hex(6)}"
        hasher = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_size:
                        raise BlobTooLarge(f"blob is larger than the {max_size}-byte limit")
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise BlobRejected(f"content does not match its digest: got sha256 {hasher.hexdigest()}")
            if final.exists():
                return 0
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, BLOB_MODE)
            os.utime(tmp, (EPOCH_MTIME, EPOCH_MTIME))
            os.replace(tmp, final)
            return size
        finally:
            tmp.unlink(missing_ok=True)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self._tmp / f"w.{secrets.token_hex(8)}"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)

    def _link_shared(self, primary: Path, target: Path, make_spare: Callable[[Path], None]) -> None:
        """Link ``target`` to ``primary`` or its first spare (``<name>.1``, ``.2`` ...) with room for one
        more link, making that spare with ``make_spare`` when it does not exist yet; past MAX_SPARES,
        ``target`` becomes a copy made the same way."""
        hint = number = self._spare_hint.get(primary, 0)
        from_start, made = number == 0, -1
        while number <= MAX_SPARES:
            source = primary if number == 0 else primary.with_name(f"{primary.name}.{number}")
            try:
                self._link(source, target)
            except FileNotFoundError:
                if number == 0 or number == made:
                    raise  # the blob itself is not stored (or the target's folder is gone)
                if not from_start:  # the hint names a spare collected since: look again from the blob
                    number, from_start = 0, True
                    continue
                make_spare(source)  # another thread may make it too: make_spare never overwrites
                made = number
                continue
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                number += 1
                continue
            if number != hint:
                self._spare_hint[primary] = number
            return
        copy = self._tmp / f"copy.{secrets.token_hex(8)}"
        try:
            make_spare(copy)
            os.link(copy, target)  # a fresh inode: fails only if target exists, as a link would
        finally:
            copy.unlink(missing_ok=True)

    def _copy_blob(self, digest: str, destination: Path) -> None:
        """Create ``destination`` (never replacing a file there) as a copy of the blob, checking its digest
        on the way: a damaged blob is never copied into more places."""
        tmp = self._tmp / f"c.{secrets.token_hex(8)}"
        hasher = hashlib.sha256()
        try:
            with open(self.path(digest), "rb") as source, open(tmp, "wb") as out:
                while chunk := source.read(_COPY_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise BlobRejected(
                    f"blob {digest} is damaged on disk: its content hashes to {hasher.hexdigest()}"
                )
            self._publish(tmp, destination)
        finally:
            tmp.unlink(missing_ok=True)

    def _write_new(self, destination: Path, data: bytes) -> None:
        tmp = self._tmp / f"w.{secrets.token_hex(8)}"
        try:
            tmp.write_bytes(data)
            self._publish(tmp, destination)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _publish(tmp: Path, destination: Path) -> None:
        """Give a finished temporary file the blob's mode and mtime, then its name: ``os.link`` creates the
        name with the full content or fails if it exists (someone else made it first: theirs is as good)."""
        os.chmod(tmp, BLOB_MODE)
        os.utime(tmp, (EPOCH_MTIME, EPOCH_MTIME))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, destination)


class FsDeploymentFiles:
    def __init__(self, root: Path, blobs: FsBlobStore) -> None:
        self.root = root
        self._blobs = blobs
        root.mkdir(parents=True, exist_ok=True)

    def directory(self, deployment_id: str) -> Path:
        return self.root / deployment_id

    def exists(self, deployment_id: str) -> bool:
        return (self.directory(deployment_id) / MARKER).is_file()

    def app_dir(self, deployment_id: str) -> Path:
        return self.directory(deployment_id) / "app"

    def materialize(
        self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None = None
    ) -> None:
        if self.exists(deployment_id):
            return
        final = self.directory(deployment_id)
        work = self.root / f".tmp-{deployment_id}-{secrets.token_hex(4)}"
        try:
            (work / "public").mkdir(parents=True)
            prefix = f"{app.static_dir}/" if app and app.static_dir else None
            for entry in files:
                if app is None:
                    self._serve(work / "public", entry.path, entry)
                elif prefix and entry.path.startswith(prefix):
                    self._serve(work / "public", entry.path.removeprefix(prefix), entry)
            if app is not None:
                for entry in files:  # a private copy: an app writing its files cannot change a shared blob
                    target = self._place(work / "app", entry.path)
                    shutil.copyfile(self._blobs.path(entry.sha256), target)
                    os.chmod(target, 0o755 if entry.mode & 0o111 else 0o644)
                (work / "worker").mkdir()  # marks an app deployment for the edge
            summary = {"id": deployment_id, "files": len(files), "app": app is not None}
            (work / deployment_id).touch()  # the edge learns the id from this name (caddy_config)
            (work / MARKER).write_text(json.dumps(summary))
            if final.exists():  # a half-made directory from a crash: replace it
                shutil.rmtree(final)
            os.rename(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _place(root: Path, relative: str) -> Path:
        target = root.joinpath(*relative.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _serve(self, public: Path, relative: str, entry: ManifestFile) -> None:
        target = self._place(public, relative)
        # A link, never a copy with the manifest's mode: every served file has the blob's mode (0444).
        self._blobs.link(entry.sha256, target)
        self._blobs.link_etag(entry.sha256, target.with_name(target.name + ETAG_SUFFIX))

    def remove(self, deployment_id: str) -> None:
        shutil.rmtree(self.directory(deployment_id), ignore_errors=True)

    def present(self) -> list[str]:
        """Deployment ids that have a directory (complete or not)."""
        return [p.name for p in self.root.iterdir() if p.name.startswith("dpl_")]

    def sweep_temporaries(self) -> None:
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
