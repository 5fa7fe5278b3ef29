"""Applying the database's word to the edge for one host, in order, without failing the caller.

The rule every Edge adapter and this service keep, so that the last apply installs the latest committed state
even when several control-plane processes apply the same host at once:

- an edge whose data plane has its own version or compare-and-set token (the AWS provider's Lambda alias and
  its RevisionId) takes the token first, then reads the target from the database, then writes with the token:
  a writer that read the database before another one's move finds the token changed and starts over;
- an edge without one (the local provider's symlinks: renaming a link over another is last-writer-wins) is
  applied by this service as read, write, read again: if the database changed meanwhile, the write may have
  been stale, so it is written again. The last write is then always followed by a read that saw what it
  wrote, and every later commit is followed by its own apply, so no stale write can land last.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from anchor_deploy.model.entities import HostKind
from anchor_deploy.ports import Edge
from anchor_deploy.ports.store import HostRepository

log = logging.getLogger(__name__)
_APPLY_ROUNDS = 5  # writes of one apply before it gives up and leaves the host to the reconciler


class EdgeSync:
    """Reads a host's target from the store and points the edge at it (module docstring: read, write, read
    again). The per-host lock only saves needless writes between this process's threads; correctness across
    processes does not depend on it. A failure wakes the reconciler instead of failing the request: the move
    is committed, and the reconciler converges the edge."""

    def __init__(self, store: HostRepository, edge: Edge) -> None:
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
                wanted = self._wanted(host)
                for _round in range(_APPLY_ROUNDS):
                    self._write(host, wanted)
                    now = self._wanted(host)
                    if now == wanted:
                        return True
                    wanted = now  # moved while this was written: what was written may be stale
                log.warning("%s kept moving while it was applied; the reconciler will finish it", host)
                self.on_failure()
                return False
            except Exception:
                log.exception("could not apply %s to the edge; the reconciler will retry", host)
                self.on_failure()
                return False

    def _wanted(self, host: str) -> tuple[HostKind, str] | None:
        """What the host should serve now: (kind, deployment id), or None (nothing)."""
        found = self._store.host_target(host)
        if found is None or found[1] is None:
            return None
        return found[0].kind, found[1]

    def _write(self, host: str, wanted: tuple[HostKind, str] | None) -> None:
        if wanted is None:
            self._edge.remove(host)
        else:
            self._edge.point(host, wanted[0], wanted[1])
