"""The domain worker: runs domain checks on a few threads, shared fairly between projects."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections import Counter
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field

from anchor_deploy.services.background import BackgroundLoop
from anchor_deploy.services.domains import DomainService

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Check:
    project_id: str
    done: Future[None] = field(default_factory=Future)

    def finish(self) -> None:
        with contextlib.suppress(InvalidStateError):  # released at stop already
            self.done.set_result(None)


class DomainWorker(BackgroundLoop):
    """Runs domain checks on ``threads`` threads (a DNS timeout or an ACME order takes seconds), fairly:

    - a project has at most ``per_project`` checks running at once, so one project's backlog (or its
      resolver timing out) leaves the other threads to the other projects;
    - a free thread goes to the project that was given one longest ago (round-robin), and within a project
      to a check someone asked for (GET, retry), then to never-checked domains, then to the most overdue.

    Sleeps until woken (a domain added, a check asked for, a check finished) or the next check is due;
    converges the data planes at start and every ``converge_every``."""

    thread_name = "domains"

    def __init__(
        self,
        service: DomainService,
        threads: int = 8,
        converge_every: float = 600.0,
        per_project: int = 2,
    ) -> None:
        super().__init__()
        self._service = service
        self._threads = threads
        self._per_project = max(1, min(per_project, threads))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="domain-check")
        self._pool_closed = False
        self._converge_every = converge_every
        # Bookkeeping of the threads (the domain rows stay the truth): asked for, running, turn last given.
        self._mutex = threading.Lock()
        self._queued: dict[str, _Check] = {}
        self._running: dict[str, _Check] = {}
        self._served: dict[str, int] = {}
        self._turns = itertools.count(1)

    # -- CheckRunner -------------------------------------------------------------------------------
    def request(self, name: str, project_id: str) -> Future[None]:
        if not self.active:
            # Another control-plane process holds the domain checks' lease: it checks the domain when due
            # (a retry made it due now); nothing runs here, so nobody waits here.
            done: Future[None] = Future()
            done.set_result(None)
            return done
        with self._mutex:
            check = self._running.get(name) or self._queued.get(name)
            if check is None:
                check = self._queued[name] = _Check(project_id)
        self.wake()
        return check.done

    def busy(self, name: str) -> bool:
        with self._mutex:
            return name in self._running or name in self._queued

    def running(self) -> dict[str, int]:
        """Checks running now, by project id."""
        with self._mutex:
            return dict(Counter(c.project_id for c in self._running.values()))

    # -- the loop ----------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether the checks run in this process now (started, and not stopped since)."""
        return self._thread is not None and not self._stop.is_set()

    def start(self) -> None:
        if self._pool_closed:  # started again after a stop (its lease came back to this process)
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="domain-check")
            self._pool_closed = False
        super().start()

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool_closed = True
        with self._mutex:
            left = [*self._queued.values(), *self._running.values()]
            self._queued.clear()
        for check in left:  # nobody waits on a check that will not run
            check.finish()

    def _loop(self) -> None:
        clock = self._service.clock
        converged = float("-inf")
        while not self._stop.is_set():
            if clock() - converged >= self._converge_every:
                try:
                    report = self._service.converge()
                    if any(report.values()):
                        log.info("domains converged: %s", {k: len(v) for k, v in report.items() if v})
                except Exception:
                    log.exception("converging the domains failed; due checks go on")
                converged = clock()
            delay = 30.0
            try:
                scheduled_at = self._schedule()
                upcoming = self._service.store.next_domain_check()
                if upcoming is not None and upcoming <= scheduled_at:
                    # Due, but running or waiting for a thread or its project's share: a finished check
                    # wakes the loop; the short poll also catches a domain that falls due meanwhile.
                    delay = min(1.0, self._service.settings.check_min)
                elif upcoming is not None:
                    delay = min(30.0, max(0.0, upcoming - clock()))
            except Exception:
                log.exception("the domain worker failed; retrying")
            self._wake.wait(delay)
            self._wake.clear()

    def _schedule(self) -> float:
        """Give the free threads to checks, fairly (see the class docstring); return the time used."""
        service = self._service
        now = service.clock()
        started: list[tuple[str, _Check]] = []
        with self._mutex:  # held over the read, so a check finishing meanwhile is not started again
            free = self._threads - len(self._running)
            if free <= 0:
                return now
            # Enough rows of each project for its share, and of enough projects for every thread.
            limit = max(100, 4 * self._threads)
            due = service.store.domains_due_fairly(now, 2 * self._per_project, limit)
            waiting: dict[str, list[str]] = {}
            for name, asked in self._queued.items():
                waiting.setdefault(asked.project_id, []).append(name)
            for domain in due:
                if domain.name not in self._running and domain.name not in self._queued:
                    waiting.setdefault(domain.project_id, []).append(domain.name)
            running = Counter(c.project_id for c in self._running.values())
            order = sorted(waiting, key=lambda project_id: self._served.get(project_id, 0))
            while free:
                given = 0
                for project_id in order:
                    names = waiting[project_id]
                    if free and names and running[project_id] < self._per_project:
                        name = names.pop(0)
                        check = self._queued.pop(name, None) or _Check(project_id)
                        self._running[name] = check
                        started.append((name, check))
                        running[project_id] += 1
                        self._served[project_id] = next(self._turns)
                        free -= 1
                        given += 1
                if not given:
                    break
            if len(self._served) > 10_000:  # forget projects with nothing to do
                keep = set(waiting) | set(running)
                self._served = {p: turn for p, turn in self._served.items() if p in keep}
        for name, check in started:
            self._pool.submit(self._run, name, check)
        return now

    def _run(self, name: str, check: _Check) -> None:
        try:
            self._service.check_one(name)
        finally:
            with self._mutex:
                if self._running.get(name) is check:
                    del self._running[name]
            check.finish()
            self.wake()
