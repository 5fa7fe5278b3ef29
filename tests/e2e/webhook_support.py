"""Helpers of the forge webhook e2e tests (test_git_webhooks.py): a bare repository whose post-receive hook
sends a forge's push webhook (push_hook.py), a gate for the HTTP git server's requests, and waits on what the
platform serves."""

from __future__ import annotations

import json
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.e2e import push_hook
from tests.e2e.harness import AnchorProcess, ensure_project, wait_final, wait_until
from tests.git_worktree import WorkTree

GATE_LIMIT = 60.0  # seconds a gated fetch waits at most


class Gate:
    """Holds every request of the HTTP git server while closed (the fetches of builds)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.arrived = threading.Event()

    def __call__(self) -> None:
        self.arrived.set()
        self.open.wait(GATE_LIMIT)


class ForgeRepo:
    """A bare repository whose post-receive hook sends ``forge``'s push webhook, and a working tree that
    pushes to it by path. ``repo_url``: the URL the platform fetches from and the payloads name (the bare
    repository's path unless it is served over HTTP)."""

    def __init__(self, bare: Path, home: Path, forge: str, repo_url: str | None = None) -> None:
        self.bare, self.forge = bare, forge
        self.repo_url = repo_url or str(bare)
        self.work = WorkTree(home / f"work-{bare.stem}", home)
        self.work.git("init", "-q", "--bare", "-b", "main", str(bare))
        self.work.git("remote", "add", "origin", str(bare))
        self.answers = bare.parent / f"{bare.stem}-answers.jsonl"
        self.secret = ""
        self.webhook_url = ""
        self.seen = 0

    def connect(self, anchor: AnchorProcess, project: str, **extra: Any) -> None:
        """Connect ``project`` to this repository and install the hook with the new webhook secret."""
        with anchor.api() as api:
            ensure_project(api, project)
            body = {"repoUrl": self.repo_url, "forge": self.forge, "productionBranch": "main", **extra}
            connected = api.post(f"/v1/projects/{project}/git", json=body)
        assert connected.status_code == 201, connected.text
        self.secret, self.webhook_url = connected.json()["webhookSecret"], connected.json()["webhookUrl"]
        config = self.bare / "hooks" / "push-hook.json"
        config.write_text(
            json.dumps(
                {
                    "forge": self.forge,
                    "webhook_url": self.webhook_url,
                    "secret": self.secret,
                    "repo_url": self.repo_url,
                    "answers": str(self.answers),
                }
            )
        )
        hook = self.bare / "hooks" / "post-receive"
        hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{push_hook.__file__}' '{config}'\n")
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)

    def commit(self, files: dict[str, bytes], message: str, branch: str | None = None) -> str:
        if branch is not None:
            self.work.git("checkout", "-q", "-B", branch)
        return self.work.commit(files, message)

    def push(self, *refspecs: str) -> list[dict[str, Any]]:
        """Push; the hook's deliveries and the platform's answers (one per pushed ref)."""
        self.work.git("push", "-q", "origin", *refspecs)
        lines = self.answers.read_text().splitlines() if self.answers.exists() else []
        new, self.seen = lines[self.seen :], len(lines)
        answers = [json.loads(line) for line in new]
        for answer in answers:
            answer["json"] = json.loads(answer["body"])
        return answers

    def deploy(self, *refspecs: str) -> dict[str, Any]:
        """Push one branch; its queued deployment (the webhook's 202 answer)."""
        [answer] = self.push(*refspecs)
        assert answer["status"] == 202 and answer["json"]["outcome"] == "queued", answer
        return dict(answer["json"]["deployment"])

    def real_commit(self, sha: str) -> dict[str, Any]:
        subject, author = self.work.git("log", "-1", "--format=%s%n%an <%ae>", sha).stdout.splitlines()
        return {"commitSha": sha, "commitMessage": subject, "commitAuthor": author}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    return wait_until(check, timeout, what)


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def serves(anchor: AnchorProcess, url: str, body: bytes, timeout: float = 30) -> None:
    wait_for(f"{url} to serve {body!r}", lambda: anchor.edge(host_of(url)).content == body, timeout)


def branch_urls(anchor: AnchorProcess, project: str) -> dict[str, dict[str, Any]]:
    with anchor.api() as api:
        return {b["branch"]: b for b in api.get(f"/v1/projects/{project}/git").json()["branches"]}


def branch_url(anchor: AnchorProcess, project: str, branch: str, deployment_id: str) -> str:
    """The branch's URL once it serves ``deployment_id``."""

    def moved() -> str | None:
        found = branch_urls(anchor, project).get(branch)
        return found["url"] if found and found["deploymentId"] == deployment_id else None

    return str(wait_for(f"{branch} of {project} to move to {deployment_id}", moved))


def ready(anchor: AnchorProcess, deployment: dict[str, Any]) -> dict[str, Any]:
    with anchor.api() as api:
        final = wait_final(api, deployment["id"], timeout=120)
    assert final["status"] == "READY", final
    return final


def stopped_build_log(anchor: AnchorProcess, deployment_id: str) -> list[str] | None:
    """The build log of a canceled build once its build has stopped (None before)."""
    with anchor.api() as api:
        lines = [line["text"] for line in api.get(f"/v1/deployments/{deployment_id}/logs").json()["lines"]]
    return lines if lines and lines[-1] == "build stopped: it was canceled" else None


def deployment_count(anchor: AnchorProcess, project: str) -> int:
    with anchor.api() as api:
        return len(api.get(f"/v1/projects/{project}/deployments").json()["deployments"])


def production_url(anchor: AnchorProcess, project: str) -> str:
    with anchor.api() as api:
        return str(api.get(f"/v1/projects/{project}").json()["productionUrl"])
