"""The deployment manifest: the list of files a client sends, validated before anything is stored."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from typing import Any

from anchor_deploy.model.errors import InvalidManifest

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
MAX_FILES = 100_000
# The edge keeps a content-hash sidecar beside every served file; user files may not use its suffix.
ETAG_SUFFIX = ".anchor-etag"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a control character (checked per path: one search)
_PERMISSION_BITS = 0o7777
_MAX_MODE = 0o177777


@dataclass(frozen=True, slots=True)
class ManifestFile:
    path: str
    sha256: str
    size: int
    mode: int = 0o644

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "mode": self.mode}


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def validate_path(path: object) -> str:
    """A relative POSIX path that cannot leave its directory and maps to one regular file."""
    if not isinstance(path, str) or not path:
        raise InvalidManifest("file path must be a non-empty string")
    shown = path[:80]
    if "\x00" in path:
        raise InvalidManifest(f"file path {shown!r} contains a NUL byte")
    if "\\" in path:
        raise InvalidManifest(f"file path {shown!r} contains a backslash; use '/' as the separator")
    if _CONTROL.search(path):
        raise InvalidManifest(f"file path {shown!r} contains a control character")
    if path.startswith("/"):
        raise InvalidManifest(f"file path {shown!r} is absolute; paths are relative to the deployment root")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidManifest(f"file path {shown!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidManifest(f"file path {shown!r}... is longer than {MAX_PATH_BYTES} bytes")
    for segment in path.split("/"):
        if segment == "":
            raise InvalidManifest(f"file path {shown!r} has an empty segment")
        if segment in (".", ".."):
            raise InvalidManifest(f"file path {shown!r} has a '{segment}' segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidManifest(f"file path {shown!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes")
        if segment.endswith(ETAG_SUFFIX):  # the edge hides every path component with this suffix
            raise InvalidManifest(f"file path {shown!r} uses the reserved suffix {ETAG_SUFFIX}")
    return path


def validate_mode(mode: object, path: str) -> int:
    if mode is None:
        return 0o644
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= _MAX_MODE:
        raise InvalidManifest(f"file {path!r}: mode must be an integer from 0 to {_MAX_MODE:o} (octal)")
    file_type = stat.S_IFMT(mode)
    if file_type and file_type != stat.S_IFREG:
        kind = {
            stat.S_IFLNK: "a symlink",
            stat.S_IFDIR: "a directory",
            stat.S_IFCHR: "a device",
            stat.S_IFBLK: "a device",
            stat.S_IFIFO: "a FIFO",
            stat.S_IFSOCK: "a socket",
        }.get(file_type, "not a regular file")
        raise InvalidManifest(f"file {path!r} is {kind}; only regular files can be deployed")
    if mode & ~(stat.S_IFREG | _PERMISSION_BITS):
        raise InvalidManifest(f"file {path!r}: mode {mode:o} has unknown bits")
    return mode & 0o777


def parse_manifest(raw: object, max_file_size: int) -> tuple[ManifestFile, ...]:
    """Validate a manifest's ``files`` list; raise InvalidManifest naming the first problem found."""
    if not isinstance(raw, list):
        raise InvalidManifest("files must be a list")
    if len(raw) > MAX_FILES:
        raise InvalidManifest(f"a deployment may hold at most {MAX_FILES} files")
    files: list[ManifestFile] = []
    seen: set[str] = set()
    for entry in raw:
        if not isinstance(entry, dict):
            raise InvalidManifest("every file must be an object {path, sha256, size, mode}")
        path = validate_path(entry.get("path"))
        digest = entry.get("sha256")
        if not is_sha256(digest):
            raise InvalidManifest(f"file {path!r}: sha256 must be 64 lowercase hex characters")
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"file {path!r}: size must be a non-negative integer")
        if size > max_file_size:
            raise InvalidManifest(f"file {path!r} is larger than the {max_file_size}-byte limit")
        mode = validate_mode(entry.get("mode"), path)
        if path in seen:
            raise InvalidManifest(f"file {path!r} is listed twice")
        seen.add(path)
        assert isinstance(digest, str)
        files.append(ManifestFile(path=path, sha256=digest, size=size, mode=mode))
    _refuse_file_directory_clashes(seen)
    return tuple(files)


def _refuse_file_directory_clashes(paths: set[str]) -> None:
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in paths:
                raise InvalidManifest(f"{parent!r} is both a file and the directory of {path!r}")
