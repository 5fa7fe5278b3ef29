"""Git deploys: where connections and branch aliases are kept, how a commit's files are fetched (in the
build sandbox), and how a forge is told a deployment's state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.entities import Deployment
from anchor_deploy.model.git import BranchAlias, CommitState, GitConnection, GitSecrets
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.runtime import never
from anchor_deploy.ports.store import BuildLogRepository, DeploymentRepository, ProjectRepository


class GitRepository(Protocol):
    """The database side of git deploys."""

    def connect_git(self, connection: GitConnection, secrets: GitSecrets) -> None:
        """Record (or replace) the project's connection; ProjectNotFound if there is no such project."""
        ...

    def git_connection(self, project_id: str) -> GitConnection | None: ...

    def git_secrets(self, project_id: str) -> GitSecrets | None: ...

    def disconnect_git(self, project_id: str) -> bool:
        """Forget the connection and its secrets (branch aliases and deployments stay); False if none."""
        ...

    def record_delivery(self, project_id: str, delivery_id: str, at: float) -> bool:
        """Remember a webhook delivery id; False if the project saw it before (answered, not built again)."""
        ...

    def forget_deliveries(self, before: float) -> int:
        """Drop delivery ids recorded before ``before``; how many."""
        ...

    def branch_aliases(self, project_id: str) -> list[BranchAlias]:
        """The project's branch aliases, by branch name."""
        ...

    def branch_alias(self, project_id: str, branch: str) -> BranchAlias | None: ...

    def move_branch(self, alias: BranchAlias, expected_from: str | None) -> None:
        """Point the branch's host at ``alias.deployment_id`` (creating the alias and claiming its host on
        the first move) if it still serves ``expected_from``: Conflict if it moved meanwhile, NameTaken if
        the host is held by something else."""
        ...

    def remove_branch(self, project_id: str, branch: str) -> str | None:
        """Delete the branch's alias and release its host; the host, or None if there was none."""
        ...

    def set_source_files(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        app: AppConfig | None,
        sealed_env: bytes,
        meta: dict[str, Any],
    ) -> Deployment:
        """Give a git deployment the files its build fetched (once, while it is BUILDING and has none):
        its manifest, file count and size, app, frozen environment, and its meta with the commit as
        fetched. Conflict otherwise."""
        ...


class GitRepositories(GitRepository, ProjectRepository, DeploymentRepository, BuildLogRepository, Protocol):
    """What git deploys read and write: the git side, projects, deployments and their build logs."""


@dataclass(frozen=True)
class FetchRequest:
    """One commit to fetch: the repository's URL (https, ssh, or a path / file:// URL on this machine),
    the commit's sha, and the branch it was pushed to (a fallback for servers that refuse a fetch by sha)."""

    url: str
    sha: str
    branch: str
    credentials: str | None = None  # a token (https) or a private deploy key (ssh), opened; never logged
    tenant: int | None = None  # the project's sandbox identity (ports/runtime.BuildLimits.tenant)
    deadline: float = 0.0  # time.monotonic() by which the fetch must be done (0: the fetcher's default)
    canceled: Callable[[], bool] = field(default=never, compare=False)  # True: stop the fetch at once


@dataclass(frozen=True)
class SourceTree:
    """What a fetched commit deploys: its files (already in the blob store), its app section as the
    deployments API takes it (anchor.toml's [app], or detected), and the commit's own words."""

    files: tuple[ManifestFile, ...]
    app: dict[str, Any] | None
    message: str
    author: str
    skipped: tuple[str, ...] = field(default_factory=tuple)  # paths left out by the ignore rules


class SourceFetcher(Protocol):
    def fetch(self, request: FetchRequest, log: Callable[[str], None]) -> SourceTree:
        """Fetch exactly ``request.sha`` (shallow; submodules too) in the build sandbox, plan its files as
        ``anchor deploy`` does and put them in the blob store. BuildFailed with one clear line otherwise
        (unreachable repository, unknown commit, Git LFS content, too large, over the deadline)."""
        ...


@dataclass(frozen=True)
class CommitStatus:
    """What a forge is told about one commit: the deployment's state and URL."""

    repo_url: str
    sha: str
    state: CommitState
    target_url: str
    description: str
    context: str = "anchor-deploy"
    environment: str = "preview"  # "production" or "preview"


class ForgeStatus(Protocol):
    def report(self, connection: GitConnection, token: str, status: CommitStatus) -> None:
        """Send the status in the background, retried with backoff: never blocks, never raises."""
        ...
