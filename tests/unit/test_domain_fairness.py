"""The per-project domain quota, fair scheduling of checks between projects, and GET never waiting on DNS
for longer than ``check_wait``: DomainService and DomainWorker on the FakeStore and the domain fakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from anchor_deploy.model.domains import CdnStatus, CertificateStatus
from anchor_deploy.model.errors import DomainQuotaExceeded
from anchor_deploy.ports.domains import DnsAnswer
from anchor_deploy.services.domain_worker import DomainWorker
from anchor_deploy.services.domains import DomainQuota
from tests.unit.domain_fakes import FakeDnsLookup
from tests.unit.test_domain_service import WWW, Harness, make_harness

SLOW = "slow.example"  # names under it get answers only when the gate opens


class GatedLookup(FakeDnsLookup):
    """A resolver that blocks every query under ``SLOW`` until ``gate`` is set (as a resolver that never
    answers makes a check wait out its timeout), recording how many such queries wait at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self._mutex = threading.Lock()
        self.waiting = 0
        self.most_waiting = 0

    def query(self, name: str, rdtype: str) -> DnsAnswer:
        if name.endswith(SLOW):
            with self._mutex:
                self.waiting += 1
                self.most_waiting = max(self.most_waiting, self.waiting)
            try:
                assert self.gate.wait(timeout=30), "the test never opened the gate"
            finally:
                with self._mutex:
                    self.waiting -= 1
        return super().query(name, rdtype)


def gated_harness(**settings: object) -> tuple[Harness, GatedLookup]:
    lookup = GatedLookup()
    return make_harness(lookup, **settings), lookup


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> float:
    """Seconds it took; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what or condition}"
        time.sleep(0.002)
    return time.monotonic() - start


@pytest.fixture
def worker_for() -> Iterator[Callable[..., DomainWorker]]:
    started: list[tuple[DomainWorker, GatedLookup | None]] = []

    def start(h: Harness, threads: int = 4, per_project: int = 2) -> DomainWorker:
        worker = DomainWorker(h.service, threads=threads, per_project=per_project)
        h.service.checks = worker
        h.service.on_change = worker.wake
        worker.start()
        lookup = h.lookup if isinstance(h.lookup, GatedLookup) else None
        started.append((worker, lookup))
        return worker

    yield start
    for worker, lookup in started:
        worker.stop()
        if lookup is not None:
            lookup.gate.set()  # the checks still blocked end now


# -- the quota --------------------------------------------------------------------------------------
def test_the_quota_admits_the_hundredth_domain_and_refuses_the_next_storing_nothing() -> None:
    h = make_harness(quota=100)
    for i in range(100):
        h.add(f"d{i}.example.com")
    assert h.service.quota(h.site) == DomainQuota(100, 100)
    wakes = len(h.wakes)
    with pytest.raises(DomainQuotaExceeded) as refused:
        h.add("d100.example.com")
    error = refused.value
    assert (error.code, error.status) == ("quota_exceeded", 422)
    assert "100" in error.message and "ANCHOR_DOMAIN_QUOTA" in error.message and "'site'" in error.message
    assert h.store.domain("d100.example.com") is None
    assert len(h.store.project_domains(h.site.id)) == 100 and len(h.wakes) == wakes
    # Another project is not affected by site's quota.
    assert h.add("www.other.example", h.other).project_id == h.other.id
    assert h.service.quota(h.other) == DomainQuota(100, 1)
    # Removing one frees its place.
    h.service.remove(h.site, "d0.example.com")
    assert h.add("d100.example.com").name == "d100.example.com"
    assert h.service.quota(h.site) == DomainQuota(100, 100)


def test_a_refused_name_is_checked_before_the_quota() -> None:
    h = make_harness(quota=1)
    h.add(WWW)
    with pytest.raises(DomainQuotaExceeded):
        h.add("other.example.com")
    with pytest.raises(Exception) as taken:
        h.add(WWW, h.other)
    assert getattr(taken.value, "code", None) == "domain_taken"


# -- fairness ---------------------------------------------------------------------------------------
def test_a_pass_checks_another_projects_new_domain_before_a_backlog() -> None:
    h = make_harness(quota=2000)
    for i in range(1000):
        h.add(f"d{i}.flood.example")
    h.clock.advance(10.0)
    h.add(WWW, h.other)  # due now: later than every one of the backlog
    assert h.service.run_due(limit=50) == 50
    assert h.domain(WWW).last_checked_at == h.clock.now
    checked = [d for d in h.store.project_domains(h.site.id) if d.last_checked_at is not None]
    assert len(checked) == 49


def test_the_worker_checks_a_new_domain_of_another_project_while_a_backlog_hangs(
    worker_for: Callable[..., DomainWorker],
) -> None:
    h, lookup = gated_harness(quota=2000)
    for i in range(1000):
        h.add(f"d{i}.{SLOW}")
    worker = worker_for(h, threads=4, per_project=2)
    wait_until(lambda: lookup.waiting == 2, what="two of the backlog's checks to hang")
    assert worker.running() == {h.site.id: 2}  # the rest of the threads stay free
    h.add(WWW, h.other)
    took = wait_until(lambda: h.domain(WWW).last_checked_at is not None, what="the other project's check")
    assert took < 1.0, took
    assert "not found" in h.domain(WWW).status_reason
    # Asking for checks (GET) of the hanging project does not get it more than its share of the threads.
    with ThreadPoolExecutor(20) as pool:
        views = list(pool.map(lambda i: h.service.get(h.site, f"d{i}.{SLOW}"), range(500, 520)))
    assert all(v.checking for v in views)
    assert lookup.most_waiting == 2 and worker.running() == {h.site.id: 2}
    lookup.gate.set()
    wait_until(lambda: h.domain(f"d519.{SLOW}").last_checked_at is not None, what="the asked-for checks")


def test_the_worker_takes_turns_between_projects_with_backlogs(
    worker_for: Callable[..., DomainWorker],
) -> None:
    h, lookup = gated_harness(quota=2000)
    for i in range(50):
        h.add(f"d{i}.{SLOW}")
        h.add(f"e{i}.{SLOW}", h.other)
    worker = worker_for(h, threads=2, per_project=2)
    wait_until(lambda: lookup.waiting == 2)
    assert worker.running() == {h.site.id: 1, h.other.id: 1}


# -- GET never waits on DNS for long ----------------------------------------------------------------
def test_get_answers_within_the_bound_with_checking_while_a_lookup_hangs(
    worker_for: Callable[..., DomainWorker],
) -> None:
    h, lookup = gated_harness(check_wait=0.3)
    name = f"www.{SLOW}"
    added = h.add(name)
    worker_for(h)
    wait_until(lambda: lookup.waiting == 1, what="the worker's check to hang")
    with ThreadPoolExecutor(10) as pool:
        timed = list(pool.map(lambda _: _timed(lambda: h.service.get(h.site, name)), range(10)))
    for elapsed, view in timed:
        assert 0.25 <= elapsed < 0.8, elapsed
        assert view.checking and view.domain == added  # the last recorded state: never checked yet
    assert lookup.most_waiting == 1  # every GET joined the running check
    lookup.gate.set()
    wait_until(lambda: not h.service.get(h.site, name, check=False).checking)
    seen = h.service.get(h.site, name, check=False)
    assert seen.domain.last_checked_at is not None and "not found" in seen.domain.status_reason


def test_get_shows_the_fresh_state_when_the_check_ends_within_the_bound(
    worker_for: Callable[..., DomainWorker],
) -> None:
    h = make_harness(check_wait=2.0)
    h.add(WWW)
    worker_for(h)
    wait_until(lambda: h.domain(WWW).last_checked_at is not None)
    h.validate(WWW)
    elapsed, view = _timed(lambda: h.service.get(h.site, WWW))
    assert (view.domain.certificate_status, view.domain.cdn_status) == (
        CertificateStatus.ISSUED,
        CdnStatus.ACTIVE,
    )
    assert not view.checking and elapsed < 1.0


def test_retry_through_the_worker_issues_at_once(worker_for: Callable[..., DomainWorker]) -> None:
    h = make_harness(validation_deadline=10.0)
    h.add(WWW)
    h.clock.advance(11.0)
    h.run()
    assert h.domain(WWW).certificate_status == CertificateStatus.VALIDATION_TIMED_OUT
    worker_for(h)
    h.validate(WWW)
    view = h.service.retry(h.site, WWW)
    assert (view.domain.certificate_status, view.domain.cdn_status) == (
        CertificateStatus.ISSUED,
        CdnStatus.ACTIVE,
    )


T = TypeVar("T")


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    start = time.monotonic()
    result = call()
    return time.monotonic() - start, result
