"""A new user's first hour with the real CLI against a real platform: what `anchor deploy` leaves behind,
projects that do not exist, tokens, confirmations without a terminal, login from a pipe, rollback and
pinning messages, the deploy output, a Flask app's runtime log and a failed start's cause.

One platform serves the module (each test its own project). It polls DNS only on a closed loopback port,
so a custom domain added here is never looked up anywhere else.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps_support import app_files, app_platform, flask_source, host_of, write_tree
from tests.e2e.harness import AnchorProcess
from tests.ports import free_port


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    data = tmp_path_factory.mktemp("first-use") / "data"
    anchor = app_platform(data, ANCHOR_DNS_RESOLVERS=f"127.0.0.1:{free_port()}").start()
    try:
        yield anchor
    finally:
        anchor.stop()


def one_line_error(done: object) -> str:
    """The stderr of a failed command: exactly one line starting with "error:", no traceback."""
    assert getattr(done, "returncode", 0) == 1, done
    lines = getattr(done, "stderr", "").strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def host(deployment: dict[str, object]) -> str:
    return host_of(str(deployment["url"]))


SECRETS = {
    ".env": "STRIPE_KEY=sk_live_anchor_test\n",
    ".env.local": "DB_PASSWORD=anchor-test\n",
    ".env.example": "STRIPE_KEY=\n",
    ".npmrc": "//registry.npmjs.org/:_authToken=npm_anchor_test\n",
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    ".venv/lib/secret.py": "x = 1\n",
    "__pycache__/m.cpython-311.pyc": "cache",
    ".git/config": "[core]\n",
    "index.html": "the site",
    "notes.txt": "private notes",
    "keep.txt": "kept on purpose",
}


def test_deploy_leaves_secrets_and_local_environments_behind(platform: AnchorProcess, tmp_path: Path) -> None:
    site = write_tree(tmp_path / "site", {**SECRETS, ".anchorignore": "*.txt\n!keep.txt\n"})
    done = platform.cli("deploy", str(site), "--project", "safe", "--create", "--prod")
    assert (
        "skipped 3 files and 1 folder: .env, .env.local, .npmrc, .venv/ (secrets and local environments; "
        "see .anchorignore or --include-dotenv)"
    ) in done.stderr, done.stderr
    assert "uploaded 3 files (" in done.stdout, done.stdout  # index.html, keep.txt, .env.example
    for path in (
        "/.env",
        "/.env.local",
        "/.npmrc",
        "/.venv/pyvenv.cfg",
        "/.venv/lib/secret.py",
        "/__pycache__/m.cpython-311.pyc",
        "/.git/config",
        "/notes.txt",
        "/.anchorignore",
    ):
        assert platform.edge("safe.localhost", path).status_code == 404, path
    assert platform.edge("safe.localhost").text == "the site"
    assert platform.edge("safe.localhost", "/keep.txt").text == "kept on purpose"  # `!` re-included it
    assert platform.edge("safe.localhost", "/.env.example").text == "STRIPE_KEY=\n"

    verbose = platform.cli("deploy", str(site), "--project", "safe", "--verbose")
    for line in ("skipped .git/ (version control)", "skipped __pycache__/ (cache)", "skipped notes.txt"):
        assert line in verbose.stderr, verbose.stderr
    listed = json.loads(platform.cli("deploy", str(site), "--project", "safe", "--json").stdout)
    assert {s["path"]: s["reason"] for s in listed["skipped"]} == {
        ".env": "secret",
        ".env.local": "secret",
        ".npmrc": "secret",
        ".venv/": "local environment",
        "__pycache__/": "cache",
        ".git/": "version control",
        "notes.txt": "ignore pattern",
        ".anchorignore": "platform file",
    }

    with_env = json.loads(
        platform.cli("deploy", str(site), "--project", "safe", "--include-dotenv", "--json").stdout
    )
    assert {s["path"] for s in with_env["skipped"]} >= {".npmrc", ".venv/"}
    assert not {".env", ".env.local"} & {s["path"] for s in with_env["skipped"]}
    assert platform.edge(host(with_env), "/.env").text == SECRETS[".env"]
    assert platform.edge(host(with_env), "/.npmrc").status_code == 404  # --include-dotenv: .env only


def test_a_missing_project_needs_create(platform: AnchorProcess, tmp_path: Path) -> None:
    site = write_tree(tmp_path / "typo", {"index.html": "x"})
    refused = platform.cli("deploy", str(site), "--project", "shpo", "--prod", check=False)
    line = one_line_error(refused)
    assert "project shpo does not exist" in line and "--create" in line and "anchor projects add shpo" in line
    with platform.api() as api:
        assert api.get("/v1/projects/shpo").status_code == 404
    unnamed = platform.cli("deploy", str(site), check=False)  # the folder's name, "typo": refused alike
    assert "project typo does not exist" in one_line_error(unnamed)
    created = json.loads(platform.cli("deploy", str(site), "--create", "--json").stdout)
    assert created["status"] == "READY" and created["project"] == "typo"


def test_a_missing_or_refused_token_says_to_log_in(platform: AnchorProcess) -> None:
    missing = platform.cli("projects", env={"ANCHOR_TOKEN": ""}, check=False)
    assert one_line_error(missing) == "error: no token is set: run `anchor login`, or set ANCHOR_TOKEN"
    refused = platform.cli("projects", token="anc_not_a_real_token", check=False)
    assert "the token was refused (revoked or wrong): run `anchor login`" in one_line_error(refused)


def test_rm_without_a_terminal_needs_yes(platform: AnchorProcess) -> None:
    platform.cli("projects", "add", "doomed")
    refused = platform.cli("projects", "rm", "doomed", check=False)
    assert "pass --yes" in one_line_error(refused) and "Abort" not in refused.stderr
    with platform.api() as api:
        assert api.get("/v1/projects/doomed").status_code == 200
    platform.cli("domains", "add", "doomed", "www.doomed-anchor.test")
    for json_flag in ([], ["--json"]):  # --json alone does not confirm either
        kept = platform.cli("domains", "rm", "www.doomed-anchor.test", *json_flag, check=False)
        assert "pass --yes" in one_line_error(kept)
    removed = platform.cli("domains", "rm", "www.doomed-anchor.test", "--yes")
    lines = removed.stdout
    assert "you may now delete these DNS records" in lines and "keep it" not in lines, lines
    assert "renewals stopped with the removal" in lines and "_acme-challenge.www.doomed-anchor.test" in lines
    deleted = json.loads(platform.cli("projects", "rm", "doomed", "--yes", "--json").stdout)
    assert deleted == {"deleted": "doomed"}


def test_login_reads_the_token_from_a_pipe(platform: AnchorProcess, tmp_path: Path) -> None:
    config = tmp_path / "login" / "config.json"
    env = {"ANCHOR_TOKEN": "", "ANCHOR_CONFIG": str(config), "ANCHOR_API_URL": ""}
    piped = platform.cli(
        "login", "--api-url", platform.api_url, "--json", stdin=platform.token + "\n", env=env
    )
    assert json.loads(piped.stdout) == {"apiUrl": platform.api_url, "configPath": str(config)}
    assert platform.token not in piped.stdout + piped.stderr
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert json.loads(config.read_text())["token"] == platform.token
    listed = platform.cli("projects", "--json", env=env)  # the saved token and URL work on their own
    assert "projects" in json.loads(listed.stdout)
    nothing = platform.cli("login", "--api-url", platform.api_url, env=env, check=False)
    assert "no token given" in one_line_error(nothing) and "--token-stdin" in nothing.stderr
    wrong = platform.cli(
        "login", "--api-url", platform.api_url, "--token-stdin", stdin="anc_wrong\n", env=env, check=False
    )
    assert "refused this token" in one_line_error(wrong)


def test_rollback_pinning_and_unpin_messages(platform: AnchorProcess, tmp_path: Path) -> None:
    first = write_tree(tmp_path / "one", {"index.html": "one"})
    a = json.loads(platform.cli("deploy", str(first), "-p", "pins", "--create", "--prod", "--json").stdout)
    lonely = platform.cli("rollback", "pins", check=False)
    line = one_line_error(lonely)
    assert "no earlier deployment to roll back to" in line and "--to" not in line
    second = write_tree(tmp_path / "two", {"index.html": "two"})
    b = json.loads(platform.cli("deploy", str(second), "-p", "pins", "--prod", "--json").stdout)
    platform.cli("rollback", "pins")
    listing = platform.cli("ls", "pins").stdout
    assert f"production: {a['id']} (pinned after a rollback; `anchor unpin pins` to release)" in listing
    assert "● (pinned)" in listing
    platform.cli("unpin", "pins")
    assert "pinned" not in platform.cli("ls", "pins").stdout
    history = json.loads(platform.cli("history", "pins", "--json").stdout)["history"]
    assert [(m["reason"], m["fromDeploymentId"], m["toDeploymentId"], m["tokenName"]) for m in history] == [
        ("deploy", None, a["id"], "admin"),
        ("deploy", a["id"], b["id"], "admin"),
        ("rollback", b["id"], a["id"], "admin"),
        ("unpin", a["id"], a["id"], "admin"),
    ]
    assert "unpin" in platform.cli("history", "pins").stdout


def status_lines(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip().endswith("…")]


def test_deploy_output_says_each_status_once(platform: AnchorProcess, tmp_path: Path) -> None:
    site = write_tree(tmp_path / "plain", {"index.html": "plain"})
    done = platform.cli("deploy", str(site), "-p", "plain", "--create", "--prod")
    statuses = status_lines(done.stderr)
    assert len(statuses) == len(set(statuses)) and "ready…" not in statuses, done.stderr
    assert "│ ready" not in done.stderr and "1 files" not in done.stderr + done.stdout
    assert "building dpl_" in done.stderr and ": 1 file, 5 bytes" in done.stderr
    assert "uploaded 1 file (5 bytes)" in done.stdout and done.stdout.count("READY") == 1, done.stdout


def test_flask_app_output_and_runtime_log(platform: AnchorProcess, tmp_path: Path) -> None:
    app = write_tree(tmp_path / "flask", app_files("v1"))
    done = platform.cli("deploy", str(app), "-p", "flaskapp", "--create", "--prod")
    statuses = status_lines(done.stderr)
    assert len(statuses) == len(set(statuses)) and "ready…" not in statuses, done.stderr
    assert done.stdout.count("READY") == 1 and "│ ready\n" not in done.stderr
    deployment_id = done.stdout.split("deployment ", 1)[1].split(":", 1)[0].strip()
    assert platform.edge("flaskapp.localhost").json()["version"] == "v1"
    runtime = platform.cli("logs", deployment_id, "--runtime").stdout
    assert "Uvicorn running" in runtime, runtime
    assert "lifespan" not in runtime, runtime


def test_a_failed_start_shows_its_cause(platform: AnchorProcess, tmp_path: Path) -> None:
    prelude = 'print("anchor-test: loading settings", flush=True)\nraise KeyError("ANCHOR_TEST_SETTING")'
    broken = write_tree(tmp_path / "broken", app_files("bad", source=flask_source("bad", prelude=prelude)))
    failed = platform.cli("deploy", str(broken), "-p", "broken", "--create", check=False)
    assert failed.returncode == 1 and "error: " in failed.stderr, failed.stderr
    cause = failed.stderr.split("error: ", 1)[1]
    assert "its output ends with:" in cause and "KeyError: 'ANCHOR_TEST_SETTING'" in cause, cause
    deployment_id = cause.split("deployment ", 1)[1].split(" ", 1)[0]
    inspected = json.loads(platform.cli("inspect", deployment_id, "--json").stdout)
    assert "KeyError: 'ANCHOR_TEST_SETTING'" in inspected["error"]
    assert len(inspected["error"].encode()) <= 2048
    assert "KeyError: 'ANCHOR_TEST_SETTING'" in platform.cli("inspect", deployment_id).stdout
