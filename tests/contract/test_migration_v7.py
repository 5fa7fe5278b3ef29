"""Schema version 7 on a database the last release wrote (tests/fixtures/database-v6.sql, made by that
release's own SqliteStore: see make_database_v6.py): every table and row kept, and the dashboard's
sessions and pages working on the upgraded database."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_migrations import LATEST, schema_version
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.entities import DeploymentStatus, HostKind, MoveReason, Session
from anchor_deploy.model.errors import TokenNotFound

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "database-v6.sql"
NEW_TABLES = {"sessions", "sessions_by_expiry", "sessions_by_token"}
NOW = 2_000_000_000.0


def _tables(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return {name: " ".join(sql.split()) for name, sql in rows}


def _rows(db: sqlite3.Connection, names: list[str]) -> dict[str, list[tuple[object, ...]]]:
    return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


@dataclass
class Upgraded:
    db: sqlite3.Connection
    store: SqliteStore
    schema_before: dict[str, str]
    rows_before: dict[str, list[tuple[object, ...]]]


@pytest.fixture
def upgraded(tmp_path: Path) -> Upgraded:
    """The fixture loaded as the last release left it, then opened by this code's store."""
    path = tmp_path / "anchor.db"
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.executescript(FIXTURE.read_text())
    before = _tables(db)
    names = [n for n, sql in before.items() if sql.startswith("CREATE TABLE") and n != "sqlite_sequence"]
    rows = _rows(db, names)
    assert schema_version(db) == 6 and not NEW_TABLES & before.keys()
    assert sum(map(len, rows.values())) >= 50
    store = SqliteStore(path, clock=lambda: NOW)
    return Upgraded(db, store, before, rows)


def test_version_7_keeps_every_table_and_row_of_the_last_release(upgraded: Upgraded) -> None:
    db, store, before, rows = upgraded.db, upgraded.store, upgraded.schema_before, upgraded.rows_before
    assert schema_version(db) == LATEST == 7
    after = _tables(db)
    assert {n: after[n] for n in before} == before
    assert after.keys() - before.keys() == NEW_TABLES
    assert _rows(db, list(rows)) == rows

    # What the release served is served as before.
    site = store.project_by_name("site")
    assert site is not None and site.production_deployment_id == "dpl_site00000009" and not site.pinned
    production = store.host_target("site.localhost")
    assert production is not None and production[1] == "dpl_site00000009"
    branch = store.host_target("site-git-feature-x.localhost")
    assert branch is not None and branch[0].kind == HostKind.ALIAS and branch[1] == "dpl_site00000010"
    ci = store.token_by_hash("hash-ci")
    assert ci is not None and ci.project_id == site.id and ci.last_used_at == 5.0


def test_pages_on_the_upgraded_database_follow_the_full_lists(upgraded: Upgraded) -> None:
    store = upgraded.store
    site = store.project_by_name("site")
    assert site is not None
    full = store.list_deployments(site.id)
    expected = [f"dpl_site{n:08d}" for n in (12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)]
    assert [d.id for d in full] == expected, "newest first; of two made at once, the later-added first"
    assert full[0].status == DeploymentStatus.QUEUED and full[0].meta == {"n": 12}
    assert store.count_deployments(site.id) == 12
    for limit, offset in ((5, 0), (5, 5), (5, 10), (1, 11), (3, 12)):
        assert store.list_deployments(site.id, limit=limit, offset=offset) == full[offset : offset + limit]

    history = list(reversed(store.alias_history(site.id)))
    assert store.count_alias_moves(site.id) == 9 and history[1].reason == MoveReason.ROLLBACK
    assert [m.to_deployment_id for m in history[:2]] == ["dpl_site00000009", "dpl_site00000008"]
    for limit, offset in ((4, 0), (4, 4), (4, 8), (1, 9)):
        assert store.alias_history_page(site.id, limit, offset) == history[offset : offset + limit]
    docs = store.project_by_name("docs")
    assert docs is not None and store.count_alias_moves(docs.id) == 2
    assert [m.to_deployment_id for m in store.alias_history_page(docs.id, 1)] == ["dpl_docs00000002"]


def test_sessions_on_the_upgraded_database_hang_on_the_old_tokens(upgraded: Upgraded) -> None:
    db, store = upgraded.db, upgraded.store
    admin = Session("ses_admin", "tok_admin", "csrf-a", NOW, NOW + 3600)
    docs = Session("ses_docs", "tok_docs", "csrf-d", NOW, NOW + 60)
    store.add_session(admin, "session-hash-admin")
    store.add_session(docs, "session-hash-docs")
    assert store.session_by_hash("session-hash-admin") == admin
    with pytest.raises(TokenNotFound):
        store.add_session(Session("ses_x", "tok_gone", "c", NOW, NOW + 1), "session-hash-x")

    store.delete_project(store.project_by_name("docs").id)  # type: ignore[union-attr]
    assert store.session_by_hash("session-hash-docs") is None, "its scoped token went, and the session"
    assert store.delete_token("tok_admin")
    assert db.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    assert store.delete_expired_sessions(NOW + 10**6) == 0
