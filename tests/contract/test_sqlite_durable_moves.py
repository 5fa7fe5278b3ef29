"""SQLite: a production move is committed durably (synchronous=FULL: the WAL is fsynced at COMMIT) before
move_production returns, so a rollback the caller was told of and the edge already shows survives a power
loss, not only a crash of the process; every other write keeps synchronous=NORMAL, also after a refused
(compare-and-set) move. What each statement ran under is read from SQLite's own trace of the connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.entities import MoveReason
from anchor_deploy.model.errors import Conflict
from tests.contract.test_store_contract import add_deployment, add_project, make_ready

_LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _synchronous(db: sqlite3.Connection) -> str:
    return _LEVELS[db.execute("PRAGMA synchronous").fetchone()[0]]


def test_moves_commit_under_full_and_leave_the_connection_at_normal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "anchor.db", clock=lambda: 1.0)
    site = add_project(store, "site")
    a = make_ready(store, add_deployment(store, site, "a1"))
    b = make_ready(store, add_deployment(store, site, "a2"))
    db = store._db()  # this thread's connection: the one the moves below use
    at_commit: list[str] = []

    def trace(statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            at_commit.append(_synchronous(db))  # the level the COMMIT about to run is under

    db.set_trace_callback(trace)
    store.move_production(site.id, None, a.id, MoveReason.DEPLOY, "ci", False)
    store.move_production(site.id, a.id, b.id, MoveReason.ROLLBACK, "alice", True)
    store.set_pinned(site.id, False)  # any other write
    with pytest.raises(Conflict):
        store.move_production(site.id, a.id, a.id, MoveReason.PROMOTE, "bob", False)
    db.set_trace_callback(None)
    assert at_commit == ["FULL", "FULL", "NORMAL"]
    assert _synchronous(db) == "NORMAL"
