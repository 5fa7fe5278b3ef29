"""The platform under test, whichever provider runs it: one scenario suite, two providers.

A scenario speaks to the platform only through its API and CLI (as a user does) and reads what it serves
through ``fetch(host, path)``. Each provider adds what only it can check: on AWS, that the ``production``
Lambda alias names the deployment's version (never ``$LATEST``) and that a rollback left CloudFront alone.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.e2e.apps_support import wheelhouse
from tests.e2e.harness import LOOPBACK, AnchorProcess


@dataclass(frozen=True)
class Served:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class PlatformUnderTest(Protocol):
    provider: str
    anchor: AnchorProcess

    def api(self, token: str | None = None) -> httpx.Client: ...

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...

    def fetch(self, host: str, path: str = "/") -> Served: ...

    def production(self, project: dict[str, Any], path: str = "/") -> Served:
        """What the project's production URL serves (``project``: the API's answer for it)."""
        ...

    def deployment(self, deployment: dict[str, Any], path: str = "/") -> Served:
        """What the deployment's own URL serves (``deployment``: the API's answer for it)."""
        ...

    def check_production(self, project: str, deployment_id: str) -> None:
        """What the provider's data plane says production is (AWS: the Lambda alias), beyond the bytes."""
        ...

    def cdn_marker(self, project: str) -> object:
        """Something that changes whenever the project's CDN configuration is updated (None: no CDN)."""
        ...

    def check_project_gone(self, project_id: str, deployment_ids: list[str]) -> None: ...

    def custom_domain(self, name: str, path: str = "/") -> Served:
        """What a visitor of the custom domain ``name`` gets over HTTPS, through the provider's own
        checks (AWS: the distribution holding the name must be deployed with one certificate covering
        every alias on it)."""
        ...

    def check_domain_gone(self, name: str) -> None:
        """Nothing of the provider still serves ``name`` or holds a certificate for it."""
        ...

    def stored_text(self) -> Iterator[tuple[str, bytes]]:
        """Every stored record or file of the platform (where a secret must never be in clear)."""
        ...


def host_of(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]


@dataclass
class LocalPlatform:
    anchor: AnchorProcess
    provider: str = "local"

    def api(self, token: str | None = None) -> httpx.Client:
        return self.anchor.api(token)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.anchor.cli(*args, check=check)

    def fetch(self, host: str, path: str = "/") -> Served:
        response = httpx.get(f"{self.anchor.edge_url}{path}", headers={"Host": host}, timeout=30)
        return Served(response.status_code, dict(response.headers), response.content)

    def production(self, project: dict[str, Any], path: str = "/") -> Served:
        return self.fetch(host_of(project["productionUrl"]), path)

    def deployment(self, deployment: dict[str, Any], path: str = "/") -> Served:
        return self.fetch(host_of(deployment["url"]), path)

    def check_production(self, project: str, deployment_id: str) -> None:
        with self.api() as api:
            assert api.get(f"/v1/projects/{project}").json()["productionDeploymentId"] == deployment_id

    def cdn_marker(self, project: str) -> object:
        return None

    def check_project_gone(self, project_id: str, deployment_ids: list[str]) -> None:
        for deployment_id in deployment_ids:
            assert not (self.anchor.data_dir / "deployments" / deployment_id).exists()

    def _curl(self, name: str, path: str) -> subprocess.CompletedProcess[str]:
        port = self.anchor.https_port
        return subprocess.run(
            [
                "curl", "-sS", "--max-time", "5", "--cacert", str(self.anchor.data_dir / "ca" / "root.pem"),
                "--resolve", f"{name}:{port}:{LOOPBACK}", "-o", "-", "-w", "\\n%{http_code}",
                f"https://{name}:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=15,
        )  # fmt: skip

    def custom_domain(self, name: str, path: str = "/") -> Served:
        done = self._curl(name, path)
        assert done.returncode == 0, done.stderr
        body, _, status = done.stdout.rpartition("\n")
        return Served(int(status), {}, body.encode())

    def check_domain_gone(self, name: str) -> None:
        assert self._curl(name, "/").returncode != 0, f"{name} is still served over HTTPS"
        assert not (self.anchor.data_dir / "certificates" / f"{name}.pem").exists()

    def stored_text(self) -> Iterator[tuple[str, bytes]]:
        for path in self.anchor.data_dir.rglob("*"):
            if "envs" in path.relative_to(self.anchor.data_dir).parts:
                continue
            if path.is_file() and not path.is_symlink():
                yield str(path), path.read_bytes()


@contextmanager
def local_platform(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[LocalPlatform]:
    env = {"ANCHOR_PIP_ARGS": f"--no-index --find-links {wheelhouse()}", **(extra_env or {})}
    anchor = AnchorProcess(root / "data", extra_env=env).start()
    try:
        yield LocalPlatform(anchor)
    finally:
        anchor.stop()


def json_of(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


@contextmanager
def open_platform(
    provider: str, root: Path, request: Any, extra_env: dict[str, str] | None = None
) -> Iterator[PlatformUnderTest]:
    """The platform for ``provider``, started in ``root`` (``request`` gives access to other fixtures)."""
    if provider == "local":
        with local_platform(root, extra_env) as platform:
            yield platform
        return
    if provider == "aws":
        from tests.e2e.aws_platform import aws_platform

        with aws_platform(root, request.getfixturevalue("moto"), extra_env) as aws:
            yield aws
        return
    raise ValueError(f"unknown provider {provider!r}")
