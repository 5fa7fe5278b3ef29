"""The LeaseRepository port's contract (ports/leases.py): every store passes it. Time is the store's injected
clock, moved by hand, so expiry is exact and no test sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.ports import Store
from anchor_deploy.ports.fakes import FakeStore
from tests.contract.dynamo_support import make_table, store_on_table

TTL = 30.0


class ManualClock:
    """A clock that stands still until moved."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# A store maker: (directory for its files, clock) -> a fresh store. ``twin`` makes a second store on the same
# database (another process's view of it); the fake has one database per object, so it is itself.
StoreMaker = Callable[[Path, ManualClock], Store]


def _sqlite(directory: Path, clock: ManualClock) -> Store:
    return SqliteStore(directory / "anchor.db", clock=clock)


def _fake(_directory: Path, clock: ManualClock) -> Store:
    return FakeStore(clock=clock)


def _dynamo(_directory: Path, clock: ManualClock) -> Store:
    return store_on_table(clock)  # the table is made by the fixture, on the test's moto server


MAKERS: dict[str, tuple[StoreMaker, bool]] = {
    "fake": (_fake, False),
    "sqlite": (_sqlite, True),
    "dynamo": (_dynamo, True),
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=sorted(MAKERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(request: pytest.FixtureRequest, kind: str, tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    if kind == "dynamo":
        request.getfixturevalue("aws")
        make_table()
    yield MAKERS[kind][0](tmp_path, clock)


@pytest.fixture
def twin(kind: str, store: Store, tmp_path: Path, clock: ManualClock) -> Store:
    """A second store object on the same database, where the adapter can have one."""
    maker, shared = MAKERS[kind]
    return maker(tmp_path, clock) if shared else store


def test_a_free_lease_is_taken_and_its_holder_and_expiry_are_read_back(
    store: Store, clock: ManualClock
) -> None:
    assert store.lease_holder("loop:reconcile") is None
    assert store.acquire_lease("loop:reconcile", "a:1:x", TTL)
    assert store.lease_holder("loop:reconcile") == ("a:1:x", clock.now + TTL)
    assert store.lease_holder("loop:gc") is None  # leases are separate by name


def test_a_held_lease_is_refused_to_another_holder_and_left_as_it_was(
    store: Store, twin: Store, clock: ManualClock
) -> None:
    assert store.acquire_lease("build:dpl_1", "a:1:x", TTL)
    clock.advance(TTL - 0.001)
    assert not store.acquire_lease("build:dpl_1", "b:2:y", TTL)
    assert not twin.acquire_lease("build:dpl_1", "b:2:y", TTL)
    assert twin.lease_holder("build:dpl_1") == ("a:1:x", clock.now + 0.001)


def test_the_holder_renews_its_lease_until_a_later_expiry(store: Store, clock: ManualClock) -> None:
    assert store.acquire_lease("loop:scrub", "a:1:x", TTL)
    clock.advance(TTL / 2)
    assert store.acquire_lease("loop:scrub", "a:1:x", TTL)
    assert store.lease_holder("loop:scrub") == ("a:1:x", clock.now + TTL)
    clock.advance(TTL * 0.9)  # past the first expiry, within the renewed one
    assert not store.acquire_lease("loop:scrub", "b:2:y", TTL)
    assert store.lease_holder("loop:scrub") == ("a:1:x", clock.now + TTL * 0.1)


def test_an_expired_lease_is_free_and_taken_over_by_another_holder(
    store: Store, twin: Store, clock: ManualClock
) -> None:
    assert store.acquire_lease("build:dpl_2", "a:1:x", TTL)
    clock.advance(TTL)  # expires exactly now: free
    assert store.lease_holder("build:dpl_2") is None
    assert twin.acquire_lease("build:dpl_2", "b:2:y", 5.0)
    assert store.lease_holder("build:dpl_2") == ("b:2:y", clock.now + 5.0)
    # the old holder's renewal is refused: it lost the lease
    assert not store.acquire_lease("build:dpl_2", "a:1:x", TTL)
    assert not store.release_lease("build:dpl_2", "a:1:x")
    assert store.lease_holder("build:dpl_2") == ("b:2:y", clock.now + 5.0)


def test_only_the_holder_releases_and_a_released_lease_is_free_at_once(
    store: Store, twin: Store, clock: ManualClock
) -> None:
    assert store.acquire_lease("loop:domains", "a:1:x", TTL)
    assert not twin.release_lease("loop:domains", "b:2:y")
    assert store.lease_holder("loop:domains") == ("a:1:x", clock.now + TTL)
    assert store.release_lease("loop:domains", "a:1:x")
    assert store.lease_holder("loop:domains") is None
    assert not store.release_lease("loop:domains", "a:1:x")  # nothing left to give up
    assert twin.acquire_lease("loop:domains", "b:2:y", TTL)
    assert store.lease_holder("loop:domains") == ("b:2:y", clock.now + TTL)


def test_a_holder_can_hold_several_leases_and_release_one(store: Store, clock: ManualClock) -> None:
    for name in ("loop:reconcile", "loop:gc", "build:dpl_3"):
        assert store.acquire_lease(name, "a:1:x", TTL)
    assert store.release_lease("loop:gc", "a:1:x")
    assert store.lease_holder("loop:gc") is None
    assert store.lease_holder("loop:reconcile") == ("a:1:x", clock.now + TTL)
    assert store.lease_holder("build:dpl_3") == ("a:1:x", clock.now + TTL)


def _race(stores: list[Store], name: str, holders: list[str]) -> list[str]:
    """Every holder tries to take ``name`` at the same moment, each through its own store object."""
    start = threading.Barrier(len(holders))
    winners: list[str] = []
    errors: list[BaseException] = []

    def attempt(holder: str, store: Store) -> None:
        try:
            start.wait(timeout=10)
            if store.acquire_lease(name, holder, TTL):
                winners.append(holder)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=attempt, args=(holder, stores[i % len(stores)]))
        for i, holder in enumerate(holders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return winners


def _holder(store: Store, name: str) -> str | None:
    held = store.lease_holder(name)
    return None if held is None else held[0]


def test_holders_racing_for_a_free_lease_one_wins_and_holds_it(store: Store, twin: Store) -> None:
    holders = [f"host:{pid}:r" for pid in range(8)]
    for round_number in range(20):
        name = f"build:dpl_race{round_number}"
        winners = _race([store, twin], name, holders)
        assert len(winners) == 1, (name, winners)
        assert _holder(store, name) == _holder(twin, name) == winners[0]


def test_holders_racing_for_an_expired_lease_one_takes_it_over(
    store: Store, twin: Store, clock: ManualClock
) -> None:
    for round_number in range(10):
        name = f"loop:race{round_number}"
        assert store.acquire_lease(name, "dead:1:x", TTL)
        clock.advance(TTL + 1)
        winners = _race([store, twin], name, [f"host:{pid}:r" for pid in range(2, 8)])
        assert len(winners) == 1, (name, winners)
        assert _holder(store, name) == _holder(twin, name) == winners[0]
