"""Runs the pinned Caddy binary as a supervised child (edge_process.SupervisedChild): started,
health-checked through its admin socket, restarted with backoff."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx

from anchor_deploy.adapters.local.edge_process import SupervisedChild, listening

_SOCKET_PATH_MAX = 100
_SOCKET_NAME_ROOM = 40  # "/sockets/worker/dpl_xxxxxxxxxxxx.sock.up"


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


class CaddyProcess(SupervisedChild):
    name = "Caddy"
    pid_name = "caddy.pid"

    def __init__(
        self,
        binary: str,
        config: dict[str, Any],
        run_dir: Path,
        log_path: Path,
        http_addr: tuple[str, int],
        admin_socket: Path,
    ) -> None:
        super().__init__(run_dir, log_path)
        self._binary = binary
        self._config = config
        self._http_addr = http_addr
        self._admin_socket = admin_socket

    def _prepare(self) -> None:
        path = self._run_dir / "caddy.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._config, indent=1))
        os.replace(tmp, path)
        self._admin_socket.unlink(missing_ok=True)

    def _command(self) -> list[str]:
        return [self._binary, "run", "--config", str(self._run_dir / "caddy.json")]

    def _environment(self) -> dict[str, str]:
        return {
            **super()._environment(),
            "XDG_DATA_HOME": str(self._run_dir / "data"),
            "XDG_CONFIG_HOME": str(self._run_dir / "config"),
        }

    def _responding(self) -> bool:
        if not listening(self._http_addr):
            return False
        try:
            # Plain HTTP on a unix socket: no TLS, so no CA bundle to parse on every check (twice a second).
            transport = httpx.HTTPTransport(uds=str(self._admin_socket), verify=False)
            with httpx.Client(transport=transport, timeout=2) as admin:
                return admin.get("http://caddy/config/apps/http/servers/edge/listen").status_code == 200
        except (OSError, httpx.HTTPError):
            return False
