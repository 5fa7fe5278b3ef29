"""How the sandboxed git fetch is told where to go and how to authenticate (adapters/local/git_access.py):
which URLs are taken, where a token goes (a header for the repository's host only, in the sandbox's own
config), how a deploy key is used, and that every form of a secret is scrubbed."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.git_access import access_for, parse_url
from anchor_deploy.model.errors import BuildFailed

HOME = Path("/scratch/fetch-1")
TOKEN = "ghp_0123456789abcdefABCDEF"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\r\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\r\n"
    "-----END OPENSSH PRIVATE KEY-----\r\n"
)


@pytest.mark.parametrize(
    ("url", "shown", "local"),
    [
        ("https://github.com/acme/site.git", "https://github.com/acme/site.git", None),
        ("http://127.0.0.1:8400/git/site.git", "http://127.0.0.1:8400/git/site.git", None),
        ("ssh://git@gitlab.com:2222/acme/site.git", "ssh://gitlab.com:2222/acme/site.git", None),
        ("git@github.com:acme/site.git", "github.com:acme/site.git", None),
        ("git://git.example.org/site.git", "git://git.example.org/site.git", None),
        ("/srv/git/site.git", "/srv/git/site.git", Path("/srv/git/site.git")),
        ("file:///srv/git/my%20site.git", "file:///srv/git/my%20site.git", Path("/srv/git/my site.git")),
    ],
)
def test_urls_taken(url: str, shown: str, local: Path | None) -> None:
    repo = parse_url(url)
    assert (repo.url, repo.shown, repo.local, repo.userinfo) == (url, shown, local, None)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ext::sh -c touch% /tmp/x", "git over 'ext' is not supported"),
        ("fd::17", "git over 'fd' is not supported"),
        ("ftp://example.org/site.git", "git over 'ftp' is not supported"),
        ("--upload-pack=touch /tmp/x", "not a repository URL"),
        ("https://example.org/site.git\nx", "not a repository URL"),
        ("site.git", "not a repository URL"),
        ("https:///site.git", "no host"),
        ("file://otherhost/srv/site.git", "not on 'otherhost'"),
        ("", "not a repository URL"),
    ],
)
def test_urls_refused(url: str, said: str) -> None:
    with pytest.raises(BuildFailed, match=said):
        parse_url(url)


def test_credentials_in_an_https_url_leave_the_url() -> None:
    repo = parse_url(f"https://bot:{TOKEN}@git.example.org/site.git")
    assert (repo.url, repo.shown, repo.userinfo) == (
        "https://git.example.org/site.git",
        "https://git.example.org/site.git",
        f"bot:{TOKEN}",
    )
    access = access_for(repo, repo.userinfo, HOME, [])
    header = base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    assert (
        'http "https://git.example.org/"',
        "extraHeader",
        f"Authorization: Basic {header}",
    ) in access.config
    assert access.scrub(f"x {TOKEN} {header} bot:{TOKEN}") == "x [secret] [secret] [secret]"


def test_a_token_is_a_header_for_the_repository_host_only() -> None:
    access = access_for(parse_url("https://github.com:8443/acme/site.git"), TOKEN, HOME, [])
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    text = access.config_text()
    assert f'[http "https://github.com:8443/"]\n\textraHeader = "Authorization: Basic {header}"\n' in text
    assert TOKEN not in text and TOKEN not in " ".join(access.env.values())
    assert access.key is None
    assert access.scrub(f"fatal: {header} / {TOKEN}") == "fatal: [secret] / [secret]"
    assert ("protocol", "allow", "never") in access.config
    assert ('protocol "file"', "allow", "never") in access.config  # no repository on this machine
    # ssh and local repositories get no header
    for url in ("git@github.com:acme/site.git", "/srv/git/site.git"):
        assert "extraHeader" not in access_for(parse_url(url), TOKEN, HOME, []).config_text()


def test_a_deploy_key_is_used_through_ssh_options_in_the_scratch_folder() -> None:
    access = access_for(parse_url("git@github.com:acme/site.git"), KEY, HOME, [])
    assert access.key == KEY.replace("\r\n", "\n")
    assert access.key_file == HOME / ".ssh" / "deploy_key"
    ssh = shlex.split(access.env["GIT_SSH_COMMAND"])
    assert ssh[:5] == ["ssh", "-F", "/dev/null", "-i", str(access.key_file)]
    options = {ssh[i + 1] for i, word in enumerate(ssh) if word == "-o"}
    assert options == {
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=accept-new",
        f"UserKnownHostsFile={HOME / '.ssh' / 'known_hosts'}",
    }
    assert "extraHeader" not in access.config_text()
    assert access.scrub("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ") == "[secret]"
    assert access.env["HOME"] == str(HOME) and access.env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert access.env["GIT_TERMINAL_PROMPT"] == "0"


def test_local_repositories_are_named_safe_and_quoted() -> None:
    odd = Path('/srv/git/a "quoted" \\ name.git')
    access = access_for(parse_url(str(odd)), None, HOME, [odd])
    assert '\tdirectory = "/srv/git/a \\"quoted\\" \\\\ name.git"\n' in access.config_text()
    assert ('protocol "file"', "allow", "always") in access.config
    with pytest.raises(BuildFailed, match="line break"):
        access_for(parse_url("/srv/x"), None, HOME, [Path("/srv/a\nb")]).config_text()
