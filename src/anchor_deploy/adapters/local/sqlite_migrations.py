"""Versioned schema migrations for the SQLite store.

The schema's version is the database's ``PRAGMA user_version``. At start-up every migration newer than it is
applied in order, each in one ``BEGIN IMMEDIATE`` transaction together with its version bump, so a crash (or
``kill -9``) in the middle of one leaves the database at the previous version and the next start applies
that migration again from its beginning. The version is read again inside the write lock, so two processes
starting at once never both apply the same migration: the second waits, then finds it done.

Version 1 is the schema of the first release, which had no version (``user_version`` 0) and created its
tables with ``CREATE … IF NOT EXISTS`` at every start. Migration 1 is made only of such statements, so a
database from before versioning goes to version 1 by creating nothing but what a crash might have left
missing; nothing in it is dropped or rewritten.

Rules for a new migration: append it with the next number, never edit a released one, keep every statement
transactional (SQLite's CREATE, ALTER TABLE … ADD COLUMN, UPDATE, INSERT; no VACUUM, no PRAGMA that
changes the journal), and give it a test that upgrades a database made by the version before it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from anchor_deploy.model.errors import SchemaTooNew

log = logging.getLogger(__name__)


def split_statements(script: str) -> tuple[str, ...]:
    """A script's statements, one by one (``executescript`` would commit on its own)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return tuple(statements)


@dataclass(frozen=True)
class Migration:
    version: int
    what: str
    statements: tuple[str, ...]


_RELEASE_1_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    production_deployment_id TEXT,
    pinned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL,
    error TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    file_count INTEGER NOT NULL,
    total_size INTEGER NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    go_live_pending INTEGER NOT NULL DEFAULT 0,
    app TEXT,
    sealed_env BLOB NOT NULL DEFAULT x'',
    manifest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_by_project ON deployments(project_id, created_at);
CREATE INDEX IF NOT EXISTS deployments_by_status ON deployments(status);
CREATE TABLE IF NOT EXISTS alias_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    alias TEXT NOT NULL DEFAULT 'production',
    from_deployment_id TEXT,
    to_deployment_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    token_name TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alias_history_by_project ON alias_history(project_id, id);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    deployment_id TEXT
);
CREATE INDEX IF NOT EXISTS hosts_by_project ON hosts(project_id);
CREATE TABLE IF NOT EXISTS build_logs (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
CREATE TABLE IF NOT EXISTS env_vars (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    sealed_value BLOB NOT NULL,
    secret INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    validation_label TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    certificate_status TEXT NOT NULL,
    cdn_status TEXT NOT NULL,
    dns_status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    cert_serial TEXT,
    cert_issuer TEXT,
    cert_not_before REAL,
    cert_not_after REAL,
    cert_chain BLOB,
    cert_key BLOB,
    validation_deadline REAL NOT NULL,
    last_checked_at REAL,
    next_check_at REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    deleting INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS domains_by_project ON domains(project_id);
CREATE INDEX IF NOT EXISTS domains_by_next_check ON domains(next_check_at);
"""

# Tokens remember where they came from (env / generated / api: an ANCHOR_ADMIN_TOKEN that changes replaces
# the env one) and when they were last used. Admin tokens of the first release named "admin" were made at
# start-up, from ANCHOR_ADMIN_TOKEN or generated; which of the two is not recorded, so they become
# "generated" (kept), and the next start with ANCHOR_ADMIN_TOKEN marks the one it names "env".
_VERSION_2 = """
ALTER TABLE tokens ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE tokens ADD COLUMN last_used_at REAL;
UPDATE tokens SET source = 'generated' WHERE project_id IS NULL AND name = 'admin';
"""

# Leases (ports/leases.py): several control-plane processes sharing the database do each background job
# once. A row is held by ``holder`` until ``expires_at`` (the store's clock); nothing else refers to it.
_VERSION_3 = """
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

# Domains say what their consecutive failures are (the first releases read it from the words of the
# status), keep the issuer's handle of their certificate (an ACM ARN), the validation records the issuer
# asked for, and the authority's renewal status.
_VERSION_4 = """
ALTER TABLE domains ADD COLUMN failure TEXT NOT NULL DEFAULT 'none';
ALTER TABLE domains ADD COLUMN certificate_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE domains ADD COLUMN validation_records TEXT NOT NULL DEFAULT '';
ALTER TABLE domains ADD COLUMN renewal_status TEXT NOT NULL DEFAULT '';
UPDATE domains SET failure = 'refused' WHERE status_reason LIKE 'the certificate authority refused:%';
UPDATE domains SET failure = 'edge' WHERE cdn_status = 'failed' AND failure = 'none';
"""

# DNS zones a project linked (model/dns_links.py): the platform writes its domains' records there. A zone
# is linked by one project at a time; the link goes with its project.
_VERSION_5 = """
CREATE TABLE dns_links (
    zone TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    key_name TEXT NOT NULL DEFAULT '',
    key_algorithm TEXT NOT NULL DEFAULT 'hmac-sha256',
    sealed_secret BLOB,
    created_at REAL NOT NULL
);
CREATE INDEX dns_links_by_project ON dns_links(project_id);
"""

# Git deploys (model/git.py): a project's connected repository with its sealed secrets, the webhook
# deliveries it has answered, and its branches' stable preview hosts. A branch host is a ``hosts`` row of
# kind 'branch' whose deployment_id is the deployment it serves now (moved by compare-and-set).
_VERSION_6 = """
CREATE TABLE git_connections (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    repo_url TEXT NOT NULL,
    production_branch TEXT NOT NULL,
    forge TEXT NOT NULL,
    api_url TEXT NOT NULL DEFAULT '',
    sealed_webhook_secret BLOB NOT NULL,
    sealed_credentials BLOB,
    sealed_forge_token BLOB,
    created_at REAL NOT NULL
);
CREATE TABLE git_deliveries (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (project_id, delivery_id)
);
CREATE INDEX git_deliveries_by_time ON git_deliveries(at);
CREATE TABLE git_branches (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    branch TEXT NOT NULL,
    host TEXT NOT NULL UNIQUE,
    sha TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (project_id, branch)
);
"""

# Dashboard sign-ins (model/entities.py Session): found by the sha256 of the cookie's secret, gone with
# their token (and so with a project-scoped token's project), swept by expiry.
_VERSION_7 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
CREATE INDEX sessions_by_token ON sessions(token_id);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the schema of the first release", split_statements(_RELEASE_1_SCHEMA)),
    Migration(2, "tokens: source and last use", split_statements(_VERSION_2)),
    Migration(3, "leases for background work", split_statements(_VERSION_3)),
    Migration(
        4, "domains: failure kind, certificate reference, validation records", split_statements(_VERSION_4)
    ),
    Migration(5, "DNS zones linked to projects", split_statements(_VERSION_5)),
    Migration(6, "git connections, webhook deliveries, branch hosts", split_statements(_VERSION_6)),
    Migration(7, "dashboard sessions", split_statements(_VERSION_7)),
)
LATEST = MIGRATIONS[-1].version
MIGRATION_WAIT = 600.0  # seconds a starting process waits for another process's migration to finish


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None


def migrate(
    db: sqlite3.Connection,
    migrations: Sequence[Migration] = MIGRATIONS,
    fault: Callable[[str], None] = lambda _point: None,
    upto: int | None = None,
    where: str = "the data dir's database",
) -> list[int]:
    """Bring the database up to the last migration (or to ``upto``); return the versions applied.

    ``db`` must be in autocommit mode (``isolation_level=None``): each migration runs in its own explicit
    transaction. While migrating, a process waits up to MIGRATION_WAIT seconds for another one's migration
    (not the store's short busy timeout). ``fault(point)`` is called after each statement (test-only crash
    points named ``migration:<version>:<statement number>``). SchemaTooNew if the database is newer.
    """
    goal = migrations[-1].version if upto is None else upto
    previous_wait = int(db.execute("PRAGMA busy_timeout").fetchone()[0])
    db.execute(f"PRAGMA busy_timeout = {int(MIGRATION_WAIT * 1000):d}")
    try:
        applied: list[int] = []
        while (version := _apply_next(db, migrations, goal, fault, where)) is not None:
            applied.append(version)
        return applied
    finally:
        db.execute(f"PRAGMA busy_timeout = {previous_wait:d}")


def _apply_next(
    db: sqlite3.Connection,
    migrations: Sequence[Migration],
    goal: int,
    fault: Callable[[str], None],
    where: str,
) -> int | None:
    """In one write transaction: read the version, apply the next migration with its version bump and
    return its number; None (nothing written) once the database is at ``goal``."""
    latest = migrations[-1].version
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)
        if current > latest:
            raise SchemaTooNew(
                f"{where} is at schema version {current}, newer than this anchor-deploy "
                f"(schema version {latest}): upgrade anchor-deploy or restore a backup"
            )
        if current >= goal:
            db.execute("COMMIT")
            return None
        migration = next(m for m in migrations if m.version == current + 1)
        if current == 0 and _has_tables(db):
            log.info("%s is from before schema versioning: taken as version 1", where)
        for number, statement in enumerate(migration.statements, start=1):
            db.execute(statement)
            fault(f"migration:{migration.version}:{number}")
        db.execute(f"PRAGMA user_version = {migration.version:d}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    log.info("database schema migrated to version %d: %s", migration.version, migration.what)
    return migration.version
