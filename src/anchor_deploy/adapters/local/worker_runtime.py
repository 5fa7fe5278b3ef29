"""The AppRuntime port on local processes: one sandboxed uvicorn worker per app version, on its own socket.

Caddy dials ``<sock_dir>/worker/<deployment id>.sock`` (a dial string unique to each version, so switching
production never reuses a keep-alive connection to the old version) once ``<that>.up`` exists; until then it
asks the activator, which calls ``ensure``. A crashed worker keeps its ``.up`` marker while it is restarted
with backoff, so Caddy's dial retries wait for it instead of failing.

Each worker runs in the sandbox (``adapters/local/sandbox.py``) and can write only to its own folder
``worker/<deployment id>.d/`` (its socket and activity marker); ``<id>.sock`` is a link into that folder, so
no worker can touch another's socket or the platform's markers.

The nginx edge keeps connections alive only to a fixed pool of upstream slots: a healthy worker is lent one
(``<id>.slot``, worker_slots.py) until it has fully exited.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from anchor_deploy.adapters.local.runtime_log import CappedLog, line_text, read_lines, tail_log
from anchor_deploy.adapters.local.sandbox import tree_cpu_seconds
from anchor_deploy.adapters.local.worker_jobs import WorkerPolicy, job_name, worker_job
from anchor_deploy.adapters.local.worker_slots import WorkerSlots
from anchor_deploy.model.errors import WorkerFailed
from anchor_deploy.ports.runtime import SpecLoader, WorkerSpec

__all__ = ["WorkerPolicy", "WorkerRuntime"]  # WorkerPolicy (worker_jobs.py) is imported from here too
log = logging.getLogger(__name__)
_UNHEALTHY_GRACE = 1.0
_WARMERS = 4  # versions warmed at once after production moves (each may wait for its app to start)
_APP_KINDS_KEPT = 10_000


@dataclass
class _Worker:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes]
    started: float
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=40))
    healthy: bool = False
    stopping: bool = False
    restarts: int = 0
    backoff: float = 0.1
    pump: threading.Thread | None = None


class WorkerRuntime:
    def __init__(
        self,
        sock_dir: Path,
        logs_dir: Path,
        spec_loader: SpecLoader,
        idle_timeout: float,
        policy: WorkerPolicy,
        restart_timeout: float = 30.0,
        log_max_bytes: int = 10 * 1024 * 1024,
        is_app: Callable[[str], bool | None] = lambda _deployment_id: True,
    ) -> None:
        """``is_app``: whether a deployment runs an app (None: no such deployment)."""
        # The cap of each deployment's runtime log, <id>.log and <id>.log.1 together (ANCHOR_LOG_MAX_BYTES).
        self.log_max_bytes = log_max_bytes
        self.sock_dir = sock_dir
        self.policy = policy
        self._workers_dir = sock_dir / "worker"
        self._logs = logs_dir
        self._load = spec_loader
        self._idle = idle_timeout
        self._restart_timeout = restart_timeout
        self._workers: dict[str, _Worker] = {}
        self._warm: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._id_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # PR_SET_PDEATHSIG (_die_with_parent) fires when the *thread* that forked the child exits, not the
        # process: fork every worker from this one long-lived thread, never from a short-lived restart,
        # warm-up or request thread, or the worker is SIGKILLed as soon as that thread returns.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-spawner")
        self._warmer = ThreadPoolExecutor(max_workers=_WARMERS, thread_name_prefix="warm-up")
        self._is_app = is_app
        self._app_kinds: dict[str, bool] = {}
        self._workers_dir.mkdir(parents=True, exist_ok=True)
        logs_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._workers_dir.iterdir():  # markers and folders of a previous process's workers
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        self.slots = WorkerSlots(sock_dir)  # the nginx edge's keep-alive slots (worker_slots.py)

    # -- paths -------------------------------------------------------------------------------------
    def socket(self, deployment_id: str) -> Path:
        return self._workers_dir / f"{deployment_id}.sock"

    def _up(self, deployment_id: str) -> Path:
        return self._workers_dir / f"{deployment_id}.sock.up"

    def _own_dir(self, deployment_id: str) -> Path:
        """The only folder the worker may write to: its socket and activity marker live here."""
        return self._workers_dir / f"{deployment_id}.d"

    def _activity(self, deployment_id: str) -> Path:
        return self._own_dir(deployment_id) / "active"

    def log_path(self, deployment_id: str) -> Path:
        return self._logs / f"{deployment_id}.log"

    def _id_lock(self, deployment_id: str) -> threading.Lock:
        with self._lock:
            return self._id_locks.setdefault(deployment_id, threading.Lock())

    # -- the port ----------------------------------------------------------------------------------
    def ensure(self, spec: WorkerSpec, timeout: float) -> None:
        with self._id_lock(spec.deployment_id):
            worker = self._workers.get(spec.deployment_id)
            if worker and worker.healthy and worker.proc.poll() is None:
                return
            if worker is not None and worker.proc.poll() is not None and worker.healthy:
                # A crash a request found before the monitor did (the nginx edge sends a refused request
                # here at once): logged as the monitor would, and the monitor leaves it to this request.
                worker.healthy = False
                log.warning(
                    "worker %s exited with %s; started again for a request",
                    spec.deployment_id,
                    worker.proc.returncode,
                )
            if worker is None or worker.proc.poll() is not None:
                worker = self._spawn(spec)
            self._wait_healthy(worker, timeout)

    def stop(self, deployment_id: str) -> None:
        with self._id_lock(deployment_id):
            self._up(deployment_id).unlink(missing_ok=True)
            with self._lock:
                worker = self._workers.pop(deployment_id, None)
            if worker:
                worker.stopping = True
                self._terminate(worker.proc)
            self.slots.release(deployment_id)
            self.policy.sandbox.release(job_name(deployment_id))
            self.socket(deployment_id).unlink(missing_ok=True)
            shutil.rmtree(self._own_dir(deployment_id), ignore_errors=True)

    def discard(self, deployment_id: str) -> None:
        """The deployment is deleted: stop its worker and remove its runtime log."""
        self.stop(deployment_id)
        log = self.log_path(deployment_id)
        for path in (log, log.with_name(log.name + ".1")):
            path.unlink(missing_ok=True)

    def stop_project(self, project_id: str, deployment_ids: list[str]) -> None:
        with self._lock:
            self._warm.pop(project_id, None)
        for deployment_id in deployment_ids:
            self.discard(deployment_id)

    def keep_warm(self, project_id: str, deployment_ids: set[str]) -> None:
        """Called on every production move, before its answer, so it wakes no thread it need not: a static
        version has no worker, one whose worker runs is warm already; the others are warmed by a few
        long-lived threads (each keeping its database connection), not by a new thread per move."""
        with self._lock:
            self._warm[project_id] = set(deployment_ids)
            cold = [d for d in deployment_ids if not self._running(d)]
        for deployment_id in cold:
            if self._runs_app(deployment_id):
                self._warmer.submit(self._warm_up, deployment_id)

    def _running(self, deployment_id: str) -> bool:
        worker = self._workers.get(deployment_id)
        return worker is not None and worker.healthy and worker.proc.poll() is None

    def _runs_app(self, deployment_id: str) -> bool:
        """Whether the deployment is an app (cached: a deployment never changes what it is)."""
        known = self._app_kinds.get(deployment_id)
        if known is None:
            known = self._is_app(deployment_id)
            if known is not None:
                with self._lock:
                    if len(self._app_kinds) >= _APP_KINDS_KEPT:
                        self._app_kinds.clear()
                    self._app_kinds[deployment_id] = known
        return bool(known)

    def runtime_log(self, deployment_id: str, limit: int = 200) -> list[str]:
        return tail_log(self.log_path(deployment_id), limit)  # reads backwards: O(limit), not O(file)

    # -- processes ---------------------------------------------------------------------------------
    def _spawn(self, spec: WorkerSpec) -> _Worker:
        deployment_id = spec.deployment_id
        own = self._own_dir(deployment_id)
        job = worker_job(spec, own, self.policy)
        shutil.rmtree(own, ignore_errors=True)
        self.policy.sandbox.prepare_owned(own, job.uid)
        link = self.socket(deployment_id)
        link.unlink(missing_ok=True)
        link.symlink_to(f"{own.name}/app.sock")
        proc = self._spawner.submit(self.policy.sandbox.popen, job).result()
        worker = _Worker(spec=spec, proc=proc, started=time.time())
        with self._lock:
            previous = self._workers.get(deployment_id)
            if previous is not None:
                worker.restarts, worker.backoff = previous.restarts, previous.backoff
            self._workers[deployment_id] = worker
        worker.pump = threading.Thread(target=self._pump, args=(worker,), daemon=True)
        worker.pump.start()
        return worker

    def _pump(self, worker: _Worker) -> None:
        """Worker output to its capped runtime log in bounded chunks: memory stays flat whatever it prints."""

        assert worker.proc.stdout is not None
        secrets = worker.spec.redact
        with CappedLog(self.log_path(worker.spec.deployment_id), self.log_max_bytes) as out:
            for batch in read_lines(worker.proc.stdout):
                lines = [line_text(line, secrets) for line in batch]
                worker.tail.extend(line[:1000] for line in lines[-40:])  # for a failure message
                out.write(lines)  # one write per chunk read

    def _wait_healthy(self, worker: _Worker, timeout: float) -> None:
        spec = worker.spec
        deadline = time.monotonic() + timeout
        failing_since: float | None = None
        status: int | None = None
        transport = httpx.HTTPTransport(uds=str(self.socket(spec.deployment_id)))
        next_cpu_check = 0.0
        with httpx.Client(transport=transport, timeout=5) as client:
            while time.monotonic() < deadline:
                if worker.proc.poll() is not None:
                    cause = f"the app exited with code {worker.proc.returncode} before it was healthy"
                    if self.policy.sandbox.cgroups.oom_killed(job_name(spec.deployment_id)):
                        limit = self.policy.limits.memory_bytes // 2**20
                        cause += f": it went past its memory limit of {limit} MiB (ANCHOR_APP_MEMORY)"
                    self._fail(worker, cause)
                if time.monotonic() >= next_cpu_check:
                    next_cpu_check = time.monotonic() + 0.25
                    if tree_cpu_seconds(worker.proc.pid) > self.policy.startup_cpu:
                        self._fail(
                            worker,
                            f"the app used more than {self.policy.startup_cpu:g} CPU seconds before its "
                            "health check passed (ANCHOR_APP_STARTUP_CPU)",
                        )
                try:
                    status = client.get(f"http://app{spec.app.health_path}").status_code
                except httpx.HTTPError:
                    time.sleep(0.03)
                    continue
                if status < 500:
                    worker.healthy = True
                    self.slots.take(spec.deployment_id)
                    self._up(spec.deployment_id).touch()
                    return
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > _UNHEALTHY_GRACE:
                    break
                time.sleep(0.05)
        if status is not None:
            self._fail(worker, f"health check GET {spec.app.health_path} answered {status}")
        self._fail(worker, f"health check GET {spec.app.health_path} got no answer within {timeout:.0f}s")

    def _fail(self, worker: _Worker, cause: str) -> None:
        worker.stopping = True
        self._terminate(worker.proc)
        self.slots.release(worker.spec.deployment_id)
        self.policy.sandbox.release(job_name(worker.spec.deployment_id))
        if worker.pump is not None:
            worker.pump.join(timeout=2)  # its last lines: the pipe ends once the sandbox is gone
        with self._lock:
            if self._workers.get(worker.spec.deployment_id) is worker:
                del self._workers[worker.spec.deployment_id]
        self._up(worker.spec.deployment_id).unlink(missing_ok=True)
        output = "\n".join(worker.tail)
        raise WorkerFailed(f"{cause}; its output ends with:\n{output}" if output else cause)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=6)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    # -- supervision -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        self._warmer.shutdown(wait=False, cancel_futures=True)
        if self._thread:
            self._thread.join(timeout=10)
        for deployment_id in list(self._workers):
            self.stop(deployment_id)
        self._spawner.shutdown(wait=True)

    def _is_warm(self, deployment_id: str) -> bool:
        with self._lock:
            return any(deployment_id in ids for ids in self._warm.values())

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                workers = list(self._workers.values())
            for worker in workers:
                if worker.stopping:
                    continue
                if worker.proc.poll() is not None and worker.healthy:
                    self._schedule_restart(worker)
                elif (
                    worker.healthy
                    and not self._is_warm(worker.spec.deployment_id)
                    and self._idle_for(worker) > self._idle
                ):
                    log.info("stopping idle worker %s", worker.spec.deployment_id)
                    self.stop(worker.spec.deployment_id)

    def _idle_for(self, worker: _Worker) -> float:
        try:
            last = max(worker.started, os.stat(self._activity(worker.spec.deployment_id)).st_mtime)
        except OSError:
            last = worker.started
        return time.time() - last

    def _schedule_restart(self, worker: _Worker) -> None:
        worker.healthy = False  # handled once: the restart thread owns it now
        threading.Thread(target=self._restart, args=(worker,), daemon=True).start()

    def _restart(self, worker: _Worker) -> None:
        deployment_id = worker.spec.deployment_id
        log.warning(
            "worker %s exited with %s; restarting in %.1fs",
            deployment_id,
            worker.proc.returncode,
            worker.backoff,
        )
        if self._stop.wait(worker.backoff):
            return
        worker.backoff = min(worker.backoff * 2, 10.0)
        worker.restarts += 1
        try:
            with self._id_lock(deployment_id):
                if self._workers.get(deployment_id) is not worker:
                    return  # stopped meanwhile
                fresh = self._spawn(worker.spec)
                self._up(deployment_id).touch()  # Caddy keeps dialing (and retrying) while it starts
                self._wait_healthy(fresh, self._restart_timeout)
            fresh.backoff = 0.1
        except WorkerFailed as exc:
            log.error("worker %s did not come back: %s", deployment_id, exc)
            self._up(deployment_id).unlink(missing_ok=True)

    def _warm_up(self, deployment_id: str) -> None:
        if self._stop.is_set():
            return  # shutting down: queued warm-ups start nothing
        try:
            spec = self._load(deployment_id)
            if spec is not None:
                self.ensure(spec, self._restart_timeout)
        except Exception:
            if not self._stop.is_set():  # a worker stopped by the shutdown fails its warm-up: not news
                log.exception("could not warm %s", deployment_id)
