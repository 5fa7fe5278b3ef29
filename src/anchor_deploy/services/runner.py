"""The runner that background work goes through, so that any number of control-plane processes sharing one
database do each job once. Every job is guarded by a lease in the database (ports/leases.py):

- singleton loops (the reconciler's periodic pass, the domain checks, garbage collection, the scrub) run
  only in the process that holds ``loop:<name>``. A standby process tries to take each free loop lease every
  ``poll`` seconds, so it takes a loop over once its holder's lease expires (the holder was killed) or is
  released (the holder stopped). A round asked for in a process that does not run the loop reaches the
  holder through a ``wake:loop:<name>`` row (``Runner.request``);
- builds: every process polls for QUEUED deployments and for BUILDING ones whose lease is free (their
  builder died) and claims each under ``build:<deployment id>`` before building it; the in-process
  ``submit`` only wakes the local poller, for latency. A build taken over after a crash runs again from its
  start: DeploymentService.build is idempotent (BUILDING -> BUILDING is allowed, materializing an existing
  directory does nothing, READY is set once).

The holder renews every lease it holds each ``heartbeat`` (a third of the TTL by default). A renewal the
database refuses means another holder has the lease: the work stops at once. A renewal that fails (the
database busy or unreachable) is tried again at the next heartbeat, and the work stops when the next one
could come too late, so a holder never works past the moment its lease may be taken over. Deadlines are
measured from the moment the renewal was sent, on this process's monotonic clock: the database's clock only
decides expiry between holders.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from anchor_deploy.model.entities import DeploymentStatus
from anchor_deploy.ports.leases import LeaseRepository
from anchor_deploy.ports.store import DeploymentRepository
from anchor_deploy.services.background import BackgroundLoop

log = logging.getLogger(__name__)
_CLAIM_SLACK = 32  # pending builds looked past per claim, held by other processes' builders
_ASKED = "asked"  # the holder of every wake: row (any process may renew it: each renewal is a new request)


@dataclass(frozen=True)
class LeaseTiming:
    ttl: float = 30.0  # a lease lasts this long after each renewal
    heartbeat: float = 10.0  # its holder renews it this often (well within the TTL)
    poll: float = 2.0  # a process looks for free leases (loops, builds) this often


def new_holder_id() -> str:
    """host:pid:random: unique per process start, and says where the holder runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


def same_machine_liveness() -> Callable[[str], bool]:
    """Whether a holder still runs, as far as this machine can tell: a holder on this host whose process is
    gone is dead (its leases may be taken at once instead of after their TTL); any other holder is assumed
    alive. Only for the local provider, whose control planes share one machine's data dir."""
    here = socket.gethostname()

    def alive(holder: str) -> bool:
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host != here or not pid.isdigit() or int(pid) == os.getpid():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # there, owned by someone else
        return True

    return alive


class LeaseKeeper:
    """The leases this process holds: taken, renewed on the heartbeat, lost, released."""

    def __init__(
        self,
        leases: LeaseRepository,
        timing: LeaseTiming,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        holder_alive: Callable[[str], bool] = lambda _holder: True,
    ) -> None:
        self._leases = leases
        self.timing = timing
        self.holder = holder or new_holder_id()
        self._clock = clock
        self._alive = holder_alive
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[float, Callable[[], None]]] = {}  # name -> (renew by, on lost)

    def take(self, name: str, on_lost: Callable[[], None] = lambda: None) -> bool:
        """Take ``name`` if it is free (or held by a holder known to be dead); ``on_lost`` is called if a
        renewal later fails for good."""
        current = self._leases.lease_holder(name)
        if current is not None and current[0] != self.holder:
            if self._alive(current[0]):
                return False
            if self._leases.release_lease(name, current[0]):  # only if that dead holder still has it
                log.info("lease %s: its holder %s is gone; taking it over", name, current[0])
        sent = self._clock()
        if not self._leases.acquire_lease(name, self.holder, self.timing.ttl):
            return False
        with self._mutex:
            self._held[name] = (sent + self.timing.ttl, on_lost)
        return True

    def holds(self, name: str) -> bool:
        with self._mutex:
            held = self._held.get(name)
        return held is not None and self._clock() < held[0]

    def held(self) -> list[str]:
        with self._mutex:
            return sorted(self._held)

    def release(self, name: str) -> None:
        with self._mutex:
            if self._held.pop(name, None) is None:
                return
        try:
            self._leases.release_lease(name, self.holder)
        except Exception:
            log.warning("could not release lease %s; it expires on its own", name, exc_info=True)

    def ask(self, name: str) -> None:
        """Leave a request under ``name`` in the database for whoever looks (it lasts one TTL)."""
        self._leases.acquire_lease(name, _ASKED, self.timing.ttl)

    def asked(self, name: str) -> float | None:
        """The last request under ``name`` (its expiry: a later request has a later one), if any is live."""
        held = self._leases.lease_holder(name)
        return None if held is None else held[1]

    def renew(self) -> list[str]:
        """Renew every lease held; return the names lost (refused, or not renewable in time)."""
        lost: list[tuple[str, Callable[[], None]]] = []
        for name in self.held():
            sent = self._clock()
            try:
                renewed: bool | None = self._leases.acquire_lease(name, self.holder, self.timing.ttl)
            except Exception as exc:
                log.warning("could not renew lease %s: %s", name, exc)
                renewed = None
            with self._mutex:
                held = self._held.get(name)
                if held is None:
                    continue  # released meanwhile
                if renewed:
                    self._held[name] = (sent + self.timing.ttl, held[1])
                elif renewed is False or self._clock() + self.timing.heartbeat >= held[0]:
                    del self._held[name]
                    lost.append((name, held[1]))
        for name, on_lost in lost:
            log.warning("lost lease %s; its work stops here", name)
            try:
                on_lost()
            except Exception:
                log.exception("stopping the work of lease %s failed", name)
        return [name for name, _ in lost]


class Job(Protocol):
    """A loop that can be started and stopped, again and again, and woken for a round now."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None: ...


class Runner:
    """Runs this process's singleton loops while it holds their leases, and renews every lease it holds
    (the builds' too) on the heartbeat. One thread; ``tick`` is one round of it."""

    def __init__(self, keeper: LeaseKeeper, clock: Callable[[], float] = time.monotonic) -> None:
        self.keeper = keeper
        self._clock = clock
        self._jobs: dict[str, Job] = {}
        self._running: set[str] = set()
        self._stopping: dict[str, threading.Thread] = {}  # loops whose lease was lost, being stopped
        self._mutex = threading.Lock()
        self._renewed_at = float("-inf")
        self._answered: dict[str, float] = {}  # loop lease -> the last request from elsewhere woken for
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def singleton(self, name: str, job: Job) -> None:
        """``job`` runs here only while this process holds the lease ``loop:<name>``."""
        self._jobs[f"loop:{name}"] = job

    def runs(self, name: str) -> bool:
        with self._mutex:
            return f"loop:{name}" in self._running

    def request(self, name: str) -> None:
        """A round of the loop ``name`` now (a failed edge apply wants a reconcile pass, a new domain a
        check): woken here if this process runs it, else asked of its holder through the database, which
        the holder looks at every poll. Never raises: a request that cannot be made waits for the loop's
        own schedule."""
        lease = f"loop:{name}"
        try:
            if self.runs(name):
                self._jobs[lease].wake()
            elif lease in self._jobs:
                self.keeper.ask(f"wake:{lease}")
        except Exception as exc:
            log.warning("could not ask for a round of %s: %s", lease, exc)

    def tick(self) -> None:
        """Renew the leases held once a heartbeat has passed; take the free loop leases and start their
        loops."""
        now = self._clock()
        lost: list[str] = []
        if now - self._renewed_at >= self.keeper.timing.heartbeat:
            self._renewed_at = now
            lost = self.keeper.renew()
        for lease, job in self._jobs.items():
            with self._mutex:
                if lease in self._running or lease in lost:  # a lost one is being stopped: next round
                    continue
            if self._stop.is_set() or not self._take(lease):
                continue
            with self._mutex:
                self._running.add(lease)
                stopping = self._stopping.pop(lease, None)
            if stopping is not None:
                stopping.join()  # the stop of its previous run comes first
            log.info("this process now runs %s (holder %s)", lease, self.keeper.holder)
            job.start()
        self._answer_requests()

    def _answer_requests(self) -> None:
        """Wake the loops run here that another process asked a round of since the last look."""
        with self._mutex:
            running = sorted(self._running)
        for lease in running:
            asked = self.keeper.asked(f"wake:{lease}")
            if asked is not None and asked != self._answered.get(lease):
                self._answered[lease] = asked
                self._jobs[lease].wake()

    def _take(self, lease: str) -> bool:
        try:
            return self.keeper.take(lease, functools.partial(self._lost, lease))
        except Exception as exc:
            log.warning("could not take lease %s: %s", lease, exc)
            return False

    def _lost(self, lease: str) -> None:
        # Stopped on a thread of its own: a pass that is ending must not hold up the other leases' renewals.
        stopping = threading.Thread(target=self._jobs[lease].stop, name=f"stop-{lease}", daemon=True)
        with self._mutex:
            self._running.discard(lease)
            self._stopping[lease] = stopping
        stopping.start()

    def start(self) -> None:
        """The first round in the caller's thread (a lone process runs its loops from its first moment),
        then one every poll."""
        self._stop.clear()
        self._round()
        self._thread = threading.Thread(target=self._loop, name="lease-runner", daemon=True)
        self._thread.start()

    def _round(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("the lease runner failed a round; trying again")

    def _loop(self) -> None:
        period = min(self.keeper.timing.poll, self.keeper.timing.heartbeat)
        while not self._stop.wait(period):
            self._round()

    def stop(self) -> None:
        """Stop the loops this process runs and give their leases up, so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._mutex:
            running, self._running = sorted(self._running), set()
        for lease in running:
            self._jobs[lease].stop()
            self.keeper.release(lease)


class PeriodicJob(BackgroundLoop):
    """``work()`` every ``every`` seconds (first after one period) while started."""

    def __init__(self, name: str, work: Callable[[], object], every: float) -> None:
        super().__init__()
        self.thread_name = name
        self._work = work
        self._every = every

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._work()
            except Exception:
                log.exception("%s failed; it runs again in %.0f s", self.thread_name, self._every)


class LeasedBuilds:
    """Builds on ``workers`` threads, each under the lease ``build:<deployment id>`` (see the module's
    docstring). The keeper's heartbeat (the Runner's thread) renews the leases while the builds run."""

    def __init__(
        self,
        deployments: DeploymentRepository,
        keeper: LeaseKeeper,
        build: Callable[[str], object],
        workers: int,
    ) -> None:
        self._deployments = deployments
        self._keeper = keeper
        self._build = build
        self._workers = workers
        self._claimed: queue.Queue[str | None] = queue.Queue()
        self._mine: set[str] = set()  # claimed here: waiting for a thread or building
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def submit(self, _deployment_id: str) -> None:
        """A deployment was queued here: look for work now rather than at the next poll."""
        self._wake.set()

    def claim(self) -> list[str]:
        """Claim pending builds for the free threads, oldest first: QUEUED deployments, and BUILDING ones
        whose lease is free (their builder died). Returns the ids claimed."""
        with self._mutex:
            free = self._workers - len(self._mine)
        claimed: list[str] = []
        if free <= 0:
            return claimed
        pending = [DeploymentStatus.QUEUED, DeploymentStatus.BUILDING]
        # Only the oldest few: this one's own builds, what its free threads take, and room for builds other
        # processes hold. Listing a backlog of thousands on every claim made a burst of deploys quadratic.
        with self._mutex:
            window = len(self._mine) + free + _CLAIM_SLACK
        for deployment in self._deployments.deployments_with_status(pending, limit=window):
            if len(claimed) >= free or self._stop.is_set():
                break
            with self._mutex:
                if deployment.id in self._mine:
                    continue
            lease = f"build:{deployment.id}"
            if not self._keeper.take(lease, functools.partial(self._lost, deployment.id)):
                continue
            if deployment.status == DeploymentStatus.BUILDING:
                log.info("taking over the build of %s: its builder left it unfinished", deployment.id)
            with self._mutex:
                self._mine.add(deployment.id)
            claimed.append(deployment.id)
            self._claimed.put(deployment.id)
        return claimed

    @staticmethod
    def _lost(deployment_id: str) -> None:
        log.warning(
            "the build lease of %s was lost: another process may build it again (a build is idempotent); "
            "this one runs to its end",
            deployment_id,
        )

    def building(self) -> set[str]:
        with self._mutex:
            return set(self._mine)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._work, name=f"build-{i}", daemon=True) for i in range(self._workers)
        ]
        self._threads.append(threading.Thread(target=self._poll, name="build-poll", daemon=True))
        for thread in self._threads:
            thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.claim()
            except Exception:
                log.exception("looking for builds failed; trying again")
            self._wake.wait(self._keeper.timing.poll)
            self._wake.clear()

    def _work(self) -> None:
        while (deployment_id := self._claimed.get()) is not None:
            try:
                if not self._stop.is_set():  # claimed but not begun at a stop: left to the next holder
                    self._build(deployment_id)
            except Exception:
                log.exception("build of %s crashed", deployment_id)
            finally:
                self._keeper.release(f"build:{deployment_id}")
                with self._mutex:
                    self._mine.discard(deployment_id)
                self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; builds running finish (waited for a while) and give their leases up."""
        self._stop.set()
        self._wake.set()
        for _ in range(self._workers):
            self._claimed.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
