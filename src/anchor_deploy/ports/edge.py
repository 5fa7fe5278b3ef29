"""The edge: which deployment each hostname serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from anchor_deploy.model.entities import HostKind


class Edge(Protocol):
    def point(self, host: str, kind: HostKind, deployment_id: str) -> None:
        """Serve ``deployment_id`` at ``host`` from now on, switching atomically; idempotent."""
        ...

    def remove(self, host: str) -> None:
        """Stop serving ``host``; idempotent."""
        ...

    def current(self) -> Mapping[str, tuple[HostKind, str]]:
        """What the edge serves now: host -> (kind, deployment id). Used by the reconciler."""
        ...
