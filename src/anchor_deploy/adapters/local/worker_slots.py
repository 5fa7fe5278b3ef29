"""Fixed upstream slots for running app workers, so the nginx edge keeps connections to them alive.

nginx keeps upstream connections alive only for ``upstream {}`` blocks, and its config is never reloaded.
So nginx.conf names a fixed pool of ``SLOT_COUNT`` blocks, ``anchor_slot_<K>`` dialing
``<sockets>/slot/<K>/sock``, and each running worker is lent one slot:

    slot/<K>/sock          -> ../../worker/<id>.sock     (made first)
    worker/<id>.slot       -> ../slot/<K>                (then this: nginx follows it per request)

each link made by an atomic rename. When the worker has fully exited, ``worker/<id>.slot`` goes first (nginx
falls back to a connection per request), and the slot is free again, but only after ``QUARANTINE`` seconds,
longer than nginx keeps an idle upstream connection (``KEEPALIVE_TIMEOUT``), least recently released first:
a connection pooled to one version can never carry a request for another. The slot's ``sock`` link is left
dangling until then (a stray request dialing it is refused, and the edge asks the activator). With every
slot lent, a worker gets none and nginx dials its socket per request, as without slots: slower, correct.

Workers die with the platform, so a new runtime starts from no slots at all (the folder is swept).
"""

from __future__ import annotations

import collections
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

SLOT_COUNT = 256
# nginx's idle upstream connections close before uvicorn's (its timeout_keep_alive is 5 s): nginx never
# sends a request on a connection the worker is closing at that moment.
KEEPALIVE_TIMEOUT = 4
QUARANTINE = 60.0  # well past KEEPALIVE_TIMEOUT
_NEVER = float("-inf")


def slot_socket(sock_dir: Path, slot: int | str) -> Path:
    """Where nginx's upstream ``anchor_slot_<slot>`` dials (``slot`` may be an nginx variable)."""
    return sock_dir / "slot" / str(slot) / "sock"


class WorkerSlots:
    """Lends each running worker one of ``count`` slots; thread-safe."""

    def __init__(
        self,
        sock_dir: Path,
        count: int = SLOT_COUNT,
        quarantine: float = QUARANTINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots_dir = sock_dir / "slot"
        self._workers_dir = sock_dir / "worker"
        self._quarantine = quarantine
        self._clock = clock
        self._lock = threading.Lock()
        # Free slots in the order they were released (the oldest first), each with when it was released.
        self._free: collections.deque[tuple[float, int]] = collections.deque(
            (_NEVER, k) for k in range(count)
        )
        self._lent: dict[str, int] = {}
        shutil.rmtree(self._slots_dir, ignore_errors=True)  # slots of a previous process's workers
        self._slots_dir.mkdir(parents=True, exist_ok=True)
        self._workers_dir.mkdir(parents=True, exist_ok=True)

    def link(self, deployment_id: str) -> Path:
        """``worker/<id>.slot``: the link nginx follows to the worker's slot."""
        return self._workers_dir / f"{deployment_id}.slot"

    def slot_of(self, deployment_id: str) -> int | None:
        with self._lock:
            return self._lent.get(deployment_id)

    def take(self, deployment_id: str) -> int | None:
        """Lend the worker a slot (the one it has, if it has one: a restart keeps it); None if none is free
        out of quarantine."""
        with self._lock:
            slot = self._lent.get(deployment_id)
            if slot is None:
                if not self._free or self._free[0][0] + self._quarantine > self._clock():
                    return None
                slot = self._free.popleft()[1]
                self._lent[deployment_id] = slot
            self._make_links(deployment_id, slot)
            return slot

    def release(self, deployment_id: str) -> None:
        """The worker has exited: its link goes, and the slot is free again after the quarantine."""
        with self._lock:
            self.link(deployment_id).unlink(missing_ok=True)
            slot = self._lent.pop(deployment_id, None)
            if slot is not None:
                self._free.append((self._clock(), slot))

    def _make_links(self, deployment_id: str, slot: int) -> None:
        folder = self._slots_dir / str(slot)
        folder.mkdir(exist_ok=True)
        _replace_link(folder / "sock", f"../../worker/{deployment_id}.sock")
        _replace_link(self.link(deployment_id), f"../slot/{slot}")


def _replace_link(path: Path, target: str) -> None:
    """``path`` -> ``target``, replaced in one rename: a reader sees the old link or the new one."""
    fresh = path.with_name(f".{path.name}.new")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(target)
    os.replace(fresh, path)
