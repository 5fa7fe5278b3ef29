"""A SQLite connection that says "busy" in the platform's words.

When another process holds the database's write lock longer than the busy timeout, sqlite3 raises
``OperationalError: database is locked``. Every statement of the store goes through this connection class, so
that error leaves the adapter as ``StoreBusy`` (503 with Retry-After at the API), never as a 500.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from anchor_deploy.model.errors import StoreBusy

_BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")


def _translated(exc: sqlite3.OperationalError) -> Exception:
    if any(words in str(exc) for words in _BUSY_WORDS):
        return StoreBusy(
            "the database is busy (another process holds its write lock); nothing was changed, try again"
        )
    return exc


class BusyAwareConnection(sqlite3.Connection):
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc
