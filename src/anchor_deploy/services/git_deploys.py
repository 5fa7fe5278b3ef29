"""Git deploys: a project's connected repository, its webhooks and its own git remote turned into
deployments (their builds, branch aliases and commit statuses: services/git_builds.py).

A push makes a QUEUED deployment at once (it has a URL before its build starts), with the commit in its
meta (``git``) and where to fetch it from (GIT_SOURCE_KEY); its build then fetches exactly that commit in
the build sandbox (ports/git.SourceFetcher) and goes on as any deployment's. A push to the production
branch is a production deployment (the pin a rollback set holds it back as for `anchor deploy`); any other
branch is a preview. Either way, once READY the branch's alias ``{project}-git-{slug}.{base}`` moves to it,
unless a newer push of the branch serves already. A newer push cancels the branch's queued and running
builds; a deleted branch loses its alias (its deployments stay until retention)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from anchor_deploy.model.entities import Deployment, Project, Target, Token
from anchor_deploy.model.errors import (
    BodyTooLarge,
    Forbidden,
    GitNotConnected,
    GitUnavailable,
    InvalidInput,
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
    is_sha,
    validate_branch,
)
from anchor_deploy.model.webhooks import OtherEvent, PingEvent, PushEvent, read_webhook, same_repository
from anchor_deploy.ports.runtime import SecretBox
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.git_builds import GitBuilds, GitParts

_URL = re.compile(r"^(?:(?:https?|ssh|git|file)://[^\s]+|/[^\s]*|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$")
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


def validate_repo_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL:
        raise InvalidInput(f"repoUrl must be a repository URL of at most {MAX_URL} characters")
    url = url.strip()
    if not _URL.fullmatch(url) or any(ord(ch) < 32 for ch in url):
        raise InvalidInput(
            f"repoUrl {url[:100]!r} is not a repository URL: use https://host/owner/repo.git, "
            "ssh://git@host/owner/repo.git, git@host:owner/repo.git or a path on this machine"
        )
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password is not None:
        raise InvalidInput("repoUrl holds a password: give it as credentials (it is then stored sealed)")
    if parts is not None and parts.username is not None and parts.scheme.lower() in ("http", "https"):
        raise InvalidInput(
            "repoUrl holds a user name, which over http(s) is a token: give it as credentials (it is then "
            "stored sealed)"
        )
    return url


class GitDeploys:
    def __init__(
        self,
        builds: GitBuilds,
        deployments: DeploymentService,
        sync: EdgeSync,
        box: SecretBox,
        clock: Callable[[], float],
        max_webhook_bytes: int,
    ) -> None:
        self.builds = builds  # the build side: fetching, branch aliases, forge statuses
        self._deployments = deployments
        self._sync = sync
        self._box = box
        self._clock = clock
        self.max_webhook_bytes = max_webhook_bytes

    def _git(self) -> GitParts:
        if self.builds.parts is None:
            raise GitUnavailable("git deploys are not available on this provider yet")
        return self.builds.parts

    # -- the connection ------------------------------------------------------------------------------------
    def connect(self, project: Project, request: ConnectRequest, token: Token) -> Connected:
        """Record (or replace) the project's repository with a new webhook secret, shown once. A repository
        on this machine (a path) takes an admin token: the build would read it with the platform's help."""
        git = self._git()
        url = validate_repo_url(request.repo_url)
        if url.startswith(("/", "file:")) and not token.is_admin:
            raise Forbidden("connecting a repository on this machine (a path) needs an admin token")
        branch = validate_branch(request.production_branch)
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
                validate_branch(update.branch)
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
            self.builds.cancel_branch(project, branch, None, "its branch was deleted")
            host = self._git().store.remove_branch(project.id, branch)
            if host is not None:
                self._sync.apply(host)
            return None
        production = connection.production_branch if connection else "main"
        target = Target.PRODUCTION if branch == production else Target.PREVIEW
        meta = {"git": commit.as_meta(), GIT_SOURCE_KEY: {"via": via}}
        deployment = self._deployments.create_from_source(project, target, meta, created_by)
        self.builds.cancel_branch(
            project, branch, deployment, f"superseded by {deployment.id} ({commit.sha[:7]})"
        )
        self.builds.report(project, deployment, CommitState.PENDING, "Building")
        return deployment

    def forget_old_deliveries(self) -> int:
        if self.builds.parts is None:
            return 0
        return self.builds.parts.store.forget_deliveries(self._clock() - DELIVERY_MEMORY)
