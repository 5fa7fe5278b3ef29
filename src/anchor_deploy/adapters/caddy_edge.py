"""The Edge port on a real Caddy: one static route reads a per-host symlink tree.

  edge/a/<host> -> ../../deployments/<id>     production aliases (moved on deploy, promote, rollback)
  edge/d/<host> -> ../../deployments/<id>     immutable deployment URLs (never moved)

Switching a host is one ``rename`` of a fresh symlink over the old one: atomic, O(1), and Caddy's config
is never touched, so no keep-alive connection is dropped and the cost does not grow with the site count.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.model.names import is_valid_hostname

_KIND_DIR = {HostKind.ALIAS: "a", HostKind.DEPLOYMENT: "d"}


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
            raise EdgeError(f"could not switch {host}: {exc}") from exc

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
                        os.unlink(entry.path)
                        continue
                    try:
                        found[entry.name] = (kind, os.path.basename(os.readlink(entry.path)))
                    except OSError:
                        os.unlink(entry.path)  # not a symlink: nothing else belongs here
        return found
