"""Applying the database's word to the edge for one host, in order, without failing the caller."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from anchor_deploy.ports import Edge, Store

log = logging.getLogger(__name__)


class EdgeSync:
    """Reads a host's target from the store and points the edge at it, under one lock per host, so the
    last apply always installs the latest committed state. A failure wakes the reconciler instead of
    failing the request: the move is committed, and the reconciler converges the edge."""

    def __init__(self, store: Store, edge: Edge) -> None:
        self._store = store
        self._edge = edge
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.on_failure: Callable[[], None] = lambda: None

    def _lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def apply(self, host: str) -> bool:
        with self._lock(host):
            try:
                found = self._store.host_target(host)
                if found is None:
                    self._edge.remove(host)
                    return True
                route, deployment_id = found
                if deployment_id is None:
                    self._edge.remove(host)
                else:
                    self._edge.point(host, route.kind, deployment_id)
                return True
            except Exception:
                log.exception("could not apply %s to the edge; the reconciler will retry", host)
                self.on_failure()
                return False
