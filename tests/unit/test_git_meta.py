"""`anchor deploy` reads the commit of the working tree it deploys from with real git, in a repository made
here: sha, branch, first line of the message, author, the origin without credentials, dirty inside the
deployed folder only; no git, no repository or no commit means no metadata and no error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from anchor_deploy.cli import deploy_command, git_meta
from anchor_deploy.cli.deploy import DeployResult
from anchor_deploy.cli.git_meta import commit_info, with_commit, without_credentials
from anchor_deploy.cli.main import main
from anchor_deploy.model.git import CommitInfo, parse_commit_meta

AUTHOR = "Ada Lovelace <ada@example.com>"


@pytest.fixture(autouse=True)
def plain_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """git as on a fresh machine: no global or system config, no repository variables from outside."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never the repository the tests run in
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ada Lovelace")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "ada@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "CI")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "ci@example.com")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(tmp_path: Path, message: str = "Add the header\n\nWith a body that is not shown.") -> Path:
    repo = tmp_path / "repo"
    (repo / "site").mkdir(parents=True)
    (repo / "site" / "index.html").write_text("<h1>hi</h1>")
    (repo / "README").write_text("readme")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", message)
    return repo


def test_a_clean_checkout_is_recorded_with_the_origin_without_credentials(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "origin", "https://deployer:s3cret@git.example.com/org/site.git")
    sha = git(repo, "rev-parse", "HEAD")
    expected = CommitInfo(
        repository="https://git.example.com/org/site.git",
        branch="main",
        sha=sha,
        message="Add the header",
        author=AUTHOR,
        dirty=False,
    )
    assert commit_info(repo) == expected
    assert commit_info(repo / "site") == expected  # a folder inside the tree: the same commit
    assert "s3cret" not in json.dumps(expected.as_meta())
    assert parse_commit_meta(expected.as_meta()) == expected  # the server takes it as it is


def test_no_origin_is_an_empty_repository_and_a_long_first_line_is_cut(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "x" * 500 + "\nsecond line")
    found = commit_info(repo)
    assert found is not None and found.repository == ""
    assert len(found.message) == 200 and found.message.endswith("…") and "second" not in found.message
    assert parse_commit_meta(found.as_meta()) == found


@pytest.mark.parametrize(
    ("change", "dirty_root", "dirty_site"),
    [
        (lambda r: (r / "site" / "index.html").write_text("<h1>changed</h1>"), True, True),
        (lambda r: (r / "site" / "new.css").write_text("body{}"), True, True),  # untracked
        (lambda r: git(r, "rm", "-q", "--cached", "site/index.html"), True, True),  # staged
        (lambda r: (r / "site" / "debug.log").write_text("ignored"), False, False),
        (lambda r: (r / "README").write_text("changed outside site/"), True, False),
        (lambda r: None, False, False),
    ],
    ids=["modified", "untracked", "staged", "ignored", "outside-the-folder", "clean"],
)
def test_dirty_means_a_change_inside_the_folder_deployed(
    tmp_path: Path, change: Any, dirty_root: bool, dirty_site: bool
) -> None:
    repo = make_repo(tmp_path)
    change(repo)
    root, site = commit_info(repo), commit_info(repo / "site")
    assert root is not None and site is not None
    assert (root.dirty, site.dirty) == (dirty_root, dirty_site)


def test_a_detached_head_has_no_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "README").write_text("second")
    git(repo, "commit", "-q", "-am", "Second")
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "checkout", "-q", "--detach", first)
    found = commit_info(repo)
    assert found is not None and (found.branch, found.sha, found.message) == ("", first, "Add the header")


def test_no_commit_no_repository_or_no_git_is_no_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "index.html").write_text("x")
    assert commit_info(empty) is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert commit_info(plain) is None
    repo = make_repo(tmp_path)
    assert commit_info(repo / ".git") is None  # inside the git directory: no working tree
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    assert commit_info(repo) is None
    assert with_commit({"source": "cli"}, repo) == {"source": "cli"}


def test_a_git_that_hangs_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\nexec sleep 5\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(git_meta, "GIT_TIMEOUT", 0.2)
    assert commit_info(repo) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pa55@git.example.com/org/a.git", "https://git.example.com/org/a.git"),
        ("https://ghp_token@github.com/org/a.git", "https://github.com/org/a.git"),
        ("http://u:p@127.0.0.1:3000/org/a.git?x=1", "http://127.0.0.1:3000/org/a.git?x=1"),
        ("https://u:p@[::1]:8443/a.git", "https://[::1]:8443/a.git"),
        ("ssh://git:pw@host.example/srv/a.git", "ssh://host.example/srv/a.git"),
        ("https://github.com/org/a.git", "https://github.com/org/a.git"),
        ("git@github.com:org/a.git", "git@github.com:org/a.git"),
        ("/srv/git/a.git", "/srv/git/a.git"),
        ("https://u:p@host:notaport/a.git", ""),  # cannot be cleaned: not sent
    ],
)
def test_credentials_never_leave_the_remote_url(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_credentials_are_stripped_from_a_real_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "origin", "https://oauth2:glpat-XYZ@gitlab.example.com/g/site.git")
    found = commit_info(repo)
    assert found is not None and found.repository == "https://gitlab.example.com/g/site.git"


# -- anchor deploy: what it sends ----------------------------------------------------------------------------
@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The meta each `anchor deploy` passes to the upload (the API is not called)."""
    metas: list[dict[str, Any]] = []

    def fake_deploy(*args: Any, **_kwargs: Any) -> DeployResult:
        metas.append(args[4])  # (api, project, directory, production, meta, ...)
        return DeployResult({"id": "dpl_x", "status": "READY", "url": "http://x"}, 0, 0)

    monkeypatch.setattr(deploy_command, "client", lambda: None)
    monkeypatch.setattr(deploy_command, "_resolve_project", lambda *_a: None)
    monkeypatch.setattr(deploy_command, "run_deploy", fake_deploy)
    return metas


def test_anchor_deploy_sends_the_commit_unless_told_not_to(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    repo = make_repo(tmp_path)
    (repo / "site" / "draft.html").write_text("not committed")
    runner = CliRunner()
    assert runner.invoke(main, ["deploy", str(repo / "site"), "-p", "site"]).exit_code == 0
    assert sent[-1] == {
        "source": "cli",
        "git": {
            "repository": "",
            "branch": "main",
            "commitSha": git(repo, "rev-parse", "HEAD"),
            "commitMessage": "Add the header",
            "commitAuthor": AUTHOR,
            "dirty": True,
        },
    }
    assert runner.invoke(main, ["deploy", str(repo / "site"), "-p", "site", "--no-git-meta"]).exit_code == 0
    assert sent[-1] == {"source": "cli"}


def test_an_explicit_meta_git_wins(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    repo = make_repo(tmp_path)
    theirs = {"commitSha": "a" * 40, "branch": "release"}
    meta = json.dumps({"ci": "build-7", "git": theirs})
    result = CliRunner().invoke(main, ["deploy", str(repo), "-p", "site", "--meta", meta])
    assert result.exit_code == 0, result.output
    assert sent == [{"source": "cli", "ci": "build-7", "git": theirs}]


@pytest.mark.parametrize(("meta", "words"), [("{nope", "--meta is not JSON"), ("[1]", "a JSON object")])
def test_a_bad_meta_is_one_line(tmp_path: Path, sent: list[dict[str, Any]], meta: str, words: str) -> None:
    result = CliRunner().invoke(main, ["deploy", str(tmp_path), "-p", "site", "--meta", meta])
    assert result.exit_code == 1 and sent == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
