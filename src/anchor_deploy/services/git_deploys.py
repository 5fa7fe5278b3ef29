"""Git deploys: a project's connected repository, its webhooks and its own git remote turned into
deployments, each branch's stable preview alias, and the commit statuses told back to the forge.

A push makes a QUEUED deployment at once (it has a URL before its build starts), with the commit in its
meta (``git``) and where to fetch it from (GIT_SOURCE_KEY); its build then fetches exactly that commit in
the build sandbox (ports/git.SourceFetcher) and goes on as any deployment's. A push to the production
branch is a production deployment (the pin a rollback set holds it back as for `anchor deploy`); any other
branch is a preview. Either way, once READY the branch's alias ``{project}-git-{slug}.{base}`` moves to it,
unless a newer push of the branch serves already. A newer push cancels the branch's queued and running
builds; a deleted branch loses its alias (its deployments stay until retention)."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project, Target, Token
from anchor_deploy.model.errors import (
    BodyTooLarge,
    BuildFailed,
    Conflict,
    Forbidden,
    GitNotConnected,
    GitUnavailable,
    InvalidInput,
    NameTaken,
    WrongRepository,
)
from anchor_deploy.model.git import (
    GIT_SOURCE_KEY,
    MAX_URL,
    BranchAlias,
    CommitInfo,
    CommitState,
    Forge,
    GitConnection,
    GitSecrets,
    RefUpdate,
    branch_host,
    commit_from_meta,
    first_line,
    is_sha,
    validate_branch,
)
from anchor_deploy.model.webhooks import OtherEvent, PingEvent, PushEvent, read_webhook, same_repository
from anchor_deploy.ports.git import CommitStatus, FetchRequest, ForgeStatus, GitRepositories, SourceFetcher
from anchor_deploy.ports.runtime import SecretBox
from anchor_deploy.services.apps import EnvService
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.urls import UrlService

log = logging.getLogger(__name__)
_CAS_ATTEMPTS = 20
_URL = re.compile(r"^(?:(?:https?|ssh|git|file)://[^\s]+|/[^\s]*|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$")
_USERINFO = re.compile(r"^(?P<scheme>[a-z]+://)[^/@]*@")
MAX_CREDENTIALS = 16 * 1024
DELIVERY_MEMORY = 30 * 86400.0  # seconds a webhook delivery id is remembered


@dataclass(frozen=True)
class ConnectRequest:
    repo_url: str
    production_branch: str = "main"
    forge: Forge = Forge.GITHUB
    api_url: str = ""
    credentials: str | None = None  # a token (https) or a private deploy key (ssh) to fetch with
    forge_token: str | None = None  # reports commit statuses when given


@dataclass(frozen=True)
class Connected:
    connection: GitConnection
    webhook_secret: str  # shown once


@dataclass(frozen=True)
class WebhookAnswer:
    """What a webhook delivery came to: ``outcome`` is queued, deleted, duplicate, ping or ignored."""

    outcome: str
    message: str
    deployment: Deployment | None = None
    project: Project | None = None


@dataclass(frozen=True)
class GitParts:
    """What git deploys run on: the store's git side, the sandboxed fetcher, the forge reporter, and the
    project's own git remote (None where the provider has none)."""

    store: GitRepositories
    fetcher: SourceFetcher
    forge: ForgeStatus | None
    remote_url: Callable[[Project], str] | None


def public_repo_url(url: str) -> str:
    """The URL without any user or password in it (what is stored, shown and compared)."""
    return _USERINFO.sub(r"\g<scheme>", url.strip())


def validate_repo_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL:
        raise InvalidInput(f"repoUrl must be a repository URL of at most {MAX_URL} characters")
    url = url.strip()
    if not _URL.fullmatch(url) or any(ord(ch) < 32 for ch in url):
        raise InvalidInput(
            f"repoUrl {url[:100]!r} is not a repository URL: use https://host/owner/repo.git, "
            "ssh://git@host/owner/repo.git, git@host:owner/repo.git or a path on this machine"
        )
    if _USERINFO.match(url) and ":" in url.split("://", 1)[1].split("@", 1)[0]:
        raise InvalidInput("repoUrl holds a password: give it as credentials (it is then stored sealed)")
    return url


def _shown_as(log_line: Callable[[str], None], path: str, shown: str) -> Callable[[str], None]:
    """A build log that names the repository by ``shown`` wherever the fetch says ``path``."""

    bare = path.removesuffix(".git")  # git itself names a repository without its .git

    def shown_line(line: str) -> None:
        log_line(line.replace(path, shown).replace(bare, shown.removesuffix(".git")))

    return shown_line


class GitDeploys:
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
        max_webhook_bytes: int,
    ) -> None:
        self._parts = parts
        self._deployments = deployments
        self._sync = sync
        self._box = box
        self._env = env
        self._urls = urls
        self._base = base_domain
        self._clock = clock
        self.max_webhook_bytes = max_webhook_bytes

    def _git(self) -> GitParts:
        if self._parts is None:
            raise GitUnavailable("git deploys are not available on this provider yet")
        return self._parts

    # -- the connection ------------------------------------------------------------------------------------
    def connect(self, project: Project, request: ConnectRequest, token: Token) -> Connected:
        """Record (or replace) the project's repository with a new webhook secret, shown once. A repository
        on this machine (a path) takes an admin token: the build would read it with the platform's help."""
        git = self._git()
        url = validate_repo_url(request.repo_url)
        if url.startswith(("/", "file:")) and not token.is_admin:
            raise Forbidden("connecting a repository on this machine (a path) needs an admin token")
        branch = self._branch(request.production_branch)
        if request.api_url and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", request.api_url):
            raise InvalidInput("apiUrl must be an http(s) URL, the forge API's root")
        for name, value, limit in (
            ("credentials", request.credentials, MAX_CREDENTIALS),
            ("forgeToken", request.forge_token, 4096),
        ):
            if value is not None and (not value.strip() or len(value) > limit):
                raise InvalidInput(f"{name} must be 1-{limit} characters")
        secret = secrets.token_urlsafe(32)
        connection = GitConnection(
            project.id,
            url,
            branch,
            request.forge,
            self._clock(),
            request.api_url.rstrip("/"),
            request.credentials is not None,
            request.forge_token is not None,
        )
        sealed = GitSecrets(
            self._box.seal(secret.encode()),
            None if request.credentials is None else self._box.seal(request.credentials.strip().encode()),
            None if request.forge_token is None else self._box.seal(request.forge_token.strip().encode()),
        )
        git.store.connect_git(connection, sealed)
        return Connected(connection, secret)

    def connection(self, project: Project) -> GitConnection | None:
        return self._git().store.git_connection(project.id)

    def disconnect(self, project: Project) -> bool:
        return self._git().store.disconnect_git(project.id)

    def branches(self, project: Project) -> list[BranchAlias]:
        return self._git().store.branch_aliases(project.id)

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

    @staticmethod
    def _branch(value: object) -> str:
        return validate_branch(value)

    # -- webhooks ------------------------------------------------------------------------------------------
    def webhook(self, project_name: str, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        """One delivery to the project's webhook: checked (signature first), remembered by its delivery id,
        and turned into a deployment for a push of a branch. Nothing is stored for a refused one."""
        git = self._git()
        project = git.store.project_by_name(project_name) if len(project_name) <= 64 else None
        connection = git.store.git_connection(project.id) if project else None
        found = git.store.git_secrets(project.id) if project else None
        if project is None or connection is None or found is None:
            raise GitNotConnected(f"no project {project_name[:64]!r} with a connected repository")
        if len(body) > self.max_webhook_bytes:
            raise BodyTooLarge(f"a webhook body may be at most {self.max_webhook_bytes} bytes")
        event = read_webhook(headers, body, self._box.open(found.webhook_secret))
        if isinstance(event, PingEvent):
            return WebhookAnswer("ping", "pong: the webhook reaches the platform and its signature is right")
        if isinstance(event, OtherEvent):
            return WebhookAnswer("ignored", f"{event.event!r} events are not built; only pushes are")
        assert isinstance(event, PushEvent)
        if not any(same_repository(url, connection.repo_url) for url in event.repository_urls):
            raise WrongRepository(
                f"this push is for {(event.repository_urls or ('no repository',))[0][:200]!r}, "
                f"not the connected {connection.repo_url!r}: nothing was built"
            )
        if not git.store.record_delivery(project.id, event.delivery_id, self._clock()):
            return WebhookAnswer("duplicate", f"delivery {event.delivery_id} was answered before")
        if event.branch is None:
            return WebhookAnswer("ignored", f"{event.ref} is not a branch; only branches are built")
        update = RefUpdate(event.ref, event.before, event.after)
        commit = CommitInfo(connection.repo_url, event.branch, event.after, event.message, event.author)
        deployment = self._push(project, connection, update, commit, "webhook", f"webhook:{event.forge}")
        if deployment is None:
            return WebhookAnswer("deleted", f"branch {event.branch!r} was deleted: its preview URL is gone")
        return WebhookAnswer("queued", f"deploying {event.after[:7]} of {event.branch}", deployment, project)

    # -- pushes to the project's own remote --------------------------------------------------------------
    def pushed(
        self, project: Project, token: Token, updates: Sequence[RefUpdate], repository: str
    ) -> list[Deployment]:
        """A push to the project's git remote moved these refs: one deployment per pushed branch."""
        git = self._git()
        if git.remote_url is None:
            raise GitUnavailable("this platform has no git remote for projects")
        for update in updates:
            if not update.ref.startswith("refs/") or not is_sha(update.after) or not is_sha(update.before):
                raise InvalidInput(f"a ref update needs a refs/ name and two full shas: {update.ref[:100]!r}")
            if update.branch is not None:
                self._branch(update.branch)
        connection = git.store.git_connection(project.id)
        made = []
        for update in updates:
            if update.branch is None:
                continue  # tags are kept in the remote, not built
            commit = CommitInfo(repository, update.branch, update.after)
            deployment = self._push(project, connection, update, commit, "remote", token.name)
            if deployment is not None:
                made.append(deployment)
        return made

    def _push(
        self,
        project: Project,
        connection: GitConnection | None,
        update: RefUpdate,
        commit: CommitInfo,
        via: str,
        created_by: str,
    ) -> Deployment | None:
        branch = commit.branch
        if update.deleted:
            self._cancel_branch(project, branch, None, "its branch was deleted")
            host = self._git().store.remove_branch(project.id, branch)
            if host is not None:
                self._sync.apply(host)
            return None
        production = connection.production_branch if connection else "main"
        target = Target.PRODUCTION if branch == production else Target.PREVIEW
        meta = {"git": commit.as_meta(), GIT_SOURCE_KEY: {"via": via}}
        deployment = self._deployments.create_from_source(project, target, meta, created_by)
        self._cancel_branch(project, branch, deployment, f"superseded by {deployment.id} ({commit.sha[:7]})")
        self._report(project, deployment, CommitState.PENDING, "Building")
        return deployment

    def _cancel_branch(self, project: Project, branch: str, newest: Deployment | None, why: str) -> None:
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
            try:
                canceled = store.set_status(older.id, DeploymentStatus.CANCELED, why)
            except Conflict:
                continue  # it ended meanwhile
            store.append_log(older.id, [f"canceled: {why}"])
            self._report(project, canceled, CommitState.FAILURE, f"Canceled: {why}")

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
                self._report(project, deployment, CommitState.SUCCESS, words)
            elif deployment.status == DeploymentStatus.ERROR:
                self._report(project, deployment, CommitState.FAILURE, f"Failed: {deployment.error or ''}")
            elif deployment.status == DeploymentStatus.CANCELED:  # by a newer production deploy
                self._report(project, deployment, CommitState.FAILURE, f"Canceled: {deployment.error or ''}")
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

    def _report(self, project: Project, deployment: Deployment, state: CommitState, words: str) -> None:
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
                if aliases[branch].deployment_id != deployment.id and self._move_branch(project, deployment):
                    moved += 1
        return moved

    def serving(self, project: Project) -> set[str]:
        """The deployments the project's branch aliases serve (retention keeps them)."""
        if self._parts is None:
            return set()
        return {a.deployment_id for a in self._parts.store.branch_aliases(project.id) if a.deployment_id}

    def forget_old_deliveries(self) -> int:
        if self._parts is None:
            return 0
        return self._parts.store.forget_deliveries(self._clock() - DELIVERY_MEMORY)
