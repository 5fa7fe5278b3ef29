"""Which API a commit status goes to, read from the repository URL, and how retries are spaced."""

from __future__ import annotations

import httpx
import pytest

from anchor_deploy.adapters.forge_requests import (
    MAX_DESCRIPTION,
    RepoLocation,
    repo_location,
    short_description,
    status_request,
)
from anchor_deploy.adapters.forge_status import backoff_delay, is_rate_limited, retry_after
from anchor_deploy.model.git import CommitState, Forge, GitConnection
from anchor_deploy.ports.git import CommitStatus

SHA = "4f1c2b9e8d7a6c5b4a3928171605f4e3d2c1b0a9"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/shop.git", RepoLocation("https", "github.com", ("acme", "shop"))),
        ("https://GitHub.com/acme/shop/", RepoLocation("https", "github.com", ("acme", "shop"))),
        ("https://bot:tok@gitlab.com/a/b/c.git", RepoLocation("https", "gitlab.com", ("a", "b", "c"))),
        ("http://gitea.lan:3000/acme/shop.git", RepoLocation("http", "gitea.lan:3000", ("acme", "shop"))),
        ("git@github.com:acme/shop.git", RepoLocation("https", "github.com", ("acme", "shop"))),
        ("ssh://git@code.lan:2222/acme/shop.git", RepoLocation("https", "code.lan", ("acme", "shop"))),
        ("/srv/git/shop.git", None),
        ("file:///srv/git/acme/shop.git", None),
        ("https://github.com/acme", None),
        ("./repos/a:b/shop", None),
    ],
)
def test_repository_urls_are_read(url: str, expected: RepoLocation | None) -> None:
    assert repo_location(url) == expected


def url_for(forge: Forge, repo_url: str, api_url: str = "") -> str:
    link = GitConnection("prj_1", repo_url, "main", forge, 0.0, api_url=api_url)
    request = status_request(link, "t", CommitStatus(repo_url, SHA, CommitState.SUCCESS, "https://x", "ok"))
    assert request is not None
    return request.url


@pytest.mark.parametrize(
    ("forge", "repo_url", "expected"),
    [
        (Forge.GITHUB, "git@github.com:acme/shop.git", "https://api.github.com/repos/acme/shop"),
        (Forge.GITHUB, "https://ghe.corp.test/acme/shop", "https://ghe.corp.test/api/v3/repos/acme/shop"),
        (
            Forge.GITLAB,
            "https://gitlab.com/acme/web/shop.git",
            "https://gitlab.com/api/v4/projects/acme%2Fweb%2Fshop",
        ),
        (Forge.GITLAB, "http://gl.lan:8080/acme/shop", "http://gl.lan:8080/api/v4/projects/acme%2Fshop"),
        (Forge.GITEA, "https://codeberg.org/acme/shop.git", "https://codeberg.org/api/v1/repos/acme/shop"),
        (Forge.GITEA, "https://lan.test/git/acme/shop", "https://lan.test/git/api/v1/repos/acme/shop"),
    ],
)
def test_each_forge_has_its_default_api(forge: Forge, repo_url: str, expected: str) -> None:
    assert url_for(forge, repo_url) == f"{expected}/statuses/{SHA}"


def test_the_connections_api_url_replaces_the_default() -> None:
    url = url_for(Forge.GITHUB, "https://github.com/acme/shop", api_url="http://127.0.0.1:9/gh/")
    assert url == f"http://127.0.0.1:9/gh/repos/acme/shop/statuses/{SHA}"


def test_nothing_is_built_for_a_generic_server_or_a_local_repository() -> None:
    status = CommitStatus("", SHA, CommitState.PENDING, "https://x", "building")
    generic = GitConnection("prj_1", "https://git.lan/acme/shop", "main", Forge.GENERIC, 0.0)
    local = GitConnection("prj_1", "/srv/git/shop.git", "main", Forge.GITHUB, 0.0)
    assert status_request(generic, "t", status) is None
    assert status_request(local, "t", status) is None


def test_the_token_is_not_in_the_requests_repr() -> None:
    link = GitConnection("prj_1", "https://github.com/acme/shop", "main", Forge.GITHUB, 0.0)
    request = status_request(link, "tok-123456", CommitStatus("", SHA, CommitState.PENDING, "https://x", "b"))
    assert request is not None
    assert request.headers["Authorization"] == "Bearer tok-123456"
    assert "tok-123456" not in repr(request)


def test_descriptions_are_one_line_of_at_most_140_characters() -> None:
    assert short_description("Build\n  failed:  exit 1") == "Build failed: exit 1"
    long = short_description("x" * 500)
    assert len(long) == MAX_DESCRIPTION
    assert long.endswith("…")


def test_backoff_doubles_up_to_the_longest_with_jitter_in_the_upper_half() -> None:
    assert [backoff_delay(n, 1.0, 60.0, 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(3, 1.0, 60.0, 0.0) == 2.0
    assert backoff_delay(3, 1.0, 60.0, 0.5) == 3.0


def test_rate_limit_answers_say_how_long_to_wait() -> None:
    asked = httpx.Response(429, headers={"Retry-After": "7"})
    github = httpx.Response(403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"})
    forbidden = httpx.Response(403)
    assert (is_rate_limited(asked), retry_after(asked)) == (True, 7.0)
    assert (is_rate_limited(github), retry_after(github, lambda: 1000.0)) == (True, 30.0)
    assert (is_rate_limited(forbidden), retry_after(forbidden)) == (False, None)
    assert retry_after(httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
