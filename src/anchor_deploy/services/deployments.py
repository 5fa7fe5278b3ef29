"""Deployments: the content-addressed manifest protocol, and the build that makes them servable."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from anchor_deploy.model.apps import AppConfig, parse_app_config
from anchor_deploy.model.entities import (
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    Project,
    Target,
    Token,
)
from anchor_deploy.model.errors import (
    AnchorError,
    Conflict,
    DeploymentNotFound,
    InvalidInput,
    MissingFiles,
    NameTaken,
)
from anchor_deploy.model.git import GIT_SOURCE_KEY, parse_commit_meta
from anchor_deploy.model.limits import parse_meta
from anchor_deploy.model.logs import BUILD_DONE_LINE, error_summary
from anchor_deploy.model.manifest import ManifestFile, parse_manifest
from anchor_deploy.model.names import deployment_host, is_deployment_id, new_deployment_id
from anchor_deploy.model.text import plural
from anchor_deploy.ports import BlobStore, DeploymentFiles
from anchor_deploy.ports.blobs import DirectUploads, UploadTarget
from anchor_deploy.ports.store import BuildRepositories
from anchor_deploy.services.aliases import AliasService
from anchor_deploy.services.apps import AppBuilds, EnvService, detect_app
from anchor_deploy.services.auth import can_access
from anchor_deploy.services.edge_sync import EdgeSync

log = logging.getLogger(__name__)
# Direct upload targets in one missing_files answer: a presigned URL is some 700 bytes of JSON, so 5,000 are
# about 3.5 MB, within the 6 MB a Lambda (the control-plane function) may answer. Fewer answers mean fewer
# offers, and each offer checks the store for every blob still missing.
MAX_UPLOAD_TARGETS = 5000


def upload_json(target: UploadTarget) -> dict[str, Any]:
    """An upload target as the 409 missing_files answer carries it."""
    expires = datetime.fromtimestamp(target.expires_at, UTC).isoformat(timespec="milliseconds")
    return {
        "sha256": target.sha256,
        "method": target.method,
        "url": target.url,
        "headers": dict(target.headers),
        "expiresAt": expires.replace("+00:00", "Z"),
    }


class BuildSource(Protocol):
    """Where a deployment created without files gets them as its build starts (services/git_builds.py)."""

    def prepare(self, project: Project, deployment: Deployment, log: Callable[[str], None]) -> Deployment:
        """The deployment with its files, app and environment (fetched if it has none yet); BuildFailed."""
        ...

    def settled(self, project: Project, deployment: Deployment) -> None:
        """The build ended READY or ERROR, or a newer deploy canceled it while it was queued (its branch's
        alias moves, the forge is told); never raises."""
        ...


class DeploymentService:
    def __init__(
        self,
        store: BuildRepositories,
        blobs: BlobStore,
        files: DeploymentFiles,
        aliases: AliasService,
        edge_sync: EdgeSync,
        base_domain: str,
        max_file_size: int,
        clock: Callable[[], float],
        apps: AppBuilds | None = None,
        env: EnvService | None = None,
        on_ready: Callable[[Project], object] = lambda _project: None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._files = files
        self._aliases = aliases
        self._sync = edge_sync
        self._base = base_domain
        self._max_file_size = max_file_size
        self._clock = clock
        self._apps = apps
        self._env = env
        self.on_created: Callable[[str], None] = lambda _id: None  # the build queue: set by the assembly
        self.on_ready = on_ready  # a deployment became READY in the project (retention prunes)
        self.source: BuildSource | None = None  # git deploys: fetches a pushed commit's files (the assembly)

    def create(self, project: Project, body: dict[str, Any], token: Token) -> Deployment:
        """Validate the manifest; 409 missing_files if blobs are lacking; else record a QUEUED deployment."""
        files = parse_manifest(body.get("files"), self._max_file_size)
        target = body.get("target", "preview")
        if target not in (Target.PRODUCTION.value, Target.PREVIEW.value):
            raise InvalidInput("target must be 'production' or 'preview'")
        meta = parse_meta(body.get("meta"))
        if GIT_SOURCE_KEY in meta:
            raise InvalidInput(f"meta.{GIT_SOURCE_KEY} is set by the platform only, for git pushes")
        if "git" in meta:  # the commit it was built from: checked, and stored in its normal form
            meta = {**meta, "git": parse_commit_meta(meta["git"]).as_meta()}
        app = self.app_config(body, files)
        missing = self._blobs.missing(f.sha256 for f in files)
        if missing:
            raise self._missing_files(missing)
        sealed_env = b""
        if app is not None and self._env is not None:
            sealed_env = self._env.seal(self._env.freeze(project, app))
        return self._record(project, Target(target), files, meta, token.name, app, sealed_env)

    def create_from_source(
        self, project: Project, target: Target, meta: dict[str, Any], created_by: str
    ) -> Deployment:
        """A QUEUED deployment whose files its build fetches first (a git push: ``meta`` names the commit
        under GIT_SOURCE_KEY); the BuildSource gives it its files, app and environment when it builds."""
        return self._record(project, target, (), meta, created_by, None, b"")

    def _record(
        self,
        project: Project,
        target: Target,
        files: tuple[ManifestFile, ...],
        meta: dict[str, Any],
        created_by: str,
        app: AppConfig | None,
        sealed_env: bytes,
    ) -> Deployment:
        for _attempt in range(5):
            deployment = Deployment(
                id=new_deployment_id(),
                project_id=project.id,
                status=DeploymentStatus.QUEUED,
                target=target,
                created_at=self._clock(),
                file_count=len(files),
                total_size=sum(f.size for f in files),
                meta=meta,
                created_by=created_by,
                app=app,
            )
            host = HostRoute(self.host(project, deployment), HostKind.DEPLOYMENT, project.id, deployment.id)
            try:
                self._store.add_deployment(deployment, files, host, sealed_env)
                break
            except NameTaken:
                continue  # the random id made a hostname a project already uses: draw again
        else:
            raise NameTaken("could not allocate a deployment hostname; try again")
        if deployment.target == Target.PRODUCTION:
            self._cancel_queued(project, deployment)
        self.on_created(deployment.id)
        return deployment

    def _missing_files(self, missing: list[str]) -> MissingFiles:
        """The 409 that lists the blobs to upload; with a store that takes direct uploads (S3), also where
        to send the first MAX_UPLOAD_TARGETS of them (``uploads``), in the same order: the answer stays
        within a Lambda's answer limit, and the client asks again for the rest."""
        message = f"{plural(len(missing), 'file')} must be uploaded first"
        if not isinstance(self._blobs, DirectUploads):
            return MissingFiles(message, missing=missing)
        targets = self._blobs.upload_targets(missing[:MAX_UPLOAD_TARGETS])
        uploads = [upload_json(target) for target in targets]
        return MissingFiles(message, missing=missing, uploads=uploads)

    def app_config(self, body: dict[str, Any], files: tuple[ManifestFile, ...]) -> AppConfig | None:
        if body.get("app") is None:
            return detect_app(list(files))
        if self._apps is None:
            raise InvalidInput("this platform does not run apps")
        app = parse_app_config(body["app"])
        paths = {f.path for f in files}
        module = app.entry.split(":")[0].replace(".", "/")
        if f"{module}.py" not in paths and f"{module}/__init__.py" not in paths:
            raise InvalidInput(f"app.entry {app.entry!r}: {module}.py is not in the upload")
        return app

    def _cancel_queued(self, project: Project, newest: Deployment) -> None:
        """A newer production deploy supersedes production deploys still waiting in the queue."""
        for older in self._store.list_deployments(project.id):
            if (
                older.id != newest.id
                and older.target == Target.PRODUCTION
                and older.status == DeploymentStatus.QUEUED
            ):
                self.cancel(project, older.id, f"superseded by {newest.id}")

    def cancel(self, project: Project, deployment_id: str, why: str) -> Deployment | None:
        """CANCELED with ``why`` (its log says so and its source hears of it: a git push's forge is told);
        None if it ended or started building meanwhile and may not be canceled any more."""
        try:
            canceled = self._store.set_status(deployment_id, DeploymentStatus.CANCELED, why)
        except Conflict:
            return None
        self._store.append_log(deployment_id, [f"canceled: {why}"])
        if self.source is not None:
            self.source.settled(project, canceled)
        return canceled

    def host(self, project: Project, deployment: Deployment) -> str:
        return deployment_host(project.name, deployment.id, self._base)

    def get(self, deployment_id: str, token: Token) -> tuple[Project, Deployment]:
        """The deployment and its project; DeploymentNotFound if it is missing or belongs to a project the
        token may not touch (the same answer: a project token learns nothing of other projects' ids)."""
        deployment = self._store.deployment(deployment_id) if is_deployment_id(deployment_id) else None
        project = self._store.project_by_id(deployment.project_id) if deployment else None
        if deployment is None or project is None or not can_access(token, project):
            raise DeploymentNotFound(f"deployment {deployment_id[:40]!r} not found")
        return project, deployment

    def with_status(self, status: DeploymentStatus) -> builtins.list[Deployment]:
        """Every deployment in ``status``, oldest first (background rounds look for queued builds)."""
        return self._store.deployments_with_status([status])

    def list(self, project: Project) -> list[Deployment]:
        return self._store.list_deployments(project.id)

    def page(self, project: Project, limit: int, offset: int = 0) -> builtins.list[Deployment]:
        """Newest first: at most ``limit`` of the project's deployments after the ``offset`` newest."""
        return self._store.list_deployments(project.id, limit, offset)

    def count(self, project: Project) -> int:
        return self._store.count_deployments(project.id)

    def build(self, deployment_id: str) -> Deployment | None:
        """QUEUED -> BUILDING -> READY|ERROR: materialize the files, build and health-check the app if there
        is one, serve the immutable URL, then move production if this is an unpinned production deploy.
        Idempotent for a restart mid-way; a canceled or finished deployment is left alone."""
        deployment = self._store.deployment(deployment_id)
        project = self._store.project_by_id(deployment.project_id) if deployment else None
        if deployment is None or project is None or deployment.status.is_final:
            return None
        if deployment.status == DeploymentStatus.QUEUED:
            try:
                deployment = self._store.set_status(deployment_id, DeploymentStatus.BUILDING)
            except Conflict:
                return None  # canceled meanwhile
        log_line = self._logger(deployment_id)
        try:
            if self.source is not None:
                deployment = self.source.prepare(project, deployment, log_line)
            log_line(
                f"building {deployment_id}: {plural(deployment.file_count, 'file')}, "
                f"{plural(deployment.total_size, 'byte')}"
            )
            self._files.materialize(deployment_id, self._store.manifest(deployment_id), deployment.app)
            if deployment.app is not None:
                if self._apps is None:
                    raise InvalidInput("this platform does not run apps")
                self._apps.build(deployment, log_line)
        except Exception as exc:
            current = self._store.deployment(deployment_id)
            if current is not None and current.status == DeploymentStatus.CANCELED:
                log_line("build stopped: it was canceled")  # a newer push to its branch; not a failure
                return current
            reason = str(exc) if isinstance(exc, AnchorError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, AnchorError):
                log.exception("build of %s failed", deployment_id)
            log_line(f"build failed: {reason}")
            return self._final(project, deployment_id, DeploymentStatus.ERROR, error_summary(reason))
        # The last line before the final status: a follower (SSE, `anchor logs -f`) that sees READY has
        # already been able to read every line.
        log_line(BUILD_DONE_LINE)
        deployment = self._final(project, deployment_id, DeploymentStatus.READY, None)
        if deployment.status != DeploymentStatus.READY:
            return deployment
        self._sync.apply(self.host(project, deployment))
        if deployment.target == Target.PRODUCTION:
            self._aliases.deployed(project, deployment)
        if self.source is not None:
            self.source.settled(project, deployment)
        try:
            self.on_ready(project)
        except Exception:
            log.exception("after-build step for %s failed", deployment_id)
        return deployment

    def _final(
        self, project: Project, deployment_id: str, status: DeploymentStatus, error: str | None
    ) -> Deployment:
        """Set the build's final status; a build canceled while it ran (a newer push to its branch) stays
        CANCELED. An ERROR is told to the source at once (a READY one after its aliases moved)."""
        try:
            deployment = self._store.set_status(deployment_id, status, error)
        except Conflict:
            current = self._store.deployment(deployment_id)
            if current is None or current.status != DeploymentStatus.CANCELED:
                raise
            return current
        if status == DeploymentStatus.ERROR and self.source is not None:
            self.source.settled(project, deployment)
        return deployment

    def _logger(self, deployment_id: str) -> Callable[[str], None]:
        def append(line: str) -> None:
            self._store.append_log(deployment_id, line.splitlines() or [""])

        return append

    def find(self, deployment_id: str) -> Deployment | None:
        """The deployment as the database has it now (its caller was authorized for it already)."""
        return self._store.deployment(deployment_id)

    def runtime_log(self, deployment_id: str, limit: int = 200) -> builtins.list[str]:
        """The last lines an app deployment's workers wrote; none for a static one."""
        return self._apps.runtime_log(deployment_id, limit) if self._apps else []

    def logs(self, deployment_id: str, after: int = 0) -> builtins.list[tuple[int, float, str]]:
        return self._store.read_log(deployment_id, after)

    def files(self, deployment_id: str) -> builtins.list[ManifestFile]:
        """The deployment's manifest (path, digest, size, mode), as it was created."""
        return self._store.manifest(deployment_id)

    def frozen_env(self, deployment_id: str) -> builtins.list[tuple[str, str | None]]:
        """The variables frozen into an app deployment, sorted by name, as (name, value); a secret's value
        is None: it never leaves this method. InvalidInput if the sealed environment cannot be opened."""
        if self._env is None:
            return []
        frozen = self._env.unseal(self._store.sealed_env(deployment_id))
        secret = frozen.secret_keys
        return [(key, None if key in secret else value) for key, value in sorted(frozen.values.items())]
