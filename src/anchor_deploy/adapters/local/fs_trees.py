"""Served file trees, content-addressed and shared between deployments, like git's trees.

  trees/<id>/<name>                a file: a hard link to its blob (fs_blobs.py)
  trees/<id>/<name>.anchor-etag    its ETag sidecar: a hard link to the blob's sidecar
  trees/<id>/<dir>                 a subdirectory: a relative symlink to its own tree, ../<subtree id>

A tree's id is the sha256 of its sorted entries (each name with its blob's digest or its subtree's id), so
two deployments that serve the same folder share one tree, and a deployment whose files did not change is
one symlink (deployments/<id>/public -> ../../trees/<root id>). A changed file makes new trees only for the
folders on its path; every other folder is reused as it is.

A tree is built under a temporary name and renamed into place whole: a tree that exists is complete, and is
never changed afterwards except by an integrity repair (fs_deployments.relink), which swaps a file for the
same bytes. Trees no deployment reaches are collected (``collect``) once they are older than a grace period;
no collection runs while a deployment is being built (``sharing``), and a tree reused by a build is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.model.manifest import ETAG_SUFFIX

_FORMAT = b"anchor-tree-1\0"
TMP_PREFIX = ".tmp-"
_LOCK = ".lock"  # builds hold it shared, a collection exclusively (flock: across processes too)

# A folder of the served tree: file name -> blob digest, and folder name -> its own Folder.
Folder = dict[str, "str | Folder"]


def folder_of(files: Iterable[tuple[str, str]]) -> Folder:
    """The nested folders of (relative path, digest) pairs."""
    root: Folder = {}
    for relative, digest in files:
        *parents, name = relative.split("/")
        node = root
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # manifests refuse this (model/manifest.py)
                raise ValueError(f"{relative!r}: {part!r} is both a file and a folder")
            node = child
        node[name] = digest
    return root


class TreeStore:
    def __init__(self, root: Path, blobs: FsBlobStore) -> None:
        """Files are linked with ``blobs.link`` (checked, never a copy with the manifest's mode: every served
        file has the blob's mode, 0444) and ``blobs.link_etag``."""
        self.root = root
        self._blobs = blobs
        self._children: dict[str, list[str]] = {}  # tree id -> its subtree ids (trees never change)
        root.mkdir(parents=True, exist_ok=True)

    def path(self, tree_id: str) -> Path:
        return self.root / tree_id

    def build(self, folder: Folder) -> str:
        """The id of the tree serving ``folder``, built (with its subtrees) unless it exists (then its files
        are checked, and it is touched: fresh for the collection's grace period). Call it ``sharing``.
        BlobUnavailable from a link leaves no
        partial tree behind (trees finished before it stay, and are collected if nothing uses them)."""
        entries: list[tuple[str, str, str]] = []  # (name, kind, digest or tree id), sorted by name
        for name in sorted(folder):
            value = folder[name]
            if isinstance(value, dict):
                entries.append((name, "d", self.build(value)))
            else:
                entries.append((name, "f", value))
        tree_id = tree_id_of(entries)
        final = self.path(tree_id)
        if final.is_dir():
            with contextlib.suppress(FileNotFoundError):
                os.utime(final)
            self._check_files(final, entries)
            return tree_id
        work = self.root / f"{TMP_PREFIX}{tree_id[:16]}-{secrets.token_hex(4)}"
        try:
            work.mkdir()
            for name, kind, ref in entries:
                if kind == "d":
                    os.symlink(f"../{ref}", work / name)
                else:
                    self._blobs.link(ref, work / name)
                    self._blobs.link_etag(ref, work / (name + ETAG_SUFFIX))
            try:
                os.rename(work, final)
            except OSError:
                if not final.is_dir():
                    raise  # not "made meanwhile by another build": a real failure
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        return tree_id

    def _check_files(self, tree: Path, entries: list[tuple[str, str, str]]) -> None:
        """Check a reused tree's files as a new build checks its links: the store must hold each blob (a
        tree's link must not keep a deployment going on a blob the store lost: backups and fsck read the
        store), and each file its blob's bytes (hashed once per inode and process). A file that fails is
        swapped (one atomic rename) for a new link to the blob, which checks the blob in turn:
        BlobUnavailable, naming the blob, if it is missing or damaged."""
        for name, kind, digest in entries:
            if kind != "f" or self._blobs.holds_blob(f"{tree}/{name}", digest):
                continue
            tmp = self.root / f"{TMP_PREFIX}repair-{secrets.token_hex(6)}"
            try:
                self._blobs.link(digest, tmp)
                os.replace(tmp, tree / name)
            finally:
                tmp.unlink(missing_ok=True)

    def subtrees(self, tree_id: str) -> list[str]:
        """The ids of a tree's subtrees (read once: a tree never changes)."""
        known = self._children.get(tree_id)
        if known is None:
            known = _links_in(self.path(tree_id))
            if self.path(tree_id).is_dir():
                self._children[tree_id] = known
        return known

    @contextlib.contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        with open(self.root / _LOCK, "a") as lock:
            fcntl.flock(lock, how)
            yield  # closing the file releases the lock

    def sharing(self) -> contextlib.AbstractContextManager[None]:
        """Held while a deployment is built, from its first tree to its folder's rename into place (any
        number at once, in any process): no collection runs meanwhile."""
        return self._locked(fcntl.LOCK_SH)

    def collect(self, roots: Callable[[], Iterable[str]], older_than: float) -> int:
        """Remove every tree not reachable from ``roots()`` (read with no build running, in any process)
        nor from a tree changed since ``older_than``, and leftovers of builds that stopped. How many."""
        with self._locked(fcntl.LOCK_EX):
            return self._sweep(list(roots()), older_than)

    def _sweep(self, roots: list[str], older_than: float) -> int:
        names = [p.name for p in self.root.iterdir() if p.name != _LOCK]
        fresh = {n for n in names if self._changed_since(n, older_than)}
        reachable: set[str] = set()
        stack = [*roots, *fresh]
        while stack:
            tree_id = stack.pop()
            if tree_id in reachable:
                continue
            reachable.add(tree_id)
            building = tree_id.startswith(TMP_PREFIX)
            stack.extend(_links_in(self.path(tree_id)) if building else self.subtrees(tree_id))
        removed = 0
        for name in names:
            if name in reachable:  # the fresh ones were roots of the walk: reachable too
                continue
            remove(self.path(name))
            self._children.pop(name, None)
            removed += 1
        return removed

    def _changed_since(self, name: str, since: float) -> bool:
        try:
            return os.stat(self.path(name)).st_mtime >= since
        except FileNotFoundError:
            return False


def tree_id_of(entries: list[tuple[str, str, str]]) -> str:
    digest = hashlib.sha256(_FORMAT)
    for name, kind, ref in entries:
        digest.update(f"{kind} {ref} {name}\0".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _links_in(folder: Path) -> list[str]:
    """The tree ids a folder's symlinks name (none if it is gone, or a leftover file)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as entries:
        return [os.readlink(e.path).rpartition("/")[2] for e in entries if e.is_symlink()]
    return []


def remove(path: Path) -> None:
    """Remove a tree, or a leftover of a build or a repair (a folder or a file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
