"""The lease runner (services/runner.py) on the FakeStore, with a clock moved by hand: several "processes" (a
Runner or LeasedBuilds each, with its own holder id) share one store, as control planes share a database."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from anchor_deploy.model.entities import Deployment, DeploymentStatus, HostKind, HostRoute, Project, Target
from anchor_deploy.model.errors import StoreBusy
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.fakes import FakeStore
from anchor_deploy.services.runner import LeasedBuilds, LeaseKeeper, LeaseTiming, Runner, new_holder_id
from tests.support import sha

TIMING = LeaseTiming(ttl=30.0, heartbeat=10.0, poll=2.0)


class ManualClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Loop:
    """A job that records whether it runs."""

    def __init__(self) -> None:
        self.running = False
        self.starts = 0
        self.stopped = threading.Event()
        self.events: list[str] = []
        self.wakes = 0

    def start(self) -> None:
        self.running = True
        self.starts += 1
        self.stopped.clear()
        self.events.append("start")

    def wake(self) -> None:
        self.wakes += 1

    def stop(self) -> None:
        time.sleep(0.05)  # a pass ending
        self.running = False
        self.stopped.set()
        self.events.append("stop")


class FlakyStore(FakeStore):
    """A FakeStore whose lease writes fail (a busy database) while ``failing`` is set."""

    failing = False

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        if self.failing:
            raise StoreBusy("the database is busy")
        return super().acquire_lease(name, holder, ttl)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> FlakyStore:
    return FlakyStore(clock=clock)


def process(
    store: FakeStore, clock: ManualClock, name: str, alive: Callable[[str], bool] = lambda _h: True
) -> tuple[Runner, Loop]:
    keeper = LeaseKeeper(store, TIMING, holder=f"host:{name}:r", clock=clock, holder_alive=alive)
    runner = Runner(keeper, clock=clock)
    loop = Loop()
    runner.singleton("reconcile", loop)
    return runner, loop


def held(store: FakeStore, name: str) -> tuple[str, float]:
    found = store.lease_holder(name)
    assert found is not None, f"{name} is not held"
    return found


def step(clock: ManualClock, seconds: float, *runners: Runner) -> None:
    clock.advance(seconds)
    for runner in runners:
        runner.tick()


def test_holder_ids_name_the_host_and_process_and_differ_per_start() -> None:
    first, second = new_holder_id(), new_holder_id()
    assert first != second and first.split(":")[:2] == second.split(":")[:2]
    assert first.split(":")[1].isdigit()


def test_a_singleton_loop_runs_in_one_process_only_and_its_lease_is_renewed_on_the_heartbeat(
    store: FlakyStore, clock: ManualClock
) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.tick()
    b.tick()
    assert loop_a.running and not loop_b.running and a.runs("reconcile") and not b.runs("reconcile")
    for _ in range(30):  # 60 s, twice the TTL: the heartbeat keeps it
        step(clock, TIMING.poll, a, b)
        assert loop_a.running and not loop_b.running
    held = store.lease_holder("loop:reconcile")
    assert held is not None and held[0] == "host:1:r" and held[1] > clock.now + TIMING.ttl - TIMING.heartbeat


def test_a_standby_takes_a_killed_holders_loop_over_once_its_lease_expires(
    store: FlakyStore, clock: ManualClock
) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.tick()
    expires = held(store, "loop:reconcile")[1]
    # a is killed: it ticks no more. b keeps polling and waits for the expiry, not a moment less.
    while clock.now + TIMING.poll < expires:
        step(clock, TIMING.poll, b)
        assert not loop_b.running
    step(clock, expires - clock.now, b)
    assert loop_b.running and held(store, "loop:reconcile")[0] == "host:2:r"
    assert loop_a.running  # (a is dead: nothing of it runs; its object just never heard)


def test_a_holder_whose_lease_was_taken_over_stops_its_loop(store: FlakyStore, clock: ManualClock) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.tick()
    step(clock, TIMING.ttl + 1, b)  # a was paused (a long GC, a stopped VM) past its TTL
    assert loop_b.running
    a.tick()  # a's heartbeat: the renewal is refused
    assert loop_a.stopped.wait(5) and not a.runs("reconcile")
    step(clock, TIMING.heartbeat, a, b)
    assert loop_b.running and not loop_a.running and loop_a.starts == 1


def test_a_loop_lost_and_taken_back_later_is_stopped_before_it_starts_again(
    store: FlakyStore, clock: ManualClock
) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.tick()
    step(clock, TIMING.ttl + 1, b)  # a paused past its TTL: b takes over
    step(clock, 0.0, a)  # a learns it lost the lease (its stop runs on a thread of its own)
    step(clock, TIMING.ttl + 1, a)  # b is killed; a takes the loop back once b's lease expires
    assert loop_a.events == ["start", "stop", "start"] and loop_a.running and a.runs("reconcile")
    assert loop_b.starts == 1


def test_failed_renewals_stop_the_loop_before_the_lease_can_be_taken_over(
    store: FlakyStore, clock: ManualClock
) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.tick()
    expires = held(store, "loop:reconcile")[1]
    store.failing = True  # the database is busy for a while
    step(clock, TIMING.heartbeat, a)
    assert loop_a.running  # one failed renewal: the next heartbeat still comes in time
    step(clock, TIMING.heartbeat, a)
    assert loop_a.stopped.wait(5)  # the next one could come too late: stopped...
    assert clock.now < expires  # ...while the lease still held, so no one else ran meanwhile
    store.failing = False
    step(clock, expires - clock.now, b)
    assert loop_b.running and not loop_a.running


def test_a_round_asked_for_in_any_process_wakes_the_loop_where_it_runs_once_per_request(
    store: FlakyStore, clock: ManualClock
) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.tick()
    b.tick()
    a.request("reconcile")  # where it runs: woken at once
    assert loop_a.wakes == 1
    b.request("reconcile")  # elsewhere: asked through the database, seen at the holder's next round
    assert loop_a.wakes == 1 and loop_b.wakes == 0
    step(clock, TIMING.poll, a, b)
    assert loop_a.wakes == 2
    step(clock, TIMING.poll, a, b)
    assert loop_a.wakes == 2  # one round per request
    b.request("reconcile")
    b.request("reconcile")  # asked again before the holder looked: one round serves both
    step(clock, TIMING.poll, a, b)
    assert loop_a.wakes == 3 and loop_b.wakes == 0
    b.request("nothing-of-that-name")  # no such loop: nothing asked, nothing raised
    store.failing = True
    b.request("reconcile")  # the database busy: the request waits for the loop's own schedule
    assert loop_a.wakes == 3


def test_a_stopped_runner_gives_its_leases_up_and_a_standby_takes_them_at_once(
    store: FlakyStore, clock: ManualClock
) -> None:
    (a, loop_a), (b, loop_b) = process(store, clock, "1"), process(store, clock, "2")
    a.start()
    try:
        assert loop_a.running  # the first round runs in start()
    finally:
        a.stop()
    assert not loop_a.running and store.lease_holder("loop:reconcile") is None
    b.tick()
    assert loop_b.running


def test_a_lease_of_a_holder_known_dead_is_taken_without_waiting(
    store: FlakyStore, clock: ManualClock
) -> None:
    a, _ = process(store, clock, "1")
    a.tick()
    b, loop_b = process(store, clock, "2", alive=lambda holder: holder != "host:1:r")
    step(clock, 1.0, b)
    assert loop_b.running and held(store, "loop:reconcile")[0] == "host:2:r"


# -- builds ----------------------------------------------------------------------------------------------
def queue_deployments(store: FakeStore, count: int) -> list[str]:
    project = Project("prj_site", "site", 1.0)
    store.add_project(project, [HostRoute("site.test", HostKind.ALIAS, project.id, None)])
    ids = []
    for n in range(count):
        deployment = Deployment(
            f"dpl_{n:012d}", project.id, DeploymentStatus.QUEUED, Target.PREVIEW, 10.0 + n, 1, 1
        )
        files = [ManifestFile("index.html", sha(b"x"), 1, 0o644)]
        host = HostRoute(f"site-{n}.test", HostKind.DEPLOYMENT, project.id, deployment.id)
        store.add_deployment(deployment, files, host)
        ids.append(deployment.id)
    return ids


def builds_of(
    store: FakeStore, clock: Callable[[], float], name: str, build: Callable[[str], object]
) -> LeasedBuilds:
    keeper = LeaseKeeper(store, TIMING, holder=f"host:{name}:r", clock=clock)
    return LeasedBuilds(store, keeper, build, workers=2)


def test_each_process_claims_queued_builds_for_its_free_threads_only_and_never_one_claimed_elsewhere(
    store: FlakyStore, clock: ManualClock
) -> None:
    ids = queue_deployments(store, 5)
    a, b = builds_of(store, clock, "1", print), builds_of(store, clock, "2", print)
    assert a.claim() == ids[:2]  # two threads: the two oldest
    assert a.claim() == []  # no thread free
    assert b.claim() == ids[2:4]  # the next two; a's are leased
    assert a.building() | b.building() == set(ids[:4])


def test_a_building_deployment_whose_builder_died_is_taken_over_after_its_lease_expires(
    store: FlakyStore, clock: ManualClock
) -> None:
    (only,) = queue_deployments(store, 1)
    dead = builds_of(store, clock, "1", print)
    assert dead.claim() == [only]
    store.set_status(only, DeploymentStatus.BUILDING)  # it began, then its process was killed
    survivor = builds_of(store, clock, "2", print)
    assert survivor.claim() == []
    clock.advance(TIMING.ttl - 1)
    assert survivor.claim() == []
    clock.advance(1)
    assert survivor.claim() == [only]
    assert held(store, f"build:{only}")[0] == "host:2:r"


def test_builds_finished_or_canceled_are_not_claimed(store: FlakyStore, clock: ManualClock) -> None:
    ids = queue_deployments(store, 3)
    store.set_status(ids[0], DeploymentStatus.CANCELED)
    store.set_status(ids[1], DeploymentStatus.BUILDING)
    store.set_status(ids[1], DeploymentStatus.READY)
    assert builds_of(store, clock, "1", print).claim() == [ids[2]]


def test_two_processes_building_one_queue_build_each_deployment_once() -> None:
    store = FakeStore()
    ids = queue_deployments(store, 20)
    runs: Counter[str] = Counter()
    mutex = threading.Lock()

    def build(deployment_id: str) -> None:
        deployment = store.deployment(deployment_id)
        assert deployment is not None
        if deployment.status.is_final:
            return  # what DeploymentService.build does with a finished one
        store.set_status(deployment_id, DeploymentStatus.BUILDING)
        with mutex:
            runs[deployment_id] += 1
        time.sleep(0.01)
        store.set_status(deployment_id, DeploymentStatus.READY)

    timing = LeaseTiming(ttl=5.0, heartbeat=1.0, poll=0.05)
    queues = [
        LeasedBuilds(store, LeaseKeeper(store, timing, holder=f"host:{n}:r"), build, workers=3)
        for n in (1, 2)
    ]
    for builds in queues:
        builds.start()
    try:
        for deployment_id in ids:
            queues[0].submit(deployment_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and store.deployments_with_status([DeploymentStatus.QUEUED]):
            time.sleep(0.02)
        while time.monotonic() < deadline and (queues[0].building() or queues[1].building()):
            time.sleep(0.02)
    finally:
        for builds in queues:
            builds.stop()
    assert runs == Counter(dict.fromkeys(ids, 1))
    assert [d.id for d in store.deployments_with_status([DeploymentStatus.READY])] == ids
    assert all(store.lease_holder(f"build:{d}") is None for d in ids)  # every lease given back
