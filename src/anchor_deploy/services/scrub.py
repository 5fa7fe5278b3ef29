"""The background scrub: every stored copy read and checked again, slowly, so that damage nobody wrote
(bit rot, a stray tool) is found before a deployment needs the blob.

A full pass starts every ``interval`` seconds (or as soon as the previous one ends, if it took longer) and
reads at most ``rate`` bytes per second; either set to 0 turns the scrub off. It reports (the log, and
``corruptBlobs`` in /v1/health, through the store's list of damaged copies) and repairs nothing: taking a
deployment down is an operator's decision (`anchor fsck --repair`), and an upload of the right bytes
replaces a damaged blob by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from anchor_deploy.model.errors import BlobUnavailable, CopyGone
from anchor_deploy.ports import BlobChecker
from anchor_deploy.services.background import BackgroundLoop

log = logging.getLogger(__name__)
FIRST_PASS_DELAY = 300.0  # after start-up, before the first pass (or the interval, if shorter)
MAX_CREDIT_SECONDS = 1.0  # a pace that fell behind catches up by at most this much reading at full speed


class _Stopped(Exception):
    pass


class Pace:
    """Told the size of each chunk read, waits as needed to keep the average at or below ``rate`` bytes/s."""

    def __init__(self, rate: float, clock: Callable[[], float], wait: Callable[[float], bool]) -> None:
        """``wait(seconds)`` returns True when the scrub is stopping (then the pass ends)."""
        self._rate = rate
        self._clock = clock
        self._wait = wait
        self._start = clock()
        self._done = 0

    def __call__(self, size: int) -> None:
        self._done += size
        now = self._clock()
        ahead = self._done / self._rate - (now - self._start)
        if ahead > 0:
            if self._wait(ahead):
                raise _Stopped
        elif ahead < -MAX_CREDIT_SECONDS:  # slow files (many small ones) earn no burst later
            self._start = now - MAX_CREDIT_SECONDS - self._done / self._rate


@dataclass
class ScrubStatus:
    passes: int = 0
    last_pass_at: float | None = None  # wall-clock end of the last whole pass
    last_pass_copies: int = 0
    last_pass_corrupt: int = 0


class Scrubber(BackgroundLoop):
    thread_name = "scrub"

    def __init__(
        self,
        blobs: BlobChecker,
        interval: float,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._blobs = blobs
        self.interval = interval
        self.rate = rate
        self._clock = clock
        self._wall_clock = wall_clock
        self._reported: set[str] = set()
        self.status = ScrubStatus()

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and self.rate > 0

    def start(self) -> None:
        if self.enabled:
            super().start()

    def run_pass(self) -> ScrubStatus:
        """One whole pass at the set rate; returns the status after it (unchanged if it was stopped)."""
        pace = Pace(self.rate, self._clock, self._stop.wait)
        checked, corrupt = 0, set()
        try:
            for copy in self._blobs.copies():
                if self._stop.is_set():
                    return self.status
                try:
                    wrong = self._blobs.check(copy, pace)
                except CopyGone:
                    continue  # collected or quarantined since it was listed
                except BlobUnavailable as exc:
                    wrong = exc.message  # cannot be read
                checked += 1
                if wrong is not None:
                    corrupt.add(copy.name)
                    if copy.name not in self._reported:
                        log.warning(
                            "scrub: %s (blob %s) is damaged: %s; `anchor fsck` names the deployments "
                            "that use it, `anchor fsck --repair` sets it aside",
                            copy.name,
                            copy.digest,
                            wrong,
                        )
        except _Stopped:
            return self.status
        self._reported = corrupt
        self.status = ScrubStatus(self.status.passes + 1, self._wall_clock(), checked, len(corrupt))
        return self.status

    def _loop(self) -> None:
        delay = min(self.interval, FIRST_PASS_DELAY)
        while not self._stop.wait(delay):
            started = self._clock()
            try:
                self.run_pass()
            except Exception:
                log.exception("scrub pass failed; the next one starts on schedule")
            took = self._clock() - started
            if took > self.interval:
                log.info("a scrub pass took %.0f s, longer than ANCHOR_SCRUB_INTERVAL", took)
            delay = max(0.0, self.interval - took)
