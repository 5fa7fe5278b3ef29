"""The DnsLinkRepository port in the SQLite store (table ``dns_links``, schema version 5): a part of
SqliteStore, on its connections and write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.errors import ProjectNotFound, ZoneLinked

_COLUMNS = "zone, project_id, kind, target, key_name, key_algorithm, created_at"


def _link(row: sqlite3.Row) -> DnsLink:
    return DnsLink(
        row["zone"],
        row["project_id"],
        row["kind"],
        row["target"],
        row["key_name"],
        row["key_algorithm"],
        row["created_at"],
    )


class SqliteDnsLinks:
    """Mixed into SqliteStore, which provides the connection and the write transaction."""

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def add_dns_link(self, link: DnsLink, sealed_secret: bytes | None) -> None:
        with self._write() as db:
            held = db.execute("SELECT 1 FROM dns_links WHERE zone = ?", (link.zone,)).fetchone()
            if held:
                raise ZoneLinked(f"the zone {link.zone} is linked already; unlink it there first")
            if not db.execute("SELECT 1 FROM projects WHERE id = ?", (link.project_id,)).fetchone():
                raise ProjectNotFound(f"project {link.project_id} not found")
            values: tuple[Any, ...] = (
                link.zone,
                link.project_id,
                link.kind,
                link.target,
                link.key_name,
                link.key_algorithm,
                link.created_at,
                sealed_secret,
            )
            sql = f"INSERT INTO dns_links ({_COLUMNS}, sealed_secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            db.execute(sql, values)

    def dns_links(self, project_id: str) -> list[DnsLink]:
        rows: Iterator[sqlite3.Row] = self._db().execute(
            f"SELECT {_COLUMNS} FROM dns_links WHERE project_id = ? ORDER BY zone",  # noqa: S608
            (project_id,),
        )
        return [_link(r) for r in rows]

    def dns_link_secret(self, zone: str) -> bytes | None:
        row = self._db().execute("SELECT sealed_secret FROM dns_links WHERE zone = ?", (zone,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def remove_dns_link(self, project_id: str, zone: str) -> bool:
        with self._write() as db:
            sql = "DELETE FROM dns_links WHERE project_id = ? AND zone = ?"
            return db.execute(sql, (project_id, zone)).rowcount == 1
