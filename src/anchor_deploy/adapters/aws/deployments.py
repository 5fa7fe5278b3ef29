"""The deployment ports on Lambda: every deployment is a version of its project's function.

- LambdaDeploymentFiles (DeploymentFiles): a static deployment is published when it is built, as a version
  of the static handler whose manifest names the files' blobs in S3; an app's version is published by the
  runtime below, once its dependencies are built.
- LambdaEnvironments (EnvironmentBuilder): an app's dependencies built for Lambda's platform in the build
  sandbox; the reference is the local folder the package is made from.
- LambdaAppRuntime (AppRuntime): packages the app with its dependencies, publishes it with its frozen
  environment (secrets sealed by KMS) and health-checks the version through its alias.

Lambda runs and scales versions itself: there is no worker to stop or keep warm, and a project's deletion
deletes its function (every version, alias and URL) and its CloudFront distribution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.cloudfront import CloudFrontDistributions, origin_domain
from anchor_deploy.adapters.aws.lambda_code import package_zip
from anchor_deploy.adapters.aws.lambda_deps import TARGET, LambdaDependencies
from anchor_deploy.adapters.aws.lambda_functions import LambdaFunctions
from anchor_deploy.adapters.aws.lambda_invoke import InvokeResult, LambdaInvoker
from anchor_deploy.adapters.aws.lambda_package import (
    LambdaPackage,
    app_package,
    lambda_python,
    static_package,
    version_environment,
)
from anchor_deploy.adapters.aws.sandbox_invoke import SandboxInvoker
from anchor_deploy.model.apps import AppConfig, FrozenEnv
from anchor_deploy.model.entities import Deployment
from anchor_deploy.model.errors import BlobUnavailable, EdgeError, WorkerFailed
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports import BlobStore
from anchor_deploy.ports.leases import LeaseRepository
from anchor_deploy.ports.runtime import BuildLimits, SecretBox, WorkerSpec

log = logging.getLogger(__name__)
PUBLISH_WAIT = 120.0


class DeploymentsAndManifests(LeaseRepository, Protocol):
    def deployment(self, deployment_id: str) -> Deployment | None: ...

    def manifest(self, deployment_id: str) -> list[ManifestFile]: ...


class Publisher:
    """Publishes a deployment's package as a version under the project's lease ``publish:<project>`` (two
    control-plane processes building for one project take turns on $LATEST instead of racing on it)."""

    def __init__(
        self,
        functions: LambdaFunctions,
        store: DeploymentsAndManifests,
        bucket: str,
        holder: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.functions = functions
        self._store = store
        self.bucket = bucket
        self._holder = holder
        self._sleep = sleep

    def project_of(self, deployment_id: str) -> str:
        deployment = self._store.deployment(deployment_id)
        if deployment is None:
            raise EdgeError(f"deployment {deployment_id} is gone")
        return deployment.project_id

    def publish(self, deployment_id: str, package: LambdaPackage, environment: dict[str, str]) -> str:
        project_id = self.project_of(deployment_id)
        lease = f"publish:{project_id}"
        deadline = time.monotonic() + PUBLISH_WAIT
        while not self._store.acquire_lease(lease, self._holder, PUBLISH_WAIT):
            if time.monotonic() > deadline:
                raise EdgeError(f"another control plane has been publishing to {project_id} for too long")
            self._sleep(0.2)
        try:
            env = {**environment, "ANCHOR_DEPLOYMENT_ID": deployment_id, "ANCHOR_BLOB_BUCKET": self.bucket}
            return self.functions.publish(project_id, deployment_id, package, env)
        except (ClientError, BotoCoreError) as exc:  # the port's error, with AWS's own reason
            raise EdgeError(f"Lambda could not publish {deployment_id}: {exc}") from exc
        finally:
            self._store.release_lease(lease, self._holder)
            package.discard()


class LambdaDeploymentFiles:
    def __init__(self, publisher: Publisher, blobs: BlobStore) -> None:
        self._publisher = publisher
        self._blobs = blobs
        self._listed: set[str] = set()  # projects whose aliases this process has read in one listing

    def materialize(
        self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None = None
    ) -> None:
        missing = self._blobs.missing(f.sha256 for f in files)
        if missing:
            path = next(f.path for f in files if f.sha256 == missing[0])
            raise BlobUnavailable(f"blob {missing[0]} of {path!r} is not in the store; upload it again")
        if app is None:
            self._publisher.publish(deployment_id, static_package(deployment_id, files), {})

    def relink(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        digests: set[str],
        app: AppConfig | None = None,
    ) -> int:
        return 0  # a version reads its blobs from S3 by digest: nothing holds a copy to swap

    def app_files(self, deployment_id: str) -> str:
        return deployment_id  # the runtime reads the manifest from the database and the bytes from S3

    def exists(self, deployment_id: str) -> bool:
        """Whether the deployment's version is published. The first question about a project reads all its
        aliases at once; later ones are answered from memory (or ask for that one alias if it is new)."""
        try:
            project_id = self._publisher.project_of(deployment_id)
        except EdgeError:
            return False
        functions = self._publisher.functions
        if project_id not in self._listed:
            functions.learn_versions(project_id)
            self._listed.add(project_id)
        return functions.version_of(project_id, deployment_id) is not None

    def present(self) -> list[str]:
        return []  # versions of deleted deployments go with retention's prune or their project's function

    def remove(self, deployment_id: str) -> None:
        """Nothing here: a pruned deployment's version went with the runtime's discard (called while its row
        still names its project), a deleted project's function goes whole."""

    def collect(self, older_than: float) -> int:
        return 0  # versions share nothing but blobs, which the blob store collects


class LambdaEnvironments:
    """EnvironmentBuilder over LambdaDependencies (references are the dependency folders)."""

    def __init__(self, dependencies: LambdaDependencies) -> None:
        self._deps = dependencies

    def ensure(
        self, requirements: bytes, python: str | None, limits: BuildLimits, log: Callable[[str], None]
    ) -> str:
        return str(self._deps.ensure(requirements, _python_only(python), limits, log))

    def locate(self, requirements: bytes, python: str | None) -> str | None:
        """The published versions carry their dependencies: a READY app never needs them rebuilt, so the
        reference is where a build would put them, whether or not this machine has them now."""
        key = self._deps.key(requirements, lambda_python(_python_only(python)))
        return str(self._deps.root / key / TARGET)

    def collect(self, keep: set[str]) -> int:
        return self._deps.collect({Path(k) for k in keep})


class LambdaAppRuntime:
    def __init__(
        self,
        publisher: Publisher,
        store: DeploymentsAndManifests,
        blobs: BlobStore,
        box: SecretBox,
        cdn: CloudFrontDistributions,
        invoker: LambdaInvoker | None,
        sandboxed: SandboxInvoker | None,
        build_memory: int,
    ) -> None:
        self._publisher = publisher
        self._store = store
        self._blobs = blobs
        self._box = box
        self._cdn = cdn
        self._invoker = invoker
        self._sandboxed = sandboxed
        self._memory = build_memory

    def ensure(self, spec: WorkerSpec, timeout: float) -> None:
        """Package, publish (or find the version a crashed attempt published) and health-check."""
        files = self._store.manifest(spec.deployment_id)
        dependencies = Path(spec.environment)
        package = app_package(
            spec.deployment_id,
            files,
            self._blobs.read,
            dependencies if dependencies.is_dir() else None,
            spec.app,
        )
        secret_keys = frozenset(k for k, v in spec.environ.items() if v and v in spec.redact)
        platform = {"ANCHOR_APP_ENTRY": spec.app.entry}
        environment = version_environment(FrozenEnv(dict(spec.environ), secret_keys), self._box, platform)
        zipped = package_zip(package) if self._sandboxed is not None else b""
        self._publisher.publish(spec.deployment_id, package, environment)
        result = self._check(spec, zipped, package.handler, environment, timeout)
        if not result.ok:
            raise WorkerFailed(f"the app's health check on Lambda failed: {result.reason}")

    def _check(
        self, spec: WorkerSpec, zipped: bytes, handler: str, environment: dict[str, str], timeout: float
    ) -> InvokeResult:
        path = spec.app.health_path
        if self._sandboxed is not None:
            full = {
                **environment,
                "ANCHOR_DEPLOYMENT_ID": spec.deployment_id,
                "ANCHOR_BLOB_BUCKET": self._publisher.bucket,
            }
            limits = BuildLimits(time.monotonic() + timeout, self._memory, spec.tenant)
            return self._sandboxed.invoke(zipped, handler, full, path, limits, lambda line: log.info(line))
        assert self._invoker is not None
        name = self._publisher.functions.function_name(self._publisher.project_of(spec.deployment_id))
        return self._invoker.check_deployment(name, spec.deployment_id, path)

    def stop(self, deployment_id: str) -> None:
        """Lambda stops idle environments itself."""

    def discard(self, deployment_id: str) -> None:
        """A pruned deployment (its row still exists): its alias, URL and version go."""
        try:
            project_id = self._publisher.project_of(deployment_id)
        except EdgeError:
            return
        self._publisher.functions.remove_deployment(project_id, deployment_id)

    def stop_project(self, project_id: str, deployment_ids: list[str]) -> None:
        """The project is gone: its function (every version, alias, URL and package) and its distribution."""
        self._publisher.functions.delete_function(project_id)
        self._cdn.delete(project_id)

    def keep_warm(self, project_id: str, deployment_ids: set[str]) -> None:
        """Lambda keeps no version warm unless it is given provisioned concurrency (not configured here)."""

    def runtime_log(self, deployment_id: str, limit: int = 200) -> list[str]:
        return []  # a version's output is in CloudWatch Logs (/aws/lambda/<function>)


class ProductionCdn:
    """Puts the project's CloudFront distribution in front of its production alias's URL once that alias
    exists (the first production deployment); later moves never touch CloudFront."""

    def __init__(
        self,
        functions: LambdaFunctions,
        cdn: CloudFrontDistributions,
        made: Callable[[str, str], None] = lambda _project_id, _domain: None,
    ) -> None:
        self._functions = functions
        self._cdn = cdn
        self._made = made  # told (project id, distribution domain)

    def production_created(self, project_id: str) -> None:
        _id, domain = self._cdn.ensure(project_id, origin_domain(self._functions.production_url(project_id)))
        self._made(project_id, domain)

    def converge(self, project_ids: Sequence[str]) -> dict[str, Exception]:
        """Each of these projects (which have a production deployment) has its distribution: one listing of
        the distributions for all of them, then a create or an origin fix only where one is missing or
        wrong. Returns what failed, by project: the others are done all the same."""
        listing = self._cdn.by_project() if project_ids else {}
        failed: dict[str, Exception] = {}
        for project_id in project_ids:
            try:
                origin = origin_domain(self._functions.production_url(project_id))
                _id, domain = self._cdn.ensure(project_id, origin, listing)
                self._made(project_id, domain)
            except Exception as exc:  # one project's trouble does not stop the others'
                failed[project_id] = exc
        return failed


def _python_only(python: str | None) -> AppConfig:
    """LambdaDependencies reads only the app's Python version."""
    return AppConfig(python=python)
