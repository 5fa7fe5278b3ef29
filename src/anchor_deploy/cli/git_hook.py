"""The post-receive hook of a project's git remote (``python -m anchor_deploy.cli.git_hook``).

git runs it after a push has updated the refs, with one ``<old> <new> <ref>`` line per ref on stdin, and
relays what it prints to the pusher as ``remote:`` lines. It tells the API of the push with the pusher's own
token (``POST /v1/projects/{project}/git/pushes``), then follows each deployment the push queued: its build
log line by line, then its URL and the branch's (or production's) URL when READY, or why it failed. It
stops following after ANCHOR_GIT_HOOK_TIMEOUT seconds (the builds go on). It never fails the push (the refs
are already moved) and never prints a traceback: every problem is one line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from anchor_deploy.cli.client import ApiClient, ClientError
from anchor_deploy.cli.deploy import wait_ready
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.model.git import RefUpdate, is_sha
from anchor_deploy.model.logs import BUILD_DONE_LINE
from anchor_deploy.settings import GitHookSettings

MAX_UPDATES = 1000  # refs told of in one push (git's own pushes are far smaller)


def say(text: str, out: TextIO | None = None) -> None:
    """One line to the pusher, at once: git relays the hook's output as it comes."""
    stream = out or sys.stdout
    stream.write(text.rstrip("\n") + "\n")
    stream.flush()


def read_updates(lines: Iterable[str]) -> list[RefUpdate]:
    """The refs a push moved, from post-receive's ``<old> <new> <ref>`` lines (anything else is skipped)."""
    found: list[RefUpdate] = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and is_sha(parts[0]) and is_sha(parts[1]):
            found.append(RefUpdate(ref=parts[2], before=parts[0], after=parts[1]))
        if len(found) >= MAX_UPDATES:
            break
    return found


def follow(client: ApiClient, deployment: dict[str, Any], deadline: float) -> bool:
    """Print one deployment's build as it goes and how it ended; True if it is READY."""
    label = _label(deployment)
    say(f"anchor: {label}: building {deployment['id']}")

    def line(text: str) -> None:
        if text != BUILD_DONE_LINE:
            say(f"  {text}")

    remaining = max(1.0, deadline - time.monotonic())
    try:
        final = wait_ready(client, deployment["id"], None, line, timeout=remaining, longest_wait=0.1)
    except ClientError:
        if time.monotonic() < deadline:
            raise
        # The hook's time is up; the build itself goes on.
        say(f"anchor: {label}: no longer followed here; see: anchor logs {deployment['id']}")
        return False
    if final["status"] != "READY":
        say(f"anchor: {label}: {final['status']}: {final.get('error') or 'no reason given'}")
        return False
    say(f"anchor: {label}: ready at {final['url']}")
    for name, url in _stable_urls(client, final, final.get("branchUrl") or deployment.get("branchUrl")):
        say(f"anchor: {label}: {name} {url}")
    return True


def _label(deployment: dict[str, Any]) -> str:
    git = (deployment.get("meta") or {}).get("git") or {}
    branch = git.get("branch") if isinstance(git, dict) else None
    return str(branch or deployment.get("target") or "deployment")


def _stable_urls(client: ApiClient, deployment: dict[str, Any], branch_url: object) -> list[tuple[str, str]]:
    """The URLs that follow the branch: the branch's alias and, for production, the production URL."""
    found: list[tuple[str, str]] = []
    if branch_url:
        found.append(("branch", str(branch_url)))
    if deployment.get("target") == "production":
        project = client.get(f"/v1/projects/{deployment['project']}")
        if project.get("productionDeploymentId") == deployment["id"]:
            found.append(("production", str(project.get("productionUrl"))))
        else:
            found.append(("production", "not moved (production is pinned: anchor unpin)"))
    return found


def run(settings: GitHookSettings, stdin: Iterable[str], client: ApiClient | None = None) -> int:
    """Tell the API of the push and follow what it queued; 0 if every deployment became READY."""
    updates = read_updates(stdin)
    if not updates:
        return 0
    deadline = time.monotonic() + settings.timeout
    client = client or ApiClient(settings.api_url, settings.token)
    try:
        answer = client.post(
            f"/v1/projects/{settings.project}/git/pushes",
            {"updates": [{"ref": u.ref, "before": u.before, "after": u.after} for u in updates]},
        )
        deployments = answer.get("deployments") or []
        deleted = [u.branch for u in updates if u.deleted and u.branch]
        for branch in deleted:
            say(f"anchor: {branch}: deleted, and its branch URL with it")
        if not deployments and not deleted:
            say("anchor: nothing to deploy in this push")
        failed = [d for d in deployments if not follow(client, d, deadline)]
        return 1 if failed else 0
    finally:
        client.close()


def main() -> None:
    try:
        code = run(GitHookSettings.from_env(), sys.stdin)
    except (ClientError, InvalidInput) as exc:
        say(f"anchor: {exc}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug must not show the pusher a traceback: one line, the push stands
        say(f"anchor: the push hook failed: {type(exc).__name__}: {str(exc)[:200]}")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
