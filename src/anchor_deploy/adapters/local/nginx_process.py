"""Runs nginx as the edge's supervised web server (edge_process.SupervisedChild), with our own nginx.conf
(nginx_config.py): `nginx -e <log> -p <prefix> -c <conf>`, in the foreground, nothing written under /etc or
/var. Healthy = the master alive and the HTTP address accepting (nginx has no admin API).

nginx's workers do not die with their master. As root, nginx runs as the first process of its own PID
namespace, so the kernel kills the workers with the master. In any case it leads its own process group,
and whatever is left of that group is killed with it (a stale group from an earlier run too, found by its
pid file)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from anchor_deploy.adapters.local.edge_process import SupervisedChild, listening
from anchor_deploy.adapters.local.nginx_config import NginxFiles, temp_folders
from anchor_deploy.model.errors import EdgeError

log = logging.getLogger(__name__)
PACKAGES = "nginx libnginx-mod-http-js"  # Debian's


def check_installed(binary: str, needs_njs: bool, njs_module: Path) -> None:
    """One readable error at start if the nginx edge cannot run here."""
    found = Path(binary).is_file() and os.access(binary, os.X_OK)
    if not found:
        raise EdgeError(
            f"ANCHOR_EDGE=nginx but there is no nginx at {binary} (ANCHOR_NGINX_BIN): "
            f"install it (Debian: apt-get install {PACKAGES}) or set ANCHOR_EDGE=caddy"
        )
    if needs_njs and not njs_module.is_file():
        raise EdgeError(
            f"ANCHOR_EDGE=nginx needs nginx's njs module ({njs_module}) to pick custom domains' "
            f"certificates: install it (Debian: apt-get install libnginx-mod-http-js)"
        )


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            comm_end = stat.rindex(")")
            fields = stat[comm_end + 2 :].split()
            name = stat[stat.index("(") + 1 : comm_end]
        except (OSError, ValueError):
            continue
        if int(fields[2]) == pgid and name == "nginx":  # fields: state, ppid, pgrp
            members.append(int(entry.name))
    return members


def _ours(members: list[int], run_dir: Path) -> bool:
    """Whether an nginx process group is this data dir's: its master names our config; orphaned workers
    (no master left) name nothing, and a group whose id was reused by another nginx's master is left alone."""
    for pid in members:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"nginx: master"):
            return str(run_dir).encode() in cmdline
    return True


def _kill_group(pgid: int) -> None:
    if _group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class NginxProcess(SupervisedChild):
    name = "nginx"
    pid_name = "nginx-master.pid"
    new_session = True  # its own process group: the workers are killed with it

    def __init__(
        self,
        binary: str,
        files: NginxFiles,
        run_dir: Path,
        log_path: Path,
        http_addr: tuple[str, int],
    ) -> None:
        super().__init__(run_dir, log_path)
        self._binary = binary
        self._files = files
        self._http_addr = http_addr
        # A PID namespace needs root; without it, the process group below is all there is.
        self._unshare = shutil.which("unshare") if os.geteuid() == 0 else None

    @property
    def conf_path(self) -> Path:
        return self._run_dir / "nginx.conf"

    def _prepare(self) -> None:
        for folder in temp_folders(self._run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for socket in self._files.unix_sockets:
            socket.unlink(missing_ok=True)
        files = [(self.conf_path, self._files.conf)]
        if self._files.js is not None:
            files.append((self._run_dir / "nginx-certificate.js", self._files.js))
        for path, text in files:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def _command(self) -> list[str]:
        prefix = self._run_dir / "nginx"
        command = [self._binary, "-e", str(self._log_path), "-p", f"{prefix}/", "-c", str(self.conf_path)]
        if self._unshare is None:
            return command
        # nginx as the first process of a PID namespace of its own: when its master dies (even by SIGKILL),
        # the kernel kills its workers; when this wrapper dies (with the supervisor), the master is stopped.
        return [self._unshare, "--pid", "--fork", "--kill-child=SIGTERM", "--", *command]

    def _responding(self) -> bool:
        return listening(self._http_addr)

    def _kill_stale(self) -> None:
        """A group left by an earlier run (its master's pid is the group's id): its workers may still
        hold the listening sockets even when the master is gone."""
        try:
            pgid = int((self._run_dir / self.pid_name).read_text())
        except (OSError, ValueError):
            return
        members = _group_members(pgid)
        if members and _ours(members, self._run_dir):
            log.warning("stopping an nginx (process group %s) left by an earlier run", pgid)
            _kill_group(pgid)
            time.sleep(0.2)

    def _terminate(self) -> None:
        """SIGTERM to the whole group (the unshare wrapper ignores it while it waits; the master shuts
        down, and its workers), SIGKILL if that takes too long, then whatever is left of the group."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        _kill_group(proc.pid)
