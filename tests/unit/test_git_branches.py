"""Git deploys on the fakes: what a push to a branch makes (production for the production branch, a preview
served at the branch's stable URL otherwise), a newer push canceling a branch's older builds, the statuses
the forge is told, and retention keeping what a branch URL serves."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from anchor_deploy.model.entities import DeploymentStatus, HostKind, Target
from anchor_deploy.model.git import ZERO_SHA, CommitState, RefUpdate
from anchor_deploy.model.names import deployment_host, production_host
from anchor_deploy.services.retention import RetentionPolicy
from tests.unit.conftest import ADMIN, BASE
from tests.unit.git_harness import (
    REPO,
    GitPlatform,
    branch_host_of,
    commit_sha,
    github_push,
    make_git_platform,
)

A, B, C = commit_sha(0xA1), commit_sha(0xB2), commit_sha(0xC3)
FORGE_TOKEN = "ghp_forge-token"
FEATURE = branch_host_of("feature/x")
MAIN = branch_host_of("main")
PRODUCTION = production_host("site", BASE)
_WAIT = 10.0


def platform(**connect: str) -> GitPlatform:
    git = make_git_platform()
    assert git.connect(**connect).status_code == 201
    for n, commit in enumerate((A, B, C)):
        git.fetcher.commit(
            commit, {"index.html": f"<h1>{n}</h1>".encode()}, f"commit {n}\n\nbody", "Ada <a@x>"
        )
    return git


@pytest.fixture
def git() -> GitPlatform:
    return platform(forgeToken=FORGE_TOKEN)


def pushed(git: GitPlatform, branch: str, sha: str) -> str:
    answer = git.push(branch, sha)
    assert answer.status_code == 202 and answer.json()["outcome"] == "queued", answer.text
    deployment_id: str = answer.json()["deployment"]["id"]
    return deployment_id


def production_of(git: GitPlatform) -> str | None:
    return git.fresh("site").production_deployment_id


# -- branches ------------------------------------------------------------------------------------------------
def test_a_push_to_the_production_branch_goes_live(git: GitPlatform) -> None:
    made = pushed(git, "main", A)
    queued = git.deployment(made)
    assert queued.target == Target.PRODUCTION and queued.status == DeploymentStatus.QUEUED
    assert queued.meta["git"]["commitSha"] == A and queued.meta["git"]["branch"] == "main"
    git.build_queued()
    ready = git.deployment(made)
    assert ready.status == DeploymentStatus.READY, ready.error
    assert (
        ready.meta["git"]["commitMessage"] == "commit 0" and ready.meta["git"]["commitAuthor"] == "Ada <a@x>"
    )
    assert production_of(git) == made and git.serving(PRODUCTION) == made
    assert git.serving(MAIN) == made  # the production branch has its own stable URL too
    assert git.fetcher.requests[0].url == REPO and git.fetcher.requests[0].sha == A


def test_a_push_to_another_branch_is_a_preview_at_the_branch_url(git: GitPlatform) -> None:
    live = pushed(git, "main", A)
    git.build_queued()
    first = pushed(git, "feature/x", B)
    assert git.deployment(first).target == Target.PREVIEW
    assert git.store.host_target(FEATURE) is None  # nothing to serve before the build
    git.build_queued()
    assert git.serving(f"site-git-feature-x.{BASE}") == first and git.store.host_target(FEATURE) is not None
    assert production_of(git) == live and git.serving(PRODUCTION) == live
    second = pushed(git, "feature/x", C)
    git.build_queued()
    assert git.serving(FEATURE) == second and production_of(git) == live
    assert git.deployment(first).status == DeploymentStatus.READY  # it keeps its own URL
    branches = git.request("GET", "/v1/projects/site/git", headers=git.admin).json()["branches"]
    shown = {b["branch"]: (b["deploymentId"], b["commitSha"], b["url"]) for b in branches}
    url = git.services.urls.host_url
    assert shown["feature/x"] == (second, C, url(FEATURE)) and FEATURE in url(FEATURE)
    assert shown["main"] == (live, A, url(MAIN))


def test_a_pinned_production_is_not_moved_by_a_push_but_the_branch_url_is(git: GitPlatform) -> None:
    old = pushed(git, "main", A)
    git.build_queued()
    new = pushed(git, "main", B)
    git.build_queued()
    assert production_of(git) == new
    git.services.aliases.rollback(git.fresh("site"), old, ADMIN)
    assert git.fresh("site").pinned and production_of(git) == old
    newest = pushed(git, "main", C)
    git.build_queued()
    assert git.deployment(newest).status == DeploymentStatus.READY
    assert production_of(git) == old and git.serving(PRODUCTION) == old
    assert git.serving(MAIN) == newest


@pytest.mark.parametrize("branch", ["feature/x", "main"])
def test_three_quick_pushes_to_a_branch_end_with_the_last_live(git: GitPlatform, branch: str) -> None:
    git.fetcher.hold(A)
    first = pushed(git, branch, A)
    building = git.build_in_thread(first)
    assert git.fetcher.entered(A).wait(_WAIT)
    assert git.deployment(first).status == DeploymentStatus.BUILDING
    second = pushed(git, branch, B)
    assert git.deployment(first).status == DeploymentStatus.CANCELED  # canceled while it built
    third = pushed(git, branch, C)
    assert git.deployment(second).status == DeploymentStatus.CANCELED
    git.fetcher.release(A)
    building.join(_WAIT)
    assert not building.is_alive()
    git.build_queued()
    states = {d: git.deployment(d).status for d in (first, second, third)}
    assert states == {
        first: DeploymentStatus.CANCELED,
        second: DeploymentStatus.CANCELED,
        third: DeploymentStatus.READY,
    }
    assert git.serving(branch_host_of(branch)) == third
    assert production_of(git) == (third if branch == "main" else None)
    assert [r.sha for r in git.fetcher.requests] == [A, C]  # the queued one was never fetched
    assert any("canceled: superseded by " + third in line for _n, _t, line in git.store.read_log(second, 0))
    assert git.forge.states(A) == [CommitState.PENDING, CommitState.FAILURE]
    assert git.forge.states(B) == [CommitState.PENDING, CommitState.FAILURE]
    assert git.forge.states(C) == [CommitState.PENDING, CommitState.SUCCESS]


def test_an_older_build_ending_after_a_newer_one_never_moves_the_alias_back(
    git: GitPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = pushed(git, "feature/x", A)
    own_host = deployment_host("site", older, BASE)
    reached, gate = threading.Event(), threading.Event()
    point = git.edge.point

    def slow_point(host: str, kind: HostKind, deployment_id: str) -> None:
        if host == own_host:  # the older build is READY and about to serve its own URL
            reached.set()
            gate.wait(_WAIT)
        point(host, kind, deployment_id)

    monkeypatch.setattr(git.edge, "point", slow_point)
    building = git.build_in_thread(older)
    assert reached.wait(_WAIT) and git.deployment(older).status == DeploymentStatus.READY
    newer = pushed(git, "feature/x", B)  # too late to cancel the older one
    git.build_queued()
    assert git.serving(FEATURE) == newer
    gate.set()
    building.join(_WAIT)
    assert not building.is_alive()
    assert git.serving(FEATURE) == newer
    alias = git.store.branch_alias(git.fresh("site").id, "feature/x")
    assert alias is not None and alias.deployment_id == newer and alias.sha == B


def test_a_production_push_queued_behind_a_newer_one_is_canceled_and_told(git: GitPlatform) -> None:
    first = pushed(git, "main", A)
    second = pushed(git, "main", B)
    assert git.deployment(first).status == DeploymentStatus.CANCELED
    git.build_queued()
    assert production_of(git) == second and git.serving(MAIN) == second
    assert git.forge.states(A) == [CommitState.PENDING, CommitState.FAILURE]
    assert git.forge.states(B) == [CommitState.PENDING, CommitState.SUCCESS]


# -- forge statuses ------------------------------------------------------------------------------------------
def test_the_forge_is_told_pending_then_success_with_the_deployment_url(git: GitPlatform) -> None:
    answer = git.push("feature/x", A).json()["deployment"]
    site = git.fresh("site")
    [pending] = git.forge.reports
    assert pending.token == FORGE_TOKEN and pending.connection.project_id == site.id
    assert pending.connection.repo_url == REPO
    assert pending.status.state == CommitState.PENDING and pending.status.sha == A
    assert pending.status.target_url == answer["url"] and answer["id"].removeprefix("dpl_") in answer["url"]
    assert pending.status.environment == "preview"
    git.build_queued()
    success = git.forge.reports[-1]
    assert len(git.forge.reports) == 2 and success.status.state == CommitState.SUCCESS
    assert success.status.target_url == answer["url"] and FEATURE in success.status.description


def test_the_forge_is_told_failure_when_the_fetch_fails(git: GitPlatform) -> None:
    git.fetcher.fail(A, "could not reach github.com")
    made = pushed(git, "main", A)
    git.build_queued()
    failed = git.deployment(made)
    assert failed.status == DeploymentStatus.ERROR and "could not reach github.com" in (failed.error or "")
    assert production_of(git) is None and git.store.host_target(MAIN) is None
    assert git.forge.states(A) == [CommitState.PENDING, CommitState.FAILURE]
    assert "could not reach github.com" in git.forge.reports[-1].status.description
    assert git.forge.reports[-1].status.environment == "production"


@pytest.mark.parametrize(
    "connect",
    [{"forge": "generic", "forgeToken": FORGE_TOKEN}, {}],
    ids=["generic forge", "no forge token"],
)
def test_no_status_without_a_forge_to_tell(connect: dict[str, str]) -> None:
    git = platform(**connect)
    made = pushed(git, "feature/x", A)
    git.fetcher.fail(B, "unreachable")
    pushed(git, "feature/y", B)
    git.build_queued()
    assert git.deployment(made).status == DeploymentStatus.READY and git.serving(FEATURE) == made
    assert git.forge.reports == []


def test_no_status_for_a_push_to_the_platforms_own_remote(git: GitPlatform) -> None:
    site = git.fresh("site")
    made = git.services.git.pushed(
        site, ADMIN, [RefUpdate("refs/heads/feature/x", ZERO_SHA, A)], "http://anchor.test/git/site.git"
    )
    assert [d.meta["git"]["repository"] for d in made] == ["http://anchor.test/git/site.git"]
    git.build_queued()
    assert git.deployment(made[0].id).status == DeploymentStatus.READY and git.serving(FEATURE) == made[0].id
    assert git.fetcher.requests[0].url == "http://anchor.test/git/site.git"
    assert git.forge.reports == []


# -- retention -----------------------------------------------------------------------------------------------
def test_retention_keeps_what_a_branch_url_serves(git: GitPlatform) -> None:
    superseded = pushed(git, "feature/x", A)
    git.build_queued()
    served = pushed(git, "feature/x", B)
    git.build_queued()
    other = pushed(git, "feature/y", A)
    git.build_queued()
    assert git.deliver(github_push("feature/y", ZERO_SHA, before=A)).json()["outcome"] == "deleted"
    live = pushed(git, "main", C)
    git.build_queued()
    git.services.retention.policy = RetentionPolicy(keep_newest=1, keep_production=1)
    site = git.fresh("site")
    assert set(git.services.retention.plan(site)) == {superseded, other}
    assert set(git.services.retention.prune(site)) == {superseded, other}
    assert git.serving(FEATURE) == served and git.serving(MAIN) == live and git.serving(PRODUCTION) == live
    assert {d.id for d in git.deployments()} == {served, live}


def test_a_branch_alias_left_behind_by_a_crash_is_caught_up_at_start(git: GitPlatform) -> None:
    """A crash between a build's READY and its alias's move: the next start moves the alias forward."""
    first = pushed(git, "feature/x", A)
    git.build_queued()
    second = pushed(git, "feature/x", B)
    git.build_queued()
    assert git.serving(FEATURE) == second
    project = git.fresh("site")
    # As if the process died before the move: the alias still names the first build.
    behind = git.store.branch_alias(project.id, "feature/x")
    assert behind is not None
    git.store.move_branch(dataclasses.replace(behind, deployment_id=first), second)
    git.services.sync.apply(FEATURE)
    assert git.serving(FEATURE) == first
    assert git.services.git.builds.catch_up() == 1
    assert git.serving(FEATURE) == second
    assert git.store.branch_alias(project.id, "feature/x").deployment_id == second  # type: ignore[union-attr]
    assert git.services.git.builds.catch_up() == 0  # nothing left to move
