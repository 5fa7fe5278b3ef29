"""The files of the blob store (fs_blobs.py): the mode and content stamp every blob inode carries, how a new
one is written, and spares, more inodes with the same bytes once one has as many hard links as the
filesystem allows (65,000 on ext4).

Every write goes to a temporary file first and takes its final name with ``os.link``, which creates the name
with the full content or fails if it exists (someone else made it first: theirs is as good): a reader never
sees a half-written file and nothing is ever overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from anchor_deploy.model.integrity import CopyKind, StoredCopy

# A blob's mtime is a stamp of its content, never a date: 31 bits of its sha256 as seconds (1970-2038, which
# every Linux filesystem stores exactly, ext4 with small inodes included). Hard links share it across
# deployments, so a date would say nothing anyway. nginx builds its ETag from mtime and size: with the stamp,
# two files of equal size get equal ETags only if their digests share those 31 bits (1 in 2^31). Both
# edges ignore the date validators (If-Modified-Since, If-Unmodified-Since) on static files, since a stamp is
# not a date. Blobs written before stamps existed carry the epoch: ``FsBlobStore.restamp`` gives them theirs.
EPOCH_MTIME = 0
_STAMP_MASK = (1 << 31) - 1
BLOB_MODE = 0o444
# How many spares one blob (or sidecar) may get before each further file becomes a plain copy: with ext4's
# 65,000 links per inode that is some 66 million files of one content.
MAX_SPARES = 1024

Link = Callable[[Path, Path], None]


def stamp_for(digest: str) -> int:
    """The mtime (seconds) every inode of the blob ``digest`` carries: a content-derived stamp, not a date."""
    return int(digest[:8], 16) & _STAMP_MASK


def restamp(mark: Path, tmp_dir: Path, copies: Iterable[StoredCopy]) -> int:
    """Give every blob and spare among ``copies`` written before content stamps existed its stamp, once per
    data dir (the ``mark`` file records it). Deployments link the same inodes, so they follow. Returns how
    many inodes were changed. A copy whose mtime is neither the epoch nor its stamp was written into: left
    for the integrity check to find, not hidden by a new mtime."""
    if mark.exists():
        return 0
    changed = 0
    for copy in copies:
        if copy.kind is CopyKind.ETAG:
            continue
        path = mark.parent / copy.name
        stamp = stamp_for(copy.digest)
        with contextlib.suppress(FileNotFoundError):
            if int(os.stat(path).st_mtime) == EPOCH_MTIME and stamp != EPOCH_MTIME:
                os.utime(path, (stamp, stamp))
                changed += 1
    write_new(tmp_dir, mark, b"blob mtimes are content stamps (fs_blobs.stamp_for)\n")
    return changed


def hard_link(source: Path, target: Path) -> None:
    os.link(source, target)


def write_file(path: str, data: bytes, stamp: int) -> None:
    """A new file at ``path`` holding ``data`` with every blob inode's mode and mtime (``stamp``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BLOB_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, BLOB_MODE)  # whatever the umask
        os.utime(fd, (stamp, stamp))
    finally:
        os.close(fd)


def write_new(tmp_dir: Path, destination: Path, data: bytes) -> None:
    """Create ``destination`` holding ``data`` (a sidecar: the epoch as mtime), or leave the one there."""
    tmp = f"{tmp_dir}/w.{secrets.token_hex(8)}"
    try:
        write_file(tmp, data, EPOCH_MTIME)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def publish(tmp: Path, destination: Path, stamp: int) -> None:
    """Give a finished temporary file the blob's mode and mtime, then its name (kept if it exists)."""
    os.chmod(tmp, BLOB_MODE)
    os.utime(tmp, (stamp, stamp))
    with contextlib.suppress(FileExistsError):
        os.link(tmp, destination)


class SpareLinks:
    """Hard links to a file or to its spares (``<name>.1``, ``.2`` ...). ``link`` makes one link (``os.link``;
    a test may pass one that hits a lower limit); copies past MAX_SPARES are made in ``tmp_dir``."""

    def __init__(self, link: Link, tmp_dir: Path) -> None:
        self._link = link
        self._tmp = tmp_dir
        # The spare that last took a link, per blob or sidecar path: later links start there instead of
        # failing once on every full inode before it. Only a hint; a stale one is noticed and dropped.
        self._hint: dict[Path, int] = {}

    def forget(self, primary: Path) -> None:
        """Drop the hint for ``primary`` (collected or set aside)."""
        self._hint.pop(primary, None)

    def link(self, primary: Path, target: Path, make_spare: Callable[[Path], None]) -> Path | None:
        """Link ``target`` to ``primary`` or its first spare with room for one more link, making that spare
        with ``make_spare`` when it does not exist yet; past MAX_SPARES, ``target`` becomes a copy made the
        same way. Returns the path linked to (None for a copy)."""
        hint = number = self._hint.get(primary, 0)
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
                self._hint[primary] = number
            return source
        self._copy(target, make_spare)
        return None

    def _copy(self, target: Path, make_spare: Callable[[Path], None]) -> None:
        copy = self._tmp / f"copy.{secrets.token_hex(8)}"
        try:
            make_spare(copy)
            os.link(copy, target)  # a fresh inode: fails only if target exists, as a link would
        finally:
            copy.unlink(missing_ok=True)
