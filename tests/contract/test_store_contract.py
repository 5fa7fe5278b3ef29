"""The Store port's contract: every adapter (SqliteStore on a real file, the in-memory fake) passes it."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.domains import CdnStatus, CertificateStatus, DnsStatus, Domain, IssuedInfo
from anchor_deploy.model.entities import (
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    MoveReason,
    Project,
    Target,
    Token,
    TokenSource,
)
from anchor_deploy.model.errors import (
    Conflict,
    DeploymentNotFound,
    DomainTaken,
    NameTaken,
    ProjectNotFound,
)
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports import Store
from anchor_deploy.ports.domains import DomainStore
from tests.contract.dynamo_support import EVERY_STORE, store_for
from tests.support import TickingClock, sha

Q, B, R, E, C = (
    DeploymentStatus.QUEUED,
    DeploymentStatus.BUILDING,
    DeploymentStatus.READY,
    DeploymentStatus.ERROR,
    DeploymentStatus.CANCELED,
)
FILES = [ManifestFile("index.html", sha(b"i"), 1, 0o644), ManifestFile("a/b.js", sha(b"b"), 1, 0o755)]


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture(params=EVERY_STORE)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: TickingClock) -> Store:
    return store_for(request, tmp_path, clock)


def add_project(store: Store, name: str, *extra_hosts: str) -> Project:
    project = Project(id=f"prj_{name}", name=name, created_at=1.0)
    hosts = [HostRoute(f"{name}.test", HostKind.ALIAS, project.id, None)]
    hosts += [HostRoute(h, HostKind.ALIAS, project.id, None) for h in extra_hosts]
    store.add_project(project, hosts)
    return project


def add_deployment(
    store: Store,
    project: Project,
    suffix: str,
    created_at: float = 10.0,
    target: Target = Target.PRODUCTION,
    meta: dict[str, object] | None = None,
) -> Deployment:
    deployment = Deployment(
        id=f"dpl_{suffix:0>12}",
        project_id=project.id,
        status=Q,
        target=target,
        created_at=created_at,
        file_count=len(FILES),
        total_size=2,
        meta=meta or {},
        created_by="ci",
    )
    host = HostRoute(f"{project.name}-{suffix}.test", HostKind.DEPLOYMENT, project.id, deployment.id)
    store.add_deployment(deployment, FILES, host)
    return deployment


def make_ready(store: Store, deployment: Deployment) -> Deployment:
    store.set_status(deployment.id, B)
    return store.set_status(deployment.id, R)


# -- tokens ----------------------------------------------------------------------------------------
def test_tokens_are_found_by_hash_only(store: Store) -> None:
    project = add_project(store, "site")
    limited = Token("tok_1", "deployer", project.id, 5.0)
    store.add_token(limited, "hash-1")
    assert store.token_by_hash("hash-1") == limited
    assert store.token_by_hash("hash-2") is None
    assert store.token_by_hash("tok_1") is None
    assert not store.has_admin_token()
    store.add_token(Token("tok_2", "admin", None, 6.0), "hash-2")
    assert store.has_admin_token()
    assert store.token_by_hash("hash-2") == Token("tok_2", "admin", None, 6.0)


def test_tokens_keep_their_source_and_last_use_and_are_listed_oldest_first(store: Store) -> None:
    project = add_project(store, "site")
    env = Token("tok_b", "admin", None, 2.0, TokenSource.ENV)
    generated = Token("tok_a", "admin", None, 2.0, TokenSource.GENERATED, 9.5)
    ci = Token("tok_c", "ci", project.id, 1.0)
    for token, secret_hash in ((env, "h-env"), (generated, "h-gen"), (ci, "h-ci")):
        store.add_token(token, secret_hash)
    assert store.list_tokens() == [ci, generated, env]  # by creation, then id
    assert store.token_by_id("tok_b") == env and store.token_by_hash("h-gen") == generated
    assert store.token_by_id("tok_nope") is None and store.token_by_id("h-env") is None
    assert ci.source is TokenSource.API and ci.last_used_at is None
    assert store.set_token_source("tok_a", TokenSource.ENV)
    assert store.token_by_id("tok_a") == dataclasses.replace(generated, source=TokenSource.ENV)
    assert not store.set_token_source("tok_nope", TokenSource.ENV)


def test_delete_token_revokes_it_at_once_and_only_it(store: Store) -> None:
    project = add_project(store, "site")
    store.add_token(Token("tok_1", "admin", None, 1.0), "hash-1")
    store.add_token(Token("tok_2", "ci", project.id, 2.0), "hash-2")
    assert store.delete_token("tok_2")
    assert store.token_by_hash("hash-2") is None and store.token_by_id("tok_2") is None
    assert not store.delete_token("tok_2")
    assert [t.id for t in store.list_tokens()] == ["tok_1"]
    store.add_token(Token("tok_3", "ci-again", project.id, 3.0), "hash-2")  # the secret is free again
    assert store.token_by_hash("hash-2") == Token("tok_3", "ci-again", project.id, 3.0)


def test_touch_token_writes_at_most_once_per_interval(store: Store) -> None:
    store.add_token(Token("tok_1", "admin", None, 1.0), "hash-1")
    assert store.touch_token("tok_1", 100.0, 60.0)
    assert not store.touch_token("tok_1", 130.0, 60.0)  # 30 s later: nothing written
    assert store.token_by_id("tok_1") == Token("tok_1", "admin", None, 1.0, last_used_at=100.0)
    assert store.touch_token("tok_1", 160.0, 60.0)  # a full interval later
    assert store.token_by_hash("hash-1") == Token("tok_1", "admin", None, 1.0, last_used_at=160.0)
    assert not store.touch_token("tok_nope", 500.0, 60.0)


def test_tokens_of_a_deleted_project_go_with_it(store: Store) -> None:
    site = add_project(store, "site")
    store.add_token(Token("tok_site", "site-ci", site.id, 1.0), "site-hash")
    store.add_token(Token("tok_admin", "admin", None, 2.0, TokenSource.GENERATED), "admin-hash")
    store.delete_project(site.id)
    assert [t.id for t in store.list_tokens()] == ["tok_admin"] and store.token_by_id("tok_site") is None


# -- projects --------------------------------------------------------------------------------------
def test_project_round_trip_and_lookups(store: Store) -> None:
    project = add_project(store, "site")
    assert store.project_by_name("site") == project
    assert store.project_by_id(project.id) == project
    assert store.project_by_name("other") is None
    assert store.project_by_id("prj_other") is None
    assert store.project_hosts(project.id) == [HostRoute("site.test", HostKind.ALIAS, project.id, None)]


def test_duplicate_project_name_is_name_taken_and_claims_nothing(store: Store) -> None:
    add_project(store, "site")
    twin = Project(id="prj_twin", name="site", created_at=2.0)
    with pytest.raises(NameTaken):
        store.add_project(twin, [HostRoute("fresh.test", HostKind.ALIAS, twin.id, None)])
    assert store.project_by_id("prj_twin") is None
    assert store.host_target("fresh.test") is None


def test_host_held_by_another_project_is_name_taken_atomically(store: Store) -> None:
    add_project(store, "site", "www.example.com")
    other = Project(id="prj_other", name="other", created_at=2.0)
    hosts = [
        HostRoute("other.test", HostKind.ALIAS, other.id, None),
        HostRoute("www.example.com", HostKind.ALIAS, other.id, None),
    ]
    with pytest.raises(NameTaken):
        store.add_project(other, hosts)
    assert store.project_by_name("other") is None
    assert store.host_target("other.test") is None
    route, _ = store.host_target("www.example.com") or (None, None)
    assert route is not None and route.project_id == "prj_site"


def test_list_projects_is_sorted_by_name(store: Store) -> None:
    for name in ["zeta", "alpha", "mid"]:
        add_project(store, name)
    assert [p.name for p in store.list_projects()] == ["alpha", "mid", "zeta"]


def test_delete_project_cascades_and_releases_hosts(store: Store) -> None:
    site = add_project(store, "site", "www.example.com")
    keep = add_project(store, "keep")
    dpl = make_ready(store, add_deployment(store, site, "a1"))
    kept = add_deployment(store, keep, "b1")
    store.move_production(site.id, None, dpl.id, MoveReason.DEPLOY, "ci", False)
    store.add_token(Token("tok_site", "site-ci", site.id, 1.0), "site-hash")
    store.add_token(Token("tok_admin", "admin", None, 1.0), "admin-hash")

    released = store.delete_project(site.id)

    assert sorted(released) == ["site-a1.test", "site.test", "www.example.com"]
    assert store.project_by_id(site.id) is None and store.project_by_name("site") is None
    assert store.deployment(dpl.id) is None
    with pytest.raises(DeploymentNotFound):
        store.manifest(dpl.id)
    assert store.list_deployments(site.id) == []
    assert store.alias_history(site.id) == []
    assert store.project_hosts(site.id) == []
    assert all(store.host_target(h) is None for h in released)
    assert store.token_by_hash("site-hash") is None
    assert store.token_by_hash("admin-hash") is not None
    assert store.deployment(kept.id) == kept
    assert [p.name for p in store.list_projects()] == ["keep"]
    add_project(store, "site", "www.example.com")  # the name and hosts are free again


def test_delete_unknown_project_is_project_not_found(store: Store) -> None:
    with pytest.raises(ProjectNotFound):
        store.delete_project("prj_nope")


# -- deployments -----------------------------------------------------------------------------------
def test_deployment_round_trip_with_manifest_and_host(store: Store) -> None:
    project = add_project(store, "site")
    dpl = add_deployment(store, project, "a1", meta={"git": {"sha": "abc"}, "n": [1, 2]})
    assert store.deployment(dpl.id) == dpl
    assert store.manifest(dpl.id) == FILES
    route = HostRoute("site-a1.test", HostKind.DEPLOYMENT, project.id, dpl.id)
    assert store.host_target("site-a1.test") == (route, dpl.id)
    assert store.deployment("dpl_nope") is None
    with pytest.raises(DeploymentNotFound):
        store.manifest("dpl_nope")


def test_meta_handed_out_is_a_copy(store: Store) -> None:
    project = add_project(store, "site")
    meta: dict[str, object] = {"branch": "main"}
    dpl = add_deployment(store, project, "a1", meta=meta)
    meta["branch"] = "changed"
    first = store.deployment(dpl.id)
    assert first is not None and first.meta == {"branch": "main"}
    first.meta["branch"] = "mutated"
    again = store.deployment(dpl.id)
    assert again is not None and again.meta == {"branch": "main"}


def test_add_deployment_with_held_host_stores_nothing(store: Store) -> None:
    project = add_project(store, "site")
    dpl = Deployment("dpl_x", project.id, Q, Target.PREVIEW, 1.0, 0, 0)
    with pytest.raises(NameTaken):
        store.add_deployment(dpl, [], HostRoute("site.test", HostKind.DEPLOYMENT, project.id, dpl.id))
    assert store.deployment("dpl_x") is None
    assert store.list_deployments(project.id) == []


def test_add_deployment_to_unknown_project_claims_no_host(store: Store) -> None:
    dpl = Deployment("dpl_x", "prj_nope", Q, Target.PREVIEW, 1.0, 0, 0)
    with pytest.raises(ProjectNotFound):
        store.add_deployment(dpl, [], HostRoute("x.test", HostKind.DEPLOYMENT, "prj_nope", dpl.id))
    assert store.deployment("dpl_x") is None
    assert store.host_target("x.test") is None


def test_list_deployments_is_newest_first_per_project(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    old = add_deployment(store, site, "a1", created_at=10.0)
    new = add_deployment(store, site, "a2", created_at=30.0)
    mid = add_deployment(store, site, "a3", created_at=20.0)
    tie = add_deployment(store, site, "a4", created_at=30.0)  # same time: the later insert first
    add_deployment(store, other, "b1", created_at=40.0)
    assert [d.id for d in store.list_deployments(site.id)] == [tie.id, new.id, mid.id, old.id]


def test_deployments_with_status_filters_oldest_first(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    late = add_deployment(store, site, "a1", created_at=30.0)
    early = add_deployment(store, other, "b1", created_at=10.0)
    ready = make_ready(store, add_deployment(store, site, "a2", created_at=20.0))
    store.set_status(late.id, B)
    assert [d.id for d in store.deployments_with_status([Q, B])] == [early.id, late.id]
    assert [d.id for d in store.deployments_with_status([R])] == [ready.id]
    assert store.deployments_with_status([E, C]) == []
    assert [d.id for d in store.deployments_with_status([Q, B, R], limit=2)] == [early.id, ready.id]
    assert store.deployments_with_status([Q, B], limit=0) == []


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ([B, R], True),
        ([B, E], True),
        ([C], True),
        ([E], True),
        ([B, B, R], True),
        ([R], False),
        ([B, Q], False),
        ([B, C], True),  # a newer push to its branch cancels a running build
        ([B, R, B], False),
        ([B, R, E], False),
        ([E, B], False),
        ([C, B], False),
    ],
)
def test_set_status_follows_the_state_machine(
    store: Store, path: list[DeploymentStatus], allowed: bool
) -> None:
    project = add_project(store, "site")
    dpl = add_deployment(store, project, "a1")
    *head, last = path
    for status in head:
        store.set_status(dpl.id, status)
    before = store.deployment(dpl.id)
    if allowed:
        assert store.set_status(dpl.id, last).status == last
        assert store.deployment(dpl.id) == store.set_status(dpl.id, last)
    else:
        with pytest.raises(Conflict):
            store.set_status(dpl.id, last)
        assert store.deployment(dpl.id) == before


def test_set_status_records_error_and_ready_time(store: Store, clock: TickingClock) -> None:
    project = add_project(store, "site")
    failed = add_deployment(store, project, "a1")
    store.set_status(failed.id, B)
    got = store.set_status(failed.id, E, "build failed: boom")
    assert (got.status, got.error, got.ready_at) == (E, "build failed: boom", None)
    ok = add_deployment(store, project, "a2")
    assert store.set_status(ok.id, B).ready_at is None
    ready = store.set_status(ok.id, R)
    assert ready.ready_at == clock.last
    assert store.set_status(ok.id, R).ready_at == ready.ready_at  # set once, never moved
    with pytest.raises(DeploymentNotFound):
        store.set_status("dpl_nope", B)


# -- production alias ------------------------------------------------------------------------------
def test_move_production_is_compare_and_set_with_history(store: Store, clock: TickingClock) -> None:
    project = add_project(store, "site")
    a = make_ready(store, add_deployment(store, project, "a1"))
    b = make_ready(store, add_deployment(store, project, "a2"))
    first = store.move_production(project.id, None, a.id, MoveReason.DEPLOY, "ci", False)
    assert (first.project_id, first.from_deployment_id, first.to_deployment_id) == (project.id, None, a.id)
    assert (first.reason, first.token_name, first.at) == (MoveReason.DEPLOY, "ci", clock.last)
    second = store.move_production(project.id, a.id, b.id, MoveReason.ROLLBACK, "alice", True)
    assert second.id > first.id
    fresh = store.project_by_id(project.id)
    assert fresh is not None and (fresh.production_deployment_id, fresh.pinned) == (b.id, True)

    for stale in (None, a.id, "dpl_other"):
        with pytest.raises(Conflict):
            store.move_production(project.id, stale, a.id, MoveReason.PROMOTE, "bob", False)
    assert store.project_by_id(project.id) == fresh
    assert store.alias_history(project.id) == [first, second]


def test_alias_history_is_oldest_first_and_per_project(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    ids = [make_ready(store, add_deployment(store, site, f"a{i}")).id for i in range(3)]
    elsewhere = make_ready(store, add_deployment(store, other, "b1"))
    previous = None
    for dpl_id in ids:
        store.move_production(site.id, previous, dpl_id, MoveReason.DEPLOY, "ci", False)
        if previous is None:
            store.move_production(other.id, None, elsewhere.id, MoveReason.DEPLOY, "ci", False)
        previous = dpl_id
    history = store.alias_history(site.id)
    assert [m.to_deployment_id for m in history] == ids
    assert [m.from_deployment_id for m in history] == [None, *ids[:-1]]
    assert [m.at for m in history] == sorted(m.at for m in history)
    assert [m.to_deployment_id for m in store.alias_history(other.id)] == [elsewhere.id]


def test_move_production_of_unknown_project(store: Store) -> None:
    with pytest.raises(ProjectNotFound):
        store.move_production("prj_nope", None, "dpl_x", MoveReason.DEPLOY, "ci", False)


def test_set_pinned_toggles(store: Store) -> None:
    project = add_project(store, "site")
    store.set_pinned(project.id, True)
    assert (store.project_by_id(project.id) or project).pinned is True
    store.set_pinned(project.id, False)
    assert (store.project_by_id(project.id) or project).pinned is False
    store.set_pinned("prj_nope", True)  # no row, no error, nothing created
    assert store.project_by_id("prj_nope") is None


def test_concurrent_compare_and_set_has_exactly_one_winner(store: Store) -> None:
    project = add_project(store, "site")
    targets = [make_ready(store, add_deployment(store, project, f"a{i}")).id for i in range(8)]
    barrier = threading.Barrier(len(targets))
    outcomes: dict[str, str] = {}

    def move(target: str) -> None:
        barrier.wait()
        try:
            store.move_production(project.id, None, target, MoveReason.PROMOTE, target, False)
            outcomes[target] = "won"
        except Conflict:
            outcomes[target] = "conflict"

    threads = [threading.Thread(target=move, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [t for t, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == len(targets) and len(winners) == 1
    history = store.alias_history(project.id)
    assert [(m.from_deployment_id, m.to_deployment_id) for m in history] == [(None, winners[0])]
    assert (store.project_by_id(project.id) or project).production_deployment_id == winners[0]


# -- hosts -----------------------------------------------------------------------------------------
def test_alias_hosts_follow_production_and_deployment_hosts_stay(store: Store) -> None:
    project = add_project(store, "site", "www.example.com")
    a = make_ready(store, add_deployment(store, project, "a1"))
    alias = HostRoute("site.test", HostKind.ALIAS, project.id, None)
    assert store.host_target("site.test") == (alias, None)
    store.move_production(project.id, None, a.id, MoveReason.DEPLOY, "ci", False)
    assert store.host_target("site.test") == (alias, a.id)
    assert store.host_target("unknown.test") is None
    own = HostRoute("site-a1.test", HostKind.DEPLOYMENT, project.id, a.id)
    www = HostRoute("www.example.com", HostKind.ALIAS, project.id, None)
    assert sorted(store.host_targets(), key=lambda t: t[0].host) == [
        (own, a.id),
        (alias, a.id),
        (www, a.id),
    ]
    assert store.project_hosts(project.id) == [own, alias, www]


def test_sqlite_store_keeps_everything_across_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "anchor.db")
    project = add_project(first, "site")
    dpl = make_ready(first, add_deployment(first, project, "a1"))
    move = first.move_production(project.id, None, dpl.id, MoveReason.DEPLOY, "ci", True)
    again = SqliteStore(tmp_path / "anchor.db")
    assert again.project_by_name("site") == Project(project.id, "site", 1.0, dpl.id, True)
    assert again.deployment(dpl.id) == dpl
    assert again.manifest(dpl.id) == FILES
    assert again.alias_history(project.id) == [move]


# -- go-live intent and token errors ---------------------------------------------------------------
def test_production_deployment_becomes_go_live_pending_with_ready_until_settled(store: Store) -> None:
    project = add_project(store, "site")
    prod = add_deployment(store, project, "p")
    preview = add_deployment(store, project, "v", target=Target.PREVIEW)
    assert not prod.go_live_pending
    assert store.set_status(prod.id, B).go_live_pending is False
    assert make_ready(store, preview).go_live_pending is False
    assert store.set_status(prod.id, R).go_live_pending is True
    assert store.set_status(prod.id, R).go_live_pending is True  # a repeated READY keeps it
    store.settle_go_live(prod.id)
    assert store.deployment(prod.id) is not None
    assert store.deployment(prod.id).go_live_pending is False  # type: ignore[union-attr]
    assert store.set_status(prod.id, R).go_live_pending is False  # already READY: no new go-live


def test_add_token_refuses_a_reused_secret_and_an_unknown_project(store: Store) -> None:
    store.add_token(Token("tok_1", "one", None, 1.0), "same-hash")
    with pytest.raises(Conflict):
        store.add_token(Token("tok_2", "two", None, 2.0), "same-hash")
    with pytest.raises(ProjectNotFound):
        store.add_token(Token("tok_3", "three", "prj_nope", 3.0), "other-hash")
    assert store.token_by_hash("other-hash") is None
    assert store.token_by_hash("same-hash") == Token("tok_1", "one", None, 1.0)


# -- custom domains --------------------------------------------------------------------------------
def new_domain(project: Project, name: str, next_check_at: float | None = 100.0, **changes: object) -> Domain:
    label = "".join(c for c in name if c.isalnum())[:20].ljust(20, "0")
    domain = Domain(
        name=name,
        project_id=project.id,
        validation_label=label,
        created_at=50.0,
        validation_deadline=50.0 + 72 * 3600,
        next_check_at=next_check_at,
        status_reason="waiting for the validation record",
    )
    return dataclasses.replace(domain, **changes)  # type: ignore[arg-type]


ISSUED_INFO = IssuedInfo("1f2e3d", "CN=anchor-deploy local CA", 1_700_000_000.25, 1_703_888_000.75)


def test_domain_round_trip_and_listing_by_name(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    www = new_domain(site, "www.example.com")
    wild = new_domain(site, "*.example.com", next_check_at=None)
    apex = new_domain(other, "example.org", last_checked_at=75.5, failures=2, dns_status=DnsStatus.OK)
    for domain in (www, wild, apex):
        store.add_domain(domain)
    assert store.domain("www.example.com") == www
    assert store.domain("*.example.com") == wild
    assert store.domain("example.org") == apex
    assert store.domain("nope.example.com") is None
    assert store.project_domains(site.id) == [wild, www]
    assert store.project_domains(other.id) == [apex]
    assert store.project_domains("prj_nope") == []
    assert store.all_domains() == [wild, apex, www]
    assert store.domain_certificate("www.example.com") is None


def test_a_held_domain_name_is_domain_taken_for_any_project(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    held = new_domain(site, "www.example.com")
    store.add_domain(held)
    for project in (other, site):
        with pytest.raises(DomainTaken):
            store.add_domain(new_domain(project, "www.example.com", validation_label="x" * 20))
    assert store.domain("www.example.com") == held
    assert store.project_domains(other.id) == []


def test_a_domain_of_an_unknown_project_is_refused(store: Store) -> None:
    ghost = Project("prj_ghost", "ghost", 1.0)
    with pytest.raises(ProjectNotFound):
        store.add_domain(new_domain(ghost, "www.example.com"))
    assert store.domain("www.example.com") is None and store.all_domains() == []


def test_domains_due_are_the_most_overdue_first_and_limited(store: Store) -> None:
    site = add_project(store, "site")
    store.add_domain(new_domain(site, "c.example.com", next_check_at=30.0))
    store.add_domain(new_domain(site, "a.example.com", next_check_at=20.0))
    store.add_domain(new_domain(site, "b.example.com", next_check_at=10.0))
    store.add_domain(new_domain(site, "later.example.com", next_check_at=500.0))
    store.add_domain(new_domain(site, "idle.example.com", next_check_at=None))
    assert [d.name for d in store.domains_due(30.0)] == ["b.example.com", "a.example.com", "c.example.com"]
    assert [d.name for d in store.domains_due(29.0)] == ["b.example.com", "a.example.com"]
    assert [d.name for d in store.domains_due(100.0, limit=2)] == ["b.example.com", "a.example.com"]
    assert store.domains_due(5.0) == []
    assert store.next_domain_check() == 10.0
    marked = store.mark_domain_deleting("later.example.com")  # deleting: due at once
    assert marked is not None and (marked.deleting, marked.next_check_at) == (True, 0.0)
    assert [d.name for d in store.domains_due(5.0)] == ["later.example.com"]
    assert store.next_domain_check() == 0.0


def label(n: int) -> str:
    return f"label{n:015d}"


def test_domains_due_fairly_take_turns_between_projects_never_checked_first(store: DomainStore) -> None:
    big, small, third = add_project(store, "big"), add_project(store, "small"), add_project(store, "third")
    for i in range(6):  # big's backlog: the most overdue rows of all
        name = f"b{i}.big.example"
        store.add_domain(new_domain(big, name, 10.0 + i, last_checked_at=5.0, validation_label=label(i)))
    store.add_domain(new_domain(big, "fresh.big.example", 40.0, validation_label=label(10)))
    store.add_domain(
        new_domain(small, "s0.small.example", 30.0, last_checked_at=5.0, validation_label=label(11))
    )
    store.add_domain(new_domain(small, "s1.small.example", 35.0, validation_label=label(12)))
    store.add_domain(new_domain(third, "later.third.example", 500.0, validation_label=label(13)))
    store.add_domain(new_domain(third, "idle.third.example", None, validation_label=label(14)))

    def due(now: float, per_project: int, limit: int = 100) -> list[str]:
        return [d.name for d in store.domains_due_fairly(now, per_project, limit)]

    # Every project's first (never-checked ones first, then the most overdue) before any project's second.
    round_robin = ["s1.small.example", "fresh.big.example", "b0.big.example", "s0.small.example"]
    assert due(100.0, 3) == [*round_robin, "b1.big.example"]
    assert due(100.0, 3, limit=3) == round_robin[:3]
    assert due(100.0, 1) == round_robin[:2]
    assert due(20.0, 2) == ["b0.big.example", "b1.big.example"]  # only big is due yet
    assert due(5.0, 5) == []
    marked = store.mark_domain_deleting("later.third.example")  # a removal to finish is due at once
    assert marked is not None
    assert due(100.0, 1) == ["later.third.example", *round_robin[:2]]


def test_domains_due_fairly_one_projects_backlog_leaves_room_for_another(store: DomainStore) -> None:
    flood, quiet = add_project(store, "flood"), add_project(store, "quiet")
    for i in range(300):
        store.add_domain(new_domain(flood, f"d{i}.flood.example", float(i), validation_label=label(i)))
    store.add_domain(new_domain(quiet, "www.quiet.example", 1000.0, validation_label=label(999)))
    assert [d.name for d in store.domains_due(1000.0, limit=10)][-1] == "d9.flood.example"  # oldest first
    fair = store.domains_due_fairly(1000.0, 4, 10)
    assert [d.name for d in fair[:2]] == ["d0.flood.example", "www.quiet.example"]
    assert sum(d.project_id == flood.id for d in fair) == 4


def test_add_domain_within_a_quota_counts_the_projects_live_domains(store: DomainStore) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    for i in range(3):
        assert store.add_domain_within(new_domain(site, f"d{i}.example.com", validation_label=label(i)), 3)
    over = new_domain(site, "d3.example.com", validation_label=label(3))
    assert store.add_domain_within(over, 3) is False
    assert store.domain("d3.example.com") is None and len(store.project_domains(site.id)) == 3
    assert store.add_domain_within(new_domain(other, "o.example.com", validation_label=label(4)), 3) is True
    with pytest.raises(DomainTaken):  # a held name is DomainTaken, at the quota or not
        store.add_domain_within(new_domain(site, "d0.example.com", validation_label=label(5)), 3)
    with pytest.raises(ProjectNotFound):
        store.add_domain_within(new_domain(Project("prj_ghost", "ghost", 1.0), "g.example.com"), 3)
    store.mark_domain_deleting("d0.example.com")  # one being removed no longer counts
    assert store.add_domain_within(over, 3) is True
    assert store.domain("d3.example.com") == over


def test_add_domain_within_a_quota_holds_under_concurrent_adds(store: DomainStore) -> None:
    site = add_project(store, "site")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def add(worker: int) -> None:
        barrier.wait(timeout=10)
        for i in range(5):
            n = worker * 5 + i
            results.append(
                store.add_domain_within(new_domain(site, f"d{n}.example.com", validation_label=label(n)), 10)
            )

    threads = [threading.Thread(target=add, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(True) == 10 and results.count(False) == 30
    assert len(store.project_domains(site.id)) == 10


def test_next_domain_check_is_none_without_scheduled_domains(store: Store) -> None:
    assert store.next_domain_check() is None
    site = add_project(store, "site")
    store.add_domain(new_domain(site, "idle.example.com", next_check_at=None))
    assert store.next_domain_check() is None
    assert store.domains_due(1e12) == []


def test_save_domain_updates_state_and_the_certificate(store: Store) -> None:
    site = add_project(store, "site")
    store.add_domain(new_domain(site, "www.example.com"))
    issued = new_domain(
        site,
        "www.example.com",
        certificate_status=CertificateStatus.ISSUED,
        cdn_status=CdnStatus.ACTIVE,
        dns_status=DnsStatus.MISCONFIGURED,
        status_reason="CNAME www.example.com points to elsewhere.example.net",
        certificate=ISSUED_INFO,
        last_checked_at=123.5,
        next_check_at=None,
        failures=0,
    )
    chain, sealed = b"-----BEGIN CERTIFICATE-----\n\x00\xff chain\n", b"\x80sealed-key\x00"
    assert store.save_domain(issued, (chain, sealed)) is True
    assert store.domain("www.example.com") == issued
    assert store.domain_certificate("www.example.com") == (chain, sealed)
    later = dataclasses.replace(issued, failures=3, status_reason="renewal failed", next_check_at=900.0)
    assert store.save_domain(later) is True  # no certificate given: the stored one stays
    assert store.domain("www.example.com") == later
    assert store.domain_certificate("www.example.com") == (chain, sealed)
    assert store.save_domain(dataclasses.replace(later, certificate=None)) is True
    assert store.domain_certificate("www.example.com") is None  # no certificate info: no bytes either


def test_save_domain_of_a_missing_or_foreign_or_deleting_row_is_false(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    assert store.save_domain(new_domain(site, "nope.example.com")) is False
    assert store.domain("nope.example.com") is None
    added = new_domain(site, "www.example.com")
    store.add_domain(added)
    assert store.save_domain(dataclasses.replace(added, project_id=other.id, failures=9)) is False
    assert store.domain("www.example.com") == added
    marked = store.mark_domain_deleting("www.example.com")
    assert marked == dataclasses.replace(added, deleting=True, next_check_at=0.0)
    issued = dataclasses.replace(added, certificate_status=CertificateStatus.ISSUED, certificate=ISSUED_INFO)
    assert store.save_domain(issued, (b"chain", b"key")) is False
    assert store.domain("www.example.com") == marked
    assert store.domain_certificate("www.example.com") is None
    assert store.mark_domain_deleting("nope.example.com") is None


def test_delete_domain_frees_the_name(store: Store) -> None:
    site, other = add_project(store, "site"), add_project(store, "other")
    store.add_domain(new_domain(site, "www.example.com"))
    store.save_domain(new_domain(site, "www.example.com", certificate=ISSUED_INFO), (b"c", b"k"))
    assert store.delete_domain("www.example.com") is True
    assert store.delete_domain("www.example.com") is False
    assert store.domain("www.example.com") is None and store.domain_certificate("www.example.com") is None
    store.add_domain(new_domain(other, "www.example.com"))
    assert (store.domain("www.example.com") or new_domain(site, "x.example")).project_id == other.id


def test_delete_project_deletes_its_domains(store: Store) -> None:
    site, keep = add_project(store, "site"), add_project(store, "keep")
    store.add_domain(new_domain(site, "www.example.com"))
    store.save_domain(new_domain(site, "www.example.com", certificate=ISSUED_INFO), (b"c", b"k"))
    store.add_domain(new_domain(site, "*.example.com"))
    kept = new_domain(keep, "keep.example.net")
    store.add_domain(kept)
    store.delete_project(site.id)
    assert store.project_domains(site.id) == [] and store.all_domains() == [kept]
    assert store.domain_certificate("www.example.com") is None
    assert store.next_domain_check() == 100.0
    store.add_domain(new_domain(keep, "www.example.com"))  # the name is free again


def test_sqlite_store_keeps_domains_across_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "anchor.db")
    site = add_project(first, "site")
    domain = new_domain(site, "www.example.com", certificate=ISSUED_INFO, deleting=False)
    first.add_domain(domain)
    first.save_domain(domain, (b"chain", b"sealed"))
    again = SqliteStore(tmp_path / "anchor.db")
    assert again.domain("www.example.com") == domain
    assert again.domain_certificate("www.example.com") == (b"chain", b"sealed")
