"""Pages of a project's deployments and production history (the dashboard's lists), in every store: the
same order as the full lists (list_deployments(), reversed alias_history()), any limit and offset at the
edges, counts. The DynamoDB store runs twice: with DynamoDB's own pages and with two items a page, so every
read it makes for a page or a count follows LastEvaluatedKey."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_deploy.model.entities import MoveReason, Project
from anchor_deploy.ports import Store
from tests.contract.dynamo_support import EVERY_STORE, store_for
from tests.contract.test_store_contract import add_deployment, add_project, make_ready
from tests.support import TickingClock

LIMITS = (1, 2, 3, 7, 50)
OFFSETS = (0, 1, 2, 5, 6, 7, 8, 1000)


@pytest.fixture(params=[*EVERY_STORE, "dynamo-paged"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return store_for(request, tmp_path, TickingClock())


def two_projects_with_deployments(store: Store) -> tuple[Project, Project, list[str]]:
    """``site`` gets 7 deployments (three made at the same time: the later-added is newer), ``docs`` 4
    interleaved with them; the ids of site's, newest first."""
    site, docs = add_project(store, "site"), add_project(store, "docs")
    times = [10.0, 30.0, 20.0, 20.0, 20.0, 40.0, 5.0]
    for n, created_at in enumerate(times):
        add_deployment(store, site, f"s{n}", created_at=created_at)
        if n % 2 == 0:
            add_deployment(store, docs, f"d{n}", created_at=created_at + 0.5)
    newest_first = ["s5", "s1", "s4", "s3", "s2", "s0", "s6"]
    return site, docs, [f"dpl_{s:0>12}" for s in newest_first]


def test_deployment_pages_follow_the_full_list_at_every_edge(store: Store) -> None:
    site, docs, newest_first = two_projects_with_deployments(store)
    full = store.list_deployments(site.id)
    assert [d.id for d in full] == newest_first
    for limit in LIMITS:
        for offset in OFFSETS:
            page = store.list_deployments(site.id, limit=limit, offset=offset)
            assert page == full[offset : offset + limit], (limit, offset)
    assert store.list_deployments(site.id, offset=4) == full[4:]
    assert store.list_deployments(site.id, limit=0) == []
    assert store.list_deployments(site.id, limit=7, offset=7) == []
    assert store.count_deployments(site.id) == 7
    assert store.count_deployments(docs.id) == 4
    assert [d.project_id for d in store.list_deployments(docs.id, limit=10)] == [docs.id] * 4
    assert store.count_deployments("prj_unknown") == 0
    assert store.list_deployments("prj_unknown", limit=5) == []


def test_a_page_shows_what_a_deployment_now_is_and_shifts_after_a_deletion(store: Store) -> None:
    site, _docs, newest_first = two_projects_with_deployments(store)
    ready = make_ready(store, store.deployment(newest_first[1]) or pytest.fail("missing"))
    first_two = store.list_deployments(site.id, limit=2)
    assert first_two[1] == ready and first_two[1].ready_at is not None
    store.delete_deployment(newest_first[0])
    assert store.count_deployments(site.id) == 6
    assert [d.id for d in store.list_deployments(site.id, limit=2, offset=1)] == newest_first[2:4]


def move_production_through(store: Store, project: Project, targets: list[str]) -> None:
    previous = store.project_by_id(project.id).production_deployment_id  # type: ignore[union-attr]
    for n, target in enumerate(targets):
        reason = MoveReason.ROLLBACK if n % 3 == 2 else MoveReason.DEPLOY
        store.move_production(project.id, previous, target, reason, f"token-{n}", n % 3 == 2)
        previous = target


def test_history_pages_are_newest_first_at_every_edge(store: Store) -> None:
    site, docs, ids = two_projects_with_deployments(store)
    docs_ids = [d.id for d in store.list_deployments(docs.id)]
    for n in range(7):  # the two projects' moves interleave
        move_production_through(store, site, [ids[n]])
        if n < 3:
            move_production_through(store, docs, [docs_ids[n]])
    newest_first = list(reversed(store.alias_history(site.id)))
    assert [m.to_deployment_id for m in newest_first] == ids[::-1]
    for limit in LIMITS:
        for offset in OFFSETS:
            page = store.alias_history_page(site.id, limit, offset)
            assert page == newest_first[offset : offset + limit], (limit, offset)
    assert store.alias_history_page(site.id, 0) == []
    assert store.count_alias_moves(site.id) == 7
    assert store.count_alias_moves(docs.id) == 3
    assert store.alias_history_page(docs.id, 2, 1) == list(reversed(store.alias_history(docs.id)))[1:3]
    assert store.count_alias_moves("prj_unknown") == 0
    assert store.alias_history_page("prj_unknown", 5) == []


def test_a_negative_limit_or_offset_is_refused(store: Store) -> None:
    site, _docs, _ids = two_projects_with_deployments(store)
    for limit, offset in ((-1, 0), (1, -1), (None, -3)):
        with pytest.raises(ValueError, match="0 or more"):
            store.list_deployments(site.id, limit=limit, offset=offset)
    for limit, offset in ((-1, 0), (1, -1)):
        with pytest.raises(ValueError, match="0 or more"):
            store.alias_history_page(site.id, limit, offset)
