"""Lambda functions: one per project; every deployment is a published version with its own alias and URL.

A project's function is ``<prefix><project id>``. Publishing a deployment updates ``$LATEST`` (configuration,
then code, each passing the function's RevisionId and waiting for LastUpdateStatus Successful), reads it
back, and publishes a version only if that read shows exactly this deployment's code (CodeSha256),
handler, runtime, environment and description, passing the read's RevisionId and the package's CodeSha256:
so a version is never cut from what another writer put in ``$LATEST`` meanwhile (it starts over, a bounded
number of times). The version's Description is the deployment id: a retry after a crash finds it by that
instead of publishing a second one. Concurrent publishes to one project only cost retries; a per-project
lease around ``publish`` avoids even those.

Each deployment gets an alias named after its deployment id, pointing at its version, with its own function
URL, so each deployment keeps its own URL until retention prunes it. Function URLs use AuthType NONE (with
the two resource-policy statements a public URL needs): a deployment's URL is served to browsers directly,
with no CloudFront in front to sign requests (AWS_IAM with CloudFront OAC would make those URLs
unreachable, and OAC would make every POST body carry a payload hash). The project's production URL is
the alias named ``production`` (moved by LambdaEdge) behind CloudFront. ``$LATEST`` is never served.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.client_errors import is_error
from anchor_deploy.adapters.aws.lambda_code import LambdaPackageLike, code_argument, delete_packages
from anchor_deploy.adapters.aws.lambda_urls import delete_url, ensure_url, url_of
from anchor_deploy.model.errors import EdgeError

PRODUCTION_ALIAS = "production"
LATEST = "$LATEST"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_RETRYABLE = ("PreconditionFailedException", "ResourceConflictException")
_NOT_FOUND = "ResourceNotFoundException"


class ClientSource(Protocol):
    """Where clients come from (AwsClients; a fake in tests)."""

    def client(self, service: str) -> Any: ...

    def regional(self, service: str, region: str) -> Any: ...


@dataclass(frozen=True)
class FunctionSettings:
    role_arn: str
    bucket: str  # where packages too large for a direct upload go, under packages/<project>/
    prefix: str = "anchor-"
    memory_mb: int = 1024
    timeout_s: int = 30
    attempts: int = 5  # publish rounds when another writer changed the function meanwhile
    page_size: int = 50  # MaxItems of ListVersionsByFunction and ListAliases


@dataclass(frozen=True)
class ProductionAlias:
    version: str
    revision_id: str | None


@dataclass
class PruneResult:
    aliases: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


class AliasChanged(Exception):
    """The production alias changed (or appeared) since it was read: read it again."""


class NotPublished(EdgeError):
    """A deployment with no published version on its project's function."""


def deployment_alias(deployment_id: str) -> str:
    """The alias of one deployment: its id, which is already valid Lambda alias syntax."""
    if not _ALIAS.fullmatch(deployment_id) or deployment_id.isdigit() or deployment_id == PRODUCTION_ALIAS:
        raise ValueError(f"{deployment_id!r} cannot name a Lambda alias")
    return deployment_id


class LambdaFunctions:
    def __init__(self, clients: ClientSource, settings: FunctionSettings) -> None:
        self._clients = clients
        self._lambda = clients.client("lambda")
        self.settings = settings
        self._versions: dict[tuple[str, str], str] = {}  # (project, deployment) -> version: never changes
        self._lock = threading.Lock()

    def function_name(self, project_id: str) -> str:
        name = self.settings.prefix + project_id
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} cannot name a Lambda function")
        return name

    # -- publishing ----------------------------------------------------------------------------------
    def publish(
        self, project_id: str, deployment_id: str, package: LambdaPackageLike, environment: dict[str, str]
    ) -> str:
        """Publish the deployment as a version (or find the one a crashed attempt published), give it its
        alias and URL; returns the version."""
        name = self.function_name(project_id)
        for _ in range(self.settings.attempts):
            version = self._version_described(name, deployment_id)
            if version is None:
                try:
                    version = self._publish_new(project_id, deployment_id, package, environment)
                except ClientError as error:
                    if is_error(error, *_RETRYABLE):
                        continue
                    raise
                if version is None:
                    continue
            self.ensure_deployment_alias(project_id, deployment_id, version)
            return version
        raise EdgeError(f"could not publish {deployment_id}: its function kept changing under it")

    def _publish_new(
        self, project_id: str, deployment_id: str, package: LambdaPackageLike, environment: dict[str, str]
    ) -> str | None:
        name = self.function_name(project_id)
        code = code_argument(self._clients.client("s3"), self.settings.bucket, project_id, package)
        config = self._configuration(name)
        if config is None:
            self._create(name, deployment_id, package, environment, code)
        else:
            self._wait_updated(name)
            self._lambda.update_function_configuration(
                FunctionName=name,
                Handler=package.handler,
                Runtime=package.runtime,
                Environment={"Variables": dict(environment)},
                Description=deployment_id,
                **_revision(self._configuration(name)),
            )
            self._wait_updated(name)
            self._lambda.update_function_code(
                FunctionName=name, **code, **_revision(self._configuration(name))
            )
            self._wait_updated(name)
        config = self._configuration(name)
        if config is None or not _is_ours(config, deployment_id, package, environment):
            return None  # another writer changed $LATEST meanwhile: start over
        # The RevisionId of the read that found $LATEST to be ours: nothing can change it before the version.
        published: dict[str, Any] = self._lambda.publish_version(
            FunctionName=name, CodeSha256=package.code_sha256, Description=deployment_id, **_revision(config)
        )
        if published.get("Description") != deployment_id:
            return None  # Lambda answered with an older version (nothing had changed): start over
        return str(published["Version"])

    def _create(
        self,
        name: str,
        deployment_id: str,
        package: LambdaPackageLike,
        environment: dict[str, str],
        code: dict[str, Any],
    ) -> None:
        self._lambda.create_function(
            FunctionName=name,
            Role=self.settings.role_arn,
            Handler=package.handler,
            Runtime=package.runtime,
            Code=code,
            Description=deployment_id,
            Environment={"Variables": dict(environment)},
            MemorySize=self.settings.memory_mb,
            Timeout=self.settings.timeout_s,
            Publish=False,
        )
        self._lambda.get_waiter("function_active_v2").wait(FunctionName=name)

    def _configuration(self, name: str, qualifier: str | None = None) -> dict[str, Any] | None:
        extra = {"Qualifier": qualifier} if qualifier else {}
        try:
            config: dict[str, Any] = self._lambda.get_function_configuration(FunctionName=name, **extra)
        except ClientError as error:
            if is_error(error, _NOT_FOUND):
                return None
            raise
        return config

    def _wait_updated(self, name: str) -> None:
        self._lambda.get_waiter("function_updated_v2").wait(FunctionName=name)

    def _version_described(self, name: str, deployment_id: str) -> str | None:
        for version in self.versions(name):
            if version.get("Version") != LATEST and version.get("Description") == deployment_id:
                return str(version["Version"])
        return None

    # -- per-deployment aliases ----------------------------------------------------------------------
    def version_of(self, project_id: str, deployment_id: str) -> str | None:
        """The version a deployment's alias names (None: not published, or pruned)."""
        with self._lock:
            cached = self._versions.get((project_id, deployment_id))
        if cached is not None:
            return cached
        alias = self._alias(self.function_name(project_id), deployment_alias(deployment_id))
        if alias is None:
            return None
        version = str(alias["FunctionVersion"])
        self._remember(project_id, deployment_id, version)
        return version

    def learn_versions(self, project_id: str) -> None:
        """Remember every deployment alias's version of the project from one paginated ListAliases (a
        deployment's alias never moves once made), so that many ``version_of`` questions about one project,
        as a reconcile pass asks them, cost one listing instead of a GetAlias each."""
        for alias in self.aliases(self.function_name(project_id)):
            if alias["Name"] != PRODUCTION_ALIAS and alias.get("Description") == alias["Name"]:
                self._remember(project_id, str(alias["Name"]), str(alias["FunctionVersion"]))

    def ensure_deployment_alias(self, project_id: str, deployment_id: str, version: str | None = None) -> str:
        """The deployment's alias (made if missing, from its published version) and URL; its version."""
        name = self.function_name(project_id)
        alias = deployment_alias(deployment_id)
        found = self._alias(name, alias)
        if found is not None and (version is None or found["FunctionVersion"] == version):
            version = str(found["FunctionVersion"])
        else:
            version = version or self._version_described(name, deployment_id)
            if version is None:
                raise NotPublished(f"{deployment_id} has no published Lambda version")
            self._point_deployment_alias(name, alias, deployment_id, version, found)
        ensure_url(self._lambda, name, alias)
        self._remember(project_id, deployment_id, version)
        return version

    def _point_deployment_alias(
        self, name: str, alias: str, deployment_id: str, version: str, found: dict[str, Any] | None
    ) -> None:
        if found is not None:
            self._lambda.update_alias(
                FunctionName=name, Name=alias, FunctionVersion=version, **_revision(found)
            )
            return
        try:
            self._lambda.create_alias(
                FunctionName=name, Name=alias, FunctionVersion=version, Description=deployment_id
            )
        except ClientError as error:
            if not is_error(error, "ResourceConflictException"):
                raise  # a conflict is another writer making the same alias to the same version

    def deployment_url(self, project_id: str, deployment_id: str) -> str | None:
        return url_of(self._lambda, self.function_name(project_id), deployment_alias(deployment_id))

    def production_url(self, project_id: str) -> str:
        """The production alias's function URL (made if missing; the alias must exist): the CDN's origin."""
        return ensure_url(self._lambda, self.function_name(project_id), PRODUCTION_ALIAS)

    def _remember(self, project_id: str, deployment_id: str, version: str) -> None:
        with self._lock:
            self._versions[(project_id, deployment_id)] = version

    def _alias(self, name: str, alias: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._lambda.get_alias(FunctionName=name, Name=alias)
        except ClientError as error:
            if is_error(error, _NOT_FOUND):
                return None
            raise
        return found

    # -- production alias ----------------------------------------------------------------------------
    def production(self, project_id: str) -> ProductionAlias | None:
        found = self._alias(self.function_name(project_id), PRODUCTION_ALIAS)
        if found is None:
            return None
        return ProductionAlias(str(found["FunctionVersion"]), found.get("RevisionId"))

    def move_production(self, project_id: str, version: str, read: ProductionAlias | None) -> None:
        """Point ``production`` at ``version`` if it is still as ``read`` (None: it did not exist, and it is
        made with its function URL, CloudFront's origin; a move afterwards is the one UpdateAlias)."""
        if version == LATEST:
            raise ValueError("production never serves $LATEST")
        name = self.function_name(project_id)
        try:
            if read is None:
                self._lambda.create_alias(FunctionName=name, Name=PRODUCTION_ALIAS, FunctionVersion=version)
            else:
                extra = {"RevisionId": read.revision_id} if read.revision_id else {}
                self._lambda.update_alias(
                    FunctionName=name, Name=PRODUCTION_ALIAS, FunctionVersion=version, **extra
                )
        except ClientError as error:
            if is_error(error, *_RETRYABLE):
                raise AliasChanged(f"the production alias of {name} changed since it was read") from error
            raise
        if read is None:
            ensure_url(self._lambda, name, PRODUCTION_ALIAS)

    def remove_production(self, project_id: str) -> None:
        self._delete_alias(self.function_name(project_id), PRODUCTION_ALIAS)

    def deployment_of_version(self, project_id: str, version: str) -> str | None:
        config = self._configuration(self.function_name(project_id), version)
        return None if config is None else str(config.get("Description") or "") or None

    # -- listing, retention, deletion ----------------------------------------------------------------
    def versions(self, name: str) -> list[dict[str, Any]]:
        return list(self._pages(self._lambda.list_versions_by_function, "Versions", FunctionName=name))

    def aliases(self, name: str) -> list[dict[str, Any]]:
        return list(self._pages(self._lambda.list_aliases, "Aliases", FunctionName=name))

    def _pages(self, call: Callable[..., Any], key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Marker-paginated Lambda listing; a missing function lists nothing."""
        marker: str | None = None
        while True:
            extra = {"Marker": marker} if marker else {}
            try:
                page = call(MaxItems=self.settings.page_size, **kwargs, **extra)
            except ClientError as error:
                if is_error(error, _NOT_FOUND):
                    return
                raise
            yield from page.get(key, [])
            marker = page.get("NextMarker")
            if not marker:
                return

    def prune(self, project_id: str, keep_deployment_ids: set[str] | frozenset[str]) -> PruneResult:
        """Delete the aliases of deployments not kept, then versions nothing points at and no kept deployment
        published; never ``production``'s version."""
        name = self.function_name(project_id)
        result = PruneResult()
        aliases = self.aliases(name)
        referenced: set[str] = set()
        for alias in aliases:
            deployment_id = alias.get("Description") or ""
            if alias["Name"] == PRODUCTION_ALIAS or deployment_id in keep_deployment_ids:
                referenced.add(str(alias["FunctionVersion"]))
                continue
            delete_url(self._lambda, name, alias["Name"])
            self._delete_alias(name, alias["Name"])
            self._forget(project_id, deployment_id)
            result.aliases.append(alias["Name"])
        for version in self.versions(name):
            number = str(version["Version"])
            if number == LATEST or number in referenced or version.get("Description") in keep_deployment_ids:
                continue
            try:
                self._lambda.delete_function(FunctionName=name, Qualifier=number)
            except ClientError as error:
                if not is_error(error, _NOT_FOUND):
                    raise
            result.versions.append(number)
        return result

    def remove_deployment(self, project_id: str, deployment_id: str) -> bool:
        """Delete a pruned deployment's URL, alias and version (never the version production names);
        idempotent. True if a version was deleted. A version published without its alias (a crash between
        the two) is found by its description in the paginated version listing."""
        name = self.function_name(project_id)
        version = self.version_of(project_id, deployment_id) or self._version_described(name, deployment_id)
        alias = deployment_alias(deployment_id)
        delete_url(self._lambda, name, alias)
        self._delete_alias(name, alias)
        self._forget(project_id, deployment_id)
        production = self.production(project_id)
        if version is None or (production is not None and production.version == version):
            return False
        try:
            self._lambda.delete_function(FunctionName=name, Qualifier=version)
        except ClientError as error:
            if not is_error(error, _NOT_FOUND):
                raise
        return True

    def delete_function(self, project_id: str) -> None:
        """The function with every version, alias and URL, and its uploaded packages; idempotent."""
        name = self.function_name(project_id)
        try:
            self._lambda.delete_function(FunctionName=name)
        except ClientError as error:
            if not is_error(error, _NOT_FOUND):
                raise
        with self._lock:
            for key in [key for key in self._versions if key[0] == project_id]:
                del self._versions[key]
        delete_packages(self._clients.client("s3"), self.settings.bucket, project_id)

    def _delete_alias(self, name: str, alias: str) -> None:
        try:
            self._lambda.delete_alias(FunctionName=name, Name=alias)
        except ClientError as error:
            if not is_error(error, _NOT_FOUND):
                raise

    def _forget(self, project_id: str, deployment_id: str) -> None:
        with self._lock:
            self._versions.pop((project_id, deployment_id), None)


def _is_ours(
    config: dict[str, Any], deployment_id: str, package: LambdaPackageLike, environment: dict[str, str]
) -> bool:
    """Whether ``$LATEST`` holds exactly this deployment's code and configuration."""
    variables = (config.get("Environment") or {}).get("Variables") or {}
    return (
        config.get("CodeSha256") == package.code_sha256
        and config.get("Description") == deployment_id
        and config.get("Handler") == package.handler
        and config.get("Runtime") == package.runtime
        and variables == environment
    )


def _revision(answer: dict[str, Any] | None) -> dict[str, str]:
    """The RevisionId compare-and-set argument, when Lambda reported one."""
    revision = (answer or {}).get("RevisionId")
    return {"RevisionId": str(revision)} if revision else {}
