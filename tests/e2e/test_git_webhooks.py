"""Forge webhooks against the real platform: real git, real pushes, all on 127.0.0.1.

A bare repository on disk stands in for the forge: its ``post-receive`` hook (tests/e2e/push_hook.py, run
by git) sends the forge's push webhook built from the real push (GitHub, GitLab or Gitea shape, signed as
that forge signs it) to the project's webhook URL. The platform fetches the pushed commit in its build
sandbox and deploys it: production, branch URLs, pins, deletions, cancellation of superseded builds, the
webhook's bad-input table, and the commit statuses told to a stand-in of each forge's API
(tests/forge_api_stub.py). Repositories the platform fetches over HTTP are served by git's own
http-backend (tests/git_fetch_support.py); a gate there holds fetches to make cancellation deterministic.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import push_hook
from tests.e2e.harness import AnchorProcess, ensure_project, wait_final
from tests.e2e.webhook_support import (
    ForgeRepo,
    Gate,
    branch_url,
    branch_urls,
    deployment_count,
    host_of,
    production_url,
    ready,
    serves,
    stopped_build_log,
    wait_for,
)
from tests.forge_api_stub import Answer, ForgeApiStub
from tests.git_fetch_support import GitHttpServer
from tests.ports import free_port

WEBHOOK_LIMIT = 64 * 1024  # ANCHOR_GIT_WEBHOOK_MAX_BYTES of the module's platform
REPO_TOKEN = "tok-fetch-8d2f0c41aa"  # the HTTP repositories' password (credentials)
FORGE_TOKEN = "ghp_forge-5b1e7c9a"
AUTHOR = "Ada <ada@example.test>"  # the WorkTree's author


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    data = tmp_path_factory.mktemp("git-webhooks") / "data"
    platform = AnchorProcess(data, extra_env={"ANCHOR_GIT_WEBHOOK_MAX_BYTES": str(WEBHOOK_LIMIT)})
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def served_repos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GitHttpServer, Gate]]:
    """Bare repositories under one folder, served over smart HTTP with REPO_TOKEN as the password."""
    gate = Gate()
    with GitHttpServer(tmp_path_factory.mktemp("served"), "x-access-token", REPO_TOKEN) as server:
        server.on_request = gate
        yield server, gate
        gate.open.set()


@pytest.fixture
def stub() -> Iterator[ForgeApiStub]:
    forge = ForgeApiStub(FORGE_TOKEN)
    try:
        yield forge
    finally:
        forge.close()


# -- each forge's push, from a real push --------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("forge", ["github", "gitlab", "gitea"])
def test_a_push_deploys_the_pushed_commit(anchor: AnchorProcess, tmp_path: Path, forge: str) -> None:
    project = f"hook-{forge}"
    repo = ForgeRepo(tmp_path / f"{forge}.git", tmp_path, forge)
    repo.connect(anchor, project)
    page = f"<h1>{forge} production</h1>".encode()
    main = repo.commit({"index.html": page}, f"Production page for {forge}\n\nWith a body line.")
    deployment = ready(anchor, repo.deploy("main"))
    assert deployment["target"] == "production"
    assert deployment["git"] == {
        "repository": repo.repo_url,
        "branch": "main",
        "dirty": False,
        **repo.real_commit(main),
    }
    assert deployment["git"]["commitMessage"] == f"Production page for {forge}"
    assert deployment["git"]["commitAuthor"] == AUTHOR
    production = production_url(anchor, project)
    serves(anchor, production, page)

    feature = repo.commit({"index.html": b"<h1>feature</h1>"}, "A feature", branch="feature/x")
    preview = ready(anchor, repo.deploy("feature/x"))
    assert preview["target"] == "preview"
    assert (preview["git"]["branch"], preview["git"]["commitSha"]) == ("feature/x", feature)
    url = branch_url(anchor, project, "feature/x", preview["id"])
    assert host_of(url).startswith(f"{project}-git-feature-x.")
    serves(anchor, url, b"<h1>feature</h1>")
    assert anchor.edge(host_of(production)).content == page  # a preview leaves production alone


# -- branch previews ------------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_branch_urls_follow_pushes_pins_and_deletions(anchor: AnchorProcess, tmp_path: Path) -> None:
    project = "previews"
    repo = ForgeRepo(tmp_path / "previews.git", tmp_path, "github")
    repo.connect(anchor, project)
    repo.commit({"index.html": b"main 1"}, "main 1")
    main1 = ready(anchor, repo.deploy("main"))
    production = production_url(anchor, project)
    serves(anchor, production, b"main 1")
    main_url = branch_url(anchor, project, "main", main1["id"])
    serves(anchor, main_url, b"main 1")  # the production branch has its branch URL too

    # Two branches, two stable URLs, each following its newest commit.
    repo.commit({"index.html": b"y 1"}, "y 1", branch="feature/y")
    y1 = repo.deploy("feature/y")
    repo.commit({"index.html": b"z 1"}, "z 1", branch="feature/z")
    z1 = repo.deploy("feature/z")
    y_url = branch_url(anchor, project, "feature/y", ready(anchor, y1)["id"])
    z_url = branch_url(anchor, project, "feature/z", ready(anchor, z1)["id"])
    assert y_url != z_url
    serves(anchor, y_url, b"y 1")
    serves(anchor, z_url, b"z 1")
    repo.commit({"index.html": b"y 2"}, "y 2", branch="feature/y")
    y2 = ready(anchor, repo.deploy("feature/y"))
    assert branch_url(anchor, project, "feature/y", y2["id"]) == y_url
    serves(anchor, y_url, b"y 2")
    assert anchor.edge(host_of(z_url)).content == b"z 1"
    assert anchor.edge(host_of(production)).content == b"main 1"

    # main goes to production; after a rollback production is pinned: main's URL moves, production stays.
    repo.commit({"index.html": b"main 2"}, "main 2", branch="main")
    ready(anchor, repo.deploy("main"))
    serves(anchor, production, b"main 2")
    with anchor.api() as api:
        rolled = api.post(f"/v1/projects/{project}/rollback", json={})
        assert rolled.status_code == 200 and rolled.json()["toDeploymentId"] == main1["id"], rolled.text
    serves(anchor, production, b"main 1")
    repo.commit({"index.html": b"main 3"}, "main 3")
    main3 = ready(anchor, repo.deploy("main"))
    assert branch_url(anchor, project, "main", main3["id"]) == main_url
    serves(anchor, main_url, b"main 3")
    with anchor.api() as api:
        assert api.get(f"/v1/projects/{project}").json()["productionDeploymentId"] == main1["id"]
    assert anchor.edge(host_of(production)).content == b"main 1"

    # Deleting a branch removes its URL; its deployment keeps its own; the other branch is untouched.
    [deleted] = repo.push(":feature/y")
    assert (deleted["status"], deleted["json"]["outcome"]) == (200, "deleted"), deleted
    wait_for(f"{y_url} to answer 404", lambda: anchor.edge(host_of(y_url)).status_code == 404)
    assert "feature/y" not in branch_urls(anchor, project)
    assert anchor.edge(host_of(y2["url"])).content == b"y 2"
    assert anchor.edge(host_of(z_url)).content == b"z 1"


@pytest.mark.timeout(300)
def test_three_quick_pushes_end_with_the_last_and_cancel_the_others(
    anchor: AnchorProcess, served_repos: tuple[GitHttpServer, Gate], tmp_path: Path
) -> None:
    """The first build's fetch is held at the git server until all three pushes are in: the first is
    canceled while it runs, the second while it waits or runs, whatever the machine's speed."""
    server, gate = served_repos
    bare = server.root / "acme" / "quick.git"
    bare.parent.mkdir(exist_ok=True)
    repo = ForgeRepo(bare, tmp_path, "github", f"{server.url}/acme/quick.git")
    repo.connect(anchor, "quick", credentials=REPO_TOKEN)
    gate.arrived.clear()
    gate.open.clear()
    try:
        shas, made = [], []
        for n in (1, 2, 3):
            shas.append(repo.commit({"index.html": f"quick {n}".encode()}, f"quick {n}", branch="feature/q"))
            made.append(repo.deploy("feature/q"))
            if n == 1:  # the first build is fetching (held) before the second push
                assert gate.arrived.wait(30), "the first build never started its fetch"
    finally:
        gate.open.set()
    last = ready(anchor, made[2])
    assert last["git"]["commitSha"] == shas[2]
    url = branch_url(anchor, "quick", "feature/q", last["id"])
    serves(anchor, url, b"quick 3")
    with anchor.api() as api:
        earlier = [wait_final(api, d["id"], timeout=60) for d in made[:2]]
    assert [d["status"] for d in earlier] == ["CANCELED", "CANCELED"]
    assert made[1]["id"] in earlier[0]["error"] and made[2]["id"] in earlier[1]["error"]
    # Both were canceled while their fetch was held: the fetch was stopped (its sandboxed git killed, as
    # run_step does for a canceled build), the build went no further, and neither moved the branch URL.
    for deployment, newer in itertools.pairwise(made):
        stopped = functools.partial(stopped_build_log, anchor, deployment["id"])
        lines = wait_for(f"the build of {deployment['id']} to stop", stopped)
        canceled = f"canceled: superseded by {newer['id']} ({newer['git']['commitSha'][:7]})"
        assert lines[0].startswith("fetching ") and canceled in lines, lines
        assert not any(line.startswith("building ") for line in lines), lines
    assert branch_urls(anchor, "quick")["feature/q"]["deploymentId"] == last["id"]
    assert anchor.edge(host_of(url)).content == b"quick 3"


# -- the webhook's bad-input table ----------------------------------------------------------------------


def post_webhook(url: str, body: bytes | Iterator[bytes], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=30, trust_env=False)


@pytest.mark.timeout(300)
def test_refused_deliveries_build_nothing_and_store_nothing(anchor: AnchorProcess, tmp_path: Path) -> None:
    project = "guarded"
    repo = ForgeRepo(tmp_path / "guarded.git", tmp_path, "github")
    repo.connect(anchor, project)
    repo.commit({"index.html": b"first"}, "first")
    ready(anchor, repo.deploy("main"))
    before = repo.work.head()
    after = repo.commit({"index.html": b"second"}, "second")
    repo.bare.joinpath("hooks", "post-receive").unlink()  # from here the test makes the deliveries
    repo.work.git("push", "-q", "origin", "main")
    payload = push_hook.github_payload(repo.bare, repo.repo_url, "refs/heads/main", before, after)
    body = json.dumps(payload).encode()
    delivery = "b1f0a7de-0c7e-4d9b-9b38-3f6f4f0e5a11"  # one id for every refused attempt
    good = push_hook.signed_headers("github", body, repo.secret, delivery)
    bad_signature = {**good, "X-Hub-Signature-256": "sha256=" + push_hook.hex_hmac("not-the-secret", body)}
    unsigned = {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}
    malformed = b'{"ref": "refs/heads/main", "before": '
    other = {**payload, "repository": {**payload["repository"], "clone_url": str(tmp_path / "other.git")}}
    for key in ("html_url", "url", "git_url", "ssh_url", "svn_url"):
        other["repository"][key] = str(tmp_path / "other.git")
    wrong_repo = json.dumps(other).encode()
    padded = json.dumps({**payload, "padding": "x" * WEBHOOK_LIMIT}).encode()
    with anchor.api() as api:
        ensure_project(api, "unconnected")

    def signed(data: bytes) -> dict[str, str]:
        return push_hook.signed_headers("github", data, repo.secret, delivery)

    def chunks(data: bytes) -> Iterator[bytes]:  # no Content-Length: the limit is counted as it arrives
        yield from (data[i : i + 8192] for i in range(0, len(data), 8192))

    table: list[tuple[str, str, bytes | Iterator[bytes], dict[str, str], int, str]] = [
        ("bad signature", repo.webhook_url, body, bad_signature, 401, "bad_signature"),
        ("missing signature", repo.webhook_url, body, unsigned, 401, "bad_signature"),
        ("malformed JSON", repo.webhook_url, malformed, signed(malformed), 400, "bad_request"),
        ("over the limit", repo.webhook_url, padded, signed(padded), 413, "body_too_large"),
        ("over the limit, chunked", repo.webhook_url, chunks(padded), signed(padded), 413, "body_too_large"),
        ("wrong repository", repo.webhook_url, wrong_repo, signed(wrong_repo), 422, "wrong_repository"),
        ("unknown project", repo.webhook_url.replace(project, "nope"), body, good, 404, "git_not_connected"),
        (
            "not connected",
            repo.webhook_url.replace(project, "unconnected"),
            body,
            good,
            404,
            "git_not_connected",
        ),
    ]
    count = deployment_count(anchor, project)
    for name, url, data, headers, status, code in table:
        answer = post_webhook(url, data, headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (name, answer.text)
        assert deployment_count(anchor, project) == count, name
    assert deployment_count(anchor, "unconnected") == 0

    # Nothing was stored: the delivery id of the refused attempts is taken once the delivery is right,
    # and a replay of it is answered without a second build.
    taken = post_webhook(repo.webhook_url, body, good)
    assert (taken.status_code, taken.json()["outcome"]) == (202, "queued"), taken.text
    replayed = post_webhook(repo.webhook_url, body, good)
    assert (replayed.status_code, replayed.json()["outcome"]) == (200, "duplicate"), replayed.text
    assert deployment_count(anchor, project) == count + 1
    built = ready(anchor, taken.json()["deployment"])
    assert built["git"]["commitSha"] == after
    serves(anchor, production_url(anchor, project), b"second")
    assert deployment_count(anchor, project) == count + 1


# -- commit statuses told to the forge ------------------------------------------------------------------

FAILURE = {"github": "failure", "gitlab": "failed", "gitea": "failure"}


def statuses_of(stub: ForgeApiStub, sha: str) -> list[Any]:
    return [r for r in stub.received if r.sha == sha]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("outcome", ["success", "failure"])
@pytest.mark.parametrize("forge", ["github", "gitlab", "gitea"])
def test_the_forge_is_told_pending_then_the_outcome(
    anchor: AnchorProcess,
    served_repos: tuple[GitHttpServer, Gate],
    stub: ForgeApiStub,
    tmp_path: Path,
    forge: str,
    outcome: str,
) -> None:
    server, _gate = served_repos
    name = f"status-{forge}-{outcome}"
    bare = server.root / "acme" / f"{name}.git"
    bare.parent.mkdir(exist_ok=True)
    repo = ForgeRepo(bare, tmp_path, forge, f"{server.url}/acme/{name}.git")
    repo.connect(anchor, name, credentials=REPO_TOKEN, forgeToken=FORGE_TOKEN, apiUrl=stub.api_root(forge))
    files = {"index.html": b"<h1>told</h1>"}
    if outcome == "failure":
        files["anchor.toml"] = b"[build\noutput = "  # not TOML: the build fails
    # The forge holds its answer to the first status (pending) until the build is over: the deploy does
    # not wait for it, and the outcome cannot overtake it.
    stub.script(Answer(201, hold=True))
    sha = repo.commit(files, f"told {outcome}")
    deployment = repo.deploy("main")
    assert stub.arrived.wait(30), "no pending status arrived"
    with anchor.api() as api:
        final = wait_final(api, deployment["id"], timeout=120)
    stub.release()
    assert final["status"] == ("READY" if outcome == "success" else "ERROR"), final
    expected = "success" if outcome == "success" else FAILURE[forge]
    wait_for(f"the {expected} status", lambda: len(statuses_of(stub, sha)) >= 2, timeout=30)
    time.sleep(0.3)  # nothing more comes
    told = statuses_of(stub, sha)
    assert [r.body["state"] for r in told] == ["pending", expected]
    assert all(r.problems == [] and 200 <= r.answered < 300 for r in told), [r.problems for r in told]
    assert {r.body["target_url"] for r in told} == {final["url"]}
    owner_repo = "acme%2F" + name if forge == "gitlab" else f"acme/{name}"
    assert {r.repo for r in told} == {owner_repo}
    if outcome == "success":
        serves(anchor, production_url(anchor, name), b"<h1>told</h1>")


@pytest.mark.timeout(300)
def test_an_unreachable_forge_does_not_fail_the_deploy(
    anchor: AnchorProcess, served_repos: tuple[GitHttpServer, Gate], tmp_path: Path
) -> None:
    server, _gate = served_repos
    bare = server.root / "acme" / "unreachable.git"
    bare.parent.mkdir(exist_ok=True)
    repo = ForgeRepo(bare, tmp_path, "github", f"{server.url}/acme/unreachable.git")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    repo.connect(anchor, "unreachable", credentials=REPO_TOKEN, forgeToken=FORGE_TOKEN, apiUrl=closed)
    sha = repo.commit({"index.html": b"<h1>no forge</h1>"}, "no forge")
    deployment = ready(anchor, repo.deploy("main"))
    assert deployment["error"] is None
    serves(anchor, production_url(anchor, "unreachable"), b"<h1>no forge</h1>")
    # The platform did try the forge (and goes on trying in the background), never logging the token.
    tried = f"forge status github acme/unreachable@{sha[:12]} success failed (ConnectError); retrying"
    wait_for("a status sent to the closed port", lambda: tried in anchor.log_tail(), timeout=30)
    assert FORGE_TOKEN not in anchor.log_tail()
