"""Running Python apps: sealing their secrets, building their environments, and their worker processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from anchor_deploy.model.apps import AppConfig


class SecretBox(Protocol):
    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes:
        """Raises InvalidInput if the bytes were not sealed by this box's key."""
        ...


def never() -> bool:
    return False


@dataclass(frozen=True)
class BuildLimits:
    deadline: float  # time.monotonic() value after which the build is stopped
    memory_bytes: int
    tenant: int | None = None  # the project's number: the sandbox runs its build as that project's uid
    # Asked about twice a second while a step runs: True stops it at once (the build was canceled).
    canceled: Callable[[], bool] = field(default=never, compare=False)


class EnvironmentBuilder(Protocol):
    def ensure(
        self, requirements: bytes, python: str | None, limits: BuildLimits, log: Callable[[str], None]
    ) -> str:
        """An environment with ``requirements`` (and the worker server) installed, reused when one with the
        same dependency set exists. Returns its reference (opaque to the services: only the provider's
        runtime knows what it names). Raises BuildFailed with the cause."""
        ...

    def locate(self, requirements: bytes, python: str | None) -> str | None:
        """The reference of the complete environment for this dependency set, if there is one."""
        ...

    def collect(self, keep: set[str]) -> int:
        """Delete the environments not in ``keep``; return how many."""
        ...


@dataclass(frozen=True)
class WorkerSpec:
    """Everything needed to run one app version: the local Lambda version."""

    deployment_id: str
    environment: str  # EnvironmentBuilder's reference to the installed dependencies
    app_files: str  # DeploymentFiles' reference to the app's own copy of its files
    app: AppConfig
    environ: dict[str, str] = field(default_factory=dict)
    redact: tuple[str, ...] = ()
    tenant: int | None = None  # the project's number: the sandbox runs the worker as that project's uid


class AppRuntime(Protocol):
    def ensure(self, spec: WorkerSpec, timeout: float) -> None:
        """Start the worker if it is not running and wait until its health path answers below 500.
        Raises WorkerFailed (with the cause from its output) if it crashes or stays unhealthy."""
        ...

    def stop(self, deployment_id: str) -> None: ...

    def discard(self, deployment_id: str) -> None:
        """The deployment is deleted: stop its worker and drop its runtime log."""
        ...

    def stop_project(self, project_id: str, deployment_ids: list[str]) -> None:
        """The project is gone: stop its workers now and keep none of them warm."""
        ...

    def keep_warm(self, project_id: str, deployment_ids: set[str]) -> None:
        """A project's versions that stay running (restarted if they die); the others stop when idle."""
        ...

    def runtime_log(self, deployment_id: str, limit: int = 200) -> list[str]: ...


SpecLoader = Callable[[str], WorkerSpec | None]
