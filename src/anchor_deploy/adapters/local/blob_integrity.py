"""What FsBlobStore uses to know its bytes are right: hashing, a cache of verified inodes, the list of its
copies, and the quarantine where damaged ones are set aside (never deleted).

The cache is keyed by inode and remembers (device, size, mtime in ns, digest): a blob is hashed once per
process, and a write into it (which moves its mtime off the content stamp every blob carries) makes it
hashed again.
The ctime is no use here: every hard link made to a blob moves it. Damage that changes no metadata (bit rot,
a tool that restores the mtime) is what `anchor fsck` and the background scrub are for.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from anchor_deploy.model.integrity import CopyKind, StoredCopy
from anchor_deploy.model.manifest import is_sha256

CHUNK = 1 << 20
# Past this many entries the cache starts over (some 300 bytes each): blobs are then hashed once more.
MAX_VERIFIED = 500_000

Pace = Callable[[int], None]


def hash_file(path: Path, pace: Pace | None = None) -> str:
    """The sha256 of a file, read in 1 MiB chunks; ``pace`` is told each chunk's size (a rate limit)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            if pace is not None:
                pace(len(chunk))
    return hasher.hexdigest()


def etag_content(digest: str) -> bytes:
    return f'"{digest}"'.encode()


class VerifiedInodes:
    """Inodes whose content was hashed (or written) in this process and matched their digest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, tuple[int, int, int, str]] = {}

    @staticmethod
    def _facts(info: os.stat_result, digest: str) -> tuple[int, int, int, str]:
        return info.st_dev, info.st_size, info.st_mtime_ns, digest

    def holds(self, info: os.stat_result, digest: str) -> bool:
        with self._lock:
            return self._seen.get(info.st_ino) == self._facts(info, digest)

    def add(self, info: os.stat_result, digest: str) -> None:
        with self._lock:
            if len(self._seen) >= MAX_VERIFIED:
                self._seen.clear()
            self._seen[info.st_ino] = self._facts(info, digest)

    def forget(self, info: os.stat_result) -> None:
        with self._lock:
            self._seen.pop(info.st_ino, None)


def scan_copies(root: Path, etags: Path) -> Iterator[StoredCopy]:
    """Every blob, spare and ETag sidecar under ``root``, shard by shard, in name order."""
    for shard in sorted(os.listdir(root)):
        folder = root / shard
        if len(shard) == 2 and folder.is_dir():
            yield from _copies_in(folder, shard, blob_kind=True)
    yield from _copies_in(etags, etags.name, blob_kind=False)


def _copies_in(folder: Path, prefix: str, blob_kind: bool) -> Iterator[StoredCopy]:
    with os.scandir(folder) as entries:
        found = sorted((entry.name, entry) for entry in entries)
    for name, entry in found:
        digest, _, number = name.partition(".")
        if not is_sha256(digest) or (number and not number.isdigit()):
            continue  # not a copy (a temporary name of another tool): nothing to check
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue  # collected meanwhile
        kind = CopyKind.ETAG if not blob_kind else CopyKind.SPARE if number else CopyKind.BLOB
        yield StoredCopy(digest, f"{prefix}/{name}", kind, size)


class Quarantine:
    """A folder of damaged copies, each beside a ``.note`` saying what it was, what was wrong and when."""

    def __init__(self, root: Path, link: Callable[[Path, Path], None] = os.link) -> None:
        self.root = root
        self._link = link

    def keep(self, source: Path, name: str, note: str, move: bool = True) -> Path:
        """Move (or, with ``move=False``, hard-link) ``source`` here; returns where it went."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.root / f"{stamp}-{name.replace('/', '-')}-{secrets.token_hex(3)}"
        tmp = self.root / f".note-{secrets.token_hex(6)}"
        tmp.write_text(f"{note}\nwas: {name}\nset aside: {stamp}\n")
        try:
            if move:
                os.rename(source, target)
            else:
                try:
                    self._link(source, target)
                except OSError as exc:
                    if exc.errno != errno.EMLINK:
                        raise
                    shutil.copyfile(source, target)  # an inode with as many links as the filesystem allows
            os.replace(tmp, target.with_name(target.name + ".note"))
        finally:
            tmp.unlink(missing_ok=True)
        return target
