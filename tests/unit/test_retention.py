"""Retention: which deployments the policy prunes, and what garbage collection removes."""

from __future__ import annotations

import pytest

from anchor_deploy.model.entities import DeploymentStatus, Target, Token
from anchor_deploy.services.retention import Retention, RetentionPolicy
from tests.support import sha
from tests.unit.conftest import App

ALICE = Token("tok_alice", "alice", None, 0.0)


class NoEnvs:
    def __init__(self) -> None:
        self.kept: set[object] = set()

    def locate(self, requirements: bytes, python: str | None) -> None:
        return None

    def collect(self, keep: set[object]) -> int:
        self.kept = keep
        return 0


def retention(app: App, policy: RetentionPolicy, stopped: list[str]) -> Retention:
    return Retention(
        app.store,
        app.files,
        app.edge,
        app.blobs,
        NoEnvs(),
        stopped.append,  # type: ignore[arg-type]
        lambda _id: None,
        policy,
    )


def test_prunes_beyond_the_newest_but_keeps_production_and_recent_production(app: App) -> None:
    project = app.project()
    prod = [app.deploy(project, f"p{i}".encode()) for i in range(4)]  # 4 production moves
    previews = [app.deploy(project, f"v{i}".encode(), Target.PREVIEW) for i in range(5)]
    stopped: list[str] = []
    policy = RetentionPolicy(keep_newest=3, keep_production=2)
    plan = retention(app, policy, stopped).plan(project)
    # Kept: the 3 newest previews, production p3 and the previous production p2.
    assert set(plan) == {prod[0].id, prod[1].id, previews[0].id, previews[1].id}
    pruned = retention(app, policy, stopped).prune(project)
    assert set(pruned) == set(plan) and set(stopped) == set(plan)
    for deployment_id in plan:
        assert app.store.deployment(deployment_id) is None
        assert not app.files.exists(deployment_id)
    assert app.production(project) == prod[3].id and app.served(project) == prod[3].id
    remaining = {d.id for d in app.store.list_deployments(project.id)}
    assert remaining == {prod[2].id, prod[3].id, *(p.id for p in previews[2:])}


def test_a_rolled_back_to_deployment_is_never_pruned(app: App) -> None:
    project = app.project()
    first = app.deploy(project, b"first")
    later = [app.deploy(project, f"d{i}".encode()) for i in range(4)]
    app.aliases.rollback(project, first.id, ALICE)
    plan = retention(app, RetentionPolicy(keep_newest=1, keep_production=1), []).plan(project)
    assert first.id not in plan and later[-1].id not in plan  # production and the previous production
    assert set(plan) == {d.id for d in later[:-1]}


def test_builds_in_progress_are_kept(app: App) -> None:
    project = app.project()
    app.deploy(project, b"live")
    building = app.create(project, b"building", Target.PREVIEW)
    app.store.set_status(building.id, DeploymentStatus.BUILDING)
    for i in range(3):
        app.deploy(project, f"v{i}".encode(), Target.PREVIEW)
    assert building.id not in retention(app, RetentionPolicy(keep_newest=1, keep_production=1), []).plan(
        project
    )


def test_collect_removes_only_blobs_no_deployment_uses(app: App) -> None:
    project = app.project()
    kept = app.deploy(project, b"kept")
    app.blobs.put(sha(b"orphan"), iter([b"orphan"]), 100)
    removed, _envs = retention(app, RetentionPolicy(), []).collect(now=1e12)
    assert removed == 1
    assert app.blobs.missing([sha(b"orphan"), sha(b"kept")]) == [sha(b"orphan")]
    assert app.store.deployment(kept.id) is not None


def test_an_unpin_keeps_the_previous_production(app: App) -> None:
    project = app.project()
    a, b, c = (app.deploy(project, f"p{i}".encode()) for i in range(3))
    app.aliases.rollback(project, None, ALICE)  # production b (pinned), c is the previous production
    app.aliases.unpin(project, ALICE)  # recorded as b -> b: the previous production is still c
    app.deploy(project, b"newest preview", Target.PREVIEW)
    plan = retention(app, RetentionPolicy(keep_newest=1, keep_production=1), []).plan(project)
    assert plan == [a.id] and b.id not in plan and c.id not in plan


def test_collect_asks_the_deployment_files_to_collect_what_they_share_with_the_blobs_grace(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[float] = []
    monkeypatch.setattr(app.files, "collect", lambda older_than: asked.append(older_than) or 0)
    policy = RetentionPolicy(blob_grace_seconds=60)
    rules = retention(app, policy, [])
    rules.collect(now=1000.0)
    assert asked == [940.0]
    with rules.collection_paused():  # a backup runs: nothing is collected, trees neither
        rules.collect(now=2000.0)
    assert asked == [940.0]
