"""Schema migrations on real SQLite files: fresh databases, databases from before versioning, databases newer
than the code, a migration that fails or is killed half-way, and several processes starting at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_migrations import (
    _RELEASE_1_SCHEMA,
    LATEST,
    MIGRATIONS,
    Migration,
    migrate,
    schema_version,
    split_statements,
)
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.entities import Token, TokenSource
from anchor_deploy.model.errors import SchemaTooNew

REPO = Path(__file__).resolve().parents[2]


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=30)


def tables(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return {name: sql for name, sql in rows}


def release_1_database(path: Path) -> None:
    """A database as the first release left it: its schema run by executescript, user_version 0, data."""
    db = sqlite3.connect(path)
    db.executescript(_RELEASE_1_SCHEMA)
    db.execute("INSERT INTO projects VALUES ('prj_1', 'site', 1.0, NULL, 1)")
    db.execute("INSERT INTO tokens VALUES ('tok_1', 'admin', 'hash-1', NULL, 2.0)")
    db.execute("INSERT INTO tokens VALUES ('tok_2', 'ci', 'hash-2', 'prj_1', 3.0)")
    db.execute("INSERT INTO tokens VALUES ('tok_3', 'ops', 'hash-3', NULL, 4.0)")
    db.commit()
    db.close()


def test_a_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "anchor.db")
    db = connect(tmp_path / "anchor.db")
    assert schema_version(db) == LATEST == MIGRATIONS[-1].version
    assert {"tokens", "projects", "deployments", "alias_history", "hosts", "domains"} <= set(tables(db))
    SqliteStore(tmp_path / "anchor.db")  # opening again applies nothing and fails nothing
    assert schema_version(db) == LATEST


def test_migrations_are_numbered_one_by_one_and_version_1_only_creates_what_is_missing() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    first = MIGRATIONS[0].statements
    assert first and all(
        s.startswith(("CREATE TABLE IF NOT EXISTS", "CREATE INDEX IF NOT EXISTS")) for s in first
    )


def test_a_database_from_before_versioning_is_taken_as_version_1_with_its_rows(tmp_path: Path) -> None:
    release_1_database(tmp_path / "anchor.db")
    db = connect(tmp_path / "anchor.db")
    before = tables(db)
    assert schema_version(db) == 0
    store = SqliteStore(tmp_path / "anchor.db")
    assert schema_version(db) == LATEST
    project = store.project_by_name("site")
    assert project is not None and project.pinned
    assert [r[0] for r in db.execute("SELECT id FROM tokens ORDER BY id")] == ["tok_1", "tok_2", "tok_3"]
    assert set(before) <= set(tables(db))


def test_version_2_gives_tokens_a_source_and_a_last_use(tmp_path: Path) -> None:
    """The release's start-up admin token (named "admin") is taken as generated; the others as made by the
    API; none has been used yet."""
    release_1_database(tmp_path / "anchor.db")
    store = SqliteStore(tmp_path / "anchor.db")
    assert store.list_tokens() == [
        Token("tok_1", "admin", None, 2.0, TokenSource.GENERATED),
        Token("tok_2", "ci", "prj_1", 3.0, TokenSource.API),
        Token("tok_3", "ops", None, 4.0, TokenSource.API),
    ]
    assert store.token_by_hash("hash-2") == Token("tok_2", "ci", "prj_1", 3.0, TokenSource.API)


def test_migration_1_on_a_release_database_changes_no_table(tmp_path: Path) -> None:
    release_1_database(tmp_path / "old.db")
    old = connect(tmp_path / "old.db")
    before = tables(old)
    assert migrate(old, upto=1) == [1]
    assert tables(old) == before and schema_version(old) == 1
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh, upto=1)
    assert tables(fresh) == before


def test_version_1_is_exactly_the_schema_of_a_database_the_release_made(tmp_path: Path) -> None:
    """The release's own database (tests/fixtures/datadir-v1, made by its code) has the tables and indexes
    that migration 1 makes, statement for statement."""
    release = connect(tmp_path / "release.db")
    release.executescript((REPO / "tests" / "fixtures" / "datadir-v1" / "anchor.sql").read_text())
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh, upto=1)
    assert tables(fresh) == tables(release) and len(tables(release)) == 15
    assert schema_version(release) == 0


def test_a_database_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "anchor.db")
    db = connect(tmp_path / "anchor.db")
    db.execute(f"PRAGMA user_version = {LATEST + 3}")
    before = tables(db)
    with pytest.raises(SchemaTooNew) as refused:
        SqliteStore(tmp_path / "anchor.db")
    assert str(refused.value) == (
        f"the database {tmp_path / 'anchor.db'} is at schema version {LATEST + 3}, newer than this "
        f"anchor-deploy (schema version {LATEST}): upgrade anchor-deploy or restore a backup"
    )
    assert schema_version(db) == LATEST + 3 and tables(db) == before and not db.in_transaction


def test_a_start_waits_for_another_writer_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    """Another process holding the write lock (its own migration) for longer than the store's busy
    timeout: the start waits for it instead of failing; afterwards the short busy timeout is back."""
    path = tmp_path / "anchor.db"
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("PRAGMA journal_mode=WAL")
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, lambda: blocker.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    store = SqliteStore(path, busy_timeout=0.1)
    assert time.monotonic() - started >= 0.9
    release.join()
    assert schema_version(connect(path)) == LATEST
    assert store._db().execute("PRAGMA busy_timeout").fetchone()[0] == 100


# -- a migration that fails or stops half-way ---------------------------------------------------------
TWO = (
    Migration(1, "a table", ("CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1)")),
    Migration(
        2,
        "a column and a row",
        (
            "ALTER TABLE t ADD COLUMN y TEXT NOT NULL DEFAULT 'new'",
            "INSERT INTO t (x) VALUES (2)",
            "UPDATE t SET y = 'done'",
        ),
    ),
)


def test_a_failing_migration_leaves_the_previous_version_whole(tmp_path: Path) -> None:
    db = connect(tmp_path / "anchor.db")
    broken = (TWO[0], Migration(2, "broken", (*TWO[1].statements[:2], "INSERT INTO missing VALUES (1)")))
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, broken)
    assert schema_version(db) == 1 and not db.in_transaction
    assert [c[1] for c in db.execute("PRAGMA table_info(t)")] == ["x"]  # the ALTER was rolled back
    assert db.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert migrate(db, TWO) == [2]
    assert db.execute("SELECT x, y FROM t ORDER BY x").fetchall() == [(1, "done"), (2, "done")]


def test_a_crash_point_stops_before_the_commit_and_the_retry_applies_once(tmp_path: Path) -> None:
    db = connect(tmp_path / "anchor.db")
    migrate(db, TWO, upto=1)
    points: list[str] = []

    def crash(point: str) -> None:
        points.append(point)
        if point == "migration:2:2":
            raise KeyboardInterrupt  # any BaseException: the transaction is rolled back

    with pytest.raises(KeyboardInterrupt):
        migrate(db, TWO, fault=crash)
    assert points == ["migration:2:1", "migration:2:2"]
    assert schema_version(db) == 1 and db.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)
    assert migrate(db, TWO) == [2]
    assert db.execute("SELECT x, y FROM t ORDER BY x").fetchall() == [(1, "done"), (2, "done")]


KILLED_MIGRATOR = """
import os, signal, sqlite3, sys
from anchor_deploy.adapters.local.sqlite_migrations import Migration, migrate
TWO = {two!r}
migrations = tuple(Migration(v, w, s) for v, w, s in TWO)
def kill(point):
    if point == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)
migrate(sqlite3.connect(sys.argv[1], isolation_level=None), migrations, fault=kill)
"""


def test_a_process_killed_inside_a_migration_leaves_it_undone(tmp_path: Path) -> None:
    """SIGKILL after the ALTER and the INSERT of migration 2, before its commit: the database stays at 1
    (no column, no row); the next start applies migration 2 once."""
    path = tmp_path / "anchor.db"
    migrate(connect(path), TWO, upto=1)
    script = KILLED_MIGRATOR.format(two=[(m.version, m.what, m.statements) for m in TWO])
    killed = subprocess.run(
        [sys.executable, "-c", script, str(path), "migration:2:2"], env=_env(), timeout=60, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    db = connect(path)
    assert schema_version(db) == 1
    assert db.execute("SELECT * FROM t").fetchall() == [(1,)]
    assert migrate(db, TWO) == [2]
    assert db.execute("SELECT x, y FROM t ORDER BY x").fetchall() == [(1, "done"), (2, "done")]


# -- several processes starting at once ----------------------------------------------------------------
RACER = """
import sqlite3, sys, time
from anchor_deploy.adapters.local.sqlite_migrations import Migration, migrate
slow = ("INSERT INTO work WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
        "SELECT x FROM c")
migrations = (
    Migration(1, "tables", ("CREATE TABLE runs (pid INTEGER)", "CREATE TABLE work (x INTEGER)")),
    Migration(2, "slow work", ("INSERT INTO runs VALUES (-1)", slow, "INSERT INTO runs VALUES (-2)")),
)
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
db.execute("PRAGMA journal_mode=WAL")
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(migrate(db, migrations))
"""


def test_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "anchor.db"
    # The file is in WAL mode before the racers open it (as a data dir is after its first start): switching
    # the journal mode needs the database to itself, which a racer that started migrating already holds.
    first = connect(path)
    first.execute("PRAGMA journal_mode=WAL")
    first.close()
    start_at = str(time.time() + 1.5)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), start_at], env=_env(), stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [r.communicate(timeout=120)[0].strip() for r in racers]
    assert [r.returncode for r in racers] == [0, 0, 0, 0]
    applied = [v for out in outputs for v in json.loads(out)]
    assert sorted(applied) == [1, 2]  # each version applied by exactly one process
    db = connect(path)
    assert db.execute("SELECT pid FROM runs ORDER BY pid").fetchall() == [(-2,), (-1,)]
    assert db.execute("SELECT COUNT(*) FROM work").fetchone() == (200000,)
    assert schema_version(db) == 2


def test_split_statements_keeps_each_statement_whole() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';');\nINSERT INTO a VALUES ('1;\n2');\n"
    assert split_statements(script) == (
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('1;\n2');",
    )
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE b (x")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _rows(db: sqlite3.Connection, names: Iterable[str]) -> dict[str, list[tuple[object, ...]]]:
    return {name: db.execute(f"SELECT * FROM {name} ORDER BY rowid").fetchall() for name in names}


def test_version_3_adds_leases_to_a_database_the_last_release_made_keeping_its_rows(tmp_path: Path) -> None:
    """tests/fixtures/database-v2.sql was written by the release before leases (its own SqliteStore, see
    make_database_v2.py): the new code upgrades it to version 3, every table and row as it was, and the
    leases work on it."""
    path = tmp_path / "anchor.db"
    db = connect(path)
    db.executescript((REPO / "tests" / "fixtures" / "database-v2.sql").read_text())
    before = tables(db)
    names = [n for n, sql in before.items() if sql.startswith("CREATE TABLE") and n != "sqlite_sequence"]
    rows = _rows(db, names)
    assert schema_version(db) == 2 and "leases" not in before and sum(map(len, rows.values())) > 40
    store = SqliteStore(path, clock=lambda: 1000.0)
    assert schema_version(db) == LATEST >= 3
    after = tables(db)
    kept = [n for n in names if n != "domains"]  # version 4 adds columns to domains (tested on its own)
    assert {n: after[n] for n in kept} == {n: before[n] for n in kept}
    assert _rows(db, kept) == {n: rows[n] for n in kept}
    assert after.keys() - before.keys() == {"leases"} | VERSION_5_TABLES | VERSION_6_TABLES | VERSION_7_TABLES
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh)
    assert tables(fresh) == after  # an upgraded database has exactly a new one's schema
    project = store.project_by_name("site")
    assert project is not None and project.pinned and project.production_deployment_id == "dpl_site00000000"
    reasons = [m.reason.value for m in store.alias_history("prj_api")]
    assert reasons == ["deploy", "promote", "rollback", "unpin"]
    assert store.acquire_lease("loop:reconcile", "a:1:x", 30.0)
    assert not store.acquire_lease("loop:reconcile", "b:2:y", 30.0)
    assert store.lease_holder("loop:reconcile") == ("a:1:x", 1030.0)


VERSION_5_TABLES = {"dns_links", "dns_links_by_project"}
VERSION_6_TABLES = {"git_connections", "git_deliveries", "git_deliveries_by_time", "git_branches"}
VERSION_7_TABLES = {"sessions", "sessions_by_expiry", "sessions_by_token"}


def test_version_5_adds_dns_links_to_a_version_4_database_keeping_its_rows(tmp_path: Path) -> None:
    """A database at version 4 with projects and a domain upgrades to version 5: every table and row as it
    was, a dns_links table with exactly a new database's schema, working, and emptied with its project."""
    path = tmp_path / "anchor.db"
    db = connect(path)
    migrate(db, upto=4)
    db.execute("INSERT INTO projects VALUES ('prj_1', 'site', 1.0, NULL, 0)")
    db.execute("INSERT INTO projects VALUES ('prj_2', 'shop', 2.0, NULL, 0)")
    db.execute(
        "INSERT INTO domains (name, project_id, validation_label, created_at, certificate_status, "
        "cdn_status, dns_status, status_reason, validation_deadline, failure) "
        "VALUES ('www.example.com', 'prj_1', 'lbl', 3.0, 'ISSUED', 'active', 'ok', '', 9.0, 'none')"
    )
    before = tables(db)
    rows = _rows(db, ["projects", "domains"])
    assert schema_version(db) == 4 and "dns_links" not in before
    store = SqliteStore(path)
    assert schema_version(db) == LATEST >= 5
    after = tables(db)
    assert {n: after[n] for n in before} == before
    assert _rows(db, ["projects", "domains"]) == rows
    assert after.keys() - before.keys() == VERSION_5_TABLES | VERSION_6_TABLES | VERSION_7_TABLES
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh, upto=5)
    assert {n: tables(fresh)[n] for n in VERSION_5_TABLES} == {n: after[n] for n in VERSION_5_TABLES}
    store.add_dns_link(DnsLink("example.com", "prj_1", "rfc2136", "192.0.2.1:53", "k", created_at=4.0), b"x")
    store.add_dns_link(DnsLink("shop.example", "prj_2", "route53", "Z0123", created_at=5.0), None)
    assert [link.zone for link in store.dns_links("prj_1")] == ["example.com"]
    store.delete_project("prj_1")
    assert db.execute("SELECT zone FROM dns_links").fetchall() == [("shop.example",)]
