"""The background scrub: its pace, what one pass finds and says, and its loop."""

from __future__ import annotations

import logging
import time

import pytest

from anchor_deploy.ports.fakes import FakeBlobStore
from anchor_deploy.services import scrub
from anchor_deploy.services.scrub import Pace, Scrubber
from tests.support import sha


class Clock:
    """Time that moves only when someone waits (or the test moves it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waited: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.now += seconds
        return False


def test_the_pace_keeps_reading_at_the_rate() -> None:
    clock = Clock()
    pace = Pace(100, clock, clock.wait)
    for _ in range(10):
        pace(50)
    assert sum(clock.waited) == pytest.approx(5.0)
    assert clock.now == pytest.approx(5.0)


def test_a_pace_that_fell_behind_catches_up_by_one_second_at_most() -> None:
    clock = Clock()
    pace = Pace(100, clock, clock.wait)
    pace(100)
    assert clock.waited == [1.0]
    clock.now += 100.0  # slow files: 100 s for no bytes
    for _ in range(5):
        pace(100)
    # 5 s of reading, of which the chunk read while behind and 1 s of credit go at full speed (not 100 s)
    assert sum(clock.waited[1:]) == pytest.approx(3.0)


def blobs_with(*contents: bytes) -> FakeBlobStore:
    blobs = FakeBlobStore()
    for data in contents:
        blobs.put(sha(data), iter([data]), 1 << 20)
    return blobs


def test_a_pass_finds_a_damaged_blob_says_it_once_and_forgets_it_once_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    blobs = blobs_with(b"a", b"b", b"c")
    blobs.damage(sha(b"b"), b"B")
    scrubber = Scrubber(blobs, interval=60, rate=1 << 30, wall_clock=lambda: 1_700_000_000.0)
    with caplog.at_level(logging.WARNING, logger=scrub.__name__):
        status = scrubber.run_pass()
        assert (status.passes, status.last_pass_copies, status.last_pass_corrupt) == (1, 3, 1)
        assert status.last_pass_at == 1_700_000_000.0
        assert blobs.corrupt() == {FakeBlobStore.copy_name(sha(b"b")): f"content hashes to {sha(b'B')}"}
        assert blobs.missing([sha(b"b")]) == [sha(b"b")]  # reported, and asked for: never quarantined
        scrubber.run_pass()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and FakeBlobStore.copy_name(sha(b"b")) in warnings[0]
    assert "anchor fsck --repair" in warnings[0]
    blobs.put(sha(b"b"), iter([b"b"]), 1 << 20)
    assert scrubber.run_pass().last_pass_corrupt == 0 and blobs.corrupt() == {}


def test_a_stopped_scrub_ends_its_pass_without_counting_it() -> None:
    blobs = blobs_with(b"x" * 1000, b"y" * 1000)
    scrubber = Scrubber(blobs, interval=60, rate=10)  # 200 s of reading at this rate
    scrubber._stop.set()
    started = time.monotonic()
    assert scrubber.run_pass().passes == 0
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("interval", "rate"), [(0, 1000), (60, 0)])
def test_zero_turns_the_scrub_off(interval: float, rate: int) -> None:
    scrubber = Scrubber(blobs_with(b"a"), interval, rate)
    scrubber.start()
    assert not scrubber.enabled and scrubber._thread is None


def test_the_loop_runs_a_pass_every_interval() -> None:
    scrubber = Scrubber(blobs_with(b"a"), interval=0.05, rate=1 << 30)
    scrubber.start()
    try:
        deadline = time.monotonic() + 10
        while scrubber.status.passes < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        scrubber.stop()
    assert scrubber.status.passes >= 3 and scrubber.status.last_pass_copies == 1
