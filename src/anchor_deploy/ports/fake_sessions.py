"""The SessionRepository port in memory: a part of FakeStore (ports/fakes.py), on its lock, with its
tokens. A token's sessions go with it (``forget_sessions``, called where FakeStore deletes tokens), as
SqliteStore's rows cascade."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from anchor_deploy.model.entities import Session
from anchor_deploy.model.errors import Conflict, TokenNotFound


class FakeSessions:
    """Mixed into FakeStore, which provides ``_lock`` and ``_tokens`` (secret hash -> token)."""

    _lock: threading.RLock
    _tokens: dict[str, Any]

    def _sessions(self) -> dict[str, Session]:
        """Secret hash -> session."""
        found: dict[str, Session] | None = getattr(self, "_sessions_by_hash", None)
        if found is None:
            found = {}
            self._sessions_by_hash = found
        return found

    def forget_sessions(self, token_ids: Iterable[str]) -> None:
        gone = set(token_ids)
        sessions = self._sessions()
        for secret_hash in [h for h, s in sessions.items() if s.token_id in gone]:
            del sessions[secret_hash]

    def add_session(self, session: Session, secret_hash: str) -> None:
        with self._lock:
            sessions = self._sessions()
            if secret_hash in sessions or any(s.id == session.id for s in sessions.values()):
                raise Conflict("a session with this secret or id already exists")
            if not any(t.id == session.token_id for t in self._tokens.values()):
                raise TokenNotFound(f"token {session.token_id} not found")
            sessions[secret_hash] = session

    def session_by_hash(self, secret_hash: str) -> Session | None:
        with self._lock:
            return self._sessions().get(secret_hash)

    def delete_session(self, session_id: str) -> bool:
        with self._lock:
            sessions = self._sessions()
            found = [h for h, s in sessions.items() if s.id == session_id]
            for secret_hash in found:
                del sessions[secret_hash]
            return bool(found)

    def delete_expired_sessions(self, now: float) -> int:
        with self._lock:
            sessions = self._sessions()
            expired = [h for h, s in sessions.items() if s.expires_at <= now]
            for secret_hash in expired:
                del sessions[secret_hash]
            return len(expired)
