"""The client's hash cache, like git's index: (path, size, mtime, inode, ctime) -> sha256 per deployed folder,
so an unchanged redeploy stats its files instead of reading them.

One JSON file per folder under the user's cache dir ($XDG_CACHE_HOME/anchor-deploy/hashes/), named by the
folder's resolved path, written atomically; never inside the user's project. A cache that cannot be read or
parsed is ignored (everything is hashed again), never an error; one that cannot be written is left alone.

"Racy" entries (git's term): a file changed again within the filesystem's timestamp granularity after it was
hashed can keep its size and mtime. So an entry counts only if the file's mtime and ctime are older, by
RACY_MARGIN_NS, than the moment its hashing began; a newer one is hashed again on every deploy until it is old
enough to be trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1
# Wider than any local filesystem's timestamp step (ext4, xfs, btrfs, tmpfs: a clock tick of a few ms;
# FAT: 2 s is not a target: a folder there is simply hashed again while it is fresh).
RACY_MARGIN_NS = 1_000_000_000

Key = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


def key_of(info: os.stat_result) -> Key:
    return (info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


@dataclass
class CachedEntry:
    key: Key
    digest: str


class HashCache:
    """The entries of one folder. ``lookup`` answers a digest only for an entry that is trusted; ``remember``
    records what was just hashed; ``save`` writes the entries of this deploy's files (and only those)."""

    def __init__(self, file: Path, now_ns: int | None = None) -> None:
        self.file = file
        self.started_ns = time.time_ns() if now_ns is None else now_ns  # before any file is read
        self._old: dict[str, CachedEntry] = {}
        self._new: dict[str, CachedEntry] = {}
        self._trusted_before = 0  # an entry counts only if its file was last changed before this
        self.hits = 0
        self._changed = False  # an entry was learned: the cache must be written
        self._load()

    @classmethod
    def for_folder(cls, cache_dir: Path, folder: Path, now_ns: int | None = None) -> HashCache:
        name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]
        return cls(cache_dir / "anchor-deploy" / "hashes" / f"{name}.json", now_ns)

    def _load(self) -> None:
        try:
            data = json.loads(self.file.read_bytes())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                return
            hashed_at = data["hashedAt"]
            entries = data["entries"]
            if not isinstance(hashed_at, int) or not isinstance(entries, dict):
                return
            for rel, row in entries.items():
                size, mtime, inode, ctime, digest = row
                if all(isinstance(x, int) for x in (size, mtime, inode, ctime)) and isinstance(digest, str):
                    self._old[rel] = CachedEntry((size, mtime, inode, ctime), digest)
        except (OSError, ValueError, KeyError, TypeError):
            self._old.clear()  # unreadable or damaged: hash everything again
            return
        self._trusted_before = hashed_at - RACY_MARGIN_NS

    def lookup(self, rel: str, info: os.stat_result) -> str | None:
        """The digest of ``rel`` if the cache holds it for exactly this file state and the state is old
        enough to be trusted (see the module's note on racy entries); else None: hash the file."""
        entry = self._old.get(rel)
        key = key_of(info)
        if entry is None or entry.key != key or max(key[1], key[3]) >= self._trusted_before:
            return None
        self.hits += 1
        self._new[rel] = entry
        return entry.digest

    def remember(self, rel: str, info: os.stat_result, digest: str) -> None:
        """Record a digest read from the file whose state before the read was ``info``."""
        self._new[rel] = CachedEntry(key_of(info), digest)
        self._changed = True

    def save(self) -> None:
        """Write this deploy's entries (atomically; a failure to write is ignored: the next deploy hashes).
        Nothing to write when every file was a hit and none went away: the file holds these entries."""
        if not self._changed and self._new.keys() == self._old.keys():
            return
        data = {
            "format": FORMAT,
            "hashedAt": self.started_ns,
            "entries": {rel: [*e.key, e.digest] for rel, e in self._new.items()},
        }
        tmp = self.file.with_name(f".{self.file.name}.{secrets.token_hex(4)}")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(tmp, self.file)
        except OSError:
            tmp.unlink(missing_ok=True)
