"""A forge's push webhook sent from a bare repository's ``post-receive`` hook, built from the real push.

git runs ``python push_hook.py CONFIG.json`` with one ``OLD NEW REF`` line per updated ref on stdin; each
ref becomes one delivery, as forges send them: the payload in the forge's documented shape (GitHub, GitLab
or Gitea) with the ref, the before and after shas, the pushed commits read with ``git log`` (their
messages, authors, timestamps and changed files) and the repository's URLs set to ``repo_url``; signed as
the forge signs it with the webhook secret; with a fresh delivery id. The platform's answers are appended
to the config's ``answers`` file (one JSON object per line) for the test to read.

Standard library only: it runs under git, outside pytest. Its payload functions are also imported by the
tests to build deliveries of their own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ZERO = "0" * 40
MAX_COMMITS = 20  # GitHub and GitLab list at most 20 commits of a push
_PERSON = {"name": "", "email": "", "username": ""}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def commit_details(repo: Path, sha: str) -> dict[str, Any]:
    """What a forge's payload says of one commit, read from the repository."""
    fields = git(repo, "show", "-s", "--format=%T%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B", sha)
    tree, author, author_email, committer, committer_email, when, message = fields.split("\0", 6)
    changes: dict[str, list[str]] = {"added": [], "removed": [], "modified": []}
    kinds = {"A": "added", "D": "removed"}
    for line in git(repo, "diff-tree", "-r", "--no-commit-id", "--name-status", "--root", sha).splitlines():
        status, _, path = line.partition("\t")
        changes[kinds.get(status[:1], "modified")].append(path)
    return {
        "id": sha,
        "tree_id": tree,
        "message": message.rstrip("\n") + "\n",
        "timestamp": when,
        "author": {"name": author, "email": author_email},
        "committer": {"name": committer, "email": committer_email},
        **changes,
    }


def pushed_commits(repo: Path, before: str, after: str) -> list[dict[str, Any]]:
    """The commits a push brought, oldest first (a new branch: its head alone); none for a deletion."""
    if after == ZERO:
        return []
    span = [after] if before == ZERO else [f"{before}..{after}"]
    shas = git(repo, "rev-list", "--reverse", f"--max-count={MAX_COMMITS}", *span).split()
    return [commit_details(repo, sha) for sha in shas or [after]]


def forced(repo: Path, before: str, after: str) -> bool:
    if ZERO in (before, after):
        return False
    done = subprocess.run(
        ["git", "--git-dir", str(repo), "merge-base", "--is-ancestor", before, after],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode != 0


def _name(repo_url: str) -> tuple[str, str]:
    """(owner, name) as a forge would show them: the last two parts of the URL's path."""
    parts = [p for p in repo_url.removesuffix(".git").replace(":", "/").split("/") if p]
    return (parts[-2] if len(parts) > 1 else "local"), parts[-1]


# --- GitHub: https://docs.github.com/en/webhooks/webhook-events-and-payloads#push -------------------------


def _github_commit(commit: dict[str, Any], web: str) -> dict[str, Any]:
    return {
        **{k: commit[k] for k in ("id", "tree_id", "message", "timestamp", "added", "removed", "modified")},
        "distinct": True,
        "url": f"{web}/commit/{commit['id']}",
        "author": {**_PERSON, **commit["author"], "username": "ada"},
        "committer": {**_PERSON, **commit["committer"], "username": "ada"},
    }


def github_payload(repo: Path, repo_url: str, ref: str, before: str, after: str) -> dict[str, Any]:
    owner, name = _name(repo_url)
    web = repo_url.removesuffix(".git")
    commits = [_github_commit(c, web) for c in pushed_commits(repo, before, after)]
    user = {"login": "ada", "id": 583231, "type": "User", "site_admin": False}
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {
            "id": 715324988,
            "name": name,
            "full_name": f"{owner}/{name}",
            "private": True,
            "owner": {"name": owner, "login": owner, "id": 9919, "type": "Organization"},
            "html_url": web,
            "url": web,
            "clone_url": repo_url,
            "git_url": repo_url,
            "ssh_url": repo_url,
            "svn_url": web,
            "default_branch": "main",
            "master_branch": "main",
        },
        "pusher": {"name": "ada", "email": "ada@example.test"},
        "sender": user,
        "created": before == ZERO,
        "deleted": after == ZERO,
        "forced": forced(repo, before, after),
        "base_ref": None,
        "compare": f"{web}/compare/{before[:12]}...{after[:12]}",
        "commits": commits,
        "head_commit": commits[-1] if commits else None,
    }


# --- GitLab: https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events --------------


def gitlab_payload(repo: Path, repo_url: str, ref: str, before: str, after: str) -> dict[str, Any]:
    owner, name = _name(repo_url)
    web = repo_url.removesuffix(".git")
    commits = [
        {
            **{k: c[k] for k in ("id", "message", "timestamp", "added", "modified", "removed")},
            "title": c["message"].split("\n", 1)[0],
            "url": f"{web}/-/commit/{c['id']}",
            "author": c["author"],
        }
        for c in pushed_commits(repo, before, after)
    ]
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": ref == "refs/heads/main",
        "checkout_sha": None if after == ZERO else after,
        "message": None,
        "user_id": 4,
        "user_name": "Ada",
        "user_username": "ada",
        "user_email": "",
        "user_avatar": None,
        "project_id": 15,
        "project": {
            "id": 15,
            "name": name,
            "description": "",
            "web_url": web,
            "avatar_url": None,
            "git_ssh_url": repo_url,
            "git_http_url": repo_url,
            "namespace": owner,
            "visibility_level": 0,
            "path_with_namespace": f"{owner}/{name}",
            "default_branch": "main",
            "ci_config_path": None,
            "homepage": web,
            "url": repo_url,
            "ssh_url": repo_url,
            "http_url": repo_url,
        },
        "commits": commits,
        "total_commits_count": len(commits),
        "push_options": {},
        "repository": {
            "name": name,
            "url": repo_url,
            "description": "",
            "homepage": web,
            "git_http_url": repo_url,
            "git_ssh_url": repo_url,
            "visibility_level": 0,
        },
    }


# --- Gitea: https://docs.gitea.com/usage/webhooks (the push event) --------------------------------------


def gitea_payload(repo: Path, repo_url: str, ref: str, before: str, after: str) -> dict[str, Any]:
    owner, name = _name(repo_url)
    web = repo_url.removesuffix(".git")
    commits = [
        {
            **{k: c[k] for k in ("id", "message", "timestamp", "added", "removed", "modified")},
            "url": f"{web}/commit/{c['id']}",
            "author": {**_PERSON, **c["author"], "username": "ada"},
            "committer": {**_PERSON, **c["committer"], "username": "ada"},
            "verification": None,
        }
        for c in pushed_commits(repo, before, after)
    ]
    user = {"id": 1, "login": "ada", "full_name": "Ada", "email": "ada@example.test", "username": "ada"}
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": f"{web}/compare/{before}...{after}",
        "commits": commits,
        "total_commits": len(commits),
        "head_commit": commits[-1] if commits else None,
        "repository": {
            "id": 140,
            "owner": user,
            "name": name,
            "full_name": f"{owner}/{name}",
            "private": True,
            "html_url": web,
            "url": f"{web}/api/v1/repos/{owner}/{name}",  # Gitea's "url" is its API's
            "ssh_url": repo_url,
            "clone_url": repo_url,
            "default_branch": "main",
        },
        "pusher": user,
        "sender": user,
    }


PAYLOADS = {"github": github_payload, "gitlab": gitlab_payload, "gitea": gitea_payload}


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(forge: str, body: bytes, secret: str, delivery: str) -> dict[str, str]:
    """The headers the forge sends with a push: its event, its delivery id, its signature."""
    base = {"Content-Type": "application/json"}
    if forge == "github":
        return {
            **base,
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": "479563211",
            "X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body),
        }
    if forge == "gitlab":
        return {
            **base,
            "User-Agent": "GitLab/17.6.1",
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": secret,
            "X-Gitlab-Instance": "https://gitlab.example.test",
            "X-Gitlab-Webhook-UUID": "02affd2d-2cba-4033-917d-ec22d5dc4b38",
            "X-Gitlab-Event-UUID": delivery,
            "Idempotency-Key": delivery,
        }
    signature = hex_hmac(secret, body)  # Gitea: the hex HMAC, and GitHub's headers beside its own
    return {
        **base,
        "User-Agent": "Go-http-client/1.1",
        "X-Gitea-Event": "push",
        "X-Gitea-Event-Type": "push",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": signature,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + signature,
    }


def deliver(url: str, headers: dict[str, str], body: bytes, timeout: float = 30) -> tuple[int, str]:
    """POST the delivery (never through a proxy); the answer's status and text."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    repo = Path.cwd()  # git runs the hook in the bare repository
    for line in sys.stdin.read().splitlines():
        before, after, ref = line.split()
        payload = PAYLOADS[config["forge"]](repo, config["repo_url"], ref, before, after)
        body = json.dumps(payload).encode()
        delivery = str(uuid.uuid4())
        headers = signed_headers(config["forge"], body, config["secret"], delivery)
        status, text = deliver(config["webhook_url"], headers, body)
        answer = {"ref": ref, "after": after, "delivery": delivery, "status": status, "body": text}
        with open(config["answers"], "a") as answers:
            answers.write(json.dumps(answer) + "\n")
        print(f"webhook {ref} {after[:7]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
