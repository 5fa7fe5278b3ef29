"""Blobs on local disk, addressed by sha256, and deployments materialized from them as hard links.

Layout under the data dir:
  blobs/ab/<sha256>            the bytes, read-only
  blobs/etags/<sha256>         a tiny file holding '"<sha256>"', the content-based ETag sidecar
  deployments/<id>/public/...  hard links to blobs (regular files only), each with its .anchor-etag
  deployments/<id>/deployment.json   written last: the edge serves a deployment only once it exists
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BlobRejected, BlobTooLarge
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile, is_sha256

MARKER = "deployment.json"
# Every blob's mtime is the Unix epoch. Hard links share it across deployments, so it says nothing about
# content; at the epoch Go's file server sends no Last-Modified and ignores If-Modified-Since, leaving the
# content-hash ETag as the only validator (and saving the edge a header rewrite per request).
EPOCH_MTIME = 0


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._etags = root / "etags"
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

    def collect(self, keep: set[str], older_than: float) -> int:
        removed = 0
        for shard in self.root.iterdir():
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for blob in shard.iterdir():
                if blob.name not in keep and blob.stat().st_mtime < older_than:
                    blob.unlink(missing_ok=True)
                    (self._etags / blob.name).unlink(missing_ok=True)
                    removed += 1
        return removed

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
            os.chmod(tmp, 0o444)
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
        os.link(self._blobs.path(entry.sha256), target)
        os.link(self._blobs.etag_path(entry.sha256), target.with_name(target.name + ETAG_SUFFIX))

    def remove(self, deployment_id: str) -> None:
        shutil.rmtree(self.directory(deployment_id), ignore_errors=True)

    def present(self) -> list[str]:
        """Deployment ids that have a directory (complete or not)."""
        return [p.name for p in self.root.iterdir() if p.name.startswith("dpl_")]

    def sweep_temporaries(self) -> None:
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
