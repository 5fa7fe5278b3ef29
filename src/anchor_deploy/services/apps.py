"""Python web apps: their environment variables (frozen per deployment), builds and worker specs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from anchor_deploy.model.apps import (
    MAX_ENV_VARS,
    AppConfig,
    EnvVar,
    FrozenEnv,
    requirements_from_pyproject,
    validate_env_key,
    validate_env_var,
    validate_requirements,
)
from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project
from anchor_deploy.model.errors import AnchorError, InvalidInput, NotFound
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports import BlobStore, DeploymentFiles
from anchor_deploy.ports.runtime import (
    AppRuntime,
    BuildLimits,
    EnvironmentBuilder,
    SecretBox,
    WorkerSpec,
)
from anchor_deploy.ports.store import BuildRepositories, EnvRepository


class EnvService:
    """A project's environment variables. Values are sealed at rest; secret ones are never shown again."""

    def __init__(self, store: EnvRepository, box: SecretBox) -> None:
        self._store = store
        self._box = box

    def set(self, project: Project, key: object, value: object, secret: object) -> EnvVar:
        key, value = validate_env_var(key, value)
        if not isinstance(secret, bool):
            raise InvalidInput("secret must be true or false")
        known = {k for k, *_ in self._store.list_env(project.id)}
        if key not in known and len(known) >= MAX_ENV_VARS:
            raise InvalidInput(f"a project may have at most {MAX_ENV_VARS} variables")
        self._store.set_env(project.id, key, self._box.seal(value.encode()), secret)
        return next(v for v in self.list(project) if v.key == key)

    def list(self, project: Project) -> list[EnvVar]:
        return [
            EnvVar(k, "" if secret else self._box.open(sealed).decode(), secret, at)
            for k, sealed, secret, at in self._store.list_env(project.id)
        ]

    def delete(self, project: Project, key: str) -> None:
        validate_env_key(key)
        if not self._store.delete_env(project.id, key):
            raise NotFound(f"{key} is not set on {project.name}")

    def freeze(self, project: Project, app: AppConfig) -> FrozenEnv:
        """The deployment's variables: anchor.toml's [app] env, overridden by the project's own."""
        values = dict(app.env)
        secret_keys = set()
        for key, sealed, secret, _at in self._store.list_env(project.id):
            values[key] = self._box.open(sealed).decode()
            if secret:
                secret_keys.add(key)
        return FrozenEnv(values, frozenset(secret_keys))

    def seal(self, frozen: FrozenEnv) -> bytes:
        payload = {"values": frozen.values, "secret": sorted(frozen.secret_keys)}
        return self._box.seal(json.dumps(payload).encode())

    def unseal(self, sealed: bytes) -> FrozenEnv:
        if not sealed:
            return FrozenEnv()
        payload = json.loads(self._box.open(sealed))
        return FrozenEnv(dict(payload["values"]), frozenset(payload["secret"]))


def detect_app(files: list[ManifestFile]) -> AppConfig | None:
    """An upload with app.py and requirements.txt (or pyproject.toml) is a Python app, `app:app`."""
    paths = {f.path for f in files}
    if "app.py" in paths and ({"requirements.txt", "pyproject.toml"} & paths):
        static = "public" if any(p.startswith("public/") for p in paths) else None
        return AppConfig(static_dir=static)
    return None


@dataclass(frozen=True)
class BuildSettings:
    timeout: float = 600.0
    memory_bytes: int = 4 * 1024**3
    health_timeout: float = 30.0


class AppBuilds:
    """Builds an app deployment (environment + health check) and describes how to run any version."""

    def __init__(
        self,
        store: BuildRepositories,
        blobs: BlobStore,
        files: DeploymentFiles,
        envs: EnvironmentBuilder,
        runtime: AppRuntime,
        env_service: EnvService,
        settings: BuildSettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._files = files
        self._envs = envs
        self._runtime = runtime
        self._env = env_service
        self._settings = settings
        self._monotonic = monotonic

    def requirements(self, deployment_id: str, check: bool = True) -> bytes:
        """The deployment's requirements.txt text (or its pyproject.toml dependencies as one). ``check``
        refuses what pip must not read (InvalidInput) and is for builds; without it the text only names the
        environment an earlier build made (nothing is installed), so an app built before a stricter check
        keeps running and its environment is not collected."""
        by_path = {f.path: f for f in self._store.manifest(deployment_id)}
        if "requirements.txt" in by_path:
            text = self._blobs.read(by_path["requirements.txt"].sha256).decode("utf-8", "replace")
        elif "pyproject.toml" in by_path:
            text = requirements_from_pyproject(
                self._blobs.read(by_path["pyproject.toml"].sha256).decode("utf-8", "replace"), check
            )
        else:
            text = ""
        return (validate_requirements(text) if check else text).encode()

    def requirements_of(self, deployment_id: str) -> tuple[bytes, str | None] | None:
        deployment = self._store.deployment(deployment_id)
        if deployment is None or deployment.app is None:
            return None
        return self.requirements(deployment_id, check=False), deployment.app.python

    def build(self, deployment: Deployment, log: Callable[[str], None]) -> None:
        """Environment (reused when the dependencies are the same), then start and health-check the app.
        Raises BuildFailed or WorkerFailed with the cause."""
        assert deployment.app is not None
        limits = BuildLimits(
            self._monotonic() + self._settings.timeout,
            self._settings.memory_bytes,
            self._store.project_number(deployment.project_id),
            canceled=lambda: self._canceled(deployment.id),
        )
        self._envs.ensure(self.requirements(deployment.id), deployment.app.python, limits, log)
        spec = self.spec(deployment.id, allow_building=True)
        if spec is None:
            raise InvalidInput("the app's environment disappeared during the build")
        log(f"starting the app ({deployment.app.entry}) and checking GET {deployment.app.health_path}")
        timeout = min(self._settings.health_timeout, max(1.0, limits.deadline - self._monotonic()))
        self._runtime.ensure(spec, timeout)
        log("the app answered its health check")

    def _canceled(self, deployment_id: str) -> bool:
        """A newer push to the build's branch canceled it: its running step stops."""
        current = self._store.deployment(deployment_id)
        return current is None or current.status == DeploymentStatus.CANCELED

    def restore_environments(self, first: Collection[str] = ()) -> list[str]:
        """Rebuild the environments that READY app deployments lack (a restored backup carries none; an
        operator may have removed envs/), those in ``first`` before the others, each dependency set once.
        Returns the deployments that can run again. One whose environment cannot be rebuilt keeps its
        status, and the cause goes to its build log, as the rebuild's own lines do."""
        apps = [d for d in self._store.deployments_with_status([DeploymentStatus.READY]) if d.app]
        apps.sort(key=lambda d: d.id not in first)
        missing = [d for d in apps if not self._has_environment(d)]
        restored = []
        for deployment in missing:
            assert deployment.app is not None

            def log(line: str, deployment_id: str = deployment.id) -> None:
                self._store.append_log(deployment_id, [line])

            log("the app's environment is missing (as after a restore): rebuilding it")
            limits = BuildLimits(
                self._monotonic() + self._settings.timeout,
                self._settings.memory_bytes,
                self._store.project_number(deployment.project_id),
            )
            try:
                self._envs.ensure(self.requirements(deployment.id), deployment.app.python, limits, log)
            except AnchorError as exc:
                log(f"the environment could not be rebuilt: {exc}")
                continue
            restored.append(deployment.id)
        return restored

    def _has_environment(self, deployment: Deployment) -> bool:
        assert deployment.app is not None
        try:
            requirements = self.requirements(deployment.id, check=False)
            return self._envs.locate(requirements, deployment.app.python) is not None
        except AnchorError:
            return False  # e.g. its Python is gone: the rebuild says so in the build log

    def keep_warm(self, project_id: str, deployment_ids: set[str]) -> None:
        """The project's versions that stay running; the others stop when idle."""
        self._runtime.keep_warm(project_id, deployment_ids)

    def runtime_log(self, deployment_id: str, limit: int = 200) -> list[str]:
        """The last ``limit`` lines the app's workers wrote."""
        return self._runtime.runtime_log(deployment_id, limit)

    def spec(self, deployment_id: str, allow_building: bool = False) -> WorkerSpec | None:
        deployment = self._store.deployment(deployment_id)
        ok = (
            {DeploymentStatus.READY, DeploymentStatus.BUILDING}
            if allow_building
            else {DeploymentStatus.READY}
        )
        if deployment is None or deployment.app is None or deployment.status not in ok:
            return None
        environment = self._envs.locate(self.requirements(deployment_id, check=False), deployment.app.python)
        if environment is None:
            return None
        frozen = self._env.unseal(self._store.sealed_env(deployment_id))
        return WorkerSpec(
            deployment_id,
            environment,
            self._files.app_files(deployment_id),
            deployment.app,
            environ=dict(frozen.values),
            redact=tuple(frozen.secret_values),
            tenant=self._store.project_number(deployment.project_id),
        )
