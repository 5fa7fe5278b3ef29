"""A deployment's commit (meta.git) through the API and the CLI, on the services assembled from the fakes:
checked and stored normalized, refused with a 422 and nothing stored when malformed, shown as ``git`` in
every deployment answer and as ``toGit`` in production's history, and in `anchor ls`, `inspect`, `history`
(and `anchor deploy` from a real git working tree, end to end in this process)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from anchor_deploy.api import schemas
from anchor_deploy.api.app import create_app
from anchor_deploy.api.serialize import history_json
from anchor_deploy.cli import deploy_command
from anchor_deploy.cli import main as cli_main
from anchor_deploy.cli.client import ApiClient
from anchor_deploy.model.entities import Deployment
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import InProcessTransport
from tests.support import sha
from tests.unit.conftest import App, make_app

SHA = "0123456789abcdef0123456789abcdef01234567"
GIT = {
    "repository": "https://git.example.com/org/site.git",
    "branch": "feature/header",
    "commitSha": SHA,
    "commitMessage": "Fix the header\n\nLonger explanation.",
    "commitAuthor": "Ada Lovelace <ada@example.com>",
    "dirty": True,
}
STORED = {**GIT, "commitMessage": "Fix the header"}


@dataclass
class Api:
    app: App
    client: ApiClient  # the CLI's client
    http: httpx.Client  # the same API, answers as they come (an error too)

    def deploy(self, git: object = None, content: bytes = b"<h1>hi</h1>", target: str = "production") -> Any:
        """POST a deployment (its blob stored first); the answer, or the error body."""
        digest = self.app.upload(content)
        body: dict[str, Any] = {
            "files": [{"path": "index.html", "sha256": digest, "size": len(content)}],
            "target": target,
        }
        if git is not None:
            body["meta"] = {"ci": "run-1", "git": git}
        answer = self.http.post("/v1/projects/site/deployments", json=body)
        self.build_queued()
        return answer

    def build_queued(self) -> None:
        while self.app.submitted:
            self.app.deployments.build(self.app.submitted.pop(0))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    app = make_app()
    app.project("site")
    _token, admin = app.tokens.create("admin")
    platform = Platform(Settings(base_domain="anchor.test"), app.services, None, BackupService(None))  # type: ignore[arg-type]  # no lifecycle
    holder: list[Api] = []
    transport = InProcessTransport(create_app(platform), lambda: holder[0].build_queued() if holder else None)
    client = ApiClient("http://anchor.test", admin, transport=transport)
    http = httpx.Client(
        base_url="http://anchor.test", headers={"Authorization": f"Bearer {admin}"}, transport=transport
    )
    holder.append(Api(app, client, http))
    monkeypatch.setattr(cli_main, "client", lambda: client)
    monkeypatch.setattr(deploy_command, "client", lambda: client)
    yield holder[0]
    client.close()
    http.close()


def cli(*args: str) -> str:
    result = CliRunner().invoke(cli_main.main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


# -- the API -------------------------------------------------------------------------------------------------
def test_meta_git_is_stored_normalized_and_shown_as_git(api: Api) -> None:
    made = api.deploy(GIT)
    assert made.status_code == 201, made.text
    answer = made.json()
    assert answer["git"] == STORED and answer["meta"] == {"ci": "run-1", "git": STORED}
    stored = api.app.store.deployment(answer["id"])
    assert stored is not None and stored.meta["git"] == STORED
    assert api.client.get(f"/v1/deployments/{answer['id']}")["git"] == STORED
    plain = api.deploy(None, b"<h1>no commit</h1>", "preview").json()
    assert plain["git"] is None
    listed = {d["id"]: d["git"] for d in api.client.get("/v1/projects/site/deployments")["deployments"]}
    assert listed == {answer["id"]: STORED, plain["id"]: None}


@pytest.mark.parametrize(
    ("git", "words"),
    [
        ("main", "meta.git must be an object"),
        ({**GIT, "commitSha": SHA[:12]}, "commitSha"),
        ({**GIT, "commitSha": SHA.upper()}, "commitSha"),
        ({key: value for key, value in GIT.items() if key != "commitSha"}, "commitSha"),
        ({**GIT, "commitMessage": "x" * 801}, "commitMessage"),
        ({**GIT, "commitAuthor": "a" * 201}, "commitAuthor"),
        ({**GIT, "repository": "https://x/" + "a" * 2048}, "repository"),
        ({**GIT, "branch": "b" * 256}, "branch"),
        ({**GIT, "branch": 7}, "branch"),
        ({**GIT, "repository": None}, "repository"),
        ({**GIT, "dirty": "yes"}, "dirty"),
    ],
)
def test_a_bad_meta_git_is_422_and_nothing_is_stored(api: Api, git: object, words: str) -> None:
    answer = api.deploy(git)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and words in error["message"]
    assert api.app.store.list_deployments(api.app.store.project_by_name("site").id) == []  # type: ignore[union-attr]
    assert api.app.submitted == []


def test_history_rows_carry_the_commit_they_moved_to(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    first = api.deploy(GIT).json()
    second = api.deploy(None, b"<h1>two</h1>").json()
    api.client.post("/v1/projects/site/rollback", {"deploymentId": first["id"]})
    found: list[str] = []
    real_find = api.app.deployments.find

    def counting_find(deployment_id: str) -> Deployment | None:
        found.append(deployment_id)
        return real_find(deployment_id)

    monkeypatch.setattr(api.app.deployments, "find", counting_find)
    history = api.client.get("/v1/projects/site/alias-history")["history"]
    moves = [(m["toDeploymentId"], m["toGit"]) for m in history]
    expected = [(first["id"], STORED), (second["id"], None), (first["id"], STORED)]
    assert sorted(moves, key=str) == sorted(expected, key=str)  # deploy, deploy, rollback
    assert sorted(found) == sorted([first["id"], second["id"]])  # once per distinct deployment


def test_history_json_asks_once_per_deployment_and_a_gone_one_has_no_commit(api: Api) -> None:
    kept = api.app.deployments.find(api.deploy(GIT).json()["id"])
    assert kept is not None
    moves = api.app.aliases.history(api.app.fresh(api.app.store.project_by_name("site")))  # type: ignore[arg-type]
    moves = [*moves, *moves]
    asked: list[str] = []

    def find(deployment_id: str) -> Deployment | None:
        asked.append(deployment_id)
        return None

    rows = history_json(moves, find)
    assert asked == [kept.id] and [r["toGit"] for r in rows] == [None, None]
    for row in history_json(moves, lambda _id: kept):
        assert row["toGit"] == STORED
        schemas.AliasHistoryEntry.model_validate(row)


# -- the CLI -------------------------------------------------------------------------------------------------
def test_ls_shows_branch_short_sha_dirty_mark_and_message(api: Api) -> None:
    with_commit = api.deploy({**GIT, "commitMessage": "A message much longer than the column " * 3}).json()
    api.deploy(None, b"<h1>plain</h1>", "preview")
    text = cli("ls", "site")
    line = next(x for x in text.splitlines() if with_commit["id"] in x and "│" in x)
    assert f"│ feature/header {SHA[:7]}* A message much longer than the column A… │" in line
    assert SHA[:8] not in text and "* deployed with uncommitted changes" in text
    as_json = json.loads(cli("ls", "site", "--json"))
    api_view = api.client.get("/v1/projects/site/deployments")
    assert as_json["deployments"] == api_view["deployments"]


def test_ls_has_no_dirty_note_when_every_tree_was_clean(api: Api) -> None:
    api.deploy({**GIT, "dirty": False})
    text = cli("ls", "site")
    assert f"feature/header {SHA[:7]} Fix the header" in text and "uncommitted" not in text


def test_inspect_shows_every_field_of_the_commit(api: Api) -> None:
    made = api.deploy(GIT).json()
    text = cli("inspect", made["id"])
    rows = {
        line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in text.splitlines() if line.strip()
    }
    assert rows["repository"] == GIT["repository"]
    assert rows["branch"] == "feature/header"
    assert rows["commit"] == SHA
    assert rows["message"] == "Fix the header"
    assert rows["author"] == "Ada Lovelace <ada@example.com>"
    assert rows["dirty"].startswith("yes")
    plain = api.deploy(None, b"<h1>plain</h1>", "preview").json()
    assert "repository" not in cli("inspect", plain["id"]) and "commit" not in cli("inspect", plain["id"])
    assert json.loads(cli("inspect", made["id"], "--json")) == api.client.get(f"/v1/deployments/{made['id']}")


def test_history_shows_the_short_sha_and_message_of_each_target(api: Api) -> None:
    first = api.deploy({**GIT, "dirty": False}).json()
    second = api.deploy(None, b"<h1>two</h1>").json()
    text = cli("history", "site")
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if "│" in line]
    to_commit = {row[3]: row[4] for row in rows}  # at, reason, from, to, commit, by
    assert to_commit == {first["id"]: f"{SHA[:7]} Fix the header", second["id"]: ""}
    data = json.loads(cli("history", "site", "--json"))
    assert data == api.client.get("/v1/projects/site/alias-history")


def test_commit_text_cannot_drive_the_terminal(api: Api) -> None:
    made = api.deploy({**GIT, "commitMessage": "[red]x[/red] \x1b[2J wipe", "branch": "main"}).json()
    text = cli("inspect", made["id"]) + cli("ls", "site")
    assert "\x1b" not in text and "[red]x[/red] ?[2J wipe" in text


# -- anchor deploy from a working tree, end to end in process ------------------------------------------------
def test_anchor_deploy_from_a_git_tree_records_the_commit(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>from git</h1>")

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(site), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    git("init", "-q", "-b", "trunk")
    git("add", ".")
    git("-c", "user.name=Grace", "-c", "user.email=grace@example.com", "commit", "-q", "-m", "First page")
    git("remote", "add", "origin", "https://grace:hunter2@git.example.com/site.git")
    result = CliRunner().invoke(cli_main.main, ["deploy", str(site), "-p", "site", "--prod", "--json"])
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.stdout)
    assert deployed["status"] == "READY" and api.app.blobs.missing([sha(b"<h1>from git</h1>")]) == []
    assert deployed["git"] == {
        "repository": "https://git.example.com/site.git",
        "branch": "trunk",
        "commitSha": git("rev-parse", "HEAD"),
        "commitMessage": "First page",
        "commitAuthor": "Grace <grace@example.com>",
        "dirty": False,
    }
    assert "hunter2" not in json.dumps(api.client.get(f"/v1/deployments/{deployed['id']}"))


def test_the_published_document_describes_git_and_to_git(api: Api) -> None:
    document = api.http.get("/v1/openapi.json").json()
    models = document["components"]["schemas"]
    commit_fields = {"repository", "branch", "commitSha", "commitMessage", "commitAuthor", "dirty"}
    assert set(models["GitCommit"]["properties"]) == commit_fields
    assert set(models["GitCommit"]["required"]) == commit_fields
    assert "git" in models["DeploymentInfo"]["properties"] and "git" in models["DeploymentInfo"]["required"]
    assert "toGit" in models["AliasHistoryEntry"]["required"]
