"""Webhook deliveries shaped as GitHub, GitLab, Gitea and Forgejo document them (every field their push
payloads carry, values of our own), signed the way each forge signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SECRET = b"whsec-7c1d0e9b4f2a"
ZERO = "0" * 40
BEFORE = "0f3c2a9be1d84c6a1c5b2e7f0a9d3c4b5e6f7a81"
PARENT = "4b6e2d1c0a9f8e7d6c5b4a3928171605f4e3d2c1"
AFTER = "9a1b7c3d5e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b"
TAG_SHA = "c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6"


def hex_hmac(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def encode(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# --- GitHub ---------------------------------------------------------------------------------------------


def github_headers(
    body: bytes, event: str = "push", delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
) -> dict[str, str]:
    return {
        "host": "anchor.acme.test",
        "user-agent": "GitHub-Hookshot/044aadd",
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-github-hook-id": "479563211",
        "x-github-hook-installation-target-type": "repository",
        "x-github-hook-installation-target-id": "715324988",
        "x-hub-signature": "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest(),
        "x-hub-signature-256": "sha256=" + hex_hmac(body),
    }


def _github_user(login: str, user_id: int) -> dict[str, Any]:
    return {
        "login": login,
        "id": user_id,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "User" if login != "acme" else "Organization",
        "site_admin": False,
    }


def github_repository() -> dict[str, Any]:
    return {
        "id": 715324988,
        "node_id": "R_kgDOKqMYPA",
        "name": "shop",
        "full_name": "acme/shop",
        "private": True,
        "owner": {"name": "acme", "email": None, **_github_user("acme", 9919)},
        "html_url": "https://github.com/acme/shop",
        "description": "The shop front",
        "fork": False,
        "url": "https://github.com/acme/shop",
        "created_at": 1698771437,
        "updated_at": "2026-11-29T18:02:11Z",
        "pushed_at": 1764489540,
        "git_url": "git://github.com/acme/shop.git",
        "ssh_url": "git@github.com:acme/shop.git",
        "clone_url": "https://github.com/acme/shop.git",
        "svn_url": "https://github.com/acme/shop",
        "homepage": "https://shop.acme.test",
        "size": 412,
        "stargazers_count": 3,
        "language": "Python",
        "has_issues": True,
        "has_wiki": False,
        "forks_count": 0,
        "archived": False,
        "open_issues_count": 2,
        "topics": ["shop", "anchor"],
        "visibility": "private",
        "default_branch": "main",
        "master_branch": "main",
        "organization": "acme",
    }


def github_commit(
    sha: str, message: str, name: str = "Ada Lovelace", email: str = "ada@acme.test"
) -> dict[str, Any]:
    return {
        "id": sha,
        "tree_id": "5e6f7a8190a1b2c3d4e5f60718293a4b5c6d7e8f",
        "distinct": True,
        "message": message,
        "timestamp": "2026-11-30T07:59:00+01:00",
        "url": f"https://github.com/acme/shop/commit/{sha}",
        "author": {"name": name, "email": email, "username": "ada"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": ["templates/delivery.html"],
        "removed": [],
        "modified": ["shop/checkout.py"],
    }


def github_push(
    ref: str = "refs/heads/main", before: str = BEFORE, after: str = AFTER, *, forced: bool = False
) -> dict[str, Any]:
    """A push as GitHub sends it; ``after`` all zeros makes it a deletion (no head commit)."""
    deleted = set(after) == {"0"}
    commits = [
        github_commit(PARENT, "Checkout: carrier API client"),
        github_commit(after, "Checkout: show the delivery date\n\nThe date comes from the carrier's API."),
    ]
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": github_repository(),
        "pusher": {"name": "ada", "email": "ada@acme.test"},
        "organization": {"login": "acme", "id": 9919, "url": "https://api.github.com/orgs/acme"},
        "sender": _github_user("ada", 583231),
        "created": set(before) == {"0"},
        "deleted": deleted,
        "forced": forced,
        "base_ref": None,
        "compare": f"https://github.com/acme/shop/compare/{before[:12]}...{after[:12]}",
        "commits": [] if deleted else commits,
        "head_commit": None if deleted else commits[-1],
    }


def github_ping() -> dict[str, Any]:
    return {
        "zen": "Design for failure.",
        "hook_id": 479563211,
        "hook": {
            "type": "Repository",
            "id": 479563211,
            "name": "web",
            "active": True,
            "events": ["push"],
            "config": {
                "content_type": "json",
                "insecure_ssl": "0",
                "url": "https://anchor.acme.test/v1/projects/shop/git/webhook",
            },
            "updated_at": "2026-11-30T06:58:12Z",
            "created_at": "2026-11-30T06:58:12Z",
            "url": "https://api.github.com/repos/acme/shop/hooks/479563211",
            "test_url": "https://api.github.com/repos/acme/shop/hooks/479563211/test",
            "ping_url": "https://api.github.com/repos/acme/shop/hooks/479563211/pings",
            "deliveries_url": "https://api.github.com/repos/acme/shop/hooks/479563211/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None},
        },
        "repository": github_repository(),
        "sender": _github_user("ada", 583231),
    }


# --- GitLab ---------------------------------------------------------------------------------------------


def gitlab_headers(event: str = "Push Hook", token: bytes = SECRET) -> dict[str, str]:
    return {
        "host": "anchor.acme.test",
        "user-agent": "GitLab/17.6.1",
        "content-type": "application/json",
        "x-gitlab-event": event,
        "x-gitlab-token": token.decode(),
        "x-gitlab-instance": "https://gitlab.acme.test",
        "x-gitlab-webhook-uuid": "02affd2d-2cba-4033-917d-ec22d5dc4b38",
        "x-gitlab-event-uuid": "13792a34-cac6-4fda-95a8-c58e00a3954e",
        "idempotency-key": "f5e5f430-f57b-4e6e-9fac-d9128cd7232f",
    }


def gitlab_project() -> dict[str, Any]:
    return {
        "id": 15,
        "name": "shop",
        "description": "The shop front",
        "web_url": "https://gitlab.acme.test/acme/shop",
        "avatar_url": None,
        "git_ssh_url": "git@gitlab.acme.test:acme/shop.git",
        "git_http_url": "https://gitlab.acme.test/acme/shop.git",
        "namespace": "acme",
        "visibility_level": 0,
        "path_with_namespace": "acme/shop",
        "default_branch": "main",
        "ci_config_path": None,
        "homepage": "https://gitlab.acme.test/acme/shop",
        "url": "git@gitlab.acme.test:acme/shop.git",
        "ssh_url": "git@gitlab.acme.test:acme/shop.git",
        "http_url": "https://gitlab.acme.test/acme/shop.git",
    }


def gitlab_commit(sha: str, message: str, email: str = "ada@acme.test") -> dict[str, Any]:
    return {
        "id": sha,
        "message": message,
        "title": message.split("\n", 1)[0],
        "timestamp": "2026-11-30T07:59:00+01:00",
        "url": f"https://gitlab.acme.test/acme/shop/-/commit/{sha}",
        "author": {"name": "Ada Lovelace", "email": email},
        "added": ["templates/delivery.html"],
        "modified": ["shop/checkout.py"],
        "removed": [],
    }


def gitlab_push(
    ref: str = "refs/heads/main",
    before: str = BEFORE,
    after: str = AFTER,
    *,
    kind: str = "push",
    commits: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A push (or ``kind="tag_push"``) as GitLab sends it; its commits oldest first, the head last."""
    if commits is None:
        commits = [
            gitlab_commit(PARENT, "Checkout: carrier API client\n"),
            gitlab_commit(
                after, "Checkout: show the delivery date\n\nFrom the carrier's API.\n", "[REDACTED]"
            ),
        ]
    deleted = set(after) == {"0"}
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": ref == "refs/heads/main",
        "checkout_sha": None if deleted else after,
        "message": "Release 1.2.0" if kind == "tag_push" else None,
        "user_id": 4,
        "user_name": "Ada Lovelace",
        "user_username": "ada",
        "user_email": "",
        "user_avatar": "https://gitlab.acme.test/uploads/-/system/user/avatar/4/avatar.png",
        "project_id": 15,
        "project": gitlab_project(),
        "commits": commits,
        "total_commits_count": len(commits),
        "push_options": {},
        "repository": {
            "name": "shop",
            "url": "git@gitlab.acme.test:acme/shop.git",
            "description": "The shop front",
            "homepage": "https://gitlab.acme.test/acme/shop",
            "git_http_url": "https://gitlab.acme.test/acme/shop.git",
            "git_ssh_url": "git@gitlab.acme.test:acme/shop.git",
            "visibility_level": 0,
        },
    }


# --- Gitea and Forgejo ----------------------------------------------------------------------------------


def gitea_headers(body: bytes, *, forgejo: bool = False, event: str = "push") -> dict[str, str]:
    """Gitea sends its own headers and GitHub's and Gogs's too; Forgejo adds its own on top."""
    delivery = "f6266f16-1bf3-46a5-9ea4-602e06ead473"
    signature = hex_hmac(body)
    headers = {
        "host": "anchor.acme.test",
        "user-agent": "Go-http-client/1.1",
        "content-type": "application/json",
        "x-github-delivery": delivery,
        "x-github-event": event,
        "x-github-event-type": event,
        "x-gogs-delivery": delivery,
        "x-gogs-event": event,
        "x-gogs-signature": signature,
        "x-gitea-delivery": delivery,
        "x-gitea-event": event,
        "x-gitea-event-type": event,
        "x-gitea-signature": signature,
        "x-hub-signature": "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest(),
        "x-hub-signature-256": "sha256=" + signature,
    }
    if forgejo:
        headers |= {
            "x-forgejo-delivery": delivery,
            "x-forgejo-event": event,
            "x-forgejo-signature": signature,
        }
    return headers


def _gitea_user() -> dict[str, Any]:
    return {
        "id": 1,
        "login": "ada",
        "login_name": "",
        "full_name": "Ada Lovelace",
        "email": "ada@acme.test",
        "avatar_url": "http://git.acme.test:3000/avatars/5a2b",
        "language": "en-US",
        "is_admin": False,
        "last_login": "2026-11-30T06:40:02Z",
        "created": "2025-02-11T09:12:44Z",
        "active": True,
        "location": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "username": "ada",
    }


def gitea_commit(sha: str, message: str) -> dict[str, Any]:
    person = {"name": "Ada Lovelace", "email": "ada@acme.test", "username": "ada"}
    return {
        "id": sha,
        "message": message,
        "url": f"http://git.acme.test:3000/acme/shop/commit/{sha}",
        "author": person,
        "committer": person,
        "verification": None,
        "timestamp": "2026-11-30T07:59:00+01:00",
        "added": [],
        "removed": [],
        "modified": ["shop/checkout.py"],
    }


def gitea_push(ref: str = "refs/heads/main", before: str = BEFORE, after: str = AFTER) -> dict[str, Any]:
    commits = [gitea_commit(after, "Checkout: show the delivery date\n")]
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": f"http://git.acme.test:3000/acme/shop/compare/{before}...{after}",
        "commits": commits,
        "total_commits": 1,
        "head_commit": commits[0],
        "repository": {
            "id": 140,
            "owner": _gitea_user(),
            "name": "shop",
            "full_name": "acme/shop",
            "description": "The shop front",
            "empty": False,
            "private": True,
            "fork": False,
            "parent": None,
            "mirror": False,
            "size": 412,
            "language": "Python",
            "languages_url": "http://git.acme.test:3000/api/v1/repos/acme/shop/languages",
            "html_url": "http://git.acme.test:3000/acme/shop",
            "url": "http://git.acme.test:3000/api/v1/repos/acme/shop",
            "ssh_url": "ssh://git@git.acme.test:2222/acme/shop.git",
            "clone_url": "http://git.acme.test:3000/acme/shop.git",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 1,
            "open_issues_count": 0,
            "default_branch": "main",
            "archived": False,
            "created_at": "2025-02-11T09:20:01Z",
            "updated_at": "2026-11-30T06:59:00Z",
            "has_issues": True,
        },
        "pusher": _gitea_user(),
        "sender": _gitea_user(),
    }


# --- the generic form -----------------------------------------------------------------------------------


def generic_headers(
    body: bytes, event: str = "push", delivery: str = "push-1764489540-main"
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-anchor-event": event,
        "x-anchor-delivery": delivery,
        "x-anchor-signature": "sha256=" + hex_hmac(body),
    }
