"""The GitRepository port in the SQLite store (schema version 6): connections, webhook deliveries, branch
hosts, and the files a git build fetched. A part of SqliteStore, on its connections and write transactions.

A branch's host is a ``hosts`` row of kind 'branch' (the edge serves it as a movable alias) whose
deployment_id is what it serves now; ``git_branches`` names the branch it belongs to."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.entities import Deployment, DeploymentStatus
from anchor_deploy.model.errors import Conflict, DeploymentNotFound, NameTaken, ProjectNotFound
from anchor_deploy.model.git import BranchAlias, Forge, GitConnection, GitSecrets
from anchor_deploy.model.manifest import ManifestFile

BRANCH_KIND = "branch"
_CONNECTION = (
    "project_id, repo_url, production_branch, forge, api_url, created_at, "
    "sealed_credentials IS NOT NULL, sealed_forge_token IS NOT NULL"
)
_BRANCH = (
    "b.project_id, b.branch, b.host, h.deployment_id, b.sha, b.updated_at "
    "FROM git_branches b JOIN hosts h ON h.host = b.host"
)


def _connection(row: sqlite3.Row) -> GitConnection:
    return GitConnection(
        project_id=row[0],
        repo_url=row[1],
        production_branch=row[2],
        forge=Forge(row[3]),
        api_url=row[4],
        created_at=row[5],
        has_credentials=bool(row[6]),
        has_forge_token=bool(row[7]),
    )


def _branch(row: sqlite3.Row) -> BranchAlias:
    return BranchAlias(row[0], row[1], row[2], row[3], row[4], row[5])


class SqliteGit:
    """Mixed into SqliteStore, which provides the connection, the write transaction and these helpers."""

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def connect_git(self, connection: GitConnection, secrets: GitSecrets) -> None:
        with self._write() as db:
            if not db.execute("SELECT 1 FROM projects WHERE id = ?", (connection.project_id,)).fetchone():
                raise ProjectNotFound(f"project {connection.project_id} not found")
            db.execute(
                "INSERT OR REPLACE INTO git_connections (project_id, repo_url, production_branch, forge, "
                "api_url, created_at, sealed_webhook_secret, sealed_credentials, sealed_forge_token) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    connection.project_id,
                    connection.repo_url,
                    connection.production_branch,
                    connection.forge.value,
                    connection.api_url,
                    connection.created_at,
                    secrets.webhook_secret,
                    secrets.credentials,
                    secrets.forge_token,
                ),
            )

    def git_connection(self, project_id: str) -> GitConnection | None:
        sql = f"SELECT {_CONNECTION} FROM git_connections WHERE project_id = ?"  # noqa: S608
        row = self._db().execute(sql, (project_id,)).fetchone()
        return None if row is None else _connection(row)

    def git_secrets(self, project_id: str) -> GitSecrets | None:
        row = (
            self._db()
            .execute(
                "SELECT sealed_webhook_secret, sealed_credentials, sealed_forge_token FROM git_connections "
                "WHERE project_id = ?",
                (project_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return GitSecrets(
            bytes(row[0]),
            None if row[1] is None else bytes(row[1]),
            None if row[2] is None else bytes(row[2]),
        )

    def disconnect_git(self, project_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM git_connections WHERE project_id = ?", (project_id,)).rowcount == 1

    def record_delivery(self, project_id: str, delivery_id: str, at: float) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO git_deliveries (project_id, delivery_id, at) VALUES (?, ?, ?)",
                (project_id, delivery_id, at),
            )
            return cursor.rowcount == 1

    def forget_deliveries(self, before: float) -> int:
        with self._write() as db:
            return int(db.execute("DELETE FROM git_deliveries WHERE at < ?", (before,)).rowcount)

    def branch_aliases(self, project_id: str) -> list[BranchAlias]:
        sql = f"SELECT {_BRANCH} WHERE b.project_id = ? ORDER BY b.branch"
        return [_branch(r) for r in self._db().execute(sql, (project_id,))]

    def branch_alias(self, project_id: str, branch: str) -> BranchAlias | None:
        sql = f"SELECT {_BRANCH} WHERE b.project_id = ? AND b.branch = ?"
        row = self._db().execute(sql, (project_id, branch)).fetchone()
        return None if row is None else _branch(row)

    def move_branch(self, alias: BranchAlias, expected_from: str | None) -> None:
        with self._write() as db:
            if not db.execute("SELECT 1 FROM projects WHERE id = ?", (alias.project_id,)).fetchone():
                raise ProjectNotFound(f"project {alias.project_id} not found")
            sql = f"SELECT {_BRANCH} WHERE b.project_id = ? AND b.branch = ?"
            row = db.execute(sql, (alias.project_id, alias.branch)).fetchone()
            if row is None:
                if expected_from is not None:
                    raise Conflict(f"branch {alias.branch!r} has no alias any more")
                if db.execute("SELECT 1 FROM hosts WHERE host = ?", (alias.host,)).fetchone():
                    raise NameTaken(f"hostname {alias.host} is already in use")
                db.execute(
                    "INSERT INTO hosts VALUES (?, ?, ?, ?)",
                    (alias.host, BRANCH_KIND, alias.project_id, alias.deployment_id),
                )
                db.execute(
                    "INSERT INTO git_branches (project_id, branch, host, sha, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (alias.project_id, alias.branch, alias.host, alias.sha, alias.updated_at),
                )
                return
            current = _branch(row)
            if current.deployment_id != expected_from:
                raise Conflict(f"branch {alias.branch!r} moved meanwhile")
            db.execute(
                "UPDATE hosts SET deployment_id = ? WHERE host = ?", (alias.deployment_id, current.host)
            )
            db.execute(
                "UPDATE git_branches SET sha = ?, updated_at = ? WHERE project_id = ? AND branch = ?",
                (alias.sha, alias.updated_at, alias.project_id, alias.branch),
            )

    def remove_branch(self, project_id: str, branch: str) -> str | None:
        with self._write() as db:
            row = db.execute(
                "SELECT host FROM git_branches WHERE project_id = ? AND branch = ?", (project_id, branch)
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM git_branches WHERE project_id = ? AND branch = ?", (project_id, branch))
            db.execute("DELETE FROM hosts WHERE host = ? AND kind = ?", (row[0], BRANCH_KIND))
            return str(row[0])

    def set_source_files(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        app: AppConfig | None,
        sealed_env: bytes,
        meta: dict[str, Any],
    ) -> Deployment:
        from anchor_deploy.adapters.local import sqlite_store as rows  # the store module imports this one

        with self._write() as db:
            row = db.execute(
                "SELECT status, file_count FROM deployments WHERE id = ?", (deployment_id,)
            ).fetchone()
            if row is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            if row[0] != DeploymentStatus.BUILDING.value or row[1] != 0:
                raise Conflict(f"deployment {deployment_id} is {row[0]} and cannot take new files")
            db.execute(
                "UPDATE deployments SET manifest = ?, file_count = ?, total_size = ?, app = ?, "
                "sealed_env = ?, meta = ? WHERE id = ?",
                (
                    rows.encode_manifest(files),
                    len(files),
                    sum(f.size for f in files),
                    json.dumps(app.to_dict()) if app else None,
                    sealed_env,
                    json.dumps(meta),
                    deployment_id,
                ),
            )
            sql = f"SELECT {rows.DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?"  # noqa: S608
            return rows.deployment_row(db.execute(sql, (deployment_id,)).fetchone())
