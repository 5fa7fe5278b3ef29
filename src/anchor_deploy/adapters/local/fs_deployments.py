"""Deployments materialized from the blob store: immutable directories of hard links to blobs.

  deployments/<id>/public      a relative symlink to the served files' tree, ../../trees/<tree id>: hard
                               links to blobs (regular files only), each with its .anchor-etag, shared with
                               every deployment serving the same folder (fs_trees.py). A deployment made
                               before trees existed has a real directory here: both are read alike.
  deployments/<id>/app/...     an app's private copy of its files (the worker's working directory)
  deployments/<id>/deployment.json   written last: the edge serves a deployment only once it exists

A directory is built under a temporary name and renamed into place whole, so the edge never sees half of
one; a file of a built one is only ever swapped by an atomic rename (``relink``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_trees import TMP_PREFIX, TreeStore, folder_of
from anchor_deploy.adapters.local.fs_trees import remove as remove_tree
from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BlobUnavailable
from anchor_deploy.model.manifest import ETAG_SUFFIX, ManifestFile

MARKER = "deployment.json"


class FsDeploymentFiles:
    def __init__(self, root: Path, blobs: FsBlobStore) -> None:
        self.root = root
        self._blobs = blobs
        root.mkdir(parents=True, exist_ok=True)
        self._trees = TreeStore(root.parent / "trees", blobs)

    def directory(self, deployment_id: str) -> Path:
        return self.root / deployment_id

    def exists(self, deployment_id: str) -> bool:
        return (self.directory(deployment_id) / MARKER).is_file()

    def app_dir(self, deployment_id: str) -> Path:
        return self.directory(deployment_id) / "app"

    def app_files(self, deployment_id: str) -> str:
        """The app's working directory, as a reference the local runtime turns back into a path."""
        return str(self.app_dir(deployment_id))

    def materialize(
        self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None = None
    ) -> None:
        if self.exists(deployment_id):
            return
        with self._trees.sharing():  # no tree is collected until this one's folder is in place
            self._materialize(deployment_id, files, app)

    def _materialize(self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None) -> None:
        final = self.directory(deployment_id)
        work = self.root / f".tmp-{deployment_id}-{secrets.token_hex(4)}"
        try:
            work.mkdir()
            tree_id = self._build_tree(files, app)
            os.symlink(os.path.relpath(self._trees.path(tree_id), final), work / "public")
            if app is not None:
                for entry in files:  # a private copy: an app writing its files cannot change a shared blob
                    target = self._place(work / "app", entry.path)
                    with _naming(entry):
                        self._blobs.copy_verified(entry.sha256, target)
                    os.chmod(target, 0o755 if entry.mode & 0o111 else 0o644)
                (work / "worker").mkdir()  # marks an app deployment for the edge
            summary = {"id": deployment_id, "files": len(files), "app": app is not None}
            (work / deployment_id).touch()  # the edge learns the id from this name (caddy_config)
            (work / MARKER).write_text(json.dumps(summary))
            if self.exists(deployment_id):
                return  # made meanwhile by another control-plane process: served as it is
            if final.exists():  # a half-made directory from a crash: replace it
                shutil.rmtree(final)
            os.rename(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _build_tree(self, files: Sequence[ManifestFile], app: AppConfig | None) -> str:
        served = list(_served(files, app))
        try:
            return self._trees.build(folder_of((relative, entry.sha256) for relative, entry in served))
        except BlobUnavailable as exc:
            entry = next((e for _r, e in served if e.sha256 == exc.extra.get("digest")), None)
            if entry is None:
                raise
            with _naming(entry):
                raise

    def collect(self, older_than: float) -> int:
        """Remove the trees no deployment here serves (nor a build in progress) unchanged since
        ``older_than``; how many."""
        return self._trees.collect(self._tree_roots, older_than)

    def _tree_roots(self) -> Iterator[str]:
        """The root tree of every deployment folder here (built, or being built: .tmp-*)."""
        for folder in self.root.iterdir():
            public = folder / "public"
            if public.is_symlink():
                yield os.readlink(public).rpartition("/")[2]

    @staticmethod
    def _place(root: Path, relative: str) -> Path:
        target = root.joinpath(*relative.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def relink(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        digests: set[str],
        app: AppConfig | None = None,
    ) -> int:
        """In a built deployment, point each served file whose blob is in ``digests`` (and its ETag sidecar)
        at the store's current, checked inode: one atomic rename per file, so a request gets the old file or
        the new one, never none. Returns how many files; BlobUnavailable if such a blob is not usable."""
        if not self.exists(deployment_id):
            return 0
        folder = self.directory(deployment_id)
        count = 0
        for relative, entry in _served(files, app):
            if entry.sha256 not in digests:
                continue
            target = self._place(folder / "public", relative)
            sidecar = target.with_name(target.name + ETAG_SUFFIX)
            for make, final in ((self._blobs.link, target), (self._blobs.link_etag, sidecar)):
                tmp = folder / f".relink-{secrets.token_hex(6)}"
                try:
                    with _naming(entry):
                        make(entry.sha256, tmp)
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
            count += 1
        return count

    def remove(self, deployment_id: str) -> None:
        shutil.rmtree(self.directory(deployment_id), ignore_errors=True)

    def present(self) -> list[str]:
        """Deployment ids that have a directory (complete or not)."""
        return [p.name for p in self.root.iterdir() if p.name.startswith("dpl_")]

    def sweep_temporaries(self) -> None:
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self._trees.root.glob(f"{TMP_PREFIX}*"):
            remove_tree(leftover)


def _served(files: Sequence[ManifestFile], app: AppConfig | None) -> Iterator[tuple[str, ManifestFile]]:
    """The files the edge serves and their paths under public/: all of a site's, an app's static ones."""
    prefix = f"{app.static_dir}/" if app and app.static_dir else None
    for entry in files:
        if app is None:
            yield entry.path, entry
        elif prefix and entry.path.startswith(prefix):
            yield entry.path.removeprefix(prefix), entry


@contextlib.contextmanager
def _naming(entry: ManifestFile) -> Iterator[None]:
    """A blob that cannot be used, named with the file that needs it: "blob <digest> of a.html is missing"."""
    try:
        yield
    except BlobUnavailable as exc:
        problem = exc.extra.get("problem") or "is not usable"
        raise BlobUnavailable(
            f"blob {entry.sha256} of {entry.path} {problem}", digest=entry.sha256, problem=problem
        ) from exc
