"""Blobs on local disk, addressed by sha256 (deployments link to them: fs_deployments.py).

Layout under the data dir:
  blobs/ab/<sha256>            the bytes, read-only
  blobs/ab/<sha256>.1, .2 ...  spares: more inodes with the same bytes, made when the filesystem's
                               hard-link limit (65,000 on ext4) is reached; collected with their blob
  blobs/etags/<sha256>         a tiny file holding '"<sha256>"', the content-based ETag sidecar
  blobs/etags/<sha256>.1 ...   its spares, for the same reason
  quarantine/<time>-<name>-<rand>    a damaged copy set aside (by fsck --repair, or replaced by an upload),
                               with a .note beside it; never deleted by the platform

Bytes are checked when written (hashed as they stream in), when a deployment links them (each inode hashed
once per process: blob_integrity.VerifiedInodes), and by fsck and the scrub (``check``).

Every inode of a blob (the blob, its spares, and the plain copy that is the last resort) is mode 0444 with
the blob's content stamp as mtime (``stamp_for``): a served file looks the same whichever of them it is
linked to, and an edge whose ETag is built from mtime and size (nginx) gets a content-derived one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from anchor_deploy.adapters.local.blob_integrity import (
    Pace,
    Quarantine,
    VerifiedInodes,
    etag_content,
    hash_file,
    scan_copies,
)
from anchor_deploy.adapters.local.fs_blob_files import (
    BLOB_MODE,
    EPOCH_MTIME,
    Link,
    SpareLinks,
    hard_link,
    publish,
    restamp,
    stamp_for,
    write_file,
    write_new,
)
from anchor_deploy.model.errors import BlobRejected, BlobTooLarge, BlobUnavailable, CopyGone
from anchor_deploy.model.integrity import CopyKind, StoredCopy
from anchor_deploy.model.manifest import is_sha256

# The stamp names are imported from here too (they were defined here before fs_blob_files).
__all__ = ["BLOB_MODE", "EPOCH_MTIME", "FsBlobStore", "stamp_for"]
_STAMPED_MARK = ".stamped-v1"
_COPY_CHUNK = 1 << 20


class FsBlobStore:
    def __init__(self, root: Path, link: Link = hard_link, quarantine: Path | None = None) -> None:
        """``link`` makes one hard link (``os.link``); a test may pass one that hits a lower link limit.
        Damaged copies go to ``quarantine`` (default: a ``quarantine`` folder beside ``root``)."""
        self.root = root
        self._root = str(root)
        self._shards: set[str] = set()  # blob folders known to exist (ab/)
        self._tmp = root / "tmp"
        self._etags = root / "etags"
        self._verified = VerifiedInodes()
        self._quarantine = Quarantine(quarantine or root.parent / "quarantine", link)
        # Copies found damaged and still in place, by name ("ab/<digest>", "ab/<digest>.1", "etags/<digest>").
        self._corrupt: dict[str, str] = {}
        self._replacing = threading.Lock()
        self.on_stored: Callable[[str, bool], None] = lambda _digest, _replaced: None
        self._spares = SpareLinks(link, self._tmp)
        for folder in (root, self._tmp, self._etags):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return Path(self._file(digest))

    def _file(self, digest: str) -> str:
        """The blob's path as a string (the hot paths: ``has``, ``missing``, ``put_many``)."""
        if not is_sha256(digest):
            raise BlobRejected(f"{digest[:80]!r} is not a sha256 digest")
        return f"{self._root}/{digest[:2]}/{digest}"

    def etag_path(self, digest: str) -> Path:
        """The sidecar for ``digest``, created on first use (content: the quoted digest). Created only if
        absent, never replaced: a replaced name's old inode can drop to no links while another thread
        links to it by that name, and link(2) then fails with ENOENT."""
        path = self._etags / digest
        if not path.exists():
            write_new(self._tmp, path, f'"{digest}"'.encode())
        return path

    def link(self, digest: str, target: Path) -> None:
        """Hard-link ``target`` to the blob, or to a spare of it once the blob has as many links as the
        filesystem allows, and check the linked inode's bytes (once per inode and process). BlobUnavailable
        if the blob is not stored or its bytes are damaged (``target`` is then not left behind)."""
        try:
            source = self._link_shared(
                self.path(digest), target, lambda spare: self._copy_blob(digest, spare)
            )
        except FileNotFoundError as exc:
            if self.has(digest):
                raise  # the target's folder is gone, not the blob
            raise BlobUnavailable(f"blob {digest} is missing", digest=digest, problem="is missing") from exc
        info = os.stat(target)
        if self._verified.holds(info, digest):
            return
        found = hash_file(target)
        if found == digest:
            self._verified.add(info, digest)
            return
        target.unlink()
        name = self._name(source) if source is not None else "a copy"
        problem = f"is damaged on disk ({name}): its content hashes to {found}"
        self._corrupt[name] = f"content hashes to {found}"
        raise BlobUnavailable(f"blob {digest} {problem}", digest=digest, problem=problem)

    def copy_verified(self, digest: str, target: Path) -> None:
        """A private copy of the blob at ``target`` (a new file), its bytes checked as ``link`` does."""
        source = self.path(digest)
        if not self._holds_good(source, digest):
            raise BlobUnavailable(
                f"blob {digest} is damaged on disk", digest=digest, problem="is damaged on disk"
            )
        shutil.copyfile(source, target)

    def holds_blob(self, path: str, digest: str) -> bool:
        """Whether the store holds the blob and ``path``, a file linked to it earlier (a shared tree's:
        fs_trees.py), still holds its bytes: checked as ``link`` checks, once per inode and process (a
        changed inode is read again)."""
        try:
            info = os.stat(path)
            held = os.stat(f"{self._root}/{digest[:2]}/{digest}")  # a manifest's digest: well formed
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(held.st_mode):
            return False
        if self._verified.holds(info, digest):
            return True
        if hash_file(Path(path)) != digest:
            return False
        self._verified.add(info, digest)
        return True

    def link_etag(self, digest: str, target: Path) -> None:
        """Hard-link ``target`` to the blob's ETag sidecar (or a spare of it), as ``link`` does; the sidecar
        is made if it is not there yet (a batch upload makes it with the blob)."""
        content = f'"{digest}"'.encode()
        sidecar = self._etags / digest
        try:
            self._link_shared(sidecar, target, lambda spare: write_new(self._tmp, spare, content))
        except FileNotFoundError:
            self.etag_path(digest)
            self._link_shared(sidecar, target, lambda spare: write_new(self._tmp, spare, content))

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
                self._spares.forget(self.root / digest[:2] / digest)
                self._spares.forget(self._etags / digest)
            for name in list(self._corrupt):  # a collected copy is no longer a damaged one
                if name.rpartition("/")[2].partition(".")[0] in doomed:
                    self._corrupt.pop(name, None)
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
        return os.path.isfile(self._file(digest))

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Blobs not held, and blobs held but known damaged: an upload of the right bytes replaces them."""
        seen: dict[str, None] = {}
        for digest in digests:
            if digest not in seen and (
                not self.has(digest) or (self._corrupt and f"{digest[:2]}/{digest}" in self._corrupt)
            ):
                seen[digest] = None
        return list(seen)

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        self.path(digest)  # a malformed digest is refused before it names a file
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
            os.chmod(tmp, BLOB_MODE)
            stamp = stamp_for(digest)
            os.utime(tmp, (stamp, stamp))
            stored = self._store(digest, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        if stored is None:
            return 0
        self.on_stored(digest, stored)
        return size

    def put_many(self, blobs: Sequence[tuple[str, bytes]], max_size: int) -> list[int]:
        """``put`` for several blobs given whole (a batch upload), every one checked before any is stored,
        with fewer system calls each, and each new blob's ETag sidecar made with it (every build links it).
        The bytes stored per blob (0: held already)."""
        for digest, data in blobs:
            self.path(digest)
            if len(data) > max_size:
                raise BlobTooLarge(f"blob {digest} is larger than the {max_size}-byte limit", digest=digest)
            found = hashlib.sha256(data).hexdigest()
            if found != digest:
                raise BlobRejected(f"blob {digest}: content does not match its digest: got sha256 {found}")
        sizes: list[int] = []
        for digest, data in blobs:
            tmp = self._tmp / f"{digest}.{secrets.token_hex(6)}"
            try:
                write_file(str(tmp), data, stamp_for(digest))
                stored = self._store(digest, tmp)
            finally:
                if tmp.exists():
                    tmp.unlink()
            if stored is not None:
                self.etag_path(digest)
                self.on_stored(digest, stored)
            sizes.append(0 if stored is None else len(data))
        return sizes

    def _store(self, digest: str, tmp: Path) -> bool | None:
        """Give ``tmp`` (checked bytes) the blob's name. None if a good blob is already there; False if none
        was; True if a damaged one was, which is then set aside in the quarantine and replaced atomically
        (the deployments linked to its inode still are: the caller's ``on_stored`` relinks them)."""
        final = self.path(digest)
        with self._replacing:
            held = final.exists()
            if held and self._holds_good(final, digest):
                return None
            if digest[:2] not in self._shards:
                final.parent.mkdir(exist_ok=True)
                self._shards.add(digest[:2])
            if held:
                with contextlib.suppress(FileNotFoundError):
                    self._quarantine.keep(
                        final, self._name(final), "replaced by an upload of the right bytes", False
                    )
            os.replace(tmp, final)
            self._verified.add(os.stat(final), digest)
            if self._corrupt:
                self._corrupt.pop(self._name(final), None)
            return held

    def _holds_good(self, path: Path, digest: str) -> bool:
        """Whether ``path``'s bytes hash to ``digest`` (the cache first, then a read); a bad one is noted."""
        info = os.stat(path)
        if self._verified.holds(info, digest) and self._name(path) not in self._corrupt:
            return True
        found = hash_file(path)
        if found == digest:
            self._verified.add(info, digest)
            return True
        self._verified.forget(info)
        self._corrupt[self._name(path)] = f"content hashes to {found}"
        return False

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def restamp(self) -> int:
        """Give every copy written before content stamps existed its stamp, once per data dir (fs_blob_files
        ``restamp``). Returns how many inodes were changed."""
        return restamp(self.root / _STAMPED_MARK, self._tmp, self.copies())

    # -- integrity: fsck and the scrub (the BlobChecker port) --------------------------------------
    def copies(self) -> Iterator[StoredCopy]:
        return scan_copies(self.root, self._etags)

    def check(self, copy: StoredCopy, pace: Pace | None = None) -> str | None:
        """None if the copy holds what its name says, else what is wrong. CopyGone if it is gone,
        BlobUnavailable if it cannot be read."""
        path = self.root / copy.name
        try:
            info = os.stat(path)
            if copy.kind is CopyKind.ETAG:
                data = path.read_bytes()
                if pace is not None:
                    pace(len(data))
                quoted = data == etag_content(copy.digest)
                wrong = None if quoted else f"holds {data[:80]!r}, not the quoted digest"
            else:
                found = hash_file(path, pace)
                wrong = None if found == copy.digest else f"content hashes to {found}"
        except FileNotFoundError as exc:
            raise CopyGone(f"{copy.name} is gone") from exc
        except OSError as exc:
            raise BlobUnavailable(f"cannot be read: {exc.strerror or exc}", digest=copy.digest) from exc
        if wrong is None:
            self._corrupt.pop(copy.name, None)
            if copy.kind is not CopyKind.ETAG:
                self._verified.add(info, copy.digest)
        else:
            self._corrupt[copy.name] = wrong
            self._verified.forget(info)
        return wrong

    def corrupt(self) -> dict[str, str]:
        """Copies found damaged (by a check, a link, an upload) and still in place: name -> what is wrong."""
        return dict(self._corrupt)

    def quarantine(self, copy: StoredCopy, note: str) -> str:
        """Move a copy to the quarantine (with ``note``); returns where it is now."""
        path = self.root / copy.name
        with contextlib.suppress(FileNotFoundError):
            self._verified.forget(os.stat(path))
        try:
            kept = self._quarantine.keep(path, copy.name, note)
        except FileNotFoundError as exc:
            raise CopyGone(f"{copy.name} is gone") from exc
        self._corrupt.pop(copy.name, None)
        self._spares.forget(
            self._etags / copy.digest if copy.kind is CopyKind.ETAG else self.path(copy.digest)
        )
        return str(kept)

    def restore(self, digest: str) -> bool:
        """Make the blob whole from a good spare if the blob itself is gone; whether it is held (and not
        known damaged) afterwards."""
        primary = self.path(digest)
        if not primary.exists():
            spares = sorted(primary.parent.glob(f"{digest}.*"), key=lambda p: p.name)
            for spare in spares:
                try:
                    self._copy_blob(digest, primary, spare)
                    break
                except BlobUnavailable:
                    continue
        return primary.exists() and self._name(primary) not in self._corrupt

    def _link_shared(self, primary: Path, target: Path, make_spare: Callable[[Path], None]) -> Path | None:
        """``target`` linked to ``primary`` or a spare of it, or a copy past MAX_SPARES (fs_blob_files)."""
        return self._spares.link(primary, target, make_spare)

    def _copy_blob(self, digest: str, destination: Path, source: Path | None = None) -> None:
        """Create ``destination`` (never replacing a file there) as a copy of the blob (or of ``source``, a
        spare of it), checking its digest on the way: a damaged blob is never copied into more places."""
        tmp = self._tmp / f"c.{secrets.token_hex(8)}"
        hasher = hashlib.sha256()
        origin = source or self.path(digest)
        try:
            with open(origin, "rb") as reader, open(tmp, "wb") as out:
                while chunk := reader.read(_COPY_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                self._corrupt[self._name(origin)] = f"content hashes to {hasher.hexdigest()}"
                problem = (
                    f"is damaged on disk ({self._name(origin)}): its content hashes to {hasher.hexdigest()}"
                )
                raise BlobUnavailable(f"blob {digest} {problem}", digest=digest, problem=problem)
            publish(tmp, destination, stamp_for(digest))
            self._verified.add(os.stat(destination), digest)
        finally:
            tmp.unlink(missing_ok=True)
