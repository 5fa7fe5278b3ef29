"""The Store port on an embedded SQLite database in WAL mode (one connection per thread)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.local.sqlite_busy import BusyAwareConnection
from anchor_deploy.adapters.local.sqlite_dns_links import SqliteDnsLinks
from anchor_deploy.adapters.local.sqlite_git import BRANCH_KIND, SqliteGit
from anchor_deploy.adapters.local.sqlite_migrations import migrate
from anchor_deploy.adapters.local.sqlite_sessions import SqliteSessions
from anchor_deploy.model.apps import parse_app_config
from anchor_deploy.model.domains import (
    CdnStatus,
    CertificateStatus,
    DnsStatus,
    Domain,
    FailureKind,
    IssuedInfo,
    records_from_text,
    records_to_text,
)
from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    MoveReason,
    Project,
    Target,
    Token,
    TokenSource,
    can_transition,
)
from anchor_deploy.model.errors import (
    Conflict,
    DeploymentNotFound,
    DomainTaken,
    NameTaken,
    ProjectNotFound,
)
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.model.paging import page_slice

_TOKEN_COLUMNS = "id, name, project_id, created_at, source, last_used_at"  # noqa: S105 - column names
_DOMAIN_COLUMNS = (
    "name, project_id, validation_label, created_at, certificate_status, cdn_status, dns_status, "
    "status_reason, cert_serial, cert_issuer, cert_not_before, cert_not_after, validation_deadline, "
    "last_checked_at, next_check_at, failures, deleting, failure, certificate_ref, validation_records, "
    "renewal_status"
)

DEPLOYMENT_COLUMNS = (
    "id, project_id, status, target, created_at, ready_at, error, meta, file_count, total_size, created_by, "
    "go_live_pending, app"
)
# The host's current deployment: its own for an immutable URL, the project's production one for an alias.
_HOST_TARGET = """
SELECT h.host, h.kind, h.project_id, h.deployment_id,
       CASE h.kind WHEN 'alias' THEN p.production_deployment_id ELSE h.deployment_id END
FROM hosts h JOIN projects p ON p.id = h.project_id
"""


def encode_manifest(files: Sequence[ManifestFile]) -> bytes:
    rows = [[f.path, f.sha256, f.size, f.mode] for f in files]
    return zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 3)


def _decode_manifest(blob: bytes) -> list[ManifestFile]:
    return [ManifestFile(p, s, n, m) for p, s, n, m in json.loads(zlib.decompress(blob))]


def referenced_blobs(db: sqlite3.Connection) -> set[str]:
    """Every blob digest named by the manifests of the deployments in ``db`` (a backup's snapshot)."""
    found: set[str] = set()
    for (manifest,) in db.execute("SELECT manifest FROM deployments"):
        found.update(f.sha256 for f in _decode_manifest(manifest))
    return found


def _project(row: sqlite3.Row) -> Project:
    return Project(
        row["id"], row["name"], row["created_at"], row["production_deployment_id"], bool(row["pinned"])
    )


def deployment_row(row: sqlite3.Row) -> Deployment:
    return Deployment(
        id=row["id"],
        project_id=row["project_id"],
        status=DeploymentStatus(row["status"]),
        target=Target(row["target"]),
        created_at=row["created_at"],
        file_count=row["file_count"],
        total_size=row["total_size"],
        meta=json.loads(row["meta"]),
        ready_at=row["ready_at"],
        error=row["error"],
        created_by=row["created_by"],
        go_live_pending=bool(row["go_live_pending"]),
        app=parse_app_config(json.loads(row["app"])) if row["app"] else None,
    )


def _token(row: sqlite3.Row) -> Token:
    return Token(
        row["id"],
        row["name"],
        row["project_id"],
        row["created_at"],
        TokenSource(row["source"]),
        row["last_used_at"],
    )


def _move(row: sqlite3.Row) -> AliasMove:
    return AliasMove(
        row["id"],
        row["project_id"],
        row["from_deployment_id"],
        row["to_deployment_id"],
        MoveReason(row["reason"]),
        row["token_name"],
        row["at"],
    )


def _domain(row: sqlite3.Row) -> Domain:
    certificate = None
    if row["cert_serial"] is not None:
        certificate = IssuedInfo(
            row["cert_serial"], row["cert_issuer"], row["cert_not_before"], row["cert_not_after"]
        )
    return Domain(
        name=row["name"],
        project_id=row["project_id"],
        validation_label=row["validation_label"],
        created_at=row["created_at"],
        certificate_status=CertificateStatus(row["certificate_status"]),
        cdn_status=CdnStatus(row["cdn_status"]),
        dns_status=DnsStatus(row["dns_status"]),
        status_reason=row["status_reason"],
        certificate=certificate,
        validation_deadline=row["validation_deadline"],
        last_checked_at=row["last_checked_at"],
        next_check_at=row["next_check_at"],
        failures=row["failures"],
        deleting=bool(row["deleting"]),
        failure=FailureKind(row["failure"]),
        certificate_ref=row["certificate_ref"],
        validation_records=records_from_text(row["validation_records"]),
        renewal_status=row["renewal_status"],
    )


def _host_kind(stored: str) -> HostKind:
    """A branch host (sqlite_git.py) is served as a movable alias: the edge knows no third kind."""
    return HostKind.ALIAS if stored == BRANCH_KIND else HostKind(stored)


def _host_target(row: sqlite3.Row | tuple[Any, ...]) -> tuple[HostRoute, str | None]:
    return HostRoute(row[0], _host_kind(row[1]), row[2], row[3]), row[4]


class SqliteStore(SqliteSessions, SqliteDnsLinks, SqliteGit):
    def __init__(
        self,
        path: Path,
        clock: Any = time.time,
        fault: Callable[[str], None] = lambda _point: None,
        busy_timeout: float = 5.0,
    ) -> None:
        """Open (or create) the database and apply its pending schema migrations (sqlite_migrations.py);
        SchemaTooNew if it is newer than this code. ``fault`` is the test-only crash-point hook."""
        self._path = path
        self._clock = clock
        self._busy_timeout = busy_timeout  # how long a write waits for another writer's lock: then StoreBusy
        self._local = threading.local()
        migrate(self._db(), fault=fault, where=f"the database {path}")

    # -- connections -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self._path,
                isolation_level=None,
                timeout=self._busy_timeout,
                check_same_thread=False,
                factory=BusyAwareConnection,
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            self._local.db = db
        return db

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable``: its commit is on disk (the WAL fsynced) when this returns,
        not only safe from a crash of this process as under synchronous=NORMAL: for what a caller is told
        has happened and the edge already shows (production moves)."""
        db = self._db()
        if durable:
            db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if durable:
                db.execute("PRAGMA synchronous=NORMAL")

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db().execute(sql, args).fetchone()
        return row

    # -- tokens ------------------------------------------------------------------------------------
    def add_token(self, token: Token, secret_hash: str) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM tokens WHERE secret_hash = ?", (secret_hash,)).fetchone():
                raise Conflict("a token with this secret already exists")
            if (
                token.project_id is not None
                and not db.execute("SELECT 1 FROM projects WHERE id = ?", (token.project_id,)).fetchone()
            ):
                raise ProjectNotFound(f"project {token.project_id} not found")
            db.execute(
                f"INSERT INTO tokens ({_TOKEN_COLUMNS}, secret_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.name,
                    token.project_id,
                    token.created_at,
                    token.source.value,
                    token.last_used_at,
                    secret_hash,
                ),
            )

    def token_by_hash(self, secret_hash: str) -> Token | None:
        row = self._one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?", secret_hash)
        return None if row is None else _token(row)

    def token_by_id(self, token_id: str) -> Token | None:
        row = self._one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", token_id)
        return None if row is None else _token(row)

    def list_tokens(self) -> list[Token]:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
        return [_token(r) for r in self._db().execute(sql)]

    def has_admin_token(self) -> bool:
        return self._one("SELECT 1 FROM tokens WHERE project_id IS NULL LIMIT 1") is not None

    def delete_token(self, token_id: str) -> bool:
        with self._write() as db:  # its sessions go with it (ON DELETE CASCADE, sqlite_sessions.py)
            return db.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount == 1

    def set_token_source(self, token_id: str, source: TokenSource) -> bool:
        with self._write() as db:
            cursor = db.execute("UPDATE tokens SET source = ? WHERE id = ?", (source.value, token_id))
            return cursor.rowcount == 1

    def touch_token(self, token_id: str, at: float, interval: float) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE tokens SET last_used_at = ? WHERE id = ? AND "
                "(last_used_at IS NULL OR last_used_at <= ?)",
                (at, token_id, at - interval),
            )
            return cursor.rowcount == 1

    # -- projects ----------------------------------------------------------------------------------
    def add_project(self, project: Project, hosts: Sequence[HostRoute]) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM projects WHERE name = ?", (project.name,)).fetchone():
                raise NameTaken(f"project {project.name!r} already exists")
            for route in hosts:
                if db.execute("SELECT 1 FROM hosts WHERE host = ?", (route.host,)).fetchone():
                    raise NameTaken(f"hostname {route.host} is already in use")
            db.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?)",
                (
                    project.id,
                    project.name,
                    project.created_at,
                    project.production_deployment_id,
                    int(project.pinned),
                ),
            )
            self._insert_hosts(db, hosts)

    @staticmethod
    def _insert_hosts(db: sqlite3.Connection, hosts: Sequence[HostRoute]) -> None:
        db.executemany(
            "INSERT INTO hosts VALUES (?, ?, ?, ?)",
            [(h.host, h.kind.value, h.project_id, h.deployment_id) for h in hosts],
        )

    def project_by_name(self, name: str) -> Project | None:
        row = self._one("SELECT * FROM projects WHERE name = ?", name)
        return None if row is None else _project(row)

    def project_by_id(self, project_id: str) -> Project | None:
        row = self._one("SELECT * FROM projects WHERE id = ?", project_id)
        return None if row is None else _project(row)

    def project_number(self, project_id: str) -> int | None:
        row = self._one("SELECT rowid FROM projects WHERE id = ?", project_id)
        return None if row is None else int(row[0])

    def list_projects(self) -> list[Project]:
        return [_project(r) for r in self._db().execute("SELECT * FROM projects ORDER BY name")]

    def delete_project(self, project_id: str) -> list[str]:
        with self._write() as db:
            hosts = [r[0] for r in db.execute("SELECT host FROM hosts WHERE project_id = ?", (project_id,))]
            if db.execute("DELETE FROM projects WHERE id = ?", (project_id,)).rowcount == 0:
                raise ProjectNotFound(f"project {project_id} not found")
        return hosts

    # -- deployments -------------------------------------------------------------------------------
    def add_deployment(
        self, deployment: Deployment, files: Sequence[ManifestFile], host: HostRoute, sealed_env: bytes = b""
    ) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM hosts WHERE host = ?", (host.host,)).fetchone():
                raise NameTaken(f"hostname {host.host} is already in use")
            if not db.execute("SELECT 1 FROM projects WHERE id = ?", (deployment.project_id,)).fetchone():
                raise ProjectNotFound(f"project {deployment.project_id} not found")
            app = json.dumps(deployment.app.to_dict()) if deployment.app else None
            db.execute(
                f"INSERT INTO deployments ({DEPLOYMENT_COLUMNS}, sealed_env, manifest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    deployment.id,
                    deployment.project_id,
                    deployment.status.value,
                    deployment.target.value,
                    deployment.created_at,
                    deployment.ready_at,
                    deployment.error,
                    json.dumps(deployment.meta),
                    deployment.file_count,
                    deployment.total_size,
                    deployment.created_by,
                    int(deployment.go_live_pending),
                    app,
                    sealed_env,
                    encode_manifest(files),
                ),
            )
            self._insert_hosts(db, [host])

    def sealed_env(self, deployment_id: str) -> bytes:
        row = self._one("SELECT sealed_env FROM deployments WHERE id = ?", deployment_id)
        if row is None:
            raise DeploymentNotFound(f"deployment {deployment_id} not found")
        return bytes(row[0])

    def delete_deployment(self, deployment_id: str) -> list[str]:
        with self._write() as db:
            hosts = [
                r[0] for r in db.execute("SELECT host FROM hosts WHERE deployment_id = ?", (deployment_id,))
            ]
            # Its own URL goes; a branch host serving it stays and serves nothing (retention keeps what a
            # branch serves, so this is only an explicit delete's doing).
            db.execute(
                "DELETE FROM hosts WHERE deployment_id = ? AND kind != ?", (deployment_id, BRANCH_KIND)
            )
            db.execute("UPDATE hosts SET deployment_id = NULL WHERE deployment_id = ?", (deployment_id,))
            if db.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,)).rowcount == 0:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
        return hosts

    # -- build logs --------------------------------------------------------------------------------
    build_log_cap = BuildLogCap()  # the local provider sets the configured one

    def append_log(self, deployment_id: str, lines: Sequence[str]) -> None:
        if not lines:
            return
        with self._write() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM build_logs WHERE deployment_id = ?", (deployment_id,)
            ).fetchone()
            at = self._clock()
            db.executemany(
                "INSERT INTO build_logs VALUES (?, ?, ?, ?)",
                [(deployment_id, row[0] + i, at, line) for i, line in enumerate(lines, start=1)],
            )
            self._cap_log(db, deployment_id, row[0] + len(lines), sum(len(s.encode()) for s in lines), at)

    def _cap_log(self, db: sqlite3.Connection, deployment_id: str, last: int, added: int, at: float) -> None:
        """Trim the log when it is over its cap (model/logs.py). The line count comes from two index lookups
        on every append; the size is summed once this thread has appended a sixteenth of the byte cap to the
        log since its last look (a hint kept per thread, not in the database)."""
        cap = self.build_log_cap
        unchecked: dict[str, int] | None = getattr(self._local, "log_unchecked", None)
        if unchecked is None or len(unchecked) > 64:
            unchecked = self._local.log_unchecked = {}
        pending = unchecked.get(deployment_id, 0) + added
        first = db.execute(
            "SELECT MIN(seq) FROM build_logs WHERE deployment_id = ? AND seq > ?",
            (deployment_id, cap.head_lines),
        ).fetchone()[0]
        count = min(last, cap.head_lines) + (0 if first is None else last - first + 1)
        if count <= cap.max_lines and pending < cap.max_bytes // 16:
            unchecked[deployment_id] = pending
            return
        unchecked.pop(deployment_id, None)
        sizes = db.execute(
            "SELECT seq, LENGTH(CAST(line AS BLOB)) FROM build_logs WHERE deployment_id = ? ORDER BY seq",
            (deployment_id,),
        )
        cut = cap.cut([(r[0], r[1]) for r in sizes])
        if cut is None:
            return
        db.execute(
            "DELETE FROM build_logs WHERE deployment_id = ? AND seq > ? AND seq < ?",
            (deployment_id, cap.head_lines, cut),
        )
        db.execute(
            "INSERT INTO build_logs VALUES (?, ?, ?, ?)",
            (deployment_id, cut - 1, at, cap.marker(cut - 1 - cap.head_lines)),
        )

    def read_log(self, deployment_id: str, after: int = 0) -> list[tuple[int, float, str]]:
        rows = self._db().execute(
            "SELECT seq, at, line FROM build_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq",
            (deployment_id, after),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # -- environment variables ---------------------------------------------------------------------
    def set_env(self, project_id: str, key: str, sealed_value: bytes, secret: bool) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO env_vars VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, key) DO UPDATE SET "
                "sealed_value = excluded.sealed_value, secret = excluded.secret, "
                "updated_at = excluded.updated_at",
                (project_id, key, sealed_value, int(secret), self._clock()),
            )

    def list_env(self, project_id: str) -> list[tuple[str, bytes, bool, float]]:
        rows = self._db().execute(
            "SELECT key, sealed_value, secret, updated_at FROM env_vars WHERE project_id = ? ORDER BY key",
            (project_id,),
        )
        return [(r[0], bytes(r[1]), bool(r[2]), r[3]) for r in rows]

    def delete_env(self, project_id: str, key: str) -> bool:
        with self._write() as db:
            deleted = db.execute("DELETE FROM env_vars WHERE project_id = ? AND key = ?", (project_id, key))
            return deleted.rowcount > 0

    def deployment(self, deployment_id: str) -> Deployment | None:
        row = self._one(f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?", deployment_id)
        return None if row is None else deployment_row(row)

    def manifest(self, deployment_id: str) -> list[ManifestFile]:
        row = self._one("SELECT manifest FROM deployments WHERE id = ?", deployment_id)
        if row is None:
            raise DeploymentNotFound(f"deployment {deployment_id} not found")
        return _decode_manifest(row[0])

    def list_deployments(
        self, project_id: str, limit: int | None = None, offset: int = 0
    ) -> list[Deployment]:
        # The index deployments_by_project read backwards (no sort); skipped rows are never decoded.
        page = page_slice(limit, offset)
        rows = self._db().execute(
            f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE project_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (project_id, -1 if limit is None else limit, page.start),
        )
        return [deployment_row(r) for r in rows]

    def count_deployments(self, project_id: str) -> int:
        row = self._one("SELECT COUNT(*) FROM deployments WHERE project_id = ?", project_id)
        return 0 if row is None else int(row[0])

    def deployments_with_status(
        self, statuses: Sequence[DeploymentStatus], limit: int | None = None
    ) -> list[Deployment]:
        marks = ",".join("?" * len(statuses))
        rows = self._db().execute(
            f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE status IN ({marks})"
            " ORDER BY created_at LIMIT ?",
            [*(s.value for s in statuses), -1 if limit is None else limit],
        )
        return [deployment_row(r) for r in rows]

    def set_status(
        self, deployment_id: str, status: DeploymentStatus, error: str | None = None
    ) -> Deployment:
        with self._write() as db:
            row = db.execute(
                "SELECT status, target FROM deployments WHERE id = ?", (deployment_id,)
            ).fetchone()
            if row is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            current = DeploymentStatus(row[0])
            if current != status and not can_transition(current, status):
                raise Conflict(f"deployment {deployment_id} cannot go from {current} to {status}")
            becomes_ready = status == DeploymentStatus.READY and current != status
            ready_at = self._clock() if becomes_ready else None
            pending = int(becomes_ready and row[1] == Target.PRODUCTION.value)
            db.execute(
                "UPDATE deployments SET status = ?, error = ?, ready_at = COALESCE(ready_at, ?), "
                "go_live_pending = MAX(go_live_pending, ?) WHERE id = ?",
                (status.value, error, ready_at, pending, deployment_id),
            )
            updated = db.execute(
                f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?", (deployment_id,)
            ).fetchone()
        return deployment_row(updated)

    # -- production alias --------------------------------------------------------------------------
    def move_production(
        self,
        project_id: str,
        expected_from: str | None,
        to_deployment_id: str,
        reason: MoveReason,
        token_name: str,
        pinned: bool,
    ) -> AliasMove:
        with self._write(durable=True) as db:  # on disk before the edge moves and the caller is answered
            row = db.execute(
                "SELECT production_deployment_id FROM projects WHERE id = ?", (project_id,)
            ).fetchone()
            if row is None:
                raise ProjectNotFound(f"project {project_id} not found")
            if row[0] != expected_from:
                raise Conflict("production moved meanwhile; try again")
            db.execute(
                "UPDATE projects SET production_deployment_id = ?, pinned = ? WHERE id = ?",
                (to_deployment_id, int(pinned), project_id),
            )
            cursor = db.execute(
                "INSERT INTO alias_history (project_id, from_deployment_id, to_deployment_id, reason, "
                "token_name, at) VALUES (?, ?, ?, ?, ?, ?)",
                (project_id, expected_from, to_deployment_id, reason.value, token_name, self._clock()),
            )
            moved = db.execute("SELECT * FROM alias_history WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _move(moved)

    def set_pinned(self, project_id: str, pinned: bool) -> None:
        with self._write() as db:
            db.execute("UPDATE projects SET pinned = ? WHERE id = ?", (int(pinned), project_id))

    def settle_go_live(self, deployment_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE deployments SET go_live_pending = 0 WHERE id = ?", (deployment_id,))

    def alias_history(self, project_id: str) -> list[AliasMove]:
        rows = self._db().execute(
            "SELECT * FROM alias_history WHERE project_id = ? ORDER BY id", (project_id,)
        )
        return [_move(r) for r in rows]

    def alias_history_page(self, project_id: str, limit: int, offset: int = 0) -> list[AliasMove]:
        page_slice(limit, offset)
        rows = self._db().execute(
            "SELECT * FROM alias_history WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (project_id, limit, offset),
        )
        return [_move(r) for r in rows]

    def count_alias_moves(self, project_id: str) -> int:
        row = self._one("SELECT COUNT(*) FROM alias_history WHERE project_id = ?", project_id)
        return 0 if row is None else int(row[0])

    # -- hosts -------------------------------------------------------------------------------------
    def host_target(self, host: str) -> tuple[HostRoute, str | None] | None:
        row = self._db().execute(_HOST_TARGET + " WHERE h.host = ?", (host,)).fetchone()
        return None if row is None else _host_target(row)

    def host_targets(self) -> list[tuple[HostRoute, str | None]]:
        return [_host_target(r) for r in self._db().execute(_HOST_TARGET)]

    def project_hosts(self, project_id: str) -> list[HostRoute]:
        rows = self._db().execute("SELECT * FROM hosts WHERE project_id = ? ORDER BY host", (project_id,))
        return [HostRoute(r[0], _host_kind(r[1]), r[2], r[3]) for r in rows]

    # -- custom domains ----------------------------------------------------------------------------
    def add_domain(self, domain: Domain) -> None:
        self._insert_domain(domain, None)

    def add_domain_within(self, domain: Domain, quota: int) -> bool:
        return self._insert_domain(domain, quota)

    def _insert_domain(self, domain: Domain, quota: int | None) -> bool:
        with self._write() as db:
            if db.execute("SELECT 1 FROM domains WHERE name = ?", (domain.name,)).fetchone():
                raise DomainTaken(f"{domain.name} is already added to a project; remove it there first")
            if not db.execute("SELECT 1 FROM projects WHERE id = ?", (domain.project_id,)).fetchone():
                raise ProjectNotFound(f"project {domain.project_id} not found")
            if quota is not None:
                sql = "SELECT COUNT(*) FROM domains WHERE project_id = ? AND deleting = 0"
                if db.execute(sql, (domain.project_id,)).fetchone()[0] >= quota:
                    return False
            db.execute(
                f"INSERT INTO domains ({_DOMAIN_COLUMNS}) VALUES ({', '.join('?' * 21)})",
                (
                    domain.name,
                    domain.project_id,
                    domain.validation_label,
                    domain.created_at,
                    *self._domain_state(domain),
                ),
            )
        return True

    @staticmethod
    def _domain_state(d: Domain) -> tuple[Any, ...]:
        cert = d.certificate
        return (
            d.certificate_status.value,
            d.cdn_status.value,
            d.dns_status.value,
            d.status_reason,
            cert.serial if cert else None,
            cert.issuer if cert else None,
            cert.not_before if cert else None,
            cert.not_after if cert else None,
            d.validation_deadline,
            d.last_checked_at,
            d.next_check_at,
            d.failures,
            int(d.deleting),
            d.failure.value,
            d.certificate_ref,
            records_to_text(d.validation_records),
            d.renewal_status,
        )

    def domain(self, name: str) -> Domain | None:
        row = self._one(f"SELECT {_DOMAIN_COLUMNS} FROM domains WHERE name = ?", name)
        return None if row is None else _domain(row)

    def project_domains(self, project_id: str) -> list[Domain]:
        sql = f"SELECT {_DOMAIN_COLUMNS} FROM domains WHERE project_id = ? ORDER BY name"
        return [_domain(r) for r in self._db().execute(sql, (project_id,))]

    def all_domains(self) -> list[Domain]:
        return [
            _domain(r) for r in self._db().execute(f"SELECT {_DOMAIN_COLUMNS} FROM domains ORDER BY name")
        ]

    def domains_due(self, now: float, limit: int = 100) -> list[Domain]:
        sql = (
            f"SELECT {_DOMAIN_COLUMNS} FROM domains WHERE next_check_at IS NOT NULL AND next_check_at <= ? "
            "ORDER BY next_check_at LIMIT ?"
        )
        return [_domain(r) for r in self._db().execute(sql, (now, limit))]

    def domains_due_fairly(self, now: float, per_project: int, limit: int) -> list[Domain]:
        # Each project's due domains numbered in its own order (never checked first, then the most overdue);
        # then the first of every project, the second of every project, and so on.
        urgency = "last_checked_at IS NOT NULL, next_check_at, name"
        turn = f"ROW_NUMBER() OVER (PARTITION BY project_id ORDER BY {urgency}) AS turn"
        sql = (
            f"SELECT {_DOMAIN_COLUMNS} FROM (SELECT {_DOMAIN_COLUMNS}, {turn} FROM domains "
            "WHERE next_check_at IS NOT NULL AND next_check_at <= ?) "
            f"WHERE turn <= ? ORDER BY turn, {urgency} LIMIT ?"
        )
        return [_domain(r) for r in self._db().execute(sql, (now, per_project, limit))]

    def next_domain_check(self) -> float | None:
        row = self._one("SELECT MIN(next_check_at) FROM domains WHERE next_check_at IS NOT NULL")
        return None if row is None or row[0] is None else float(row[0])

    def save_domain(self, domain: Domain, certificate: tuple[bytes, bytes] | None = None) -> bool:
        columns = (
            "certificate_status = ?, cdn_status = ?, dns_status = ?, status_reason = ?, cert_serial = ?, "
            "cert_issuer = ?, cert_not_before = ?, cert_not_after = ?, validation_deadline = ?, "
            "last_checked_at = ?, next_check_at = ?, failures = ?, deleting = ?, failure = ?, "
            "certificate_ref = ?, validation_records = ?, renewal_status = ?"
        )
        args: tuple[Any, ...] = self._domain_state(domain)
        if certificate is not None:
            columns += ", cert_chain = ?, cert_key = ?"
            args += certificate
        elif domain.certificate is None:
            columns += ", cert_chain = NULL, cert_key = NULL"
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE domains SET {columns} WHERE name = ? AND project_id = ? AND deleting = 0",
                (*args, domain.name, domain.project_id),
            )
            return cursor.rowcount == 1

    def mark_domain_deleting(self, name: str) -> Domain | None:
        with self._write() as db:
            db.execute("UPDATE domains SET deleting = 1, next_check_at = ? WHERE name = ?", (0.0, name))
        return self.domain(name)

    def defer_domain_removal(self, name: str, until: float, failures: int, reason: str) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE domains SET next_check_at = ?, failures = ?, failure = 'removal', status_reason = ? "
                "WHERE name = ? AND deleting = 1",
                (until, failures, reason, name),
            )
            return cursor.rowcount == 1

    def domain_certificate(self, name: str) -> tuple[bytes, bytes] | None:
        row = self._one("SELECT cert_chain, cert_key FROM domains WHERE name = ?", name)
        if row is None or row[0] is None:
            return None
        return bytes(row[0]), bytes(row[1])

    def delete_domain(self, name: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM domains WHERE name = ?", (name,)).rowcount == 1

    # -- leases ------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        # One statement: insert a free lease, or take the row over only if it expired or is the holder's
        # own (a renewal); a refused conflict changes no row.
        now = self._clock()
        cursor = self._db().execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
            "SET holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.expires_at <= ? OR leases.holder = excluded.holder",
            (name, holder, now + ttl, now),
        )
        return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str) -> bool:
        cursor = self._db().execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
        return cursor.rowcount == 1

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        row = self._one(
            "SELECT holder, expires_at FROM leases WHERE name = ? AND expires_at > ?", name, self._clock()
        )
        return None if row is None else (str(row[0]), float(row[1]))
