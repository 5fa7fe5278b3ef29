"""AliasService: deploy, promote, rollback, pinning and the alias history."""

from __future__ import annotations

import threading

import pytest

from anchor_deploy.model.entities import DeploymentStatus, MoveReason, Project, Target, Token
from anchor_deploy.model.errors import DeploymentNotFound, DeploymentNotReady, NoRollbackTarget
from tests.support import run_concurrently
from tests.unit.conftest import ADMIN, App

ALICE = Token("tok_alice", "alice", None, 0.0)


def three_deploys(app: App) -> tuple[Project, str, str, str]:
    """Project 'site' with production deploys A, B, C (C serving)."""
    project = app.project()
    a, b, c = (app.deploy(project, f"v{i}".encode()).id for i in range(3))
    return project, a, b, c


def test_production_deploys_move_production_in_order(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    assert app.production(project) == a.id
    b = app.deploy(project, b"b")
    assert app.production(project) == b.id
    assert app.served(project) == b.id
    history = app.aliases.history(project)
    assert [(m.from_deployment_id, m.to_deployment_id, m.reason) for m in history] == [
        (None, a.id, MoveReason.DEPLOY),
        (a.id, b.id, MoveReason.DEPLOY),
    ]
    assert {m.token_name for m in history} == {"admin"}  # the token that created the deployment


def test_rollback_walks_back_by_first_became_production_order(app: App) -> None:
    project, a, b, c = three_deploys(app)
    assert app.aliases.rollback(project, None, ALICE).to_deployment_id == b
    assert (app.production(project), app.served(project)) == (b, b)
    assert app.aliases.rollback(project, None, ALICE).to_deployment_id == a
    assert (app.production(project), app.served(project)) == (a, a)
    with pytest.raises(NoRollbackTarget):
        app.aliases.rollback(project, None, ALICE)
    assert app.production(project) == a
    rows = app.aliases.history(project)
    assert [(m.to_deployment_id, m.reason, m.token_name) for m in rows] == [
        (a, MoveReason.DEPLOY, "admin"),
        (b, MoveReason.DEPLOY, "admin"),
        (c, MoveReason.DEPLOY, "admin"),
        (b, MoveReason.ROLLBACK, "alice"),
        (a, MoveReason.ROLLBACK, "alice"),
    ]
    assert [m.from_deployment_id for m in rows[3:]] == [c, b]


def test_rollback_order_is_first_became_production_not_last_move(app: App) -> None:
    site, a, b, c = three_deploys(app)
    other = app.project("other")  # another project's moves must not disturb the walk
    app.deploy(other, b"elsewhere")
    app.aliases.promote(site, b, ALICE)  # C -> B by promote: B still first became production after A
    assert app.aliases.rollback(site, None, ALICE).to_deployment_id == a
    assert c != app.production(site) == a


def test_rollback_without_production_has_no_target(app: App) -> None:
    project = app.project()
    with pytest.raises(NoRollbackTarget):
        app.aliases.rollback(project, None, ALICE)
    app.deploy(project, b"only")
    with pytest.raises(NoRollbackTarget):
        app.aliases.rollback(app.fresh(project), None, ALICE)


def test_rollback_of_a_project_with_one_deployment_says_there_is_nothing_earlier(app: App) -> None:
    project = app.project()
    only = app.deploy(project, b"only")
    with pytest.raises(NoRollbackTarget) as refused:
        app.aliases.rollback(app.fresh(project), None, ALICE)
    assert "no earlier deployment to roll back to" in str(refused.value)
    assert "--to" not in str(refused.value) and only.id in str(refused.value)


def test_rollback_without_an_earlier_production_names_the_other_ready_deployments(app: App) -> None:
    project = app.project()
    preview = app.deploy(project, b"preview", Target.PREVIEW)
    app.deploy(project, b"live")
    with pytest.raises(NoRollbackTarget) as refused:
        app.aliases.rollback(app.fresh(project), None, ALICE)
    assert "--to" in str(refused.value) and preview.id in str(refused.value)


def test_unpin_is_recorded_in_the_history_and_keeps_the_warm_set(app: App) -> None:
    project, a, b, c = three_deploys(app)
    app.aliases.rollback(project, None, ALICE)  # production b, pinned; c stays warm
    warm = app.aliases.warm_set(project)
    move = app.aliases.unpin(project, ADMIN)
    assert move is not None
    assert (move.reason, move.from_deployment_id, move.to_deployment_id, move.token_name) == (
        MoveReason.UNPIN,
        b,
        b,
        "admin",
    )
    assert app.aliases.history(project)[-1] == move
    assert warm == app.aliases.warm_set(project) == {b, c}
    assert app.production(project) == b and not app.fresh(project).pinned
    assert app.aliases.unpin(project, ADMIN) is None  # not pinned: nothing to release, nothing recorded
    assert len(app.aliases.history(project)) == 5
    # The unpin row is no production of its own: the next rollback still goes to the one before b.
    assert app.aliases.rollback(app.fresh(project), None, ALICE).to_deployment_id == a


def test_rollback_pins_and_a_pinned_project_ignores_new_deploys(app: App) -> None:
    project, _a, b, _c = three_deploys(app)
    app.aliases.rollback(project, None, ALICE)
    assert app.fresh(project).pinned
    d = app.deploy(project, b"d")
    assert d.status == DeploymentStatus.READY
    assert (app.production(project), app.served(project)) == (b, b)
    assert app.fresh(project).pinned
    assert [m.to_deployment_id for m in app.aliases.history(project)][-1] == b


def test_explicit_rollback_pins_too(app: App) -> None:
    project, a, _b, _c = three_deploys(app)
    move = app.aliases.rollback(project, a, ALICE)
    assert (move.to_deployment_id, move.reason, move.token_name) == (a, MoveReason.ROLLBACK, "alice")
    assert app.fresh(project).pinned and app.served(project) == a


def test_promote_unpins_and_deploys_move_production_again(app: App) -> None:
    project, _a, _b, _c = three_deploys(app)
    app.aliases.rollback(project, None, ALICE)
    d = app.deploy(project, b"d")
    move = app.aliases.promote(project, d.id, ALICE)
    assert (move.to_deployment_id, move.reason, move.token_name) == (d.id, MoveReason.PROMOTE, "alice")
    assert not app.fresh(project).pinned
    assert app.served(project) == d.id
    e = app.deploy(project, b"e")
    assert app.production(project) == e.id


def test_unpin_lets_the_next_deploy_through(app: App) -> None:
    project, _a, b, _c = three_deploys(app)
    app.aliases.rollback(project, None, ALICE)
    app.aliases.unpin(project, ALICE)
    assert not app.fresh(project).pinned
    assert app.production(project) == b  # unpinning alone moves nothing
    d = app.deploy(project, b"d")
    assert app.production(project) == d.id


def test_older_ready_production_deploy_does_not_replace_a_newer_one(app: App) -> None:
    project = app.project()
    older = app.create(project, b"older")
    app.store.set_status(older.id, DeploymentStatus.BUILDING)  # building: a newer deploy does not cancel it
    newer = app.create(project, b"newer")
    assert older.created_at < newer.created_at
    app.deployments.build(newer.id)
    built = app.deployments.build(older.id)
    assert built is not None and built.status == DeploymentStatus.READY
    assert app.production(project) == newer.id
    assert [m.to_deployment_id for m in app.aliases.history(project)] == [newer.id]


def test_preview_deploys_never_move_production(app: App) -> None:
    project = app.project()
    a = app.deploy(project, b"a")
    app.deploy(project, b"preview", Target.PREVIEW)
    assert app.production(project) == a.id
    assert len(app.aliases.history(project)) == 1


@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_only_ready_deployments_of_the_same_project_are_targets(app: App, action: str) -> None:
    project = app.project()
    live = app.deploy(project, b"live")
    queued = app.create(project, b"queued")
    failed = app.create(project, b"failed")
    app.store.set_status(failed.id, DeploymentStatus.ERROR, "boom")
    canceled = app.create(project, b"canceled")
    app.store.set_status(canceled.id, DeploymentStatus.CANCELED)
    building = app.create(project, b"building")
    app.store.set_status(building.id, DeploymentStatus.BUILDING)
    other = app.project("other")
    foreign = app.deploy(other, b"foreign")
    move = app.aliases.promote if action == "promote" else app.aliases.rollback
    for bad in (queued.id, failed.id, canceled.id, building.id):
        with pytest.raises(DeploymentNotReady):
            move(project, bad, ALICE)
    for missing in (foreign.id, "dpl_doesnotexist", ""):
        with pytest.raises(DeploymentNotFound):
            move(project, missing, ALICE)
    assert app.production(project) == live.id and app.served(project) == live.id
    assert not app.fresh(project).pinned
    assert len(app.aliases.history(project)) == 1
    assert app.production(other) == foreign.id


def test_moves_are_recorded_with_the_callers_token(app: App) -> None:
    project = app.project()
    deployer = Token("tok_ci", "github-actions", project.id, 0.0)
    a = app.create(project, b"a", token=deployer)
    app.deployments.build(a.id)
    b = app.deploy(project, b"b", Target.PREVIEW)
    app.aliases.promote(project, b.id, ALICE)
    app.aliases.rollback(project, a.id, ADMIN)
    rows = app.aliases.history(project)
    assert [(m.reason, m.token_name) for m in rows] == [
        (MoveReason.DEPLOY, "github-actions"),
        (MoveReason.PROMOTE, "alice"),
        (MoveReason.ROLLBACK, "admin"),
    ]
    assert [m.at for m in rows] == sorted({m.at for m in rows})


def test_concurrent_moves_are_serialized_and_all_recorded(app: App) -> None:
    project = app.project()
    ids = [app.deploy(project, f"v{i}".encode(), Target.PREVIEW).id for i in range(12)]
    barrier = threading.Barrier(len(ids))

    def promote(deployment_id: str) -> None:
        barrier.wait()
        app.aliases.promote(project, deployment_id, ALICE)

    errors = run_concurrently(promote, ids, timeout=30)
    assert errors == []
    rows = app.aliases.history(project)
    assert sorted(m.to_deployment_id for m in rows) == sorted(ids)
    assert [m.from_deployment_id for m in rows] == [None, *(m.to_deployment_id for m in rows[:-1])]
    assert app.production(project) == rows[-1].to_deployment_id == app.served(project)


def test_a_newer_production_deploy_cancels_a_queued_one(app: App) -> None:
    project = app.project()
    queued = app.create(project, b"queued")
    preview = app.create(project, b"preview", Target.PREVIEW)
    newer = app.create(project, b"newer")
    assert app.store.deployment(queued.id).status == DeploymentStatus.CANCELED  # type: ignore[union-attr]
    assert app.store.deployment(preview.id).status == DeploymentStatus.QUEUED  # type: ignore[union-attr]
    assert app.deployments.build(queued.id) is None
    assert app.deployments.build(newer.id) is not None
    assert app.production(project) == newer.id
    assert any("superseded" in line for _seq, _at, line in app.store.read_log(queued.id))
