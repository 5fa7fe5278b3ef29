"""Schema version 6 on a database the last release wrote (tests/fixtures/database-v5.sql, made by that
release's own SqliteStore: see make_database_v5.py): every table and row kept, hosts served as before,
and the git tables working on the upgraded database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_migrations import LATEST, schema_version
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.entities import DeploymentStatus, HostKind
from anchor_deploy.model.errors import NameTaken
from anchor_deploy.model.git import BranchAlias, Forge, GitConnection, GitSecrets, commit_from_meta

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "database-v5.sql"
NEW_TABLES = {"git_connections", "git_deliveries", "git_deliveries_by_time", "git_branches"}
LATER_TABLES = {"sessions", "sessions_by_expiry", "sessions_by_token"}  # version 7 (test_migration_v7.py)


def _tables(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return {name: " ".join(sql.split()) for name, sql in rows}


def _rows(db: sqlite3.Connection, names: list[str]) -> dict[str, list[tuple[object, ...]]]:
    return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def test_version_6_upgrades_the_last_release_s_database_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "anchor.db"
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.executescript(FIXTURE.read_text())
    before = _tables(db)
    names = [n for n, sql in before.items() if sql.startswith("CREATE TABLE") and n != "sqlite_sequence"]
    rows = _rows(db, names)
    assert schema_version(db) == 5 and not NEW_TABLES & before.keys()
    assert sum(map(len, rows.values())) >= 10

    store = SqliteStore(path, clock=lambda: 2_000_000_000.0)
    assert schema_version(db) == LATEST >= 6
    after = _tables(db)
    assert {n: after[n] for n in before} == before
    assert _rows(db, names) == rows
    assert after.keys() - before.keys() == NEW_TABLES | LATER_TABLES

    # The old hosts serve what they served; the rollback's pin and the metas are read as before.
    site = store.project_by_name("site")
    assert site is not None and site.pinned and site.production_deployment_id == "dpl_site00000002"
    production = store.host_target("site.localhost")
    assert production is not None and production[0].kind == HostKind.ALIAS
    assert production[1] == "dpl_site00000002"
    routes = {route.host: (route.kind, target) for route, target in store.host_targets()}
    assert routes["site-site00000003.localhost"] == (HostKind.DEPLOYMENT, "dpl_site00000003")
    old = store.deployment("dpl_site00000002")
    assert old is not None and old.status == DeploymentStatus.READY
    found = commit_from_meta(old.meta)
    assert found is not None and found.sha == "c" * 40 and found.branch == "main" and not found.dirty
    assert [link.zone for link in store.dns_links(store.project_by_name("docs").id)] == ["example.com"]  # type: ignore[union-attr]

    # The git tables work on the upgraded database, and a branch host is served as a movable alias.
    store.connect_git(
        GitConnection(site.id, "https://git.example/o/site.git", "main", Forge.GITHUB, 3.0),
        GitSecrets(b"sealed-secret", None, b"sealed-token"),
    )
    connection = store.git_connection(site.id)
    assert connection is not None and connection.has_forge_token and not connection.has_credentials
    assert store.record_delivery(site.id, "d-1", 5.0) and not store.record_delivery(site.id, "d-1", 6.0)
    alias = BranchAlias(
        site.id, "feature/x", "site-git-feature-x.localhost", "dpl_site00000003", "c" * 40, 7.0
    )
    store.move_branch(alias, None)
    route, target = store.host_target(alias.host)  # type: ignore[misc]
    assert route.kind == HostKind.ALIAS and target == "dpl_site00000003"
    with pytest.raises(NameTaken):
        store.move_branch(BranchAlias(site.id, "other", "site.localhost", "dpl_site00000001"), None)
    store.delete_project(site.id)
    assert db.execute("SELECT count(*) FROM git_connections").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM git_branches").fetchone() == (0,)
    assert store.host_target(alias.host) is None
