"""`anchor git connect|show|disconnect`: a project's connected repository, its webhook, its git remote and
its branches' preview URLs.

Secrets never come on the command line itself, where `ps` and the shell's history would show them: fetch
credentials are read from a file or stdin, the forge token from a file or a named environment variable.
"""

from __future__ import annotations

import re
import sys
from typing import Any
from urllib.parse import quote, urlsplit

import click
from rich.table import Table
from rich.text import Text

from anchor_deploy.cli.commit_view import SHORT_SHA, clean
from anchor_deploy.cli.common import client, emit, fails_cleanly, has_terminal, json_option, out
from anchor_deploy.cli.dns import bad_argument, read_small_file
from anchor_deploy.model.git import branch_host
from anchor_deploy.settings import ClientSettings

MAX_SECRET = 16 * 1024  # the API's limit for credentials
FORGES = ("github", "gitlab", "gitea", "forgejo", "generic")
FORGE_OF = {"forgejo": "gitea"}  # Forgejo speaks Gitea's API and webhooks
KEY_START = "-----BEGIN"
_PUBLIC_KEY = re.compile(r"^(?:ssh-|ecdsa-|sk-)\S+ ")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SSH_URL = re.compile(r"^(?:ssh://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)")
EXAMPLE_BRANCH = "feature/x"
WEBHOOK_SETUP = {
    "github": "In GitHub: repository → Settings → Webhooks → Add webhook: Payload URL = the webhook URL, "
    "Content type = application/json, Secret = the secret, events: Just the push event.",
    "gitlab": "In GitLab: project → Settings → Webhooks: URL = the webhook URL, Secret token = the secret, "
    "trigger: Push events (GitLab sends application/json).",
    "gitea": "In Gitea or Forgejo: repository → Settings → Webhooks → Add webhook → Gitea (or Forgejo): "
    "Target URL = the webhook URL, POST content type = application/json, Secret = the secret, "
    "trigger on: Push events.",
    "generic": "From any git server: a post-receive hook POSTs the generic form (application/json; "
    "X-Anchor-Event: push, X-Anchor-Delivery, X-Anchor-Signature: sha256=HMAC-SHA256 of the body keyed "
    "by the secret); see docs/git.md.",
}


# -- secrets, read from where the command line does not show them ------------------------------------------
def _read_file(path: str, what: str) -> str:
    raw = read_small_file(path, MAX_SECRET, what)
    try:
        return _not_empty(raw.decode("utf-8"), path, what)
    except UnicodeDecodeError:
        bad_argument(f"{path} holds no {what}: it is not UTF-8 text")


def _not_empty(text: str, where: str, what: str) -> str:
    if not text.strip():
        bad_argument(f"{where} is empty: it should hold the {what}")
    return text.strip()


def _one_line(text: str, where: str, what: str) -> str:
    if text.startswith(KEY_START):
        bad_argument(f"{where} holds a private key, not a {what} (a deploy key goes with --deploy-key)")
    if "\n" in text:
        bad_argument(f"{where} holds more than one line: put only the {what} in it")
    return text


def _stdin_token() -> str:
    if has_terminal():
        typed = str(click.prompt("access token", hide_input=True, default="", err=True))
        return _one_line(_not_empty(typed, "the typed token", "access token"), "stdin", "access token")
    read = sys.stdin.read(MAX_SECRET + 1)
    if len(read) > MAX_SECRET:
        bad_argument(f"stdin holds no access token: it is longer than {MAX_SECRET // 1024} KiB")
    return _one_line(_not_empty(read, "stdin", "access token"), "stdin", "access token")


def _deploy_key(path: str) -> str:
    key = _read_file(path, "deploy key")
    if _PUBLIC_KEY.match(key):
        bad_argument(f"{path} is a public key: give the private key (the public one goes to the forge)")
    first = key.splitlines()[0]
    if not first.startswith(KEY_START) or "PRIVATE KEY" not in first:
        bad_argument(f"{path} is no private key: it should start with {KEY_START} … PRIVATE KEY-----")
    return key


def credentials_from(
    repo: str, token_file: str | None, token_stdin: bool, deploy_key: str | None
) -> str | None:
    """The fetch credentials (an access token or a private deploy key), or one line and exit 2."""
    given = [
        name
        for name, value in (
            ("--token-file", token_file),
            ("--token-stdin", token_stdin),
            ("--deploy-key", deploy_key),
        )
        if value
    ]
    if len(given) > 1:
        bad_argument(f"give the credentials once: {' or '.join(given)}, not both")
    is_ssh = bool(_SSH_URL.match(repo))
    if deploy_key:
        if repo.startswith(("https://", "http://")):
            bad_argument(
                "a deploy key is for ssh URLs; an https repository takes an access token (--token-file)"
            )
        return _deploy_key(deploy_key)
    if (token_file or token_stdin) and is_ssh:
        bad_argument("an access token is for https URLs; an ssh repository takes a deploy key (--deploy-key)")
    if token_file:
        return _one_line(_read_file(token_file, "access token"), token_file, "access token")
    return _stdin_token() if token_stdin else None


def forge_token_from(forge: str, token_file: str | None, variable: str | None) -> str | None:
    """The token that reports commit statuses to the forge, or one line and exit 2."""
    if token_file and variable:
        bad_argument("give the forge token once: --forge-token-file or --forge-token-env, not both")
    if (token_file or variable) and forge == "generic":
        bad_argument("a generic git server is told nothing: it takes no forge token")
    if token_file:
        return _one_line(_read_file(token_file, "forge token"), token_file, "forge token")
    if variable is None:
        return None
    if not _VARIABLE.fullmatch(variable):
        bad_argument(
            "--forge-token-env takes the name of an environment variable (as GITHUB_TOKEN), not a value"
        )
    named = variable if variable.isupper() else "named by --forge-token-env"  # never echo a pasted token
    value = ClientSettings.named_variable(variable)
    if value is None or not value.strip():
        bad_argument(f"the environment variable {named} is not set or empty")
    return _one_line(value.strip(), f"the variable {named}", "forge token")


# -- what is shown -----------------------------------------------------------------------------------------
def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def _project_path(project: str) -> str:
    return f"/v1/projects/{quote(project, safe='')}/git"


def branch_rule(project: str, production_url: str, production_branch: str) -> str:
    """The branch URL rule, with two examples when the production URL shows the base domain."""
    rule = f"every branch has a stable URL {project}-git-{{branch-slug}}.{{base domain}}"
    parts = urlsplit(production_url)
    host = parts.hostname or ""
    if not host.startswith(f"{project}."):
        return rule
    base = host.removeprefix(f"{project}.")
    port = f":{parts.port}" if parts.port else ""
    examples = [
        f"{b} → {parts.scheme}://{branch_host(project, b, base)}{port}"
        for b in dict.fromkeys((production_branch, EXAMPLE_BRANCH))
    ]
    return f"{rule}: {', '.join(examples)}"


def _remote_line(remote_url: str | None) -> str:
    if not remote_url:
        return "git remote: none on this platform"
    return f"git remote: git remote add anchor {remote_url}   (push with an anchor token as the password)"


def _connection_table(connection: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    forge = connection["forge"] + (f" (API {connection['apiUrl']})" if connection.get("apiUrl") else "")
    rows = (
        ("repository", connection["repoUrl"]),
        ("forge", forge),
        ("production branch", connection["productionBranch"]),
        ("credentials", "set (sealed, never shown)" if connection["hasCredentials"] else "none"),
        (
            "forge token",
            "set (sealed, never shown): commit statuses are reported"
            if connection["hasForgeToken"]
            else "none: the forge is not told of deployments",
        ),
        ("connected", str(connection["createdAt"])),
    )
    for label, value in rows:
        table.add_row(label, Text(clean(value)))
    return table


def _branches_table(branches: list[dict[str, Any]]) -> Table:
    table = Table("branch", "url", "commit", "deployment", "updated")
    for b in branches:
        table.add_row(
            Text(clean(b["branch"])),
            Text(clean(b["url"])),
            clean(b["commitSha"])[:SHORT_SHA] or "-",
            Text(clean(b["deploymentId"] or "-")),
            str(b["updatedAt"]),
        )
    return table


def _show_connected(project: str, data: dict[str, Any], production_url: str) -> None:
    connection = data["connection"]
    _say(f"connected {project} to {clean(connection['repoUrl'])} ({connection['forge']})")
    out.print(_connection_table(connection))
    _say("")
    _say(f"webhook URL: {data['webhookUrl']}")
    _say(f"webhook secret: {data['webhookSecret']}")
    _say(
        "  shown only now: it is stored sealed and never shown again "
        f"(`anchor git connect {project} …` again makes a new one and the old one stops working)"
    )
    _say(f"  {WEBHOOK_SETUP.get(connection['forge'], WEBHOOK_SETUP['generic'])}")
    _say(_remote_line(data.get("remoteUrl")))
    _say(
        f"branches: a push to {connection['productionBranch']} deploys to production (unless production is "
        "pinned after a rollback), any other branch makes a preview"
    )
    _say(branch_rule(project, production_url, connection["productionBranch"]))


def _show_info(project: str, data: dict[str, Any]) -> None:
    connection = data["connection"]
    if connection is None:
        _say(
            f"{project} has no connected repository; "
            f"connect one with: anchor git connect {project} --repo URL"
        )
    else:
        out.print(_connection_table(connection))
        _say(f"webhook URL: {data['webhookUrl']}")
    _say(_remote_line(data.get("remoteUrl")))
    if not data["branches"]:
        _say("no branch URL yet: the first push of a branch makes one")
        return
    out.print(_branches_table(data["branches"]))


# -- the commands ------------------------------------------------------------------------------------------
@click.group()
def git() -> None:
    """Deploy on push: connect a project's repository (its forge's webhooks), its git remote, branch URLs."""


@git.command("connect")
@click.argument("project")
@click.option(
    "--repo", required=True, metavar="URL", help="https://…, ssh://…, git@host:owner/repo.git or a path"
)
@click.option("--production-branch", default="main", show_default=True, help="Pushes here go to production.")
@click.option(
    "--forge",
    type=click.Choice(FORGES, case_sensitive=False),
    default="github",
    show_default=True,
    help="Its webhooks' format and where commit statuses go.",
)
@click.option("--api-url", metavar="URL", help="The forge API's root, for a self-hosted forge.")
@click.option("--token-file", metavar="PATH", help="An access token to fetch a private https repository.")
@click.option("--token-stdin", is_flag=True, help="Read that access token from stdin.")
@click.option("--deploy-key", metavar="PATH", help="A private deploy key to fetch a private ssh repository.")
@click.option("--forge-token-file", metavar="PATH", help="A forge token that may set commit statuses.")
@click.option("--forge-token-env", metavar="VAR", help="…or the environment variable that holds it.")
@json_option
@fails_cleanly
def git_connect(
    project: str,
    repo: str,
    production_branch: str,
    forge: str,
    api_url: str | None,
    token_file: str | None,
    token_stdin: bool,
    deploy_key: str | None,
    forge_token_file: str | None,
    forge_token_env: str | None,
    as_json: bool,
) -> None:
    """Connect PROJECT's repository: prints the webhook URL and its secret (shown this once), the git
    remote and the branch URL rule. Connecting again replaces the connection and makes a new secret."""
    forge = FORGE_OF.get(forge.lower(), forge.lower())
    body: dict[str, Any] = {"repoUrl": repo, "productionBranch": production_branch, "forge": forge}
    if api_url:
        body["apiUrl"] = api_url
    credentials = credentials_from(repo.strip(), token_file, token_stdin, deploy_key)
    if credentials is not None:
        body["credentials"] = credentials
    forge_token = forge_token_from(forge, forge_token_file, forge_token_env)
    if forge_token is not None:
        body["forgeToken"] = forge_token
    api = client()
    data = api.post(_project_path(project), body)
    if as_json:
        emit(data, as_json, lambda: None)
        return
    production_url = str(api.get(f"/v1/projects/{quote(project, safe='')}").get("productionUrl", ""))
    _show_connected(project, data, production_url)


@git.command("show")
@click.argument("project")
@json_option
@fails_cleanly
def git_show(project: str, as_json: bool) -> None:
    """The connection (never its secrets), the webhook URL, the git remote, and the branches' URLs."""
    data = client().get(_project_path(project))
    emit(data, as_json, lambda: _show_info(project, data))


@git.command("disconnect")
@click.argument("project")
@json_option
@fails_cleanly
def git_disconnect(project: str, as_json: bool) -> None:
    """Forget PROJECT's repository: its webhooks are refused from then on; its deployments and branch
    URLs stay."""
    data = client().request("DELETE", _project_path(project))
    emit(data, as_json, lambda: _say(f"{project}: {data['message']}"))
