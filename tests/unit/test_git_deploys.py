"""Git deploys through the API on the fakes: connecting a repository, the webhook's bad-input table (nothing
built, nothing stored), replays, pings, other events, tags and deleted branches, and meta.gitSource being
the platform's own. Branches, forge statuses and retention: test_git_branches.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from anchor_deploy.model.entities import DeploymentStatus, Target
from anchor_deploy.model.git import ZERO_SHA
from tests.support import sha
from tests.unit.git_harness import (
    MAX_WEBHOOK,
    REPO,
    GitPlatform,
    branch_host_of,
    commit_sha,
    github_headers,
    github_push,
    make_git_platform,
)

A, B = commit_sha(0xA1), commit_sha(0xB2)
SITE = {"index.html": b"<h1>a</h1>"}


@pytest.fixture
def git() -> GitPlatform:
    platform = make_git_platform()
    platform.project("bare")  # a project without a connected repository
    assert platform.connect(forgeToken="ghp_forge-token").status_code == 201
    platform.fetcher.commit(A, SITE)
    return platform


def assert_error(answer: object, status: int, code: str) -> None:
    import httpx

    assert isinstance(answer, httpx.Response)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code and body["error"]["message"].strip()


def nothing_happened(git: GitPlatform) -> None:
    for project in ("site", "bare"):
        assert git.deployments(project) == []
    assert git.submitted == [] and git.fetcher.requests == [] and git.forge.reports == []


# -- the bad-input table -------------------------------------------------------------------------------------
def _bad_signature(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = github_push("main", A)
    return "site", github_headers(body, "not-the-secret", "d-1"), body


def _no_signature(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = github_push("main", A)
    return "site", github_headers(body, None, "d-1"), body


def _signature_of_another_body(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    return "site", github_headers(github_push("main", B), git.secrets["site"], "d-1"), github_push("main", A)


def _too_large(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = github_push("main", A, padding=MAX_WEBHOOK)
    return "site", github_headers(body, git.secrets["site"], "d-1"), body


def _malformed_json(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = b'{"ref": "refs/heads/main", "after": '
    return "site", github_headers(body, git.secrets["site"], "d-1"), body


def _not_a_push(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = b'{"ref": "refs/heads/main", "before": "x", "after": "y", "repository": {}}'
    return "site", github_headers(body, git.secrets["site"], "d-1"), body


def _unknown_project(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = github_push("main", A)
    return "nope", github_headers(body, git.secrets["site"], "d-1"), body


def _not_connected(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = github_push("main", A)
    return "bare", github_headers(body, git.secrets["site"], "d-1"), body


def _wrong_repository(git: GitPlatform) -> tuple[str, dict[str, str], bytes]:
    body = github_push("main", A, repo="https://github.com/acme/other.git")
    return "site", github_headers(body, git.secrets["site"], "d-1"), body


BAD = Callable[[GitPlatform], tuple[str, dict[str, str], bytes]]


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (_bad_signature, 401, "bad_signature"),
        (_no_signature, 401, "bad_signature"),
        (_signature_of_another_body, 401, "bad_signature"),
        (_too_large, 413, "body_too_large"),
        (_malformed_json, 400, "bad_request"),
        (_not_a_push, 400, "bad_request"),
        (_unknown_project, 404, "git_not_connected"),
        (_not_connected, 404, "git_not_connected"),
        (_wrong_repository, 422, "wrong_repository"),
    ],
)
def test_a_refused_delivery_builds_and_stores_nothing(
    git: GitPlatform, make: BAD, status: int, code: str
) -> None:
    project, headers, body = make(git)
    assert_error(
        git.request("POST", f"/v1/git/webhooks/{project}", content=body, headers=headers), status, code
    )
    nothing_happened(git)
    # The delivery id was not remembered: the same id, signed right, to a connected project is built.
    if project != "site":
        if project == "nope":
            git.project("nope")
        assert git.connect(project).status_code == 201
    answer = git.push("main", A, project=project, delivery="d-1")
    assert answer.status_code == 202, answer.text
    assert answer.json()["outcome"] == "queued"
    assert [d.id for d in git.deployments(project)] == [answer.json()["deployment"]["id"]]


def test_a_body_over_the_limit_without_a_length_is_refused_as_it_streams(git: GitPlatform) -> None:
    body = github_push("main", A, padding=MAX_WEBHOOK)
    headers = github_headers(body, git.secrets["site"], "d-1")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    answer = git.request("POST", "/v1/git/webhooks/site", content=chunks(), headers=headers)
    assert_error(answer, 413, "body_too_large")
    nothing_happened(git)


# -- replays, pings, other events, tags, deletions -----------------------------------------------------------
def test_the_same_delivery_twice_builds_once(git: GitPlatform) -> None:
    first = git.push("main", A, delivery="d-7")
    again = git.push("main", A, delivery="d-7")
    assert first.status_code == 202 and first.json()["outcome"] == "queued"
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "duplicate" and "deployment" not in again.json()
    assert [d.id for d in git.deployments()] == [first.json()["deployment"]["id"]]
    assert len(git.submitted) == 1
    # Another delivery of the same commit is a new push (a redelivery from the forge's page)
    assert git.push("main", A, delivery="d-8").json()["outcome"] == "queued"
    assert len(git.deployments()) == 2


def test_a_ping_is_answered_and_other_events_and_tags_are_ignored(git: GitPlatform) -> None:
    ping = git.deliver(b'{"zen": "Keep it simple.", "hook_id": 1}', event="ping")
    assert ping.status_code == 200 and ping.json()["outcome"] == "ping", ping.text
    issue = git.deliver(b'{"action": "opened"}', event="issues")
    assert issue.status_code == 200 and issue.json()["outcome"] == "ignored", issue.text
    assert "issues" in issue.json()["message"]
    tag = git.deliver(github_push("refs/tags/v1.0", A))
    assert tag.status_code == 200 and tag.json()["outcome"] == "ignored", tag.text
    assert git.deployments() == [] and git.submitted == [] and git.forge.reports == []
    # A ping's delivery is not a push: it is answered again (pings are free, nothing is built)
    assert git.deliver(b"{}", event="ping", delivery="p-1").json()["outcome"] == "ping"
    assert git.deliver(b"{}", event="ping", delivery="p-1").json()["outcome"] == "ping"


def test_deleting_a_branch_removes_its_alias_and_cancels_its_queued_build(git: GitPlatform) -> None:
    git.fetcher.commit(B, {"index.html": b"<h1>b</h1>"})
    host = branch_host_of("feature/x")
    built = git.push("feature/x", A).json()["deployment"]["id"]
    git.build_queued()
    assert git.store.host_target(host) is not None and git.serving(host) == built
    queued = git.push("feature/x", B).json()["deployment"]["id"]
    gone = git.deliver(github_push("feature/x", ZERO_SHA, before=B))
    assert gone.status_code == 200 and gone.json()["outcome"] == "deleted", gone.text
    assert git.store.host_target(host) is None and git.serving(host) is None
    assert git.store.branch_alias(git.fresh("site").id, "feature/x") is None
    assert git.deployment(queued).status == DeploymentStatus.CANCELED
    assert git.deployment(built).status == DeploymentStatus.READY  # kept until retention
    git.build_queued()
    assert git.deployment(queued).status == DeploymentStatus.CANCELED and git.serving(host) is None
    shown = git.request("GET", "/v1/projects/site/git", headers=git.admin).json()
    assert shown["branches"] == []


# -- the connection ------------------------------------------------------------------------------------------
def test_the_webhook_secret_is_shown_once_and_no_secret_ever_again(git: GitPlatform) -> None:
    made = git.connect(credentials="fetch-token-123", forgeToken="ghp_forge-token-456")
    assert made.status_code == 201, made.text
    secret = made.json()["webhookSecret"]
    assert len(secret) >= 32 and secret != git.secrets.get("old")
    assert made.json()["webhookUrl"] == "http://anchor.test/v1/git/webhooks/site"
    shown = git.request("GET", "/v1/projects/site/git", headers=git.admin)
    assert shown.status_code == 200, shown.text
    connection = shown.json()["connection"]
    assert connection["repoUrl"] == REPO and connection["productionBranch"] == "main"
    assert connection["hasCredentials"] is True and connection["hasForgeToken"] is True
    for word in (secret, "fetch-token-123", "ghp_forge-token-456"):
        assert word not in shown.text
    assert "webhookSecret" not in shown.json()
    # the secret shown is the one that signs deliveries
    assert git.push("main", A, secret=secret).status_code == 202


def test_reconnecting_makes_a_new_secret_and_the_old_one_signs_nothing(git: GitPlatform) -> None:
    old = git.secrets["site"]
    assert git.connect().status_code == 201
    assert git.secrets["site"] != old
    assert_error(git.push("main", A, secret=old), 401, "bad_signature")
    assert git.deployments() == []


@pytest.mark.parametrize(
    "url",
    [
        "https://ada:hunter2@github.com/acme/site.git",
        "http://ada:hunter2@git.example.test/site.git",
        "https://hunter2@github.com/acme/site.git",  # a token as the user (GitHub takes one so)
        "ssh://ada:hunter2@git.example.test/site.git",
    ],
)
def test_a_password_in_the_repository_url_is_refused_and_nothing_stored(git: GitPlatform, url: str) -> None:
    answer = git.request("POST", "/v1/projects/bare/git", json={"repoUrl": url}, headers=git.admin)
    assert_error(answer, 422, "invalid_input")
    assert "hunter2" not in answer.text
    assert git.store.git_connection(git.fresh("bare").id) is None
    shown = git.request("GET", "/v1/projects/bare/git", headers=git.admin).json()
    assert shown["connection"] is None


@pytest.mark.parametrize(
    "url", ["ssh://git@github.com/acme/site.git", "git@github.com:acme/site.git", "https://github.com/a/s"]
)
def test_a_user_name_for_ssh_is_taken(git: GitPlatform, url: str) -> None:
    answer = git.request("POST", "/v1/projects/bare/git", json={"repoUrl": url}, headers=git.admin)
    assert answer.status_code == 201, answer.text
    assert answer.json()["connection"]["repoUrl"] == url


def test_after_disconnect_the_webhook_answers_404(git: GitPlatform) -> None:
    gone = git.request("DELETE", "/v1/projects/site/git", headers=git.admin)
    assert gone.status_code == 200 and gone.json()["disconnected"] is True, gone.text
    assert_error(git.push("main", A), 404, "git_not_connected")
    assert git.deployments() == [] and git.submitted == []
    again = git.request("DELETE", "/v1/projects/site/git", headers=git.admin)
    assert again.json()["disconnected"] is False


def test_a_build_queued_before_disconnect_fails_clearly(git: GitPlatform) -> None:
    queued = git.push("main", A).json()["deployment"]["id"]
    git.request("DELETE", "/v1/projects/site/git", headers=git.admin)
    git.build_queued()
    failed = git.deployment(queued)
    assert failed.status == DeploymentStatus.ERROR and "disconnected" in (failed.error or "")
    assert git.fetcher.requests == []


# -- meta.gitSource is the platform's --------------------------------------------------------------------
def test_a_client_cannot_set_meta_git_source(git: GitPlatform) -> None:
    data = b"<h1>mine</h1>"
    git.services.adapters.blobs.put(sha(data), iter([data]), 1 << 20)
    body = {
        "files": [{"path": "index.html", "sha256": sha(data), "size": len(data)}],
        "target": Target.PRODUCTION.value,
        "meta": {"gitSource": {"via": "webhook"}},
    }
    answer = git.request("POST", "/v1/projects/site/deployments", json=body, headers=git.admin)
    assert_error(answer, 422, "invalid_input")
    assert "gitSource" in answer.json()["error"]["message"]
    assert git.deployments() == [] and git.submitted == []
