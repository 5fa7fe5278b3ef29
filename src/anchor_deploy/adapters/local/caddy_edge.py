"""The Edge port on a real Caddy: one static route reads a per-host symlink tree.

  edge/a/<host> -> ../../deployments/<id>     production aliases (moved on deploy, promote, rollback)
  edge/d/<host> -> ../../deployments/<id>     immutable deployment URLs (never moved)

Switching a host is one ``rename`` of a fresh symlink over the old one: atomic, O(1), and Caddy's config
is never touched, so no keep-alive connection is dropped and the cost does not grow with the site count.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.model.names import is_valid_hostname

_KIND_DIR = {HostKind.ALIAS: "a", HostKind.DEPLOYMENT: "d"}
_TMP_STALE = 60.0  # seconds after which a temporary link is a crash's leftover


def _swap_link(link: Path, target: str, failure: str) -> None:
    """Point ``link`` at ``target`` by renaming a fresh symlink over it: atomic; a no-op if it already is."""
    try:
        if os.readlink(link) == target:
            return
    except OSError:
        pass
    tmp = link.parent / f".tmp-{secrets.token_hex(6)}"
    try:
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EdgeError(f"{failure}: {exc}") from exc


class SymlinkEdge:
    def __init__(self, edge_root: Path, deployments_root: Path) -> None:
        self.root = edge_root
        self._deployments = deployments_root
        for sub in _KIND_DIR.values():
            (edge_root / sub).mkdir(parents=True, exist_ok=True)

    def kind_root(self, kind: HostKind) -> Path:
        return self.root / _KIND_DIR[kind]

    def _link(self, host: str, kind: HostKind) -> Path:
        if not is_valid_hostname(host):
            raise EdgeError(f"refusing to route invalid hostname {host[:80]!r}")
        return self.kind_root(kind) / host

    def point(self, host: str, kind: HostKind, deployment_id: str) -> None:
        link = self._link(host, kind)
        target = os.path.relpath(self._deployments / deployment_id, link.parent)
        for other in HostKind:  # a host serves one thing: drop a stale link of the other kind first
            if other != kind:
                try:
                    self._link(host, other).unlink(missing_ok=True)
                except OSError as exc:
                    raise EdgeError(f"could not switch {host}: {exc}") from exc
        _swap_link(link, target, f"could not switch {host}")

    def remove(self, host: str) -> None:
        for kind in HostKind:
            try:
                self._link(host, kind).unlink(missing_ok=True)
            except OSError as exc:
                raise EdgeError(f"could not remove {host}: {exc}") from exc

    def current(self) -> Mapping[str, tuple[HostKind, str]]:
        found: dict[str, tuple[HostKind, str]] = {}
        for kind in HostKind:
            with os.scandir(self.kind_root(kind)) as entries:
                for entry in entries:
                    if entry.name.startswith(".tmp-"):
                        # A crash's leftover; a fresh one may be another control-plane process's switch
                        # between its symlink and its rename: left alone.
                        with contextlib.suppress(FileNotFoundError):
                            if time.time() - entry.stat(follow_symlinks=False).st_mtime > _TMP_STALE:
                                os.unlink(entry.path)
                        continue
                    try:
                        found[entry.name] = (kind, os.path.basename(os.readlink(entry.path)))
                    except OSError:
                        os.unlink(entry.path)  # not a symlink: nothing else belongs here
        return found


_WILDCARD_LINK = "_."  # "*.example.com" is linked as "_.example.com": '*' would be a glob in Caddy's lookup


class SymlinkDomainEdge:
    """Custom domains: edge/c/<name> -> ../a/<production host>. A rollback moves the production host's
    link only, and every custom domain of the project follows it in the same rename."""

    def __init__(self, custom_root: Path, alias_root: Path) -> None:
        self.root = custom_root
        self._alias_root = alias_root
        custom_root.mkdir(parents=True, exist_ok=True)

    def _link(self, name: str) -> Path:
        bare = name.removeprefix("*.")
        if not is_valid_hostname(bare):
            raise EdgeError(f"refusing to route invalid domain {name[:80]!r}")
        return self.root / ((_WILDCARD_LINK + bare) if name.startswith("*.") else bare)

    def attach(self, name: str, production_host: str) -> None:
        link = self._link(name)
        if not is_valid_hostname(production_host):
            raise EdgeError(f"refusing to route to invalid host {production_host[:80]!r}")
        target = os.path.relpath(self._alias_root / production_host, link.parent)
        _swap_link(link, target, f"could not attach {name}")

    def detach(self, name: str) -> None:
        try:
            self._link(name).unlink(missing_ok=True)
        except OSError as exc:
            raise EdgeError(f"could not detach {name}: {exc}") from exc

    def attached(self) -> Mapping[str, str]:
        found: dict[str, str] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".tmp-"):
                    os.unlink(entry.path)
                    continue
                name = "*." + entry.name[2:] if entry.name.startswith(_WILDCARD_LINK) else entry.name
                try:
                    found[name] = os.path.basename(os.readlink(entry.path))
                except OSError:
                    os.unlink(entry.path)
        return found
