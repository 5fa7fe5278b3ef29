"""Runs the pinned Caddy binary as a supervised child: started, health-checked, restarted with backoff."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from anchor_deploy.model.errors import EdgeError

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_MAX = 100
_SOCKET_NAME_ROOM = 40  # "/sockets/worker/dpl_xxxxxxxxxxxx.sock.up"


def _die_with_parent() -> None:
    """Runs in the child before exec: if the supervisor dies (even by SIGKILL), Caddy gets SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def socket_dir(run_dir: Path) -> Path:
    """A private (0700) folder for unix sockets. Their paths are limited to ~108 bytes, so a deep data dir
    falls back to a short folder in /tmp named after it."""
    if len(str(run_dir)) + _SOCKET_NAME_ROOM <= _SOCKET_PATH_MAX:
        folder = run_dir / "sockets"
    else:
        digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:10]
        folder = Path(tempfile.gettempdir()) / f"anchor-{digest}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


class CaddyProcess:
    def __init__(
        self,
        binary: str,
        config: dict[str, Any],
        run_dir: Path,
        log_path: Path,
        http_addr: tuple[str, int],
        admin_socket: Path,
    ) -> None:
        self._binary = binary
        self._config = config
        self._run_dir = run_dir
        self._log_path = log_path
        self._http_addr = http_addr
        self._admin_socket = admin_socket
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _write_config(self) -> Path:
        self._run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._run_dir, 0o700)
        path = self._run_dir / "caddy.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._config, indent=1))
        os.replace(tmp, path)
        return path

    def _kill_stale(self) -> None:
        pidfile = self._run_dir / "caddy.pid"
        try:
            pid = int(pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self._run_dir).encode() in cmdline:
            log.warning("stopping a Caddy (pid %s) left by an earlier run", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def _spawn(self) -> None:
        config = self._write_config()
        self._kill_stale()
        self._admin_socket.unlink(missing_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._run_dir),
            "XDG_DATA_HOME": str(self._run_dir / "data"),
            "XDG_CONFIG_HOME": str(self._run_dir / "config"),
        }
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as logfile:
            self._proc = subprocess.Popen(
                [self._binary, "run", "--config", str(config)],
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,
            )
        (self._run_dir / "caddy.pid").write_text(str(self._proc.pid))

    def healthy(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            return False
        try:
            with socket.create_connection(self._http_addr, timeout=1):
                pass
            # Plain HTTP on a unix socket: no TLS, so no CA bundle to parse on every check (twice a second).
            transport = httpx.HTTPTransport(uds=str(self._admin_socket), verify=False)
            with httpx.Client(transport=transport, timeout=2) as admin:
                return admin.get("http://caddy/config/apps/http/servers/edge/listen").status_code == 200
        except (OSError, httpx.HTTPError):
            return False

    def start(self, timeout: float = 15.0) -> None:
        self._spawn()
        self._wait_healthy(timeout)
        self._thread = threading.Thread(target=self._supervise, name="caddy-supervisor", daemon=True)
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
            f"Caddy did not start (log: {self._log_path}); its log ends with: {tail.strip()[-600:]}"
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
            if alive and failures < 6:  # give a busy Caddy a few seconds before calling it dead
                continue
            log.warning(
                "Caddy is down (exit %s); restarting in %.2fs",
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
                log.exception("Caddy restart failed")

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
        (self._run_dir / "caddy.pid").unlink(missing_ok=True)
