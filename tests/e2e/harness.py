"""Real-process harness: runs `anchor up` (API + a real edge: Caddy or nginx) on free loopback ports in a temp
data dir."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port

LOOPBACK = "127.0.0.1"


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """``check()``'s first truthy answer, asked every 50 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class AnchorProcess:
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    edge_server: str = "caddy"  # ANCHOR_EDGE: the web server of the edge, "caddy" or "nginx"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def edge_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
        env.update(
            {
                "ANCHOR_DATA_DIR": str(self.data_dir),
                "ANCHOR_API_ADDR": f"{LOOPBACK}:{self.api_port}",
                "ANCHOR_HTTP_ADDR": f"{LOOPBACK}:{self.http_port}",
                "ANCHOR_HTTPS_ADDR": f"{LOOPBACK}:{self.https_port}",
                "ANCHOR_EDGE": self.edge_server,
                **self.extra_env,
            }
        )
        return env

    def start(self, timeout: float = 30) -> AnchorProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / f"{self.data_dir.name}-up.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anchor_deploy.cli.main", "up"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()  # a start that fails leaves no platform behind (no fixture would stop it)
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anchor up exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                health = httpx.get(f"{self.api_url}/v1/health", timeout=2).json()
                if health.get("ok") and health.get("edge"):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"anchor up did not become healthy:\n{self.log_tail()}")
        given = self.extra_env.get("ANCHOR_ADMIN_TOKEN")
        self.token = given or (self.data_dir / "admin-token").read_text().strip()

    def log_tail(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}-up.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, timeout=30, headers={"Authorization": f"Bearer {token or self.token}"}
        )

    def edge(self, host: str, path: str = "/", **kwargs: Any) -> httpx.Response:
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return httpx.get(f"{self.edge_url}{path}", headers=headers, timeout=10, **kwargs)

    def cli(
        self,
        *args: str,
        token: str | None = None,
        check: bool = True,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The real CLI against this platform, as a script runs it: no terminal (stdin is empty, or
        ``stdin``); ``env`` is applied last (e.g. ``{"ANCHOR_TOKEN": ""}``)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
        full_env.update(
            {
                "ANCHOR_API_URL": self.api_url,
                "ANCHOR_TOKEN": token or self.token,
                "ANCHOR_CONFIG": str(self.data_dir.parent / "cli-config.json"),
                **(env or {}),
            }
        )
        done = subprocess.run(
            [sys.executable, "-m", "anchor_deploy.cli.main", *args],
            env=full_env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"anchor {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def edge_pid(self) -> int:
        """The pid of the edge's web server as the platform supervises it (for nginx: what leads it)."""
        name = "nginx-master.pid" if self.edge_server == "nginx" else "caddy.pid"
        return int((self.data_dir / "run" / name).read_text())


def upload_and_deploy(
    api: httpx.Client, project: str, files: dict[str, bytes], target: str = "production", wait: bool = True
) -> dict[str, Any]:
    """The deploy protocol by hand: offer the manifest, upload what is missing, offer again, wait."""
    manifest = [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]
    body = {"files": manifest, "target": target}
    response = api.post(f"/v1/projects/{project}/deployments", json=body)
    if response.status_code == 409 and response.json()["error"]["code"] == "missing_files":
        by_digest = {sha(b): b for b in files.values()}
        for digest in response.json()["error"]["missing"]:
            assert api.put(f"/v1/blobs/{digest}", content=by_digest[digest]).status_code in (200, 201)
        response = api.post(f"/v1/projects/{project}/deployments", json=body)
    assert response.status_code == 201, response.text
    deployment = response.json()
    return wait_final(api, deployment["id"]) if wait else deployment


def wait_final(api: httpx.Client, deployment_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployment = api.get(f"/v1/deployments/{deployment_id}").json()
        final = deployment["status"] in ("ERROR", "CANCELED") or (
            deployment["status"] == "READY" and not deployment.get("goLivePending")
        )
        if final:  # a READY production build: once production has moved to it (or stayed pinned)
            return deployment
        time.sleep(0.02)
    raise AssertionError(f"{deployment_id} never finished")


def ensure_project(api: httpx.Client, name: str) -> dict[str, Any]:
    response = api.post("/v1/projects", json={"name": name})
    assert response.status_code in (201, 409), response.text
    return api.get(f"/v1/projects/{name}").json()
