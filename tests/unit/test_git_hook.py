"""The post-receive hook of a project's git remote: what it tells the API of a push, and what the pusher
sees (the build log line by line, then the URLs, or why it failed), against a small stand-in of the API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from anchor_deploy.cli.client import ApiClient
from anchor_deploy.cli.git_hook import read_updates, run
from anchor_deploy.model.git import ZERO_SHA, RefUpdate
from anchor_deploy.settings import GitHookSettings
from tests.ports import free_port

OLD, NEW, OTHER = "a" * 40, "b" * 40, "c" * 40
SETTINGS = GitHookSettings("http://api.test", "anc_secret", "site", timeout=30)


@dataclass
class Build:
    id: str
    target: str
    branch: str
    log: list[str]
    end: str = "READY"  # its final status
    polls_to_end: int = 2
    branch_url: str | None = None
    polls: int = 0


@dataclass
class FakeApi:
    """The routes the hook calls; each deployment is BUILDING for a few polls, its log growing."""

    builds: list[Build]
    production_id: str | None = None
    pushed: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.tokens.add(request.headers.get("authorization", ""))
        path = request.url.path
        if request.method == "POST" and path == "/v1/projects/site/git/pushes":
            self.pushed.append(json.loads(request.content))
            return httpx.Response(200, json={"deployments": [self._json(b, "QUEUED") for b in self.builds]})
        if path == "/v1/projects/site":
            return httpx.Response(
                200, json={"productionDeploymentId": self.production_id, "productionUrl": "http://site.test"}
            )
        for build in self.builds:
            if path == f"/v1/deployments/{build.id}":
                build.polls += 1
                done = build.polls > build.polls_to_end
                return httpx.Response(200, json=self._json(build, build.end if done else "BUILDING"))
            if path == f"/v1/deployments/{build.id}/logs":
                after = int(request.url.params.get("after", "0"))
                shown = build.log[: build.polls * 2]  # the log grows as the build goes
                lines = [{"seq": i + 1, "text": t} for i, t in enumerate(shown) if i + 1 > after]
                return httpx.Response(200, json={"lines": lines})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "Not Found"}})

    def _json(self, build: Build, status: str) -> dict[str, Any]:
        return {
            "id": build.id,
            "project": "site",
            "status": status,
            "target": build.target,
            "url": f"http://{build.id}.test",
            "goLivePending": False,
            "error": "pip failed" if status == "ERROR" else None,
            "meta": {"git": {"branch": build.branch}},
            "branchUrl": build.branch_url,
        }

    def client(self) -> ApiClient:
        return ApiClient("http://api.test", SETTINGS.token, transport=httpx.MockTransport(self.handle))


def stdin(*updates: tuple[str, str, str]) -> list[str]:
    return [f"{old} {new} {ref}\n" for old, new, ref in updates]


def test_read_updates_takes_the_lines_git_gives_and_skips_the_rest() -> None:
    lines = [
        f"{OLD} {NEW} refs/heads/main\n",
        "garbage\n",
        f"{ZERO_SHA} {OTHER} refs/heads/feature/x\n",
        "\n",
    ]
    lines.append(f"{NEW} {'0' * 40} refs/heads/gone\n")
    lines.append(f"{'X' * 40} {NEW} refs/heads/upper\n")  # not a sha
    assert read_updates(lines) == [
        RefUpdate("refs/heads/main", OLD, NEW),
        RefUpdate("refs/heads/feature/x", ZERO_SHA, OTHER),
        RefUpdate("refs/heads/gone", NEW, "0" * 40),
    ]


def test_a_push_is_told_and_each_build_followed_to_its_urls(capsys: pytest.CaptureFixture[str]) -> None:
    production = Build("dpl_main", "production", "main", ["installing", "copying 3 files", "ready"])
    preview = Build(
        "dpl_feat", "preview", "feature/x", ["copying 1 file"], branch_url="http://site-git-feature-x.test"
    )
    api = FakeApi([production, preview], production_id="dpl_main")
    code = run(
        SETTINGS,
        stdin((OLD, NEW, "refs/heads/main"), (ZERO_SHA, OTHER, "refs/heads/feature/x")),
        api.client(),
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert api.pushed == [
        {
            "updates": [
                {"ref": "refs/heads/main", "before": OLD, "after": NEW},
                {"ref": "refs/heads/feature/x", "before": ZERO_SHA, "after": OTHER},
            ]
        }
    ]
    assert api.tokens == {f"Bearer {SETTINGS.token}"}  # the pusher's own token
    assert out == [
        "anchor: main: building dpl_main",
        "  installing",
        "  copying 3 files",
        "anchor: main: ready at http://dpl_main.test",
        "anchor: main: production http://site.test",
        "anchor: feature/x: building dpl_feat",
        "  copying 1 file",
        "anchor: feature/x: ready at http://dpl_feat.test",
        "anchor: feature/x: branch http://site-git-feature-x.test",
    ]


def test_a_pinned_production_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi([Build("dpl_main", "production", "main", [])], production_id="dpl_older")
    assert run(SETTINGS, stdin((OLD, NEW, "refs/heads/main")), api.client()) == 0
    assert (
        "anchor: main: production not moved (production is pinned: anchor unpin)" in capsys.readouterr().out
    )


def test_a_failed_build_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi(
        [Build("dpl_bad", "preview", "fix", ["pip install", "ERROR: no matching distribution"], "ERROR")]
    )
    assert run(SETTINGS, stdin((OLD, NEW, "refs/heads/fix")), api.client()) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "  pip install",
        "  ERROR: no matching distribution",
        "anchor: fix: ERROR: pip failed",
    ]


def test_following_stops_at_the_time_limit(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi([Build("dpl_slow", "preview", "slow", ["step"], polls_to_end=10**6)])
    started = time.monotonic()
    code = run(
        GitHookSettings("http://api.test", "anc_secret", "site", 1.0),
        stdin((OLD, NEW, "refs/heads/slow")),
        api.client(),
    )
    assert code == 1 and time.monotonic() - started < 5
    assert capsys.readouterr().out.splitlines()[-1] == (
        "anchor: slow: no longer followed here; see: anchor logs dpl_slow"
    )


def test_a_deleted_branch_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi([])
    assert run(SETTINGS, stdin((OLD, ZERO_SHA, "refs/heads/feature/x")), api.client()) == 0
    assert api.pushed == [{"updates": [{"ref": "refs/heads/feature/x", "before": OLD, "after": ZERO_SHA}]}]
    assert capsys.readouterr().out == "anchor: feature/x: deleted, and its branch URL with it\n"


def test_nothing_pushed_calls_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi([])
    assert run(SETTINGS, ["\n"], api.client()) == 0
    assert api.pushed == [] and capsys.readouterr().out == ""


def test_a_push_with_nothing_to_deploy_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi([])
    assert run(SETTINGS, stdin((OLD, NEW, "refs/tags/v1")), api.client()) == 0
    assert capsys.readouterr().out == "anchor: nothing to deploy in this push\n"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {},
            "anchor: the push hook runs only under the platform: "
            "ANCHOR_API_URL, ANCHOR_TOKEN, ANCHOR_GIT_PROJECT not set",
        ),
        (
            {"ANCHOR_API_URL": "http://127.0.0.1:{port}", "ANCHOR_TOKEN": "t", "ANCHOR_GIT_PROJECT": "site"},
            "anchor: cannot reach the anchor API at http://127.0.0.1:{port}",
        ),
    ],
)
def test_the_hook_program_fails_in_one_line(env: dict[str, str], expected: str) -> None:
    port = str(free_port())  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", "anchor_deploy.cli.git_hook"],
        input=f"{OLD} {NEW} refs/heads/main\n",
        env={"PATH": "/usr/bin:/bin", **{k: v.replace("{port}", port) for k, v in env.items()}},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout.startswith(expected.replace("{port}", port)) and len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stdout + done.stderr
