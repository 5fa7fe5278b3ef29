"""`anchor git connect|show|disconnect` run in this process against the API on the fakes (git deploys wired
in, with a stand-in remote): secrets read from files, stdin or a named variable and never shown again nor
answered; the webhook secret printed once; forgejo stored as gitea; bad input one line, a non-zero exit and
nothing stored; branches listed with their URLs; disconnecting twice."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from anchor_deploy.api.app import create_app
from anchor_deploy.cli import git as cli_git
from anchor_deploy.cli.client import ApiClient
from anchor_deploy.cli.main import main
from anchor_deploy.model.entities import Project
from anchor_deploy.model.git import BranchAlias, Forge, branch_host
from anchor_deploy.ports.fakes import FakeStore
from anchor_deploy.ports.git import FetchRequest, SourceTree
from anchor_deploy.ports.git_remote import CgiRequest, CgiResponse
from anchor_deploy.providers.platform import Platform
from anchor_deploy.providers.services import Hooks, Services, assemble
from anchor_deploy.services.git_builds import GitParts
from anchor_deploy.services.operator import BackupService
from anchor_deploy.settings import Settings
from tests.asgi_transport import InProcessTransport
from tests.support import TickingClock
from tests.unit.conftest import BASE, MAX_FILE, fake_adapters
from tests.unit.domain_fakes import XorBox

REPO = "https://git.example.com/acme/site.git"
TOKEN = "glpat-fetch-0123456789abcdef"
FORGE_TOKEN = "ghp_forge_fedcba9876543210"
SHA = "0123456789abcdef0123456789abcdef01234567"
DEPLOY_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


class NoFetcher:
    """These tests build nothing: a fetch would be a mistake."""

    def fetch(self, request: FetchRequest, log: Callable[[str], None]) -> SourceTree:
        raise AssertionError(f"nothing should be fetched here ({request.sha})")


class StandInRemote:
    """The platform's git remote, there only so the API answers its URL."""

    async def serve(self, project: Project, request: CgiRequest) -> CgiResponse:
        raise AssertionError("nothing is pushed here")

    def repository_url(self, project: Project) -> str:
        return f"/remote/{project.name}.git"

    def remove(self, project_id: str) -> None:
        return None


@dataclass
class Api:
    store: FakeStore
    box: XorBox
    services: Services
    transport: InProcessTransport
    http: httpx.Client  # the same API, answers as they come

    @property
    def project(self) -> Project:
        found = self.store.project_by_name("site")
        assert found is not None
        return found


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    clock = TickingClock()
    adapters = fake_adapters(clock)
    assert isinstance(adapters.store, FakeStore) and isinstance(adapters.box, XorBox)
    parts = GitParts(adapters.store, NoFetcher(), None, lambda p: f"http://anchor.test/git/{p.name}.git")
    adapters = dataclasses.replace(adapters, git=parts, git_remote=StandInRemote())
    settings = Settings(base_domain=BASE, max_blob_size=MAX_FILE)
    services = assemble(settings, adapters, clock, Hooks(submit_build=lambda _id: None))
    _secret, admin = services.tokens.create("admin")
    platform = Platform(settings, services, None, BackupService(None))  # type: ignore[arg-type]  # no lifecycle
    transport = InProcessTransport(create_app(platform))
    client = ApiClient("http://anchor.test", admin, transport=transport)
    http = httpx.Client(
        base_url="http://anchor.test", headers={"Authorization": f"Bearer {admin}"}, transport=transport
    )
    assert http.post("/v1/projects", json={"name": "site"}).status_code == 201
    monkeypatch.setattr(cli_git, "client", lambda: client)
    yield Api(adapters.store, adapters.box, services, transport, http)
    client.close()
    http.close()


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["git", *args], input=stdin)


def ok(*args: str, stdin: str | None = None) -> str:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def one_error_line(result: Result, code: int, words: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.stderr
    assert result.stdout == ""


def printed_secret(output: str) -> str:
    found = re.findall(r"^webhook secret: (\S+)$", output, flags=re.MULTILINE)
    assert len(found) == 1, output
    return str(found[0])


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_connect_with_a_token_file_prints_the_secret_once_and_never_a_token(api: Api, tmp_path: Path) -> None:
    token_file = write(tmp_path, "token", TOKEN + "\n")
    forge_file = write(tmp_path, "forge", FORGE_TOKEN + "\n")
    output = ok(
        "connect", "site", "--repo", REPO, "--token-file", token_file, "--forge-token-file", forge_file
    )

    secret = printed_secret(output)
    sealed = api.store.git_secrets(api.project.id)
    assert sealed is not None and api.box.open(sealed.webhook_secret).decode() == secret
    assert sealed.credentials is not None and api.box.open(sealed.credentials).decode() == TOKEN
    assert sealed.forge_token is not None and api.box.open(sealed.forge_token).decode() == FORGE_TOKEN
    assert TOKEN.encode() not in sealed.credentials and FORGE_TOKEN.encode() not in sealed.forge_token
    assert "webhook URL: http://anchor.test/v1/git/webhooks/site" in output
    assert "shown only now" in output and "application/json" in output and "push event" in output
    assert "git remote add anchor http://anchor.test/git/site.git" in output
    assert "site-git-{branch-slug}" in output
    assert TOKEN not in output and FORGE_TOKEN not in output

    for shown in (ok("show", "site"), ok("show", "site", "--json")):
        assert secret not in shown and TOKEN not in shown and FORGE_TOKEN not in shown
    answer = json.loads(ok("show", "site", "--json"))
    assert answer["connection"]["hasCredentials"] is True and answer["connection"]["hasForgeToken"] is True
    assert answer["connection"]["repoUrl"] == REPO and answer["connection"]["forge"] == "github"
    assert "webhookSecret" not in answer


def test_the_json_answers_carry_the_secret_once_and_no_credentials(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANCHOR_TEST_FORGE_TOKEN", FORGE_TOKEN)
    connected = json.loads(
        ok(
            "connect",
            "site",
            "--repo",
            REPO,
            "--token-stdin",
            "--forge-token-env",
            "ANCHOR_TEST_FORGE_TOKEN",
            "--json",
            stdin=TOKEN + "\n",
        )
    )
    sealed = api.store.git_secrets(api.project.id)
    assert sealed is not None and sealed.credentials is not None and sealed.forge_token is not None
    assert api.box.open(sealed.credentials).decode() == TOKEN
    assert api.box.open(sealed.forge_token).decode() == FORGE_TOKEN
    assert api.box.open(sealed.webhook_secret).decode() == connected["webhookSecret"]
    raw = [json.dumps(connected), api.http.get("/v1/projects/site/git").text]
    for text in raw:
        assert TOKEN not in text and FORGE_TOKEN not in text
    assert connected["webhookSecret"] not in raw[1]


def test_a_deploy_key_goes_with_an_ssh_url_and_forgejo_is_stored_as_gitea(api: Api, tmp_path: Path) -> None:
    key = write(tmp_path, "id_ed25519", DEPLOY_KEY)
    repo = "git@codeberg.example:acme/site.git"
    output = ok("connect", "site", "--repo", repo, "--forge", "forgejo", "--deploy-key", key)
    connection = api.store.git_connection(api.project.id)
    assert connection is not None and connection.forge is Forge.GITEA and connection.repo_url == repo
    sealed = api.store.git_secrets(api.project.id)
    assert sealed is not None and sealed.credentials is not None
    assert api.box.open(sealed.credentials).decode() == DEPLOY_KEY.strip()
    assert "In Gitea or Forgejo" in output and "OPENSSH" not in output
    assert ok("show", "site").count("gitea") == 1


def test_repo_text_is_shown_as_is_never_as_terminal_markup(api: Api) -> None:
    repo = "https://git.example.com/acme/[bold]site[/bold].git"
    output = ok("connect", "site", "--repo", repo, "--forge", "GitLab")
    assert f"connected site to {repo} (gitlab)" in output and "In GitLab" in output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--repo", "not a url"], "not a repository URL"),
        (["--repo", "https://user:pw@git.example.com/a.git"], "holds a password"),
        (["--repo", REPO, "--production-branch", "bad..branch"], "invalid branch name"),
        (["--repo", REPO, "--api-url", "ftp://forge.example"], "apiUrl"),
    ],
)
def test_the_api_refusing_is_one_line_exit_1_and_nothing_stored(
    api: Api, args: list[str], words: str
) -> None:
    one_error_line(run("connect", "site", *args), 1, words)
    assert api.store.git_connection(api.project.id) is None and api.store.git_secrets(api.project.id) is None


BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (["--token-file", "/nonexistent/token"], "cannot read the access token file"),
    (["--token-file", "{empty}"], "is empty"),
    (["--token-file", "{two_lines}"], "more than one line"),
    (["--token-file", "{key}"], "holds a private key"),
    (["--token-file", "{empty}", "--token-stdin"], "give the credentials once"),
    (["--deploy-key", "{key}"], "a deploy key is for ssh URLs"),
    (["--forge-token-file", "{token}", "--forge-token-env", "X"], "give the forge token once"),
    (["--forge-token-env", "ANCHOR_TEST_UNSET_VARIABLE"], "ANCHOR_TEST_UNSET_VARIABLE is not set"),
    (["--forge-token-env", "not-a-name"], "the name of an environment variable"),
    (["--forge", "generic", "--forge-token-file", "{token}"], "takes no forge token"),
]


@pytest.mark.parametrize(("args", "words"), BAD_ARGUMENTS)
def test_a_bad_argument_is_one_line_exit_2_before_any_call(
    api: Api, tmp_path: Path, args: list[str], words: str
) -> None:
    files = {
        "{empty}": write(tmp_path, "empty", "\n"),
        "{two_lines}": write(tmp_path, "two", "a\nb\n"),
        "{key}": write(tmp_path, "key", DEPLOY_KEY),
        "{token}": write(tmp_path, "token", TOKEN),
    }
    args = [files.get(a, a) for a in args]
    result = run("connect", "site", "--repo", REPO, *args, stdin="")
    one_error_line(result, 2, words)
    assert TOKEN not in result.output
    assert api.transport.calls == 1  # the fixture's project, nothing since
    assert api.store.git_connection(api.project.id) is None


@pytest.mark.parametrize(
    ("repo", "args", "words"),
    [
        (REPO, ["--deploy-key", "{public}"], "is a public key"),
        ("ssh://git@git.example.com/acme/site.git", ["--deploy-key", "{token}"], "is no private key"),
        (
            "ssh://git@git.example.com/acme/site.git",
            ["--token-file", "{token}"],
            "an access token is for https",
        ),
    ],
)
def test_credentials_that_cannot_fetch_the_repository_are_refused(
    api: Api, tmp_path: Path, repo: str, args: list[str], words: str
) -> None:
    files = {
        "{public}": write(tmp_path, "id.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@host\n"),
        "{token}": write(tmp_path, "token", TOKEN),
    }
    if words == "is a public key":
        repo = "git@git.example.com:acme/site.git"
    one_error_line(run("connect", "site", "--repo", repo, *[files.get(a, a) for a in args]), 2, words)
    assert api.store.git_connection(api.project.id) is None


def test_show_lists_branches_with_their_urls_as_the_connect_rule_says(api: Api) -> None:
    assert "has no connected repository" in ok("show", "site")
    connect_output = ok("connect", "site", "--repo", REPO)
    host = branch_host("site", "feature/x", BASE)
    api.store.move_branch(BranchAlias(api.project.id, "feature/x", host, "dpl_feature1", SHA, 1.0), None)

    shown = ok("show", "site")
    answer = json.loads(ok("show", "site", "--json"))
    (branch,) = answer["branches"]
    assert branch["branch"] == "feature/x" and branch["deploymentId"] == "dpl_feature1"
    assert branch["commitSha"] == SHA and host in branch["url"]
    assert f"feature/x → {branch['url']}" in connect_output  # the rule shown at connect time
    row = next(line for line in shown.splitlines() if "feature/x" in line)
    assert branch["url"] in row and SHA[:7] in row and SHA[:8] not in row and "dpl_feature1" in row


def test_disconnect_twice_then_branches_stay(api: Api) -> None:
    ok("connect", "site", "--repo", REPO)
    host = branch_host("site", "main", BASE)
    api.store.move_branch(BranchAlias(api.project.id, "main", host, "dpl_main1", SHA, 1.0), None)

    first = json.loads(ok("disconnect", "site", "--json"))
    assert first["disconnected"] is True
    assert api.store.git_connection(api.project.id) is None and api.store.git_secrets(api.project.id) is None
    second = ok("disconnect", "site")
    assert second.strip() == "site: no repository was connected"
    shown = ok("show", "site")
    assert "has no connected repository" in shown and host in shown


def test_an_unknown_project_is_one_line_and_exit_1(api: Api) -> None:
    for args in (["show", "nope"], ["disconnect", "nope"], ["connect", "nope", "--repo", REPO]):
        one_error_line(run(*args), 1, "nope")
