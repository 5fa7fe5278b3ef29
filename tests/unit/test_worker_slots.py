"""WorkerSlots: a running worker is lent a keep-alive slot (links nginx follows), keeps it across restarts,
and a released slot is lent again only after its quarantine, least recently released first; the runtime
releases a stopped worker's slot, and a new runtime starts with none."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from anchor_deploy.adapters.local.worker_runtime import WorkerRuntime
from anchor_deploy.adapters.local.worker_slots import WorkerSlots, slot_socket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _slots(tmp_path: Path, count: int = 3) -> tuple[WorkerSlots, Clock]:
    clock = Clock()
    return WorkerSlots(tmp_path, count=count, quarantine=60.0, clock=clock), clock


def test_a_slot_links_the_worker_socket_both_ways(tmp_path: Path) -> None:
    slots, _ = _slots(tmp_path)
    (tmp_path / "worker" / "dpl_a.d").mkdir()
    (tmp_path / "worker" / "dpl_a.d" / "app.sock").write_text("the worker's socket")
    (tmp_path / "worker" / "dpl_a.sock").symlink_to("dpl_a.d/app.sock")
    slot = slots.take("dpl_a")
    assert slot is not None
    # nginx: worker/<id>.slot resolves to slot/<K>, whose sock reaches the worker's own socket.
    assert os.path.realpath(slots.link("dpl_a")) == str((tmp_path / "slot" / str(slot)).resolve())
    assert slot_socket(tmp_path, slot).read_text() == "the worker's socket"
    assert not os.readlink(slots.link("dpl_a")).startswith("/")  # relative links
    slots.release("dpl_a")
    assert not os.path.lexists(slots.link("dpl_a"))
    assert slots.slot_of("dpl_a") is None


def test_a_restart_keeps_its_slot_and_each_worker_has_its_own(tmp_path: Path) -> None:
    slots, _ = _slots(tmp_path)
    first = slots.take("dpl_a")
    assert slots.take("dpl_a") == first
    second = slots.take("dpl_b")
    assert second is not None and second != first
    assert os.readlink(slot_socket(tmp_path, second)) == "../../worker/dpl_b.sock"


def test_released_slots_wait_out_the_quarantine_oldest_first(tmp_path: Path) -> None:
    slots, clock = _slots(tmp_path, count=2)
    a, b = slots.take("dpl_a"), slots.take("dpl_b")
    assert slots.take("dpl_c") is None  # every slot lent: no slot, nginx dials per request
    assert not os.path.lexists(slots.link("dpl_c"))
    slots.release("dpl_b")
    clock.now += 10
    slots.release("dpl_a")
    clock.now += 49  # b released 59 s ago: still quarantined
    assert slots.take("dpl_c") is None
    clock.now += 2  # b 61 s ago, a 51 s ago
    assert slots.take("dpl_c") == b and b is not None
    assert os.readlink(slot_socket(tmp_path, b)) == "../../worker/dpl_c.sock"
    assert slots.take("dpl_d") is None
    clock.now += 10
    assert slots.take("dpl_d") == a


def test_a_new_runtime_starts_without_slots(tmp_path: Path) -> None:
    slots, _ = _slots(tmp_path)
    slot = slots.take("dpl_a")
    assert slot is not None
    fresh, _ = _slots(tmp_path)
    assert not (tmp_path / "slot" / str(slot)).exists()
    assert fresh.slot_of("dpl_a") is None
    assert fresh.take("dpl_b") == 0


class _ExitedProc:
    returncode = 0

    @staticmethod
    def poll() -> int:
        return 0


def test_the_runtime_releases_a_stopped_workers_slot_and_a_new_one_starts_clean(tmp_path: Path) -> None:
    released: list[str] = []
    policy: Any = SimpleNamespace(sandbox=SimpleNamespace(release=released.append))
    runtime = WorkerRuntime(tmp_path / "run", tmp_path / "logs", lambda _d: None, 60.0, policy)
    slot = runtime.slots.take("dpl_a")  # as when its worker turned healthy
    assert slot is not None and os.path.lexists(runtime.slots.link("dpl_a"))
    runtime._workers["dpl_a"] = cast(Any, SimpleNamespace(proc=_ExitedProc(), stopping=False))
    runtime.stop("dpl_a")
    assert released == ["worker-dpl_a"]
    assert not os.path.lexists(runtime.slots.link("dpl_a")) and runtime.slots.slot_of("dpl_a") is None
    runtime.slots.take("dpl_b")
    runtime.shutdown()
    again = WorkerRuntime(tmp_path / "run", tmp_path / "logs", lambda _d: None, 60.0, policy)
    assert not os.path.lexists(again.slots.link("dpl_b"))  # no worker survives a restart: no slot either
    assert list((tmp_path / "run" / "slot").iterdir()) == []
    again.shutdown()
