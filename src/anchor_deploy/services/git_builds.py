"""The build side of git deploys: a git deployment's build fetches its commit first (this is the
BuildSource of services/deployments.py), its branch's alias moves once it is READY, the forge is told its
state, and a newer push cancels the branch's older builds.

A branch alias moves by compare-and-set, and only forward: a build of an older push that ends after a newer
one's never moves it back. A crash between a build's READY and its alias's move is caught up at start-up."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project
from anchor_deploy.model.errors import BuildFailed, Conflict, GitUnavailable, NameTaken
from anchor_deploy.model.git import (
    GIT_SOURCE_KEY,
    BranchAlias,
    CommitInfo,
    CommitState,
    Forge,
    branch_host,
    commit_from_meta,
    first_line,
)
from anchor_deploy.ports.git import CommitStatus, FetchRequest, ForgeStatus, GitRepositories, SourceFetcher
from anchor_deploy.ports.runtime import SecretBox
from anchor_deploy.services.apps import EnvService
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.urls import UrlService

log = logging.getLogger(__name__)
_CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class GitParts:
    """What git deploys run on: the store's git side, the sandboxed fetcher, the forge reporter, and the
    project's own git remote (None where the provider has none)."""

    store: GitRepositories
    fetcher: SourceFetcher
    forge: ForgeStatus | None
    remote_url: Callable[[Project], str] | None


def _shown_as(log_line: Callable[[str], None], path: str, shown: str) -> Callable[[str], None]:
    """A build log that names the repository by ``shown`` wherever the fetch says ``path``."""

    bare = path.removesuffix(".git")  # git itself names a repository without its .git

    def shown_line(line: str) -> None:
        log_line(line.replace(path, shown).replace(bare, shown.removesuffix(".git")))

    return shown_line


class GitBuilds:
    def __init__(
        self,
        parts: GitParts | None,
        deployments: DeploymentService,
        sync: EdgeSync,
        box: SecretBox,
        env: EnvService | None,
        urls: UrlService,
        base_domain: str,
        clock: Callable[[], float],
    ) -> None:
        self._parts = parts
        self._deployments = deployments
        self._sync = sync
        self._box = box
        self._env = env
        self._urls = urls
        self._base = base_domain
        self._clock = clock

    def _git(self) -> GitParts:
        if self._parts is None:
            raise GitUnavailable("git deploys are not available on this provider yet")
        return self._parts

    @property
    def parts(self) -> GitParts | None:
        """What git deploys run on here (None: this provider has no git deploys)."""
        return self._parts

    def branch_url(self, alias: BranchAlias) -> str:
        return self._urls.host_url(alias.host)

    def branch_url_of(self, project: Project, deployment: Deployment) -> str | None:
        """The URL of the branch a git deployment was pushed to (serving its newest READY build)."""
        commit = commit_from_meta(deployment.meta)
        if commit is None or not commit.branch or GIT_SOURCE_KEY not in deployment.meta:
            return None
        alias = self._git().store.branch_alias(project.id, commit.branch)
        return self._urls.host_url(
            alias.host if alias else branch_host(project.name, commit.branch, self._base)
        )

    def cancel_branch(self, project: Project, branch: str, newest: Deployment | None, why: str) -> None:
        """Cancel the branch's queued and running builds older than ``newest`` (all when None)."""
        store = self._git().store
        for older in store.list_deployments(project.id):
            found = commit_from_meta(older.meta)
            if (
                older.status.is_final
                or GIT_SOURCE_KEY not in older.meta
                or found is None
                or found.branch != branch
                or (newest is not None and (older.id == newest.id or older.created_at > newest.created_at))
            ):
                continue
            self._deployments.cancel(project, older.id, why)  # the forge hears of it (settled)

    # -- the build's side (DeploymentService.source) -----------------------------------------------------
    def prepare(
        self, project: Project, deployment: Deployment, log_line: Callable[[str], None]
    ) -> Deployment:
        source = deployment.meta.get(GIT_SOURCE_KEY)
        commit = commit_from_meta(deployment.meta)
        if not isinstance(source, dict) or commit is None or deployment.file_count > 0:
            return deployment  # not from git, or fetched already (a build taken over after a crash)
        git = self._git()
        credentials = None
        if source.get("via") == "remote":
            if git.remote_url is None:
                raise BuildFailed("this platform has no git remote to fetch the pushed commit from")
            url = git.remote_url(project)
        else:
            connection = git.store.git_connection(project.id)
            found = git.store.git_secrets(project.id)
            if connection is None or found is None:
                raise BuildFailed("the project's repository was disconnected before this build started")
            url = connection.repo_url
            if found.credentials is not None:
                credentials = self._box.open(found.credentials).decode()
        if source.get("via") == "remote" and commit.repository:
            log_line = _shown_as(log_line, url, commit.repository)  # not the data dir's path
        tenant = git.store.project_number(project.id)
        request = FetchRequest(
            url,
            commit.sha,
            commit.branch,
            credentials,
            tenant,
            canceled=lambda: self._canceled(deployment.id),
        )
        tree = git.fetcher.fetch(request, log_line)
        if not tree.files:
            raise BuildFailed(f"commit {commit.sha[:12]} has no files to deploy")
        files = tuple(sorted(tree.files, key=lambda f: f.path))
        app = self._deployments.app_config({"app": tree.app} if tree.app else {}, files)
        sealed_env = b""
        if app is not None and self._env is not None:
            sealed_env = self._env.seal(self._env.freeze(project, app))
        fetched = CommitInfo(
            commit.repository,
            commit.branch,
            commit.sha,
            first_line(tree.message) or commit.message,
            tree.author or commit.author,
        )
        meta = {**deployment.meta, "git": fetched.as_meta()}
        return git.store.set_source_files(deployment.id, files, app, sealed_env, meta)

    def _canceled(self, deployment_id: str) -> bool:
        current = self._git().store.deployment(deployment_id)
        return current is None or current.status == DeploymentStatus.CANCELED

    def settled(self, project: Project, deployment: Deployment) -> None:
        try:
            if GIT_SOURCE_KEY not in deployment.meta:
                return
            if deployment.status == DeploymentStatus.READY:
                alias = self._move_branch(project, deployment)
                if alias is not None and alias.deployment_id == deployment.id:
                    words = f"Deployed: {self.branch_url(alias)}"
                else:
                    words = "Deployed (a newer push of the branch serves its URL)" if alias else "Deployed"
                self.report(project, deployment, CommitState.SUCCESS, words)
            elif deployment.status == DeploymentStatus.ERROR:
                self.report(project, deployment, CommitState.FAILURE, f"Failed: {deployment.error or ''}")
            elif deployment.status == DeploymentStatus.CANCELED:  # by a newer push or production deploy
                self.report(project, deployment, CommitState.FAILURE, f"Canceled: {deployment.error or ''}")
        except Exception:
            log.exception("after the build of %s", deployment.id)

    def _move_branch(self, project: Project, deployment: Deployment) -> BranchAlias | None:
        """Point the branch's alias at the deployment unless a newer push of the branch serves already."""
        store = self._git().store
        commit = commit_from_meta(deployment.meta)
        if commit is None or not commit.branch:
            return None
        for _attempt in range(_CAS_ATTEMPTS):
            alias = store.branch_alias(project.id, commit.branch)
            serving = store.deployment(alias.deployment_id) if alias and alias.deployment_id else None
            if serving is not None and serving.created_at > deployment.created_at:
                return alias
            moved = BranchAlias(
                project.id,
                commit.branch,
                alias.host if alias else branch_host(project.name, commit.branch, self._base),
                deployment.id,
                commit.sha,
                self._clock(),
            )
            try:
                store.move_branch(moved, alias.deployment_id if alias else None)
            except Conflict:
                continue
            except NameTaken as exc:
                store.append_log(deployment.id, [f"no branch URL: {exc}"])
                return None
            self._sync.apply(moved.host)
            store.append_log(deployment.id, [f"branch {commit.branch}: {self.branch_url(moved)}"])
            return moved
        log.warning("the alias of branch %s kept moving; left to the next push", commit.branch)
        return None

    def report(self, project: Project, deployment: Deployment, state: CommitState, words: str) -> None:
        """Tell the forge, when the project's connection has a forge token; never blocks, never raises."""
        git = self._parts
        commit = commit_from_meta(deployment.meta)
        if git is None or git.forge is None or commit is None:
            return
        if deployment.meta.get(GIT_SOURCE_KEY, {}).get("via") != "webhook":
            return  # a push to the platform's own remote has no forge to tell
        connection = git.store.git_connection(project.id)
        found = git.store.git_secrets(project.id)
        if (
            connection is None
            or found is None
            or found.forge_token is None
            or connection.forge == Forge.GENERIC
        ):
            return
        try:
            token = self._box.open(found.forge_token).decode()
            status = CommitStatus(
                connection.repo_url,
                commit.sha,
                state,
                self._urls.deployment(project, deployment),
                first_line(words, 140),
                environment=deployment.target.value,
            )
            git.forge.report(connection, token, status)
        except Exception:
            log.exception("could not queue the commit status of %s", deployment.id)

    def catch_up(self) -> int:
        """At start-up: a crash between a git build's READY and its branch alias's move left the alias on an
        older deployment; move each alias to its branch's newest READY deployment. How many moved. (A
        branch whose first build crashed there gets its alias from its next push.)"""
        if self._parts is None:
            return 0
        store = self._parts.store
        moved = 0
        for project in store.list_projects():
            aliases = {a.branch: a for a in store.branch_aliases(project.id)}
            if not aliases:
                continue
            newest: dict[str, Deployment] = {}
            for deployment in store.list_deployments(project.id):  # newest first
                commit = commit_from_meta(deployment.meta)
                if (
                    deployment.status == DeploymentStatus.READY
                    and GIT_SOURCE_KEY in deployment.meta
                    and commit is not None
                    and commit.branch in aliases
                ):
                    newest.setdefault(commit.branch, deployment)
            for branch, deployment in newest.items():
                if aliases[branch].deployment_id == deployment.id:
                    continue
                alias = self._move_branch(project, deployment)
                moved += alias is not None and alias.deployment_id == deployment.id
        return moved

    def serving(self, project: Project) -> set[str]:
        """The deployments the project's branch aliases serve (retention keeps them)."""
        if self._parts is None:
            return set()
        return {a.deployment_id for a in self._parts.store.branch_aliases(project.id) if a.deployment_id}
