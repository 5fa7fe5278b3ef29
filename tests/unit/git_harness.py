"""Git deploys on the services assembled from the fakes, with the API in this process: a source fetcher that
hands out the files a test gave each commit (and can fail or hold a fetch until released), a forge that
records the statuses it is told, and signed GitHub-format webhook deliveries."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from anchor_deploy.api.app import create_app
from anchor_deploy.model.entities import Deployment, HostKind, Project
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.model.git import ZERO_SHA, CommitState, GitConnection
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.fakes import FakeBlobStore, FakeEdge, FakeStore
from anchor_deploy.ports.git import CommitStatus, FetchRequest, SourceTree
from anchor_deploy.providers.platform import Platform
from anchor_deploy.providers.services import Hooks, Services, assemble
from anchor_deploy.services.git_builds import GitParts
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import asgi_request
from tests.support import TickingClock
from tests.unit.conftest import ADMIN, BASE, MAX_FILE, fake_adapters

REPO = "https://github.com/acme/site.git"
MAX_WEBHOOK = 4096  # ANCHOR_GIT_WEBHOOK_MAX_BYTES in these tests
_WAIT = 10.0  # seconds a test waits for a build thread at most


def commit_sha(n: int) -> str:
    return f"{n:040x}"


class FakeSourceFetcher:
    """The SourceFetcher port on a dictionary: each commit's files as the test set them (put in the blob
    store on fetch). ``fail`` makes a commit's fetch raise BuildFailed; ``hold`` makes it wait until
    ``release`` (``entered`` tells when a build reached it)."""

    def __init__(self, blobs: FakeBlobStore) -> None:
        self._blobs = blobs
        self._lock = threading.Lock()
        self._trees: dict[str, tuple[dict[str, bytes], str, str]] = {}
        self._failures: dict[str, str] = {}
        self._gates: dict[str, threading.Event] = {}
        self._entered: dict[str, threading.Event] = {}
        self.requests: list[FetchRequest] = []

    def commit(self, sha: str, files: dict[str, bytes], message: str = "", author: str = "") -> str:
        with self._lock:
            self._trees[sha] = (dict(files), message, author)
        return sha

    def fail(self, sha: str, why: str) -> None:
        with self._lock:
            self._failures[sha] = why

    def hold(self, sha: str) -> None:
        with self._lock:
            self._gates[sha] = threading.Event()

    def release(self, sha: str) -> None:
        with self._lock:
            gate = self._gates.get(sha)
        if gate is not None:
            gate.set()

    def entered(self, sha: str) -> threading.Event:
        with self._lock:
            return self._entered.setdefault(sha, threading.Event())

    def fetch(self, request: FetchRequest, log: Callable[[str], None]) -> SourceTree:
        with self._lock:
            self.requests.append(request)
            gate = self._gates.get(request.sha)
        self.entered(request.sha).set()
        if gate is not None and not gate.wait(_WAIT):
            raise BuildFailed(f"the test never released {request.sha[:12]}")
        with self._lock:
            failure = self._failures.get(request.sha)
            found = self._trees.get(request.sha)
        if failure is not None:
            raise BuildFailed(failure)
        if found is None:
            raise BuildFailed(f"commit {request.sha[:12]} is not in the repository")
        tree, message, author = found
        files = []
        for path, data in sorted(tree.items()):
            digest = hashlib.sha256(data).hexdigest()
            self._blobs.put(digest, iter([data]), MAX_FILE)
            files.append(ManifestFile(path, digest, len(data)))
        log(f"fetched {len(files)} files of {request.sha[:12]}")
        return SourceTree(tuple(files), None, message, author)


@dataclass(frozen=True)
class Reported:
    connection: GitConnection
    token: str
    status: CommitStatus


class FakeForgeStatus:
    """The ForgeStatus port: records what it is told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reports: list[Reported] = []

    def report(self, connection: GitConnection, token: str, status: CommitStatus) -> None:
        with self._lock:
            self.reports.append(Reported(connection, token, status))

    def states(self, sha: str) -> list[CommitState]:
        with self._lock:
            return [r.status.state for r in self.reports if r.status.sha == sha]


def github_push(
    branch_or_ref: str,
    after: str,
    before: str = ZERO_SHA,
    repo: str = REPO,
    message: str = "Change the header",
    padding: int = 0,
) -> bytes:
    """A push event as GitHub sends it (the fields the platform reads, and some it does not)."""
    ref = branch_or_ref if branch_or_ref.startswith("refs/") else f"refs/heads/{branch_or_ref}"
    deleted = set(after) == {"0"}
    head = (
        None if deleted else {"id": after, "message": message, "author": {"name": "Ada", "email": "a@x.test"}}
    )
    payload: dict[str, Any] = {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == ZERO_SHA,
        "deleted": deleted,
        "forced": False,
        "repository": {"clone_url": repo, "html_url": repo.removesuffix(".git")},
        "head_commit": head,
        "commits": [] if head is None else [head],
    }
    if padding:
        payload["padding"] = "x" * padding
    return json.dumps(payload).encode()


def github_headers(body: bytes, secret: str | None, delivery: str, event: str = "push") -> dict[str, str]:
    headers = {"content-type": "application/json", "x-github-event": event, "x-github-delivery": delivery}
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["x-hub-signature-256"] = f"sha256={digest}"
    return headers


@dataclass
class GitPlatform:
    services: Services
    store: FakeStore
    edge: FakeEdge
    fetcher: FakeSourceFetcher
    forge: FakeForgeStatus
    app: Any  # the FastAPI app
    admin: dict[str, str]
    submitted: list[str]
    secrets: dict[str, str] = field(default_factory=dict)  # project name -> webhook secret
    _deliveries: int = 0

    # -- requests ----------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return asgi_request(self.app, method, path, **kwargs)

    def project(self, name: str) -> Project:
        return self.services.projects.create(name, ADMIN)

    def fresh(self, name: str) -> Project:
        found = self.store.project_by_name(name)
        assert found is not None
        return found

    def connect(self, project: str = "site", **body: Any) -> httpx.Response:
        answer = self.request(
            "POST", f"/v1/projects/{project}/git", json={"repoUrl": REPO, **body}, headers=self.admin
        )
        if answer.status_code == 201:
            self.secrets[project] = answer.json()["webhookSecret"]
        return answer

    def deliver(
        self,
        body: bytes,
        project: str = "site",
        delivery: str | None = None,
        event: str = "push",
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A GitHub-format delivery signed with the project's secret (or ``secret``)."""
        if delivery is None:
            self._deliveries += 1
            delivery = f"delivery-{self._deliveries}"
        sign = secret if secret is not None else self.secrets.get(project, "")
        sent = headers if headers is not None else github_headers(body, sign, delivery, event)
        return self.request("POST", f"/v1/git/webhooks/{project}", content=body, headers=sent)

    def push(self, branch: str, after: str, project: str = "site", **kwargs: Any) -> httpx.Response:
        return self.deliver(github_push(branch, after), project, **kwargs)

    # -- builds and what they served -------------------------------------------------------------------
    def build_queued(self) -> None:
        while self.submitted:
            self.services.deployments.build(self.submitted.pop(0))

    def build_in_thread(self, deployment_id: str) -> threading.Thread:
        self.submitted.remove(deployment_id)
        thread = threading.Thread(target=self.services.deployments.build, args=(deployment_id,), daemon=True)
        thread.start()
        return thread

    def deployment(self, deployment_id: str) -> Deployment:
        found = self.store.deployment(deployment_id)
        assert found is not None
        return found

    def deployments(self, project: str = "site") -> list[Deployment]:
        return self.store.list_deployments(self.fresh(project).id)

    def serving(self, host: str) -> str | None:
        """The deployment the edge serves at ``host`` as an alias (None: the host is not routed)."""
        found = self.edge.current().get(host)
        if found is None:
            return None
        assert found[0] == HostKind.ALIAS, found
        return found[1]


def branch_host_of(branch: str, project: str = "site") -> str:
    from anchor_deploy.model.git import branch_host

    return branch_host(project, branch, BASE)


def make_git_platform(max_webhook: int = MAX_WEBHOOK) -> GitPlatform:
    """The services as every provider assembles them, with git deploys on the fakes; builds are recorded in
    ``submitted`` instead of queued (the test runs them)."""
    clock = TickingClock()
    adapters = fake_adapters(clock)
    store, blobs, edge = adapters.store, adapters.blobs, adapters.edge
    assert isinstance(store, FakeStore) and isinstance(blobs, FakeBlobStore) and isinstance(edge, FakeEdge)
    fetcher = FakeSourceFetcher(blobs)
    forge = FakeForgeStatus()
    parts = GitParts(store, fetcher, forge, lambda p: f"http://anchor.test/git/{p.name}.git")
    adapters = dataclasses.replace(adapters, git=parts)
    submitted: list[str] = []
    hooks = Hooks(submit_build=submitted.append, on_edge_failure=lambda: None)
    settings = Settings(base_domain=BASE, max_blob_size=MAX_FILE, git_webhook_max_bytes=max_webhook)
    services = assemble(settings, adapters, clock, hooks)
    platform = Platform(settings, services, None, BackupService(None))  # type: ignore[arg-type]  # no lifecycle
    services.projects.create("site", ADMIN)
    _token, admin = services.tokens.create("admin")
    return GitPlatform(
        services,
        store,
        edge,
        fetcher,
        forge,
        create_app(platform),
        {"Authorization": f"Bearer {admin}"},
        submitted,
    )
