"""The backup archive's format: an uncompressed POSIX tar whose first member is a manifest.

  anchor-backup.json            format and versions, when, counts, and every other member with its size,
                                sha256 and mode (written first, so a reader knows what must follow)
  anchor.db                     the database, a snapshot made with SQLite's online backup API
  blobs/ab/<sha256>             every blob the snapshot's deployments reference, and only those
  secrets.key, admin-token      the key sealing env vars and the admin token (when the data dir has one)
  ca/..., acme/...              the local CA's root (key and certificate) and the ACME account
  certificates/<name>.pem       issued certificates with their keys (the domain rows hold them too)

Everything else in a data dir is rebuilt by `anchor up`: deployments/ and edge/ by the reconciler, envs/
by the environment rebuild at start, run/ and logs/ anew. Blobs are not compressed again (most of what is
deployed is compressed already); a gzipped archive is read too.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath
from typing import Any

FORMAT = "anchor-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "anchor-backup.json"
MANIFEST_LIMIT = 256 * 1024 * 1024  # some 1.5 million members
DATABASE = "anchor.db"
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20
CHECK = "manifestSha256"

_BLOB = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{64})")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_KEY_FILES = ("secrets.key", "admin-token")
_KEY_FOLDERS = ("ca", "acme", "certificates")


class Kind(Enum):
    DATABASE = "db"
    BLOB = "blob"
    PRIVATE = "private"  # restored 0600: keys, tokens, accounts, certificates with their keys
    PUBLIC = "public"  # the CA's root certificates, readable as the platform leaves them


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str
    mode: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "mode": self.mode}


def kind_of(name: str) -> Kind | None:
    """What a member is, from its name alone; None for a name no backup of this format has (an absolute
    path, ``..``, or anything outside the layout above)."""
    if name == DATABASE:
        return Kind.DATABASE
    if name in _KEY_FILES:
        return Kind.PRIVATE
    match = _BLOB.fullmatch(name)
    if match:
        return Kind.BLOB if match.group(2).startswith(match.group(1)) else None
    parts = PurePosixPath(name).parts
    if len(parts) == 2 and parts[0] in _KEY_FOLDERS and _FILE_NAME.fullmatch(parts[1]):
        if name != "/".join(parts):
            return None
        return Kind.PUBLIC if parts[0] == "ca" and parts[1].endswith(".pem") else Kind.PRIVATE
    return None


def header(name: str, size: int, mode: int, mtime: int) -> bytes:
    """A tar header for a regular file (PAX, so a long certificate name fits)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode & 0o777
    info.mtime = mtime
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    """Zeros after a member's content, up to the next 512-byte block."""
    return b"\0" * (-size % BLOCK)


def trailer(written: int) -> bytes:
    """The end-of-archive marker (two zero blocks), then zeros up to a whole tar record."""
    end = written + 2 * BLOCK
    return b"\0" * (2 * BLOCK + (-end % RECORD))


def _canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as JSON, with the sha256 of its canonical form in ``manifestSha256``: the members are
    checked against the manifest, and the manifest against this."""
    check = hashlib.sha256(_canonical(manifest)).hexdigest()
    return json.dumps({**manifest, CHECK: check}, indent=1).encode()


def manifest_intact(manifest: dict[str, Any]) -> bool:
    """Whether the manifest is as it was written (it holds its own check, as encode_manifest made it)."""
    rest = {k: v for k, v in manifest.items() if k != CHECK}
    return manifest.get(CHECK) == hashlib.sha256(_canonical(rest)).hexdigest()
