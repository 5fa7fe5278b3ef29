"""Dashboard sessions: signing in with a token opens a session that a browser holds as an HttpOnly cookie.

The cookie carries a random secret; the database keeps only its sha256, as for tokens. A session acts with
its token's rights and dies with it: every request looks the token up again, so revoking a token signs out
every browser that used it. Each session also holds the CSRF secret that its forms echo back."""

from __future__ import annotations

import contextlib
import hmac
import secrets
from collections.abc import Callable
from typing import Protocol

from anchor_deploy.model.entities import Session, Token
from anchor_deploy.model.errors import CsrfRefused, StoreBusy, TokenNotFound, Unauthorized
from anchor_deploy.ports.store import SessionRepository, TokenRepository
from anchor_deploy.services.auth import TokenService, hash_secret

SESSION_PREFIX = "ses_"
# Expired sessions are swept when a session is opened, at most this often (seconds).
_SWEEP_INTERVAL = 3600.0


class SessionStore(SessionRepository, TokenRepository, Protocol):
    """Sessions and the tokens they act for."""


class SessionService:
    def __init__(
        self, store: SessionStore, tokens: TokenService, clock: Callable[[], float], lifetime: float
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._clock = clock
        self.lifetime = lifetime
        self._swept_at = 0.0

    def sign_in(self, token_secret: str) -> tuple[Session, str]:
        """A new session for the token whose secret was typed (Unauthorized if none): the session and the
        cookie's secret, which is shown to the browser once and never stored."""
        token = self._tokens.authenticate(f"Bearer {token_secret.strip()}")
        now = self._clock()
        self._sweep(now)
        session = Session(
            id="sid_" + secrets.token_hex(8),
            token_id=token.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self.lifetime,
        )
        secret = SESSION_PREFIX + secrets.token_urlsafe(32)
        try:
            self._store.add_session(session, hash_secret(secret))
        except TokenNotFound as exc:  # revoked between the check above and the write
            raise Unauthorized("invalid token") from exc
        return session, secret

    def resume(self, cookie: str | None) -> tuple[Session, Token]:
        """The session a cookie names and the token it acts for; Unauthorized if the cookie is missing,
        unknown, expired, or its token was revoked."""
        if not cookie or not cookie.startswith(SESSION_PREFIX):
            raise Unauthorized("not signed in")
        session = self._store.session_by_hash(hash_secret(cookie))
        if session is None:
            raise Unauthorized("not signed in")
        if session.expires_at <= self._clock():
            self._forget(session)
            raise Unauthorized("the session has expired: sign in again")
        token = self._store.token_by_id(session.token_id)
        if token is None:
            self._forget(session)
            raise Unauthorized("the token of this session was revoked: sign in again")
        return session, token

    def sign_out(self, cookie: str | None) -> bool:
        """End the session a cookie names; False if there was none."""
        if not cookie or not cookie.startswith(SESSION_PREFIX):
            return False
        session = self._store.session_by_hash(hash_secret(cookie))
        return session is not None and self._store.delete_session(session.id)

    @staticmethod
    def check_csrf(session: Session, sent: str | None) -> None:
        """A form's CSRF field must be its session's secret, compared in constant time."""
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise CsrfRefused(
                "this form is out of date or was not sent by the dashboard: reload the page and try again"
            )

    def _forget(self, session: Session) -> None:
        with contextlib.suppress(StoreBusy):
            self._store.delete_session(session.id)

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < _SWEEP_INTERVAL:
            return
        self._swept_at = now
        with contextlib.suppress(StoreBusy):
            self._store.delete_expired_sessions(now)
