"""Supervision shared by the edge's web servers (caddy_process.py, nginx_process.py): a child started with
PR_SET_PDEATHSIG, a stale one from an earlier run killed by its pid file, health-checked twice a second
and restarted with backoff when it is down."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol

from anchor_deploy.model.errors import EdgeError

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


class EdgeProcess(Protocol):
    """The edge's web server as the platform's lifecycle and /v1/health see it."""

    restarts: int

    @property
    def pid(self) -> int | None: ...

    def healthy(self) -> bool: ...

    def start(self, timeout: float = 15.0) -> None: ...

    def stop(self) -> None: ...


def die_with_parent() -> None:
    """Runs in the child before exec: if the supervisor dies (even by SIGKILL), the child gets SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def listening(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


class SupervisedChild:
    """One supervised web server. A subclass says how to prepare and start it (``_command``, ``_prepare``)
    and what "healthy" means beyond a live process (``_responding``)."""

    name = "edge"
    pid_name = "edge.pid"
    new_session = False  # started in a process group of its own

    def __init__(self, run_dir: Path, log_path: Path) -> None:
        self._run_dir = run_dir
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- what a subclass says ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Before each start: write the config files."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._run_dir)}

    def _responding(self) -> bool:
        raise NotImplementedError

    # -- supervision ---------------------------------------------------------------------------------------
    def _kill_stale(self) -> None:
        pidfile = self._run_dir / self.pid_name
        try:
            pid = int(pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self._run_dir).encode() in cmdline:
            log.warning("stopping a %s (pid %s) left by an earlier run", self.name, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def _spawn(self) -> None:
        self._run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._run_dir, 0o700)
        self._prepare()
        self._kill_stale()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as logfile:
            self._proc = subprocess.Popen(
                self._command(),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                preexec_fn=die_with_parent,
                start_new_session=self.new_session,
            )
        (self._run_dir / self.pid_name).write_text(str(self._proc.pid))

    def healthy(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            return False
        return self._responding()

    def start(self, timeout: float = 15.0) -> None:
        self._spawn()
        self._wait_healthy(timeout)
        self._thread = threading.Thread(target=self._supervise, name=f"{self.name}-supervisor", daemon=True)
        self._thread.start()

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = self._log_path.read_text(errors="replace")[-2000:] if self._log_path.exists() else ""
        raise EdgeError(
            f"{self.name} did not start (log: {self._log_path}); its log ends with: {tail.strip()[-600:]}"
        )

    def _supervise(self) -> None:
        backoff = 0.25
        failures = 0
        while not self._stop.wait(0.5):
            if self.healthy():
                backoff, failures = 0.25, 0
                continue
            failures += 1
            alive = self._proc is not None and self._proc.poll() is None
            if alive and failures < 6:  # give a busy server a few seconds before calling it dead
                continue
            log.warning(
                "%s is down (exit %s); restarting in %.2fs",
                self.name,
                self._proc.poll() if self._proc else None,
                backoff,
            )
            self._terminate()
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 10.0)
            try:
                self._spawn()
                self._wait_healthy(15.0)
                self.restarts += 1
                failures = 0
            except (OSError, EdgeError):
                log.exception("%s restart failed", self.name)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._terminate()
        (self._run_dir / self.pid_name).unlink(missing_ok=True)
