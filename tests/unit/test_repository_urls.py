"""same_repository: the URLs one repository is known by (https, ssh, scp-like, git://, local paths)."""

from __future__ import annotations

import pytest

from anchor_deploy.model.webhooks import same_repository

SAME = [
    ("https://github.com/acme/shop", "https://github.com/acme/shop.git"),
    ("https://github.com/acme/shop/", "git@github.com:acme/shop.git"),
    ("https://GitHub.COM/acme/shop", "ssh://git@github.com:22/acme/shop.git"),
    ("http://github.com/acme/shop", "git://github.com/acme/shop.git"),
    ("https://token:x@github.com:443/acme/shop.git/", "github.com:acme/shop"),
    ("https://gitlab.acme.test/group/sub/shop.git", "git+ssh://git@gitlab.acme.test/group/sub/shop"),
    ("http://git.acme.test:3000/acme/shop.git", "https://git.acme.test:3000/acme/shop"),
    ("/srv/git/shop.git", "file:///srv/git/shop.git"),
    ("file://localhost/srv/git/shop.git", "/srv/git/./shop.git/"),
    ("/srv/git/../git/shop", "/srv/git/shop.git"),
    ("https://github.com/acme/shop", "https://github.com/Acme/Shop"),  # forges match names without case
]
DIFFERENT = [
    ("https://github.com/acme/shop", "https://github.com/acme/shop-api"),
    ("https://github.com/acme/shop", "https://github.com/other/shop"),
    ("https://github.com/acme/shop", "https://gitlab.com/acme/shop"),
    ("/srv/git/shop.git", "/srv/git/Shop.git"),  # on this machine, paths keep their case
    ("http://git.acme.test:3000/acme/shop", "ssh://git@git.acme.test:2222/acme/shop"),
    ("/srv/git/shop.git", "file://otherhost/srv/git/shop.git"),
    ("/srv/git/shop.git", "/srv/other/shop.git"),
    ("shop", "shop"),  # a relative path names nothing
    ("", ""),
    ("ftp://github.com/acme/shop", "ftp://github.com/acme/shop"),
    ("https://github.com/", "git@github.com:"),
    ("https://host:99999/x", "https://host:99999/x"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_urls_of_one_repository(a: str, b: str) -> None:
    assert same_repository(a, b) and same_repository(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_urls_of_different_repositories(a: str, b: str) -> None:
    assert not same_repository(a, b) and not same_repository(b, a)
