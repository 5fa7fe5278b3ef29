"""A fetched commit's checkout as a deployment: refused if it uses Git LFS or links its platform files
elsewhere, planned as ``anchor deploy`` plans a folder (source/plan.py), and put into the blob store.

The checkout was written by git in the sandbox; the platform reads it afterwards with its own rights, so
nothing here follows a link out of it: the planner takes regular files only and refuses a build output
outside the folder, and the two files it reads by name (anchor.toml, .anchorignore) must be regular files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchor_deploy.model.errors import BlobRejected, BlobTooLarge, BuildFailed, InvalidManifest
from anchor_deploy.model.manifest import ManifestFile, parse_manifest
from anchor_deploy.ports.blobs import BlobStore
from anchor_deploy.source.ignore import IGNORE_FILE
from anchor_deploy.source.plan import PlanError, file_mode, hash_file, plan_files

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
LFS_POINTER_MAX = 1024  # the spec's bound on a pointer file's size
_ATTRIBUTES = ".gitattributes"
_ATTRIBUTES_MAX = 1024 * 1024
_READ = 1024 * 1024
_LFS = "this commit uses Git LFS, which anchor-deploy does not fetch"


@dataclass(frozen=True)
class PlannedTree:
    files: tuple[ManifestFile, ...]
    app: dict[str, Any] | None
    skipped: tuple[str, ...]


def store_checkout(
    checkout: Path, blobs: BlobStore, max_file_size: int, log: Callable[[str], None]
) -> PlannedTree:
    """Plan the checkout, check it, and put every file's bytes into ``blobs``. BuildFailed otherwise."""
    _refuse_linked_settings(checkout)
    _refuse_lfs_attributes(checkout)
    try:
        plan = plan_files(checkout)
    except PlanError as exc:
        raise BuildFailed(str(exc).replace(f"{checkout}/", "").replace(str(checkout), ".")) from exc
    except UnicodeDecodeError as exc:  # the planner reads anchor.toml as UTF-8 text
        raise BuildFailed(f"anchor.toml in this commit is not UTF-8 text: {exc.reason}") from exc
    entries: list[ManifestFile] = []
    paths: dict[str, Path] = {}
    for rel, path in plan.files.items():
        size = os.lstat(path).st_size
        if size > max_file_size:
            raise BuildFailed(f"{rel} is {size} bytes, over the {max_file_size}-byte limit on one file")
        if size <= LFS_POINTER_MAX and _is_lfs_pointer(path):
            raise BuildFailed(f"{_LFS}: {rel} is an LFS pointer file")
        digest, size = hash_file(path)
        entries.append(ManifestFile(rel, digest, size, file_mode(path)))
        paths.setdefault(digest, path)
    if not entries:
        raise BuildFailed("nothing to deploy: the commit has no files to deploy")
    try:
        files = parse_manifest([e.to_dict() for e in entries], max_file_size)
    except InvalidManifest as exc:
        raise BuildFailed(exc.message) from exc
    _put_missing(blobs, paths, {e.sha256: e.path for e in entries}, max_file_size)
    count, skipped = len(files), len(plan.skipped)
    log(
        f"{count} file{'' if count == 1 else 's'}, {sum(f.size for f in files)} bytes "
        f"({skipped} path{'' if skipped == 1 else 's'} skipped)"
    )
    return PlannedTree(files, plan.app, tuple(s.path for s in plan.skipped))


def _put_missing(blobs: BlobStore, paths: dict[str, Path], names: dict[str, str], max_size: int) -> None:
    for digest in blobs.missing(list(paths)):
        try:
            blobs.put(digest, _chunks(paths[digest]), max_size)
        except BlobTooLarge as exc:
            raise BuildFailed(f"{names[digest]} is over the {max_size}-byte limit on one file") from exc
        except BlobRejected as exc:
            raise BuildFailed(f"{names[digest]} changed while it was stored; fetch again") from exc


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(_READ):
            yield chunk


def _refuse_linked_settings(checkout: Path) -> None:
    for name in ("anchor.toml", IGNORE_FILE):
        try:
            mode = os.lstat(checkout / name).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            raise BuildFailed(f"{name} in this commit is not a regular file (a link?); it must be one")


def _refuse_lfs_attributes(checkout: Path) -> None:
    """Any .gitattributes of the checkout (submodules' too) that sends paths through the LFS filter."""
    for folder, dirs, names in os.walk(checkout):
        dirs[:] = [d for d in dirs if d != ".git" and not os.path.islink(os.path.join(folder, d))]
        if _ATTRIBUTES not in names:
            continue
        path = Path(folder) / _ATTRIBUTES
        if not stat.S_ISREG(os.lstat(path).st_mode):
            continue
        with open(path, "rb") as source:
            text = source.read(_ATTRIBUTES_MAX).decode("utf-8", "replace")
        for line in text.splitlines():
            words = line.split()
            if words and not words[0].startswith("#") and "filter=lfs" in words[1:]:
                rel = path.relative_to(checkout).as_posix()
                raise BuildFailed(f"{_LFS}: {rel} sends {words[0]} through the LFS filter")


def _is_lfs_pointer(path: Path) -> bool:
    with open(path, "rb") as source:
        return source.read(len(LFS_POINTER)) == LFS_POINTER
