"""The SessionRepository port in the SQLite store (table ``sessions``, schema version 7): a part of
SqliteStore, on its connections and write transactions.

A session's row refers to its token with ``ON DELETE CASCADE``: deleting a token (or the project a scoped
token belongs to) deletes its sessions in the same statement, so none lingers after its token."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

from anchor_deploy.model.entities import Session
from anchor_deploy.model.errors import Conflict, TokenNotFound

_COLUMNS = "id, token_id, csrf, created_at, expires_at"


def _session(row: sqlite3.Row) -> Session:
    return Session(row["id"], row["token_id"], row["csrf"], row["created_at"], row["expires_at"])


class SqliteSessions:
    """Mixed into SqliteStore, which provides the connection and the write transaction."""

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def add_session(self, session: Session, secret_hash: str) -> None:
        with self._write() as db:
            taken = "SELECT 1 FROM sessions WHERE secret_hash = ? OR id = ?"
            if db.execute(taken, (secret_hash, session.id)).fetchone():
                raise Conflict("a session with this secret or id already exists")
            if not db.execute("SELECT 1 FROM tokens WHERE id = ?", (session.token_id,)).fetchone():
                raise TokenNotFound(f"token {session.token_id} not found")
            db.execute(
                f"INSERT INTO sessions ({_COLUMNS}, secret_hash) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    session.id,
                    session.token_id,
                    session.csrf,
                    session.created_at,
                    session.expires_at,
                    secret_hash,
                ),
            )

    def session_by_hash(self, secret_hash: str) -> Session | None:
        sql = f"SELECT {_COLUMNS} FROM sessions WHERE secret_hash = ?"  # noqa: S608
        row: sqlite3.Row | None = self._db().execute(sql, (secret_hash,)).fetchone()
        return None if row is None else _session(row)

    def delete_session(self, session_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 1

    def delete_expired_sessions(self, now: float) -> int:
        with self._write() as db:
            return int(db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount)
